"""GetMeshStatus and the orchestrator's start-up checks against the real tritonserver binary
that `make setup` unpacks, the repository's models with tiny weights, and a real registry."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import registry_data_dir

from agentic_labeling.errors import Unavailable
from agentic_labeling.local_mesh import ManagedProcess, start_server_process, unused_port
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.servers.bootstrap import error_file
from agentic_labeling.triton_server import TritonHandle, TritonLaunch, start_triton
from agentic_labeling.v1 import labeling_pb2, labeling_pb2_grpc


@pytest.mark.slow
def test_mesh_status_reports_a_running_triton_with_its_version(tmp_path: Path) -> None:
    repository = tmp_path / "model_repository"
    repository.mkdir()
    triton = start_triton(
        TritonLaunch(
            model_repository=repository,
            grpc_port=0,
            http_port=0,
            metrics_port=0,
            log_file=tmp_path / "triton.log",
        )
    )
    try:
        orchestrator = start_server_process(
            "orchestrator", tmp_path, ["--triton-url", triton.address]
        )
        try:
            with grpc.insecure_channel(orchestrator.address) as channel:
                stub = labeling_pb2_grpc.LabelingServiceStub(channel)
                status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=15)
        finally:
            assert orchestrator.stop() == 0
    finally:
        triton.stop()
    assert status.triton.reachable, status.triton.message
    assert status.triton.address == triton.address
    assert status.triton.version.count(".") == 2  # e.g. 2.51.0
    assert not status.registry.reachable  # no registry in this test


# --- peers that disagree on the embedding length ---------------------------------------------


@pytest.fixture(scope="module")
def served_dimension(tiny_models_dir: Path) -> int:
    return Dinov2Embedder.load(tiny_models_dir / "dinov2").dimension


@pytest.fixture(scope="module")
def other_registry(
    served_dimension: int, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    """A real registry whose store records another embedding length than the served DINOv2's."""
    data_dirs = registry_data_dir()
    process = start_server_process(
        "registry",
        tmp_path_factory.mktemp("other-registry"),
        [
            "--data-dir",
            str(next(data_dirs)),
            "--embedding-dimension",
            str(served_dimension // 4),
        ],
    )
    yield process
    assert process.stop() == 0, process.log.read_text()[-4000:]
    next(data_dirs, None)


@pytest.mark.slow
def test_the_orchestrator_refuses_to_start_on_a_registry_of_another_embedding_length(
    served_triton: TritonHandle,
    other_registry: ManagedProcess,
    served_dimension: int,
    tmp_path: Path,
) -> None:
    flags = ["--triton-url", served_triton.address, "--registry-url", other_registry.address]

    with pytest.raises(Unavailable, match=f"gives {served_dimension}-dimensional embeddings"):
        start_server_process("orchestrator", tmp_path, flags)

    report = json.loads(error_file(tmp_path / "orchestrator.port").read_text())
    assert report["reason"] == "EMBEDDING_DIMENSION_MISMATCH"
    assert report["metadata"] == {
        "served": str(served_dimension),
        "registry": str(served_dimension // 4),
    }
    assert f"{served_dimension}-dimensional" in report["message"]
    assert f"{served_dimension // 4}-dimensional" in report["message"]
    log = (tmp_path / "orchestrator.log").read_text()
    assert "Traceback" not in log
    assert [line for line in log.splitlines() if line.startswith("error:")] == [
        f"error: {report['message']}"
    ]


@pytest.fixture(scope="module")
def late_registry_orchestrator(
    served_triton: TritonHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ManagedProcess, int]]:
    """An orchestrator started while its registry is not up yet (it starts: nothing to compare),
    with a window smaller than Triton's batches; yields it and the registry's future port."""
    port = unused_port()
    process = start_server_process(
        "orchestrator",
        tmp_path_factory.mktemp("late-registry-orchestrator"),
        [
            "--triton-url",
            served_triton.address,
            "--registry-url",
            f"127.0.0.1:{port}",
            "--labeling-window",
            "4",
            "--log-format",
            "text",
        ],
    )
    yield process, port
    assert process.stop() == 0, process.log.read_text()[-4000:]


@pytest.mark.slow
def test_an_orchestrator_warns_at_start_when_its_window_cannot_fill_tritons_batches(
    late_registry_orchestrator: tuple[ManagedProcess, int],
) -> None:
    orchestrator, _ = late_registry_orchestrator

    log = orchestrator.log.read_text()

    assert "labeling_window 4 is smaller than the max_batch_size Triton serves" in log
    assert "--labeling-window to at least 8" in log


@pytest.mark.slow
def test_a_registry_of_another_length_that_comes_up_later_is_shown_and_refuses_autolabel(
    late_registry_orchestrator: tuple[ManagedProcess, int],
    served_dimension: int,
    tmp_path: Path,
) -> None:
    orchestrator, port = late_registry_orchestrator
    data_dirs = registry_data_dir()
    registry = start_server_process(
        "registry",
        tmp_path,
        [
            "--data-dir",
            str(next(data_dirs)),
            "--embedding-dimension",
            str(served_dimension // 4),
            "--registry-port",
            str(port),
        ],
    )
    try:
        with grpc.insecure_channel(orchestrator.address) as channel:
            stub = labeling_pb2_grpc.LabelingServiceStub(channel)
            status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=30)
            with pytest.raises(grpc.RpcError) as refused:
                list(
                    stub.AutoLabel(
                        iter(
                            [
                                labeling_pb2.AutoLabelRequest(
                                    config=labeling_pb2.AutoLabelConfig(class_names=["cat"])
                                )
                            ]
                        ),
                        timeout=30,
                    )
                )
    finally:
        assert registry.stop() == 0, registry.log.read_text()[-4000:]
        next(data_dirs, None)
    assert status.registry.reachable, status.registry.message
    assert status.served_embedding_dimension == served_dimension
    assert status.registry_embedding_dimension == served_dimension // 4
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"{served_dimension}-dimensional" in refused.value.details()
    assert f"{served_dimension // 4}-dimensional" in refused.value.details()
