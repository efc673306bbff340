"""Start the mesh's servers in the background for `alabel up`; stop them again by pid.

`start_background_server` runs `alabel serve registry|orchestrator` with the one launcher
(`agentic_labeling.local.launcher`) as a process that outlives the command (its own session:
the terminal's Ctrl-C does not reach it), and returns what `alabel up` records of it. Settings
reach it as `ALABEL_*` variables built from the caller's resolved settings, not as flags
(`settings_environment`): a Postgres DSN with a password must not show in `ps`.

Process control itself (alive checks with the PID-reuse guard, SIGTERM -> grace -> SIGKILL,
reaping) lives in `agentic_labeling.local.processes`; the names `alabel up`/`down` use are
re-exported here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agentic_labeling.local.launcher import (
    LOG_TAIL_LINES,
    log_tail,
    serving,
    settings_environment,
    start_server,
)
from agentic_labeling.local.processes import (
    StopOutcome,
    process_is_running,
    process_start_ticks,
    stop_process,
)

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


@dataclass(frozen=True)
class StartedServer:
    """A server process started in the background, serving at `address`."""

    name: str
    pid: int
    start_ticks: int | None
    address: str
    log_file: Path
    metrics_url: str | None = None  # its Prometheus endpoint, when it has one


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
    server = start_server(kind, run_dir, env=env, host=host, timeout_s=timeout_s, detached=True)
    return StartedServer(
        kind, server.pid, server.start_ticks, server.address, server.log, server.metrics_url
    )
