"""The orchestrator server process: LabelingService, with health and reflection.

Its clients of Triton and of the registry open before the server listens and close after it
has stopped (in-flight RPCs included), so no RPC meets a closed channel. Both connect lazily:
the server starts, and answers GetMeshStatus, while Triton or the registry is still down.
Before it listens it compares what its peers must agree on (servers/mesh_agreement.py): a
served DINOv2 whose embedding length differs from the registry's stops the start with one
line. `alabel serve orchestrator` calls `run`.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from agentic_labeling.clients.registry_client import RegistryClient
from agentic_labeling.clients.triton_models import TritonModels
from agentic_labeling.servers.bootstrap import ServiceRegistration, run_server
from agentic_labeling.servers.labeling_service import LabelingServicer
from agentic_labeling.servers.mesh_agreement import MeshAgreement
from agentic_labeling.servers.metrics import LabelingMetrics
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import labeling_pb2_grpc

__all__ = ["open_services", "run", "services"]


def services(
    settings: Settings,
    models: TritonModels,
    registry: RegistryClient,
    metrics: LabelingMetrics | None = None,
    agreement: MeshAgreement | None = None,
) -> Sequence[ServiceRegistration]:
    servicer = LabelingServicer(
        settings, models=models, registry=registry, metrics=metrics, agreement=agreement
    )
    return [
        ServiceRegistration(
            "agentic_labeling.v1.LabelingService",
            functools.partial(labeling_pb2_grpc.add_LabelingServiceServicer_to_server, servicer),
        )
    ]


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings, metrics: LabelingMetrics | None = None
) -> AsyncIterator[Sequence[ServiceRegistration]]:
    """The services on open Triton and registry clients, which are closed again on exit.

    Raises FailedPrecondition (EMBEDDING_DIMENSION_MISMATCH) when Triton and the registry
    both answer and disagree on the embedding length.
    """
    agreement = MeshAgreement(settings)
    await agreement.check_at_start()
    async with (
        TritonModels(
            settings.triton_url,
            max_message_bytes=settings.max_message_bytes,
            shared_memory=settings.triton_shared_memory,
        ) as models,
        RegistryClient(
            settings.registry_url, max_message_bytes=settings.max_message_bytes
        ) as registry,
    ):
        yield services(settings, models, registry, metrics, agreement)


def run(settings: Settings, *, port_file: Path | None = None) -> None:
    """Serve the orchestrator on settings.host:settings.orchestrator_port until SIGTERM/SIGINT."""
    # The labelling counters go to the same /metrics endpoint as the gRPC ones.
    metrics_registry = CollectorRegistry()
    run_server(
        settings,
        name="orchestrator",
        port=settings.orchestrator_port,
        services_factory=functools.partial(
            open_services, settings, LabelingMetrics(metrics_registry)
        ),
        port_file=port_file,
        metrics_registry=metrics_registry,
    )
