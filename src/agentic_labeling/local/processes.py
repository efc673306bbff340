"""Processes on this machine: whether one still runs, and stopping one for good.

One PID-reuse guard: a process is recorded with its start time (`process_start_ticks`, field 22
of /proc/<pid>/stat), and a pid whose process started at another time belongs to another
program: it counts as not running and is never signalled. Where the start time is unknown (not
recorded, or no /proc), the pid alone is trusted.

A zombie counts as gone: a process started by another command is not our child, and nothing
reaps an orphan on machines whose init does not (containers). A process that is our child (a
test runs `up` and `down` in one process) is reaped, and its exit status reported.

Stopping is SIGTERM, up to a grace period to exit, then SIGKILL: `stop_process` by pid,
`stop_child` for a child this process holds as a `subprocess.Popen` (which must reap it itself,
or its exit status is lost).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_labeling.errors import Unavailable

__all__ = [
    "StopOutcome",
    "process_is_running",
    "process_start_ticks",
    "reap",
    "stop_child",
    "stop_process",
]

_POLL_S = 0.05
_KILL_WAIT_S = 10.0


def _stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat after the command name (state first), None when there is no such pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name is in parentheses and may itself hold spaces and parentheses.
    return stat.rsplit(")", 1)[1].split()


def process_start_ticks(pid: int) -> int | None:
    """When `pid` started, in clock ticks since boot (/proc/<pid>/stat field 22), or None."""
    fields = _stat_fields(pid)
    return None if fields is None else int(fields[19])


def process_is_running(pid: int, start_ticks: int | None = None) -> bool:
    """True while `pid` lives, is not a zombie, and (when given) started at `start_ticks`."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive, and not ours to judge
    fields = _stat_fields(pid)
    if fields is not None and fields[0] in ("Z", "X"):
        return False
    return start_ticks is None or process_start_ticks(pid) in (None, start_ticks)


@dataclass(frozen=True)
class StopOutcome:
    """How a stop went: "stopped" (by SIGTERM), "killed" (SIGKILL after the grace), or
    "not running" (it had already gone). `exit_status` only when it was our child."""

    how: str
    seconds: float = 0.0
    exit_status: int | None = None


def reap(pid: int) -> int | None:
    """The exit status of our child `pid` once it has ended (None: still running, or not ours)."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done == pid else None


def _wait_gone(pid: int, start_ticks: int | None, timeout_s: float) -> tuple[bool, int | None]:
    deadline = time.monotonic() + timeout_s
    while True:
        status = reap(pid)
        if status is not None or not process_is_running(pid, start_ticks):
            return True, status
        if time.monotonic() > deadline:
            return False, None
        time.sleep(_POLL_S)


def stop_process(
    pid: int, start_ticks: int | None, grace_s: float, *, name: str | None = None
) -> StopOutcome:
    """SIGTERM, up to `grace_s` to exit, then SIGKILL; `Unavailable` if it survives that.

    `name` (e.g. "tritonserver") is what the error calls the process.
    """
    if not process_is_running(pid, start_ticks):
        return StopOutcome("not running", exit_status=reap(pid))
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
        what = f"pid {pid}" if name is None else f"{name} (pid {pid})"
        raise Unavailable(f"{what} survived SIGKILL", reason="STOP_FAILED")
    return StopOutcome("killed", time.monotonic() - started, status)


def stop_child(process: subprocess.Popen[Any], grace_s: float) -> StopOutcome:
    """`stop_process` for our child held as a Popen: SIGTERM, up to `grace_s`, then SIGKILL;
    reaped through the Popen, so `exit_status` is always set."""
    if process.poll() is not None:
        return StopOutcome("not running", exit_status=process.returncode)
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        status = process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.kill()
        return StopOutcome("killed", time.monotonic() - started, process.wait())
    return StopOutcome("stopped", time.monotonic() - started, status)
