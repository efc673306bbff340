"""Process control on this machine: alive checks with the one PID-reuse guard, and stops."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from agentic_labeling.local.processes import (
    process_is_running,
    process_start_ticks,
    stop_child,
    stop_process,
)
from agentic_labeling.triton_server import TritonHandle, TritonStateFile

# Prints "ready" once its SIGTERM handling is in place, then sleeps.
_SLEEPER = "import signal, sys, time; {setup} print('ready', flush=True); time.sleep(60)"
_IGNORES_SIGTERM = "signal.signal(signal.SIGTERM, signal.SIG_IGN);"
_EXITS_0_ON_SIGTERM = "signal.signal(signal.SIGTERM, lambda *_: sys.exit(0));"


def _sleeper(setup: str = "") -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", _SLEEPER.format(setup=setup)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline() == "ready\n"
    return process


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[str]]:
    process = _sleeper()
    yield process
    process.kill()
    process.wait()


def test_a_live_process_runs_and_a_reaped_one_does_not(sleeper: subprocess.Popen[str]) -> None:
    assert process_is_running(sleeper.pid)
    assert process_is_running(sleeper.pid, process_start_ticks(sleeper.pid))
    sleeper.kill()
    sleeper.wait()
    assert not process_is_running(sleeper.pid)


def _state(pid: int) -> str:
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def test_a_zombie_counts_as_stopped(sleeper: subprocess.Popen[str]) -> None:
    sleeper.kill()
    # Not reaped until wait() below: the pid lives on as a zombie (a hang guard, not a timing).
    deadline = time.monotonic() + 30
    while _state(sleeper.pid) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _state(sleeper.pid) == "Z"
    assert not process_is_running(sleeper.pid)
    assert sleeper.wait() == -9


def test_a_pid_that_started_at_another_time_is_another_program(
    sleeper: subprocess.Popen[str],
) -> None:
    ticks = process_start_ticks(sleeper.pid)
    assert ticks is not None
    assert not process_is_running(sleeper.pid, ticks - 1)


def test_a_pid_reused_by_another_program_is_never_signalled(
    sleeper: subprocess.Popen[str],
) -> None:
    ticks = process_start_ticks(sleeper.pid)
    assert ticks is not None
    outcome = stop_process(sleeper.pid, ticks - 1, grace_s=0.1)
    assert outcome.how == "not running"
    assert sleeper.poll() is None


def test_stop_process_kills_what_ignores_sigterm_once_the_grace_is_over() -> None:
    stubborn = _sleeper(_IGNORES_SIGTERM)
    outcome = stop_process(stubborn.pid, process_start_ticks(stubborn.pid), grace_s=0.3)
    assert outcome.how == "killed"
    assert outcome.exit_status == -9  # our child: reaped, with its status
    assert not process_is_running(stubborn.pid)


def test_stop_child_reports_a_clean_exit_on_sigterm() -> None:
    polite = _sleeper(_EXITS_0_ON_SIGTERM)
    outcome = stop_child(polite, grace_s=30)
    assert (outcome.how, outcome.exit_status) == ("stopped", 0)
    again = stop_child(polite, grace_s=30)
    assert (again.how, again.exit_status) == ("not running", 0)


def test_a_triton_state_file_whose_pid_started_at_another_time_is_stale(
    sleeper: subprocess.Popen[str], tmp_path: Path
) -> None:
    ticks = process_start_ticks(sleeper.pid)
    assert ticks is not None
    state = TritonStateFile(tmp_path / "run" / "triton.json")
    recorded = TritonHandle(
        sleeper.pid, "127.0.0.1", 1, 2, 3, tmp_path / "log", tmp_path, start_ticks=ticks - 1
    )
    state.save(recorded)
    assert state.load() == recorded  # the start time travels through the state file
    assert state.load_running() is None
    assert not state.path.exists()
    recorded.stop(grace_s=0.1)  # not ours any more: nothing is signalled
    assert sleeper.poll() is None
