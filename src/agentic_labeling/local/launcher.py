"""The one launcher of `alabel serve registry|orchestrator|review` processes on this machine.

`alabel up` (through `cli/mesh_processes`), the tests' fixtures, the benchmarks and the demo
(through `local_mesh`) all start servers with `start_server`: `python -m agentic_labeling
[FLAGS] serve <kind> --port-file <run_dir>/<kind>.port`, logging to `<run_dir>/<kind>.log`, and
it returns once the server serves: its port file is written and gRPC health says SERVING.

- The log is appended to, never overwritten: the log of the run before (maybe the crash being
  restarted after) stays readable; a banner line marks where each start begins (`log_start`).
- A server that refuses to start says why in its port file's `.error` file (JSON: message,
  reason, metadata), which becomes the error's message; otherwise the error says how it exited.
- A server still starting when the time is up is stopped with SIGTERM first: a registry
  half-way through opening its stores closes them (and stops its embedded Postgres) instead of
  leaving them behind.
- `detached`: the server gets its own session, so it outlives the caller and the terminal's
  Ctrl-C does not reach it (what `alabel up` wants; a test's server dies with the test).
- Settings reach the server as flags (`FLAGS`) or as `ALABEL_*` variables (`env`); the caller
  decides (`settings_environment`, `environment_without_settings`). A Postgres DSN with a
  password must not show in `ps`: a process's environment is readable by its owner only.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentic_labeling.channel_options import channel_options
from agentic_labeling.errors import Unavailable
from agentic_labeling.local.addresses import client_address
from agentic_labeling.local.processes import process_start_ticks, stop_child
from agentic_labeling.settings import ENV_PREFIX, Settings

__all__ = [
    "LOG_TAIL_LINES",
    "START_TIMEOUT_S",
    "ManagedProcess",
    "environment_without_settings",
    "http_serving",
    "log_tail",
    "ready",
    "serving",
    "settings_environment",
    "start_server",
]

START_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 20
_POLL_S = 0.05
_HEALTH_TIMEOUT_S = 2.0
# A server still starting when the time is up gets this long to stop on SIGTERM.
_ABANDON_GRACE_S = 15.0


def environment_without_settings(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """`base` (default: this process's environment) without any `ALABEL_*` variable."""
    source = os.environ if base is None else base
    return {k: v for k, v in source.items() if not k.startswith(ENV_PREFIX)}


def settings_environment(settings: Settings, **overrides: object) -> dict[str, str]:
    """This process's environment with `ALABEL_*` replaced by `settings` (and `overrides`)."""
    env = environment_without_settings()
    for f in dataclasses.fields(Settings):
        value = overrides.get(f.name, getattr(settings, f.name))
        env[ENV_PREFIX + f.name.upper()] = "" if value is None else str(value)
    return env


def log_tail(path: Path | str | None, lines: int = LOG_TAIL_LINES, start: int = 0) -> list[str]:
    """The last lines of a log file from byte `start` on (empty when it cannot be read)."""
    if path is None:
        return []
    try:
        with Path(path).open("rb") as log:
            log.seek(start)
            return log.read().decode(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


def serving(address: str) -> bool:
    """Whether the gRPC server at `address` answers its health check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    with grpc.insecure_channel(address, options=channel_options(address, local=True)) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=_HEALTH_TIMEOUT_S)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def http_serving(address: str) -> bool:
    """Whether the HTTP server at `address` (the review app) answers /healthz with 200."""
    import urllib.error
    import urllib.request

    # No proxy: the environment's http_proxy cannot reach a server on this machine.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://{address}/healthz", timeout=_HEALTH_TIMEOUT_S) as reply:
            return bool(reply.status == 200)
    except (OSError, ValueError):
        return False


def ready(kind: str, address: str) -> bool:
    """Whether a server of `kind` serves: the review app over HTTP, the others over gRPC."""
    return http_serving(address) if kind == "review" else serving(address)


@dataclass
class ManagedProcess:
    """A server process `start_server` started: where it serves, where it logs."""

    name: str
    process: subprocess.Popen[bytes]
    host: str  # the host it is bound to (`address` is where a client here dials)
    port: int
    log: Path
    # Where this start's part of the (appended) log begins.
    log_start: int = 0
    # The bound port of the server's /metrics endpoint; None when it has none.
    metrics_port: int | None = None
    start_ticks: int | None = None  # see local.processes: the PID-reuse guard

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def address(self) -> str:
        return client_address(self.host, self.port)

    @property
    def metrics_url(self) -> str | None:
        """Where to scrape the server's Prometheus metrics; None when it has no endpoint."""
        if self.metrics_port is None:
            return None
        return f"http://{client_address(self.host, self.metrics_port)}/metrics"

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait: the exit status (0 for a clean stop). Killed if it hangs."""
        outcome = stop_child(self.process, timeout_s)
        if outcome.how == "killed":
            raise Unavailable(
                f"{self.name} did not stop within {timeout_s} s of SIGTERM and was killed"
            )
        assert outcome.exit_status is not None  # a child stopped through its Popen is reaped
        return outcome.exit_status


def _start_failure(name: str, what: str, log_file: Path, log_start: int) -> Unavailable:
    return Unavailable(
        f"{name} {what}",
        reason="MESH_START_FAILED",
        metadata={"log": str(log_file), "log_start": str(log_start)},
    )


def _reported_failure(name: str, port_file: Path, log_file: Path, log_start: int) -> Unavailable:
    """The server's own account of why it did not start (its `.error` file), when it left one:
    metadata "reason" is its reason, "error.<key>" its metadata."""
    try:
        report = json.loads(port_file.with_name(port_file.name + ".error").read_text())
        message, reason = str(report["message"]), str(report["reason"])
        facts = {f"error.{k}": str(v) for k, v in dict(report.get("metadata") or {}).items()}
    except (OSError, ValueError, KeyError, TypeError):
        return _start_failure(name, "exited before it was serving", log_file, log_start)
    return Unavailable(
        f"{name} failed to start: {message}",
        reason="MESH_START_FAILED",
        metadata={"log": str(log_file), "log_start": str(log_start), "reason": reason, **facts},
    )


def _banner(kind: str) -> bytes:
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    return f"==== {when} alabel: starting `alabel serve {kind}` ====\n".encode()


def start_server(
    kind: str,
    run_dir: Path,
    *,
    env: Mapping[str, str],
    host: str,
    timeout_s: float = START_TIMEOUT_S,
    flags: Sequence[str] = (),
    detached: bool = False,
) -> ManagedProcess:
    """Start `alabel [flags] serve <kind>`, bound to `host`; return once it serves.

    Raises `Unavailable` (reason MESH_START_FAILED; metadata "log": the log file, "log_start":
    where this start's lines begin) when it exits or is not serving within `timeout_s`; a
    process still starting is stopped first (SIGTERM, then SIGKILL).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    port_file = run_dir / f"{kind}.port"
    metrics_file = port_file.with_name(port_file.name + ".metrics")
    port_file.unlink(missing_ok=True)
    metrics_file.unlink(missing_ok=True)
    log_file = run_dir / f"{kind}.log"
    command = [
        sys.executable,
        "-m",
        "agentic_labeling",
        *flags,
        "serve",
        kind,
        "--port-file",
        str(port_file),
    ]
    with log_file.open("ab") as log:
        log_start = log.tell()
        log.write(_banner(kind))
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(env),
            start_new_session=detached,
        )
    server = ManagedProcess(kind, process, host, 0, log_file, log_start)
    deadline = time.monotonic() + timeout_s
    while True:
        if process.poll() is not None:
            failure = _reported_failure(kind, port_file, log_file, log_start)
            if "reason" not in failure.metadata:
                what = f"exited with status {process.returncode}"
                failure = _start_failure(kind, what, log_file, log_start)
            raise failure
        if not server.port and port_file.exists():
            server.port = int(port_file.read_text())
        if server.port and ready(kind, server.address):
            break
        if time.monotonic() > deadline:
            stop_child(process, _ABANDON_GRACE_S)
            raise _start_failure(
                kind, f"was not serving within {timeout_s:g} s", log_file, log_start
            )
        time.sleep(_POLL_S)
    # Written before the port file, so it is there now when the server has an endpoint.
    if metrics_file.exists():
        server.metrics_port = int(metrics_file.read_text())
    server.start_ticks = process_start_ticks(process.pid)
    return server
