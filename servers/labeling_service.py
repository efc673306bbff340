"""LabelingService, the orchestrator's API.

AutoLabel streams images through the whole mesh (servers/auto_label.py has the stream, the
window and the error model; servers/labeling_pipeline.py what happens to one image). Detect,
Segment and Embed run one model on Triton each, for debugging and for clients that run their
own pipeline. Every request is checked first, so a bad field is INVALID_ARGUMENT naming it
before any model runs; Triton being down is UNAVAILABLE. GetMeshStatus reports the models,
the registry, the labeling window's size and use, and both embedding lengths. AutoLabel is
refused with FAILED_PRECONDITION while the served DINOv2 and the registry are known to disagree
on the embedding length (servers/mesh_agreement.py).

The servicer borrows its Triton and registry clients: orchestrator_server.py opens them
before the server starts and closes them after it has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import numpy as np

from agentic_labeling import __version__
from agentic_labeling.clients.mesh_probe import ComponentState, probe_registry, probe_triton
from agentic_labeling.clients.registry_client import RegistryClient
from agentic_labeling.clients.triton_models import TritonModels
from agentic_labeling.labeling_defaults import has_random_weights
from agentic_labeling.servers.auto_label import AutoLabelStream
from agentic_labeling.servers.conversions import box_message, boxes_array, mask_array, mask_message
from agentic_labeling.servers.labeling_pipeline import LabelingPipeline, VideoSources
from agentic_labeling.servers.labeling_requests import check_detect, check_embed, check_segment
from agentic_labeling.servers.labeling_window import LabelingWindow
from agentic_labeling.servers.mesh_agreement import MeshAgreement
from agentic_labeling.servers.metrics import LabelingMetrics
from agentic_labeling.servers.unbuilt import answer_unbuilt_methods
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc

__all__ = ["DEFAULT_MAX_DETECTIONS", "LabelingServicer"]

_SERVICE = labeling_pb2.DESCRIPTOR.services_by_name["LabelingService"]
_PROBE_TIMEOUT_S = 2.0
DEFAULT_MAX_DETECTIONS = 100


def _component(state: ComponentState) -> labeling_pb2.ComponentStatus:
    return labeling_pb2.ComponentStatus(
        address=state.address,
        reachable=state.reachable,
        version=state.version,
        message=state.message,
    )


def _deadline(context: Any) -> float | None:
    """What is left of the caller's deadline, passed on to Triton (None: no deadline)."""
    remaining = context.time_remaining()
    return None if remaining is None else max(remaining, 0.001)


@answer_unbuilt_methods(_SERVICE)
class LabelingServicer(labeling_pb2_grpc.LabelingServiceServicer):
    def __init__(
        self,
        settings: Settings,
        *,
        models: TritonModels,
        registry: RegistryClient,
        metrics: LabelingMetrics | None = None,
        agreement: MeshAgreement | None = None,
    ) -> None:
        self._settings = settings
        self._agreement = agreement if agreement is not None else MeshAgreement(settings)
        self._models = models
        self._registry = registry
        self._metrics = metrics
        self._window = LabelingWindow(
            settings.labeling_window,
            registration=settings.registration_queue,
            on_change=None if metrics is None else metrics.window,
        )
        self._pipeline = LabelingPipeline(models, registry, settings)

    async def AutoLabel(
        self, requests: AsyncIterable[labeling_pb2.AutoLabelRequest], context: Any
    ) -> AsyncIterator[labeling_pb2.AutoLabelResponse]:
        # Before reading the stream: a mesh that would fail every image fails the call once.
        await self._agreement.require_embedding_agreement()
        stream = AutoLabelStream(
            self._pipeline,
            self._window,
            VideoSources(self._registry),
            self._settings,
            remaining=lambda: _deadline(context),
            metrics=self._metrics,
        )
        async with contextlib.aclosing(stream.responses(requests)) as responses:
            async for response in responses:
                yield response

    async def Detect(
        self, request: labeling_pb2.DetectRequest, context: Any
    ) -> labeling_pb2.DetectResponse:
        checked = check_detect(request, self._settings)
        found = await self._models.detect(
            request.image.data,
            checked.class_names,
            min_confidence=checked.min_confidence,
            max_detections=checked.max_detections or DEFAULT_MAX_DETECTIONS,
            deadline_s=_deadline(context),
        )
        return labeling_pb2.DetectResponse(
            detections=[
                labeling_pb2.Detection(
                    bbox=box_message(box),
                    class_name=checked.class_names[int(class_id)],
                    confidence=float(score),
                )
                for box, class_id, score in zip(
                    found.boxes, found.class_ids, found.scores, strict=True
                )
            ],
            image_width=found.image_width,
            image_height=found.image_height,
            model=self._models.names.detector,
        )

    async def Segment(
        self, request: labeling_pb2.SegmentRequest, context: Any
    ) -> labeling_pb2.SegmentResponse:
        checked = check_segment(request, self._settings)
        found = await self._models.segment(
            request.image.data, boxes_array(checked.boxes), deadline_s=_deadline(context)
        )
        return labeling_pb2.SegmentResponse(
            masks=[
                labeling_pb2.SegmentedObject(mask=mask_message(mask), predicted_iou=float(iou))
                for mask, iou in zip(found.masks, found.predicted_iou, strict=True)
            ],
            model=self._models.names.segmenter,
        )

    async def Embed(
        self, request: labeling_pb2.EmbedRequest, context: Any
    ) -> labeling_pb2.EmbedResponse:
        checked = check_embed(request, self._settings)
        masks = None
        if request.masks:
            height, width = checked.image.height, checked.image.width
            masks = np.stack(
                [
                    mask_array(m, height=height, width=width, field=f"masks[{i}]")
                    for i, m in enumerate(request.masks)
                ]
            )
        embeddings = await self._models.embed(
            request.image.data,
            boxes_array(checked.boxes),
            masks,
            deadline_s=_deadline(context),
        )
        return labeling_pb2.EmbedResponse(
            embeddings=[common_pb2.Embedding(values=row.tolist()) for row in embeddings],
            dimension=int(embeddings.shape[1]),
            model=self._models.names.embedder,
        )

    async def GetMeshStatus(
        self, request: labeling_pb2.GetMeshStatusRequest, context: Any
    ) -> labeling_pb2.MeshStatus:
        registry, triton = await asyncio.gather(
            probe_registry(self._settings.registry_url, timeout_s=_PROBE_TIMEOUT_S),
            probe_triton(self._settings.triton_url, timeout_s=_PROBE_TIMEOUT_S),
        )
        # After the Triton statistics: a first ask of the served length runs dinov2 once.
        dimensions = await self._agreement.embedding_dimensions()
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
            window_size=self._window.size,
            images_in_flight=self._window.in_flight,
            random_weights=has_random_weights(self._settings.models_dir),
            served_embedding_dimension=dimensions.served or 0,
            registry_embedding_dimension=dimensions.registry or 0,
        )
