"""The launcher against the real tritonserver: readiness, environment, batching, errors, stop."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tritonclient.grpc.aio as triton_aio
from tritonclient.utils import InferenceServerException

import agentic_labeling
from agentic_labeling import triton_server
from agentic_labeling.errors import FailedPrecondition, InvalidArgument, Unavailable
from agentic_labeling.triton_server import (
    TritonHandle,
    TritonLaunch,
    TritonStateFile,
    default_model_repository,
    default_torch_threads,
    find_tritonserver,
    query_status,
    start_triton,
    triton_command,
    triton_environment,
)

pytestmark = pytest.mark.slow

REJECTED_PAYLOAD = b"reject me"  # repository/echo/1/model.py answers it with INVALID_ARG


def _launch(repository: Path, tmp: Path, **changes: Any) -> TritonLaunch:
    """A launch on free loopback ports, logging under tmp; `changes` override any field."""
    fields: dict[str, Any] = {
        "model_repository": repository,
        "grpc_port": 0,
        "http_port": 0,
        "metrics_port": 0,
        "models_dir": tmp / "weights",
        "log_file": tmp / "triton.log",
        "torch_threads": 1,
        "ready_timeout_s": 60,
    }
    return TritonLaunch(**{**fields, **changes})


@pytest.fixture(scope="module")
def echo_server(
    echo_repository: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonHandle]:
    handle = start_triton(_launch(echo_repository, tmp_path_factory.mktemp("echo")))
    yield handle
    assert handle.stop(grace_s=15) == 0, handle.log_file.read_text()


async def _infer(client: triton_aio.InferenceServerClient, payload: bytes) -> dict[str, object]:
    data = np.frombuffer(payload, dtype=np.uint8)[None, :]
    tensor = triton_aio.InferInput("DATA", list(data.shape), "UINT8")
    tensor.set_data_from_numpy(data)
    result = await client.infer("echo", [tensor], client_timeout=30)
    return {
        "length": int(result.as_numpy("LENGTH")[0, 0]),
        "checksum": int(result.as_numpy("CHECKSUM")[0, 0]),
        "environment": json.loads(result.as_numpy("ENVIRONMENT")[0, 0]),
    }


def _payloads(count: int) -> list[bytes]:
    # Different lengths on purpose: the batch is ragged (allow_ragged_batch in the config).
    return [bytes((i * 7 + j) % 256 for j in range(10 + 13 * i)) for i in range(count)]


# --- start and readiness ---------------------------------------------------------------------


def test_start_returns_once_every_model_is_ready(echo_server: TritonHandle) -> None:
    status = echo_server.status()
    assert status.live
    assert status.ready
    assert status.all_ready
    assert [(m.name, m.version, m.state) for m in status.models] == [("echo", "1", "READY")]
    assert echo_server.is_running()
    assert echo_server.address == f"127.0.0.1:{echo_server.grpc_port}"


async def test_models_run_in_this_venv_with_numpy_below_2(echo_server: TritonHandle) -> None:
    async with triton_aio.InferenceServerClient(echo_server.address) as client:
        answer = await _infer(client, b"abc")
    environment = answer["environment"]
    assert isinstance(environment, dict)
    assert int(environment["numpy"].split(".")[0]) < 2  # and a BYTES output survived
    assert environment["sys_prefix"] == sys.prefix  # the venv, found through PATH
    assert environment["agentic_labeling"] == agentic_labeling.__file__
    assert environment["instance_kind"] == "CPU"  # KIND_AUTO on a machine without a GPU
    assert environment["models_dir"] == str(echo_server.log_file.parent / "weights")
    assert environment["torch_threads"] == environment["omp_num_threads"] == "1"
    assert (answer["length"], answer["checksum"]) == (3, sum(b"abc"))


async def test_concurrent_requests_share_executions(echo_server: TritonHandle) -> None:
    before = {m.name: m for m in echo_server.status().models}["echo"]
    payloads = _payloads(16)
    async with triton_aio.InferenceServerClient(echo_server.address) as client:
        answers = await asyncio.gather(*(_infer(client, p) for p in payloads))
    after = {m.name: m for m in echo_server.status().models}["echo"]

    # Each request got its own answer back, whatever batch it ran in.
    assert [(a["length"], a["checksum"]) for a in answers] == [(len(p), sum(p)) for p in payloads]
    inferences = after.inference_count - before.inference_count
    executions = after.execution_count - before.execution_count
    assert inferences == 16
    assert inferences / executions > 1, f"16 requests ran in {executions} executions"
    assert after.average_batch_size is not None
    assert after.average_batch_size > 1
    assert after.requests - before.requests == 16


async def test_a_rejected_request_fails_alone_with_invalid_argument(
    echo_server: TritonHandle,
) -> None:
    before = {m.name: m for m in echo_server.status().models}["echo"]
    payloads = _payloads(8)
    payloads[3] = REJECTED_PAYLOAD
    async with triton_aio.InferenceServerClient(echo_server.address) as client:
        answers = await asyncio.gather(
            *(_infer(client, p) for p in payloads), return_exceptions=True
        )
    after = {m.name: m for m in echo_server.status().models}["echo"]
    # Triton counts a request whose response carries the model's error as a success: its
    # failure count is for requests Triton itself failed (bad shape, timeout, ...).
    assert after.requests - before.requests == 8
    assert after.failed_requests - before.failed_requests == 0
    failed = answers.pop(3)
    assert isinstance(failed, InferenceServerException)
    assert failed.status() == "StatusCode.INVALID_ARGUMENT"
    assert "rejected on purpose" in str(failed.message())
    assert all(isinstance(a, dict) for a in answers), answers
    del payloads[3]
    assert [a["length"] for a in answers] == [len(p) for p in payloads]  # type: ignore[index]


def test_metrics_endpoint_serves_prometheus_text(echo_server: TritonHandle) -> None:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(echo_server.metrics_url, timeout=5) as response:
        text = response.read().decode()
    assert 'nv_inference_count{model="echo",version="1"}' in text


def test_status_of_an_unreachable_address_says_why() -> None:
    status = query_status("127.0.0.1:1", timeout_s=2)
    assert not status.live
    assert not status.ready
    assert not status.all_ready
    assert status.error
    assert status.to_json()["models"] == []


# --- failures --------------------------------------------------------------------------------


def test_a_model_that_fails_to_load_fails_the_start_with_its_traceback(
    broken_repository: Path, tmp_path: Path, leftover_processes: Callable[[str], list[str]]
) -> None:
    with pytest.raises(Unavailable) as failed:
        start_triton(_launch(broken_repository, tmp_path))
    message = failed.value.message
    assert "tritonserver exited with status 1" in message
    assert "model 'broken': Internal: RuntimeError: weights for 'broken' not found" in message
    raising_line = next(
        number
        for number, line in enumerate((broken_repository / "broken/1/model.py").open(), 1)
        if "raise RuntimeError" in line
    )
    # The traceback, with Triton's escaped newlines turned back into lines.
    assert f"\n  {broken_repository}/broken/1/model.py({raising_line}): initialize" in message
    assert f"last lines of {tmp_path / 'triton.log'}" in message
    assert leftover_processes(str(broken_repository)) == []


def test_a_start_that_times_out_stops_the_server(
    echo_repository: Path, tmp_path: Path, leftover_processes: Callable[[str], list[str]]
) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(echo_repository, repository)
    with pytest.raises(Unavailable, match=r"was not ready within 0 s \(waiting for the server"):
        start_triton(_launch(repository, tmp_path, ready_timeout_s=0))
    assert leftover_processes(str(repository)) == []


def test_stop_ends_the_server_and_its_stubs(
    echo_repository: Path, tmp_path: Path, leftover_processes: Callable[[str], list[str]]
) -> None:
    repository = tmp_path / "repository"
    shutil.copytree(echo_repository, repository)
    handle = start_triton(_launch(repository, tmp_path, detached=True))
    try:
        running = leftover_processes(str(repository), 0)
    finally:
        exit_status = handle.stop(grace_s=15)
    assert len([line for line in running if "triton_python_backend_stub" in line]) == 1
    assert exit_status == 0
    assert not handle.is_running()
    assert leftover_processes(str(repository)) == []
    assert "Waiting for in-flight requests to complete" in handle.log_file.read_text()


def test_gpu_check_names_models_that_landed_on_cpu(echo_server: TritonHandle) -> None:
    # What start_triton(device="gpu") checks once the models are loaded (KIND_AUTO went to CPU).
    with pytest.raises(FailedPrecondition, match=r"instances off the GPU: echo \(KIND_CPU\)"):
        triton_server._check_on_gpu(echo_server, ["echo"])


def test_gpu_is_refused_where_none_is_visible(echo_repository: Path, tmp_path: Path) -> None:
    if any(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("this machine has a GPU")
    with pytest.raises(FailedPrecondition, match="no NVIDIA GPU is visible"):
        start_triton(_launch(echo_repository, tmp_path, device="gpu"))


def test_a_stub_for_another_python_is_refused(echo_repository: Path, tmp_path: Path) -> None:
    real = find_tritonserver().parent.parent
    server = tmp_path / "tritonserver"
    (server / "bin").mkdir(parents=True)
    (server / "bin" / "tritonserver").symlink_to(real / "bin" / "tritonserver")
    (server / "python_backend_stubs").symlink_to(real / "python_backend_stubs")
    stub = server / "backends" / "python" / "triton_python_backend_stub"
    stub.parent.mkdir(parents=True)
    launch = _launch(echo_repository, tmp_path, binary=server / "bin" / "tritonserver")
    with pytest.raises(FailedPrecondition, match="Python backend stub is missing"):
        start_triton(launch)
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    other = next(v for v in ("3.10", "3.12") if v != ours)
    shutil.copy(real / "python_backend_stubs" / other / stub.name, stub)
    with pytest.raises(FailedPrecondition, match=f"is not the stub for Python {ours}"):
        start_triton(launch)


# --- what is run, and with what --------------------------------------------------------------


def test_environment_gives_the_stub_this_venv_and_drops_alabel_settings(tmp_path: Path) -> None:
    launch = _launch(tmp_path, tmp_path, device="cpu")
    base = {"PATH": "/usr/bin", "ALABEL_REGISTRY_URL": "x:1", "LD_LIBRARY_PATH": "/opt/lib"}
    env = triton_environment(launch, 3, base=base)
    assert env["PATH"] == f"{Path(sys.executable).parent}{os.pathsep}/usr/bin"
    assert env["LD_LIBRARY_PATH"].endswith(f"{os.pathsep}/opt/lib")  # libpython's dir first
    assert "ALABEL_REGISTRY_URL" not in env
    assert env["ALABEL_MODELS_DIR"] == str(tmp_path / "weights")
    assert env["ALABEL_TORCH_THREADS"] == env["OMP_NUM_THREADS"] == "3"
    assert env["CUDA_VISIBLE_DEVICES"] == ""  # device cpu hides GPUs from Triton


def test_command_line_binds_loopback_and_sets_the_python_backend(tmp_path: Path) -> None:
    launch = _launch(tmp_path, tmp_path, grpc_port=1, http_port=2, metrics_port=3)
    command = triton_command(launch, Path("/t/bin/tritonserver"), Path("/t/backends"))
    for flag in (
        "--grpc-address=127.0.0.1",
        "--http-address=127.0.0.1",
        "--metrics-address=127.0.0.1",
        "--allow-metrics=true",
        "--model-control-mode=none",
        "--strict-readiness=true",
        "--disable-auto-complete-config",
        "--backend-config=python,shm-default-byte-size=16777216",
        "--backend-config=python,stub-timeout-seconds=60",
    ):
        assert flag in command
    explicit = dataclasses.replace(launch, model_control_mode="explicit", auto_complete_config=True)
    command = triton_command(explicit, Path("/t/bin/tritonserver"), Path("/t/backends"))
    assert "--load-model=*" in command
    assert "--disable-auto-complete-config" not in command


def test_command_line_serves_the_student_repository_only_when_it_holds_a_model(
    tmp_path: Path,
) -> None:
    students = tmp_path / "triton-models"
    launch = _launch(
        tmp_path / "project",
        tmp_path,
        grpc_port=1,
        http_port=2,
        metrics_port=3,
        student_repository=students,
    )
    binary, backends = Path("/t/bin/tritonserver"), Path("/t/backends")

    def repositories() -> list[str]:
        command = triton_command(launch, binary, backends)
        return [flag for flag in command if flag.startswith("--model-repository=")]

    project = f"--model-repository={(tmp_path / 'project').resolve()}"
    assert repositories() == [project]  # no student repository yet
    (students / ".yolo-staging").mkdir(parents=True)
    assert repositories() == [project]  # a directory without a config.pbtxt is no model
    (students / "yolo").mkdir()
    (students / "yolo" / "config.pbtxt").write_text('name: "yolo"\n')
    assert repositories() == [project, f"--model-repository={students.resolve()}"]


def test_a_model_in_both_repositories_is_refused_before_starting(
    echo_repository: Path, tmp_path: Path
) -> None:
    students = tmp_path / "triton-models"
    shutil.copytree(echo_repository / "echo", students / "echo")
    launch = _launch(echo_repository, tmp_path, student_repository=students)
    with pytest.raises(FailedPrecondition) as refused:
        start_triton(launch)
    assert refused.value.reason == "DUPLICATE_MODEL"
    assert "model echo is both in" in refused.value.message
    assert not (tmp_path / "triton.log").exists()  # nothing was started


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"grpc_port": 70000}, "grpc_port"),
        ({"grpc_port": 9000, "http_port": 9000}, "grpc_port"),
        ({"shm_default_bytes": 0}, "shm_default_bytes"),
        ({"torch_threads": 0}, "torch_threads"),
        ({"device": "tpu"}, "device"),
    ],
)
def test_launch_refuses_bad_values(tmp_path: Path, changes: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        _launch(tmp_path, tmp_path, **changes)
    assert refused.value.violations[0].field == field


def test_start_refuses_a_missing_repository(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="is not a directory"):
        start_triton(_launch(tmp_path / "nowhere", tmp_path))


def test_find_tritonserver_says_to_run_make_setup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert find_tritonserver().name == "tritonserver"  # `make setup` has run here
    with pytest.raises(FailedPrecondition, match="not found at"):
        find_tritonserver(tmp_path / "tritonserver")
    monkeypatch.setattr(triton_server, "_BUNDLED_BINARY", tmp_path / "none")
    monkeypatch.setattr(triton_server, "_NGC_BINARY", tmp_path / "none")
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(FailedPrecondition, match=r"run `make setup`") as missing:
        find_tritonserver()
    assert missing.value.reason == "NO_TRITON"


def test_default_model_repository_and_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_model_repository().name == "model_repository"
    cpus = len(os.sched_getaffinity(0))
    assert default_torch_threads(3) == max(1, cpus // 3)
    assert default_torch_threads(0) == cpus
    monkeypatch.setattr(triton_server, "_SOURCE_ROOT", Path("/nonexistent"))
    with pytest.raises(FailedPrecondition, match="pass --model-repository"):
        default_model_repository()


# --- the state file --------------------------------------------------------------------------


def test_state_file_round_trip_stale_and_lock(tmp_path: Path) -> None:
    state = TritonStateFile(tmp_path / "run" / "triton.json")
    assert state.load() is None
    finished = subprocess.Popen(["true"])
    finished.wait()
    gone = TritonHandle(finished.pid, "0.0.0.0", 1, 2, 3, tmp_path / "log", tmp_path)
    assert gone.address == "127.0.0.1:1"  # a wildcard bind is reached on loopback
    state.save(gone)
    assert state.load() == gone
    reported: list[TritonHandle] = []
    assert state.load_running(on_stale=reported.append) is None
    assert reported == [gone]
    assert not state.path.exists()

    with state.lock(), pytest.raises(FailedPrecondition, match="another `alabel triton`"):
        contextlib.ExitStack().enter_context(state.lock())

    state.path.write_text("{not json")
    with pytest.raises(FailedPrecondition, match="is not a state file"):
        state.load()
