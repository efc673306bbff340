"""What the orchestrator compares between its peers: the numbers, and the real registry's answer.

The checks against a real Triton with tiny models are in test_mesh_status_with_triton.py.
"""

from __future__ import annotations

import grpc
from real_parts import Mesh

from agentic_labeling.errors import FailedPrecondition
from agentic_labeling.local_mesh import unused_port
from agentic_labeling.servers.mesh_agreement import (
    EmbeddingDimensions,
    MeshAgreement,
    small_window_warning,
)
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import labeling_pb2, labeling_pb2_grpc, registry_pb2, registry_pb2_grpc


def test_a_mismatch_names_both_lengths_and_the_registry() -> None:
    error = EmbeddingDimensions(served=32, registry=8).mismatch("127.0.0.1:9")

    assert isinstance(error, FailedPrecondition)
    assert error.reason == "EMBEDDING_DIMENSION_MISMATCH"
    assert "32-dimensional" in error.message
    assert "8-dimensional" in error.message
    assert "127.0.0.1:9" in error.message
    assert "\n" not in error.message
    assert error.metadata == {"served": "32", "registry": "8"}


def test_equal_or_unknown_lengths_are_no_mismatch() -> None:
    assert EmbeddingDimensions(served=32, registry=32).mismatch("r") is None
    assert EmbeddingDimensions(served=None, registry=8).mismatch("r") is None
    assert EmbeddingDimensions(served=32, registry=None).mismatch("r") is None


def test_a_window_smaller_than_a_batch_is_warned_about_naming_the_model() -> None:
    warning = small_window_warning(4, {"florence2": 8, "sam2": 4, "dinov2": 16})

    assert warning is not None
    assert "labeling_window 4" in warning
    assert "dinov2 16" in warning
    assert "florence2 8" in warning
    assert "sam2" not in warning
    assert "--labeling-window to at least 16" in warning


def test_a_window_as_large_as_every_batch_is_not_warned_about() -> None:
    assert small_window_warning(8, {"florence2": 8, "sam2": 8}) is None
    assert small_window_warning(8, {}) is None


async def test_peers_that_are_down_are_not_a_mismatch_at_start() -> None:
    nowhere = Settings(
        triton_url=f"127.0.0.1:{unused_port()}", registry_url=f"127.0.0.1:{unused_port()}"
    )
    agreement = MeshAgreement(nowhere, probe_timeout_s=2)

    await agreement.check_at_start()
    dimensions = await agreement.embedding_dimensions()

    assert dimensions == EmbeddingDimensions(served=None, registry=None)


def test_the_registry_says_its_recorded_embedding_length(mesh: Mesh) -> None:
    with grpc.insecure_channel(mesh.registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        info = stub.GetRegistryInfo(registry_pb2.GetRegistryInfoRequest(), timeout=15)

    assert info.embedding_dimension == 8  # the mesh fixture's --embedding-dimension


def test_mesh_status_shows_the_registrys_length_and_0_for_a_triton_that_is_down(
    mesh: Mesh,
) -> None:
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=15)

    assert status.registry_embedding_dimension == 8
    assert status.served_embedding_dimension == 0
