"""`alabel up` / `alabel down` with real processes: tritonserver with the tiny models, the
registry (embedded Postgres and Qdrant) and the orchestrator, all on free loopback ports.

`up` runs in this process through click's CliRunner, so the servers are our children here; a
user's `up` exits and leaves them to init. Either way `down` must find them by the state file.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agentic_labeling.cli import cli
from agentic_labeling.local.addresses import unused_port
from agentic_labeling.local.launcher import http_serving
from agentic_labeling.local.processes import process_is_running, process_start_ticks
from agentic_labeling.triton_server import TritonHandle, query_status
from agentic_labeling.v1 import labeling_pb2, labeling_pb2_grpc

pytestmark = pytest.mark.slow

FREE_PORTS = [
    "--registry-port",
    "0",
    "--orchestrator-port",
    "0",
    "--registry-metrics-port",
    "0",
    "--orchestrator-metrics-port",
    "0",
    "--review-port",
    "0",
]
FREE_TRITON_PORTS = [
    "--triton-grpc-port",
    "0",
    "--triton-http-port",
    "0",
    "--triton-metrics-port",
    "0",
]


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


def alabel(
    data_dir: Path, *args: str, models_dir: Path | None = None, dimension: str | None = "32"
) -> Result:
    settings = ["--data-dir", str(data_dir), *FREE_PORTS]
    if dimension is not None:
        settings += ["--embedding-dimension", dimension]
    if models_dir is not None:
        settings += ["--models-dir", str(models_dir)]
    return CliRunner().invoke(cli, [*settings, *args])


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(  # type: ignore[no-untyped-call]
            health_pb2.HealthCheckRequest(), timeout=5
        )
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def _gone(pid: int) -> bool:
    """Stopped: reaped here (our child) or at least no longer running (a zombie of init)."""
    deadline = time.monotonic() + 5
    while True:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)
        if not process_is_running(pid):
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def _processes_of(data_dir: Path) -> list[int]:
    """Live processes whose environment names `data_dir` (servers and what they started)."""
    marker = f"ALABEL_DATA_DIR={data_dir}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and process_is_running(int(entry.name)):
            found.append(int(entry.name))
    return found


class UpMesh:
    def __init__(self, data_dir: Path, result: Result) -> None:
        self.data_dir = data_dir
        self.result = result
        self.printed: dict[str, Any] = json.loads(result.stdout) if result.exit_code == 0 else {}

    @property
    def state_file(self) -> Path:
        return self.data_dir / "run" / "mesh.json"

    def part(self, name: str) -> dict[str, Any]:
        return next(c for c in self.printed["components"] if c["name"] == name)


@pytest.fixture(scope="module")
def mesh(tiny_models_dir: Path) -> Iterator[UpMesh]:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    result = alabel(
        data_dir, "up", "--device", "cpu", *FREE_TRITON_PORTS, "--json", models_dir=tiny_models_dir
    )
    up = UpMesh(data_dir, result)
    yield up
    if up.state_file.exists():  # a test failed before `down`
        alabel(data_dir, "down", "--grace", "5")
    next(data_dirs, None)


def test_up_starts_every_part_and_prints_their_endpoints_as_json(mesh: UpMesh) -> None:
    assert mesh.result.exit_code == 0, mesh.result.output
    assert [c["name"] for c in mesh.printed["components"]] == [
        "triton",
        "registry",
        "orchestrator",
        "review",
    ]
    for part in mesh.printed["components"]:
        host, port = part["address"].rsplit(":", 1)
        assert host == "127.0.0.1"
        assert int(port) > 0  # the real port, not the 0 that was asked for
        assert part["managed"] is True
        assert process_is_running(part["pid"])
        assert Path(part["log_file"]).parent == mesh.data_dir / "run"


def test_up_records_pids_and_real_ports_in_the_state_file(mesh: UpMesh) -> None:
    state = json.loads(mesh.state_file.read_text())
    assert mesh.printed["state_file"] == str(mesh.state_file)
    assert [(c["name"], c["pid"], c["address"]) for c in state["components"]] == [
        (c["name"], c["pid"], c["address"]) for c in mesh.printed["components"]
    ]


def test_every_part_is_ready_after_up(mesh: UpMesh) -> None:
    assert query_status(mesh.part("triton")["address"]).all_ready
    assert _serving(mesh.part("registry")["address"])
    assert _serving(mesh.part("orchestrator")["address"])
    assert http_serving(mesh.part("review")["address"])
    assert mesh.part("review")["urls"]["page"] == f"http://{mesh.part('review')['address']}/"


def test_the_orchestrator_started_by_up_reaches_the_registry_and_triton(mesh: UpMesh) -> None:
    with grpc.insecure_channel(mesh.part("orchestrator")["address"]) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=30)
    assert status.registry.address == mesh.part("registry")["address"]
    assert status.registry.reachable, status.registry.message
    assert status.triton.address == mesh.part("triton")["address"]
    assert status.triton.reachable, status.triton.message
    assert {m.name for m in status.models if m.ready} == {"florence2", "sam2", "dinov2"}


def test_a_second_up_is_refused_while_the_mesh_runs(mesh: UpMesh) -> None:
    before = mesh.state_file.read_text()
    result = alabel(mesh.data_dir, "up", "--no-triton")
    assert result.exit_code == 1
    assert "the mesh is already running" in result.stderr
    assert "`alabel down` stops it" in result.stderr
    assert mesh.state_file.read_text() == before


def test_down_stops_every_part_in_reverse_order_and_leaves_no_process(mesh: UpMesh) -> None:
    pids = [c["pid"] for c in mesh.printed["components"]]
    result = alabel(mesh.data_dir, "down")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert [line.split()[1] for line in lines] == ["review", "orchestrator", "registry", "triton"]
    assert all(line.startswith("stopped ") for line in lines), lines
    assert all(_gone(pid) for pid in pids)
    assert _processes_of(mesh.data_dir) == []
    assert not mesh.state_file.exists()


def test_up_with_an_external_triton_starts_the_servers_prints_a_table_and_down_leaves_it(
    served_triton: TritonHandle,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    try:
        result = alabel(data_dir, "--triton-url", served_triton.address, "up")
        assert result.exit_code == 0, result.output
        lines = result.stdout.splitlines()
        assert lines[0] == "the mesh is up; `alabel down` stops it"
        assert lines[1].split() == ["PART", "ADDRESS", "PROCESS", "LOG"]
        assert lines[2].split()[:3] == ["triton", served_triton.address, "external"]
        state = json.loads((data_dir / "run" / "mesh.json").read_text())
        registry, orchestrator, review = (c["address"] for c in state["components"][1:])
        assert f"  review page: http://{review}/" in result.stdout
        assert (
            f"  alabel --registry-url {registry} --orchestrator-url {orchestrator} label"
            in result.stdout
        )
        stopped = alabel(data_dir, "down")
        assert stopped.exit_code == 0, stopped.output
        assert stopped.stdout.splitlines()[-1] == (
            f"left triton at {served_triton.address} running (external)"
        )
        assert _processes_of(data_dir) == []
        assert query_status(served_triton.address).all_ready
    finally:
        next(data_dirs, None)


def test_down_with_nothing_running_says_so_and_exits_0(tmp_path: Path) -> None:
    result = alabel(tmp_path, "down")
    assert result.exit_code == 0
    assert result.stdout == f"nothing to stop: no mesh started by `alabel up` under {tmp_path}\n"


def test_down_reports_parts_that_had_already_exited(tmp_path: Path) -> None:
    state = tmp_path / "run" / "mesh.json"
    state.parent.mkdir()
    dead = {"pid": 2**22 + 17, "start_ticks": 1, "log_file": None, "urls": {}}
    state.write_text(
        json.dumps(
            {
                "format": 1,
                "started_at": 0,
                "components": [
                    {"name": "triton", "address": "gpu-box:8001", "pid": None},
                    {"name": "registry", "address": "127.0.0.1:1", **dead},
                ],
            }
        )
    )
    result = alabel(tmp_path, "down")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"registry (pid {dead['pid']}) was not running any more",
        "left triton at gpu-box:8001 running (external)",
    ]
    assert not state.exists()


def test_up_replaces_a_stale_state_file_and_waits_for_an_external_triton(tmp_path: Path) -> None:
    state = tmp_path / "run" / "mesh.json"
    state.parent.mkdir()
    stale = {"name": "registry", "address": "127.0.0.1:1", "pid": 2**22 + 17}
    state.write_text(json.dumps({"format": 1, "started_at": 0, "components": [stale]}))
    nowhere = f"127.0.0.1:{unused_port()}"
    result = alabel(tmp_path, "--triton-url", nowhere, "up", "--ready-timeout", "0.5")
    assert result.exit_code == 1
    assert "removed a stale state file" in result.stderr
    assert f"error: Triton at {nowhere} is not ready within 0.5 s" in result.stderr
    assert not state.exists()


def test_a_state_file_that_is_not_ours_is_reported(tmp_path: Path) -> None:
    state = tmp_path / "run" / "mesh.json"
    state.parent.mkdir()
    state.write_text("{not json")
    result = alabel(tmp_path, "down")
    assert result.exit_code == 1
    assert f"{state} is not a state file written by `alabel up`; remove it" in result.stderr


def test_a_part_that_fails_to_start_stops_the_others_and_shows_its_log(
    served_triton: TritonHandle,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        result = alabel(
            data_dir,
            "--triton-url",
            served_triton.address,
            "--orchestrator-port",
            port,
            "up",
        )
    try:
        assert result.exit_code == 1
        assert "error: orchestrator exited with status" in result.stderr
        assert "the other parts were stopped" in result.stderr
        assert port in result.stderr  # the log's tail says which address could not be bound
        assert _processes_of(data_dir) == []  # the registry that had started is stopped
        assert not (data_dir / "run" / "mesh.json").exists()
        assert query_status(served_triton.address).all_ready  # an external Triton is left alone
    finally:
        next(data_dirs, None)


def test_a_part_not_ready_in_time_is_stopped_with_the_tail_of_its_log(
    served_triton: TritonHandle,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    try:
        result = alabel(
            data_dir, "--triton-url", served_triton.address, "up", "--ready-timeout", "0.2"
        )
        assert result.exit_code == 1
        assert "error: registry was not serving within 0.2 s" in result.stderr
        assert f"Last lines of {data_dir / 'run' / 'registry.log'}:" in result.stderr
        assert _processes_of(data_dir) == []  # nor its embedded Postgres
        assert not (data_dir / "run" / "mesh.json").exists()
    finally:
        next(data_dirs, None)


def test_down_kills_a_part_that_ignores_sigterm_once_the_grace_is_over(tmp_path: Path) -> None:
    stubborn = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN);"
            " print('ready', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert stubborn.stdout is not None
    assert stubborn.stdout.readline() == "ready\n"
    state = tmp_path / "run" / "mesh.json"
    state.parent.mkdir()
    part = {
        "name": "registry",
        "address": "127.0.0.1:1",
        "pid": stubborn.pid,
        "start_ticks": process_start_ticks(stubborn.pid),
    }
    state.write_text(json.dumps({"format": 1, "started_at": 0, "components": [part]}))
    result = alabel(tmp_path, "down", "--grace", "0.3")
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        f"killed registry (pid {stubborn.pid}): still running 0.3 s after SIGTERM, exit status -9\n"
    )
    assert stubborn.poll() == -9 or not process_is_running(stubborn.pid)


def test_a_recorded_pid_reused_by_another_program_is_never_signalled(tmp_path: Path) -> None:
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        state = tmp_path / "run" / "mesh.json"
        state.parent.mkdir()
        ticks = process_start_ticks(other.pid)
        assert ticks is not None
        part = {"name": "registry", "address": "127.0.0.1:1", "pid": other.pid}
        part["start_ticks"] = ticks - 1  # the recorded process started at another time
        state.write_text(json.dumps({"format": 1, "started_at": 0, "components": [part]}))
        result = alabel(tmp_path, "down")
        assert result.exit_code == 0, result.output
        assert result.stdout == f"registry (pid {other.pid}) was not running any more\n"
        assert other.poll() is None  # still running: not ours to stop
    finally:
        other.kill()
        other.wait()


# --- issue 12: --models-dir checked before anything starts ------------------------------------


def test_up_with_a_missing_models_dir_is_one_line_and_starts_nothing(tmp_path: Path) -> None:
    result = alabel(tmp_path, "up", models_dir=tmp_path / "nope")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: --models-dir {tmp_path / 'nope'} does not exist: give the directory holding"
        " florence2/, sam2/ and dinov2/ (`alabel models make-tiny DIR` builds tiny ones), or"
        " leave the flag out to download the real checkpoints"
    ]
    assert not (tmp_path / "run").exists()


def test_up_with_a_models_dir_missing_a_model_names_it_and_starts_nothing(
    tmp_path: Path,
) -> None:
    models = tmp_path / "models"
    for name in ("florence2", "dinov2"):
        (models / name).mkdir(parents=True)
        (models / name / "config.json").write_text("{}")
    result = alabel(tmp_path / "data", "up", models_dir=models)
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"error: --models-dir {models} has no sam2/ directory (weights in transformers format,"
        " as `alabel models make-tiny DIR` writes them)"
    ]
    assert not (tmp_path / "data" / "run").exists()


# --- issue 12: the registry's embedding length follows the served DINOv2 -----------------------


def _recorded_dimension(data_dir: Path) -> int:
    import asyncio

    from agentic_labeling.registry.coordinator import Registry
    from agentic_labeling.settings import Settings

    async def opened() -> int:
        registry = await Registry.open(Settings(data_dir=data_dir))
        try:
            return registry.embedding_dimension
        finally:
            await registry.close()

    return asyncio.run(opened())


def test_up_on_a_new_data_dir_records_the_served_dinov2s_dimension(
    served_triton: TritonHandle,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    try:
        result = alabel(data_dir, "--triton-url", served_triton.address, "up", dimension=None)
        assert result.exit_code == 0, result.output
        assert alabel(data_dir, "down").exit_code == 0
        assert _recorded_dimension(data_dir) == 32  # the tiny DINOv2's, not 768
    finally:
        next(data_dirs, None)


def test_up_on_a_data_dir_of_another_dimension_fails_in_one_line_and_stops_what_it_started(
    served_triton: TritonHandle,
) -> None:
    import asyncio

    from agentic_labeling.registry.coordinator import Registry
    from agentic_labeling.settings import Settings

    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    try:

        async def create_768() -> None:
            await (
                await Registry.open(Settings(data_dir=data_dir, embedding_dimension=768))
            ).close()

        asyncio.run(create_768())
        result = alabel(data_dir, "--triton-url", served_triton.address, "up", dimension=None)
        assert result.exit_code == 1
        assert result.stderr.splitlines() == [
            f"error: the data directory {data_dir} holds 768-dimensional embeddings; the served"
            " DINOv2 gives 32: serve the DINOv2 it was created with (--models-dir), or use"
            " another --data-dir"
        ]
        assert _processes_of(data_dir) == []
        assert not (data_dir / "run" / "mesh.json").exists()
    finally:
        next(data_dirs, None)


def test_an_embedding_dimension_that_contradicts_the_served_dinov2_is_refused(
    served_triton: TritonHandle,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    try:
        result = alabel(data_dir, "--triton-url", served_triton.address, "up", dimension="768")
        assert result.exit_code == 1
        assert result.stderr.splitlines()[-1] == (
            "error: the served DINOv2 gives 32-dimensional embeddings; --embedding-dimension 768"
            " contradicts it: leave the flag out"
        )
        assert _processes_of(data_dir) == []
    finally:
        next(data_dirs, None)


# --- issue 13.10: a half-dead mesh is repaired; logs are appended --------------------------------


def test_up_starts_a_killed_part_again_and_keeps_the_live_ones(
    served_triton: TritonHandle,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    try:
        first = alabel(data_dir, "--triton-url", served_triton.address, "up", "--json")
        assert first.exit_code == 0, first.output
        parts = {c["name"]: c for c in json.loads(first.stdout)["components"]}
        os.kill(parts["registry"]["pid"], signal.SIGKILL)
        assert _gone(parts["registry"]["pid"])

        again = alabel(data_dir, "--triton-url", served_triton.address, "up", "--json")
        assert again.exit_code == 0, again.output
        assert f"registry (pid {parts['registry']['pid']}) is not running any more" in (
            again.stderr
        )
        now = {c["name"]: c for c in json.loads(again.stdout)["components"]}
        assert now["orchestrator"]["pid"] == parts["orchestrator"]["pid"]  # kept
        assert now["registry"]["pid"] != parts["registry"]["pid"]
        assert now["registry"]["address"] == parts["registry"]["address"]  # same port
        assert _serving(now["registry"]["address"])
        with grpc.insecure_channel(now["orchestrator"]["address"]) as channel:
            stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
            status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=30)
        assert status.registry.reachable, status.registry.message
        log = (data_dir / "run" / "registry.log").read_text()
        assert log.count("alabel: starting `alabel serve registry`") == 2  # appended
        assert alabel(data_dir, "down").exit_code == 0
        assert _processes_of(data_dir) == []
    finally:
        next(data_dirs, None)


# --- issue 12: `alabel triton start` then `alabel up` -------------------------------------------


@pytest.fixture(scope="module")
def triton_started(tiny_models_dir: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """`alabel triton start` for a data directory, as a user runs it before `alabel up`."""
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    result = CliRunner().invoke(
        cli,
        [
            "--data-dir",
            str(data_dir),
            "--models-dir",
            str(tiny_models_dir),
            "triton",
            "start",
            "--device",
            "cpu",
            "--grpc-port",
            "0",
            "--http-port",
            "0",
            "--metrics-port",
            "0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    yield data_dir, json.loads(result.stdout)
    CliRunner().invoke(cli, ["--data-dir", str(data_dir), "triton", "stop", "--grace", "5"])
    alabel(data_dir, "down", "--grace", "5")
    next(data_dirs, None)


def test_up_refuses_a_triton_start_server_on_other_ports_and_says_what_differs(
    triton_started: tuple[Path, dict[str, Any]], tiny_models_dir: Path
) -> None:
    data_dir, server = triton_started
    other = str(unused_port())
    result = alabel(
        data_dir,
        "up",
        "--triton-grpc-port",
        other,
        "--triton-http-port",
        "0",
        "--triton-metrics-port",
        "0",
        models_dir=tiny_models_dir,
    )
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: Triton started by `alabel triton start` already runs for this --data-dir"
        f" (pid {server['pid']}, gRPC {server['address']}) with gRPC port"
        f" {server['grpc_port']} (asked: {other}): `alabel triton stop` stops it, or run"
        " `alabel up` with the settings it was started with"
    ]
    assert process_is_running(server["pid"])
    assert not (data_dir / "run" / "mesh.json").exists()


def test_up_adopts_a_triton_start_server_and_down_stops_it_too(
    triton_started: tuple[Path, dict[str, Any]], tiny_models_dir: Path
) -> None:
    data_dir, server = triton_started
    log_before = Path(server["log_file"]).read_text()
    result = alabel(data_dir, "up", *FREE_TRITON_PORTS, "--json", models_dir=tiny_models_dir)
    assert result.exit_code == 0, result.output
    triton = json.loads(result.stdout)["components"][0]
    assert (triton["pid"], triton["address"], triton["adopted"]) == (
        server["pid"],
        server["address"],
        True,
    )
    assert Path(server["log_file"]).read_text().startswith(log_before)  # not overwritten
    stopped = alabel(data_dir, "down")
    assert stopped.exit_code == 0, stopped.output
    assert stopped.stdout.splitlines()[-1].startswith(f"stopped triton (pid {server['pid']})")
    assert _gone(server["pid"])
    assert not (data_dir / "run" / "triton.json").exists()
