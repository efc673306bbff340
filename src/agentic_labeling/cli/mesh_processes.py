"""Start the mesh's servers in the background and stop them again by pid.

`start_background_server` runs `alabel serve registry|orchestrator` as a process that outlives
the command (its own session: the terminal's Ctrl-C does not reach it), logging to a file, and
returns once it serves: its port file is written and gRPC health says SERVING. Its log is
appended to (a banner line marks each start); a server that refuses to start says why in its
port file's `.error` file, which becomes the error's message. Settings reach it
as `ALABEL_*` variables built from the caller's resolved settings, not as flags: a Postgres DSN
with a password must not show in `ps` (a process's environment is readable by its owner only).

`stop_process` sends SIGTERM, waits for the grace period, then SIGKILL. A process started by
another command is not our child and its exit status cannot be known; one that is (tests run
`up` and `down` in one process) is reaped and its status reported. A zombie counts as stopped:
nothing may reap an orphan on machines whose init does not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from agentic_labeling.errors import Unavailable
from agentic_labeling.settings import ENV_PREFIX, Settings

__all__ = [
    "LOG_TAIL_LINES",
    "StartedServer",
    "StopOutcome",
    "log_tail",
    "process_is_running",
    "process_start_ticks",
    "serving",
    "settings_environment",
    "start_background_server",
    "stop_process",
]

LOG_TAIL_LINES = 20
_POLL_S = 0.05
_HEALTH_TIMEOUT_S = 2.0
_KILL_WAIT_S = 10.0


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _state(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def process_is_running(pid: int, start_ticks: int | None = None) -> bool:
    """True while `pid` lives, is not a zombie, and (when given) started at `start_ticks`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    if _state(pid) in ("Z", "X"):
        return False
    return start_ticks is None or process_start_ticks(pid) in (None, start_ticks)


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


def settings_environment(settings: Settings, **overrides: object) -> dict[str, str]:
    """This process's environment with `ALABEL_*` replaced by `settings` (and `overrides`)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}
    for f in dataclasses.fields(Settings):
        value = overrides.get(f.name, getattr(settings, f.name))
        env[ENV_PREFIX + f.name.upper()] = "" if value is None else str(value)
    return env


@dataclass(frozen=True)
class StartedServer:
    """A server process started in the background, serving at `address`."""

    name: str
    pid: int
    start_ticks: int | None
    address: str
    log_file: Path
    metrics_url: str | None = None  # its Prometheus endpoint, when it has one


def _client_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    return {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)


def _host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def serving(address: str) -> bool:
    """Whether the gRPC server at `address` answers its health check with SERVING."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    options = [("grpc.enable_http_proxy", 0)]
    with grpc.insecure_channel(address, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(), timeout=_HEALTH_TIMEOUT_S)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


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


def start_background_server(
    kind: str,
    env: dict[str, str],
    run_dir: Path,
    *,
    host: str,
    timeout_s: float,
) -> StartedServer:
    """Start `alabel serve <kind>` in its own session; return once it serves.

    Raises `Unavailable` (metadata "log": the log file) when it exits or is not serving within
    `timeout_s`; a process still starting is stopped first (SIGTERM, then SIGKILL).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    port_file = run_dir / f"{kind}.port"
    port_file.unlink(missing_ok=True)
    port_file.with_name(port_file.name + ".metrics").unlink(missing_ok=True)
    log_file = run_dir / f"{kind}.log"
    command = [
        sys.executable,
        "-m",
        "agentic_labeling",
        "serve",
        kind,
        "--port-file",
        str(port_file),
    ]
    # Appended, never overwritten: the log of the run before (maybe the crash being
    # restarted after) stays readable; a banner marks where each start begins.
    with log_file.open("ab") as log:
        log_start = log.tell()
        log.write(_banner(kind))
        log.flush()
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
        )
    deadline = time.monotonic() + timeout_s
    address = ""
    while True:
        if process.poll() is not None:
            failure = _reported_failure(kind, port_file, log_file, log_start)
            if "reason" not in failure.metadata:
                what = f"exited with status {process.returncode}"
                failure = _start_failure(kind, what, log_file, log_start)
            raise failure
        if not address and port_file.exists():
            address = _host_port(_client_host(host), int(port_file.read_text()))
        if address and serving(address):
            break
        if time.monotonic() > deadline:
            # SIGTERM first: a registry half-way through opening its stores closes them (and
            # stops its embedded Postgres) instead of leaving them behind.
            _stop_child(process)
            raise _start_failure(
                kind, f"was not serving within {timeout_s:g} s", log_file, log_start
            )
        time.sleep(_POLL_S)
    # A server with a /metrics endpoint writes its port beside the gRPC port file.
    metrics_file = port_file.with_name(port_file.name + ".metrics")
    metrics_url = None
    if metrics_file.exists():
        metrics_host = _host_port(_client_host(host), int(metrics_file.read_text()))
        metrics_url = f"http://{metrics_host}/metrics"
    return StartedServer(
        kind, process.pid, process_start_ticks(process.pid), address, log_file, metrics_url
    )


def _stop_child(process: subprocess.Popen[bytes], grace_s: float = 15.0) -> None:
    process.terminate()
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass(frozen=True)
class StopOutcome:
    """How a stop went: "stopped" (by SIGTERM), "killed" (SIGKILL after the grace), or
    "not running" (it had already gone). `exit_status` only when it was our child."""

    how: str
    seconds: float = 0.0
    exit_status: int | None = None


def _reap(pid: int) -> int | None:
    """The exit status of our child `pid` once it has ended (None: still running, or not ours)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done == pid else None


def _wait_gone(pid: int, start_ticks: int | None, timeout_s: float) -> tuple[bool, int | None]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = _reap(pid)
        if status is not None or not process_is_running(pid, start_ticks):
            return True, status
        if time.monotonic() > deadline:
            return False, None
        time.sleep(_POLL_S)


def stop_process(pid: int, start_ticks: int | None, grace_s: float) -> StopOutcome:
    """SIGTERM, up to `grace_s` to exit, then SIGKILL."""
    if not process_is_running(pid, start_ticks):
        return StopOutcome("not running", exit_status=_reap(pid))
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    gone, status = _wait_gone(pid, start_ticks, grace_s)
    if gone:
        return StopOutcome("stopped", time.monotonic() - started, status)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    gone, status = _wait_gone(pid, start_ticks, _KILL_WAIT_S)
    if not gone:
        raise Unavailable(f"pid {pid} survived SIGKILL", reason="STOP_FAILED")
    return StopOutcome("killed", time.monotonic() - started, status)
