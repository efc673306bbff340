"""The orchestrator server process: LabelingService, with health and reflection.

`alabel serve orchestrator` calls `run`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from pathlib import Path

from agentic_labeling.servers.bootstrap import ServiceRegistration, run_server
from agentic_labeling.servers.labeling_service import LabelingServicer
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import labeling_pb2_grpc

__all__ = ["run", "services"]


def services(settings: Settings) -> Sequence[ServiceRegistration]:
    return [
        ServiceRegistration(
            "agentic_labeling.v1.LabelingService",
            functools.partial(
                labeling_pb2_grpc.add_LabelingServiceServicer_to_server,
                LabelingServicer(settings),
            ),
        )
    ]


def run(settings: Settings, *, port_file: Path | None = None) -> None:
    """Serve the orchestrator on settings.host:settings.orchestrator_port until SIGTERM/SIGINT."""
    run_server(
        settings,
        name="orchestrator",
        port=settings.orchestrator_port,
        services_factory=functools.partial(services, settings),
        port_file=port_file,
    )
