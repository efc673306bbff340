"""GetMeshStatus against the real tritonserver binary that `make setup` unpacks."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from agentic_labeling.local_mesh import start_server_process
from agentic_labeling.triton_server import TritonLaunch, start_triton
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
