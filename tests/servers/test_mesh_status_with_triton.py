"""GetMeshStatus against the real tritonserver binary that `make setup` unpacks."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from real_parts import TRITONSERVER

from agentic_labeling.local_mesh import start_server_process, start_tritonserver
from agentic_labeling.v1 import labeling_pb2, labeling_pb2_grpc


@pytest.mark.slow
def test_mesh_status_reports_a_running_triton_with_its_version(tmp_path: Path) -> None:
    repository = tmp_path / "model_repository"
    repository.mkdir()
    triton = start_tritonserver(TRITONSERVER, repository, tmp_path)
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
