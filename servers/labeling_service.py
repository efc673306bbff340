"""LabelingService, the orchestrator's API.

Built so far: GetMeshStatus (registry and Triton readiness, models and their batching
statistics) and the request checks of Detect, Segment and Embed, which answer every bad
field with INVALID_ARGUMENT. Running the models through Triton and AutoLabel are not built
yet and answer UNIMPLEMENTED.
"""

from __future__ import annotations

import asyncio
from typing import Any

from agentic_labeling import __version__
from agentic_labeling.clients.mesh_probe import (
    ComponentState,
    probe_registry,
    probe_triton,
)
from agentic_labeling.errors import Unimplemented
from agentic_labeling.servers.labeling_requests import check_detect, check_embed, check_segment
from agentic_labeling.servers.unbuilt import answer_unbuilt_methods
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import labeling_pb2, labeling_pb2_grpc

__all__ = ["LabelingServicer"]

_SERVICE = labeling_pb2.DESCRIPTOR.services_by_name["LabelingService"]
_PROBE_TIMEOUT_S = 2.0


def _component(state: ComponentState) -> labeling_pb2.ComponentStatus:
    return labeling_pb2.ComponentStatus(
        address=state.address,
        reachable=state.reachable,
        version=state.version,
        message=state.message,
    )


@answer_unbuilt_methods(_SERVICE)
class LabelingServicer(labeling_pb2_grpc.LabelingServiceServicer):
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    async def Detect(
        self, request: labeling_pb2.DetectRequest, context: Any
    ) -> labeling_pb2.DetectResponse:
        check_detect(request, self._settings)
        raise Unimplemented(f"{_SERVICE.full_name}.Detect (model serving)")

    async def Segment(
        self, request: labeling_pb2.SegmentRequest, context: Any
    ) -> labeling_pb2.SegmentResponse:
        check_segment(request, self._settings)
        raise Unimplemented(f"{_SERVICE.full_name}.Segment (model serving)")

    async def Embed(
        self, request: labeling_pb2.EmbedRequest, context: Any
    ) -> labeling_pb2.EmbedResponse:
        check_embed(request, self._settings)
        raise Unimplemented(f"{_SERVICE.full_name}.Embed (model serving)")

    async def GetMeshStatus(
        self, request: labeling_pb2.GetMeshStatusRequest, context: Any
    ) -> labeling_pb2.MeshStatus:
        registry, triton = await asyncio.gather(
            probe_registry(self._settings.registry_url, timeout_s=_PROBE_TIMEOUT_S),
            probe_triton(self._settings.triton_url, timeout_s=_PROBE_TIMEOUT_S),
        )
        return labeling_pb2.MeshStatus(
            version=__version__,
            registry=_component(registry),
            triton=_component(triton.server),
            models=[
                labeling_pb2.ModelStatus(
                    name=m.name,
                    version=m.version,
                    ready=m.ready,
                    reason=m.reason,
                    inference_count=m.inference_count,
                    execution_count=m.execution_count,
                )
                for m in triton.models
            ],
        )
