"""`alabel triton start|status|stop`: the installed console script against the real tritonserver."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from agentic_labeling.cli import cli
from agentic_labeling.triton_server import TritonHandle, TritonStateFile

pytestmark = pytest.mark.slow

ALABEL = Path(sys.executable).parent / "alabel"
FREE_PORTS = ("--grpc-port", "0", "--http-port", "0", "--metrics-port", "0")


def _environment() -> dict[str, str]:
    # The developer's own ALABEL_* variables must not change what these tests see.
    return {k: v for k, v in os.environ.items() if not k.startswith("ALABEL_")}


def alabel(*args: str, timeout_s: float = 90) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ALABEL), *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env=_environment(),
        check=False,
    )


def test_start_status_stop_round_trip(
    echo_repository: Path, tmp_path: Path, leftover_processes: Callable[[str], list[str]]
) -> None:
    data = ("--data-dir", str(tmp_path))
    start = ("triton", "start", "--model-repository", str(echo_repository), *FREE_PORTS)
    started = alabel(*data, *start)
    state_file = tmp_path / "run" / "triton.json"
    try:
        assert started.returncode == 0, started.stderr
        server = json.loads(state_file.read_text())
        assert started.stdout.splitlines() == [
            f"Triton is ready (pid {server['pid']})",
            f"  gRPC     {server['address']}   (--triton-url)",
            f"  HTTP     {server['http_url']}",
            f"  metrics  {server['metrics_url']}",
            f"  log      {tmp_path / 'run' / 'tritonserver.log'}",
            "  model    echo (version 1) READY",
        ]

        again = alabel(*data, *start)
        assert again.returncode == 1
        assert f"Triton is already running (pid {server['pid']}" in again.stderr

        status = alabel(*data, "triton", "status", "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["all_ready"] is True
        assert report["address"] == server["address"]
        assert report["server"]["pid"] == server["pid"]
        assert [(m["name"], m["state"]) for m in report["models"]] == [("echo", "READY")]

        # An explicit --triton-url is asked directly, whatever the state file says.
        external = alabel("--triton-url", server["address"], "triton", "status")
        assert external.returncode == 0, external.stderr
        assert f"Triton at {server['address']}: live, ready" in external.stdout
        assert "echo   1        READY" in external.stdout
    finally:
        stopped = alabel(*data, "triton", "stop", "--grace", "15")
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stdout == f"stopped Triton (pid {server['pid']}, gRPC {server['address']})\n"
    assert not state_file.exists()
    assert leftover_processes(str(echo_repository)) == []

    after = alabel(*data, "triton", "status", "--json")
    assert after.returncode == 1
    assert json.loads(after.stdout)["live"] is False


def test_start_json_for_scripts_and_a_stop_without_grace(
    echo_repository: Path, tmp_path: Path, leftover_processes: Callable[[str], list[str]]
) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(echo_repository, repository)
    (tmp_path / "weights").mkdir()  # --models-dir must exist; the echo model reads nothing there
    data = ("--data-dir", str(tmp_path / "data"), "--models-dir", str(tmp_path / "weights"))
    start = ("triton", "start", "--model-repository", str(repository), *FREE_PORTS)
    started = alabel(*data, *start, "--torch-threads", "1", "--json")
    try:
        assert started.returncode == 0, started.stderr
        server = json.loads(started.stdout)
    finally:
        stopped = alabel(*data, "triton", "stop", "--grace", "0")  # straight to SIGKILL
    assert stopped.returncode == 0, stopped.stderr
    assert server["status"]["all_ready"] is True
    assert [m["state"] for m in server["status"]["models"]] == ["READY"]
    assert server["log_file"] == str(tmp_path / "data" / "run" / "tritonserver.log")
    assert leftover_processes(str(repository)) == []  # the stubs follow their server


def test_start_also_serves_the_students_exported_under_the_data_dir(
    echo_repository: Path, tmp_path: Path
) -> None:
    """A copy of echo stands for a student that ExportRun wrote into <data-dir>/triton-models."""
    student = tmp_path / "data" / "triton-models" / "student"
    shutil.copytree(echo_repository / "echo", student)
    config = student / "config.pbtxt"
    config.write_text(config.read_text().replace('name: "echo"', 'name: "student"'))
    data = ("--data-dir", str(tmp_path / "data"))
    start = ("triton", "start", "--model-repository", str(echo_repository), *FREE_PORTS)
    started = alabel(*data, *start, "--torch-threads", "1")
    try:
        assert started.returncode == 0, started.stderr
        status = alabel(*data, "triton", "status", "--json")
    finally:
        stopped = alabel(*data, "triton", "stop", "--grace", "15")
    assert stopped.returncode == 0, stopped.stderr
    assert "  model    student (version 1) READY" in started.stdout.splitlines()
    report = json.loads(status.stdout)
    assert report["all_ready"] is True
    assert sorted(m["name"] for m in report["models"]) == ["echo", "student"]


def test_start_reports_a_broken_model_and_leaves_nothing(
    broken_repository: Path, tmp_path: Path, leftover_processes: Callable[[str], list[str]]
) -> None:
    result = CliRunner().invoke(
        cli,
        [
            *("--data-dir", str(tmp_path), "triton", "start"),
            *("--model-repository", str(broken_repository), *FREE_PORTS),
        ],
        env={"ALABEL_TRITON_URL": None},
    )
    assert result.exit_code == 1
    assert "model 'broken': Internal: RuntimeError: weights for 'broken' not found" in result.output
    assert "): initialize" in result.output
    assert not (tmp_path / "run" / "triton.json").exists()
    assert leftover_processes(str(broken_repository)) == []


def test_start_refuses_an_external_triton_url(echo_repository: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli,
        [
            *("--data-dir", str(tmp_path), "--triton-url", "gpu-box:8001", "triton", "start"),
            *("--model-repository", str(echo_repository)),
        ],
    )
    assert result.exit_code == 1
    assert "--triton-url gpu-box:8001 names an external Triton server" in result.output
    assert "alabel --triton-url gpu-box:8001 triton status" in result.output


def test_stop_cleans_a_stale_state_file(tmp_path: Path) -> None:
    finished = subprocess.Popen(["true"])
    finished.wait()
    state = TritonStateFile(tmp_path / "run" / "triton.json")
    state.save(TritonHandle(finished.pid, "127.0.0.1", 1, 2, 3, tmp_path / "log", tmp_path))
    result = CliRunner().invoke(cli, ["--data-dir", str(tmp_path), "triton", "stop"])
    assert result.exit_code == 0, result.output
    assert f"removed a stale state file: tritonserver pid {finished.pid}" in result.output
    assert f"no Triton server started by `alabel triton start` under {tmp_path}" in result.output
    assert not state.path.exists()


def test_status_of_nothing_running_exits_1(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        cli, ["--data-dir", str(tmp_path), "--triton-url", "127.0.0.1:1", "triton", "status"]
    )
    assert result.exit_code == 1
    assert result.output.startswith("Triton at 127.0.0.1:1: not reachable (")
