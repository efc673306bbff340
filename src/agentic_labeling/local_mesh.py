"""Starts and stops the mesh's server processes on this machine (`alabel serve ...`).

Used by `make demo`, by the tests (real servers on loopback) and, later, by `alabel up`;
tritonserver is started by agentic_labeling.triton_server.
Each start waits until the process serves, and reports a process that died during start-up
with its log, instead of hanging. Servers get a free port for gRPC and, unless told otherwise,
for their Prometheus `/metrics` endpoint too, so that two of them never collide on a default
port; both ports are read back from the port files the server writes (`<kind>.port` and
`<kind>.port.metrics`).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentic_labeling.errors import Unavailable
from agentic_labeling.settings import ENV_PREFIX

__all__ = ["ManagedProcess", "start_server_process", "unused_port"]

START_TIMEOUT_S = 30.0
_POLL_S = 0.05


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class ManagedProcess:
    """A child process of the mesh, where it listens and where it logs."""

    name: str
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log: Path
    # The bound port of the server's /metrics endpoint; None when it has none.
    metrics_port: int | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def metrics_url(self) -> str | None:
        """Where to scrape the server's Prometheus metrics; None when it has no endpoint."""
        if self.metrics_port is None:
            return None
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.metrics_port}/metrics"

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM and wait: the exit status (0 for a clean stop). Killed if it hangs."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise Unavailable(
                f"{self.name} did not stop within {timeout_s} s of SIGTERM and was killed"
            ) from None


def _wait_until(is_ready: Callable[[], bool], managed: ManagedProcess, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not is_ready():
        if managed.process.poll() is not None:
            raise Unavailable(
                f"{managed.name} exited with status {managed.process.returncode} while "
                f"starting:\n{managed.log.read_text(errors='replace')[-4000:]}"
            )
        if time.monotonic() > deadline:
            managed.process.kill()
            managed.process.wait()
            raise Unavailable(
                f"{managed.name} did not start within {timeout_s} s:\n"
                f"{managed.log.read_text(errors='replace')[-4000:]}"
            )
        time.sleep(_POLL_S)


def _environment_without_settings() -> dict[str, str]:
    # Children get their settings as flags only, so what runs is what the command line says.
    return {k: v for k, v in os.environ.items() if not k.startswith(ENV_PREFIX)}


def start_server_process(
    kind: str,
    workdir: Path,
    settings_flags: Sequence[str] = (),
    *,
    host: str = "127.0.0.1",
    timeout_s: float = START_TIMEOUT_S,
    metrics_port: int | None = 0,
) -> ManagedProcess:
    """Start `alabel <flags> serve <kind>` on a free port of `host`; return once it serves.

    `kind` is "registry" or "orchestrator"; its log goes to `workdir/<kind>.log`.
    `metrics_port` is its /metrics port: 0 (default) a free one, -1 none, None whatever
    `settings_flags` or the setting's default say. A `--<kind>-metrics-port` in
    `settings_flags` wins, as it comes later on the command line.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port_file = workdir / f"{kind}.port"
    metrics_file = port_file.with_name(port_file.name + ".metrics")
    port_file.unlink(missing_ok=True)
    metrics_file.unlink(missing_ok=True)
    log = workdir / f"{kind}.log"
    metrics_flags = [] if metrics_port is None else [f"--{kind}-metrics-port", str(metrics_port)]
    command = [
        sys.executable,
        "-m",
        "agentic_labeling",
        "--host",
        host,
        f"--{kind}-port",
        "0",
        *metrics_flags,
        *settings_flags,
        "serve",
        kind,
        "--port-file",
        str(port_file),
    ]
    with log.open("wb") as log_file:
        process = subprocess.Popen(
            command, stdout=log_file, stderr=subprocess.STDOUT, env=_environment_without_settings()
        )
    managed = ManagedProcess(kind, process, host, 0, log)
    _wait_until(port_file.exists, managed, timeout_s)
    managed.port = int(port_file.read_text())
    # Written before the port file, so it is there now when the server has an endpoint.
    if metrics_file.exists():
        managed.metrics_port = int(metrics_file.read_text())
    return managed
