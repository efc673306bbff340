"""One image of an AutoLabel stream through the mesh, from its bytes to its registered objects.

    decode and check → register the source (and frame) → Florence-2 → class-aware duplicate
    suppression → SAM2 (all boxes in one call) → DINOv2 (crops with their masks) →
    [the video's tracker, in frame order] → one BatchCreateObjects → the answer, with the
    time spent in each stage

Sources. A still image is a source of its own, deduplicated by the SHA-256 of its bytes
(CreateSource with return_existing). A video frame (an item with a FramePosition) goes into
the VIDEO source of its `video_key`, created by the first frame that needs it
(`VideoSources`, a lock per key), then CreateFrame; a frame index that exists already (a
retried frame) is fine. A `video_key` that is a SHA-256 (64 lower-case hex digits, meant to
be the video file's) is the source's content hash: a later stream finds the same source again,
so an interrupted video resumes like images do. Any other key names a new source in each
stream. With `skip_registered`, an image whose frame already has objects is answered with
those objects (`already_registered`) and no model runs. Without it such an image is labelled
again (say for new class names): a detection that matches a stored object merges into it in
the registry, and the answer names those objects in `merged_objects`. The image's bytes go
with its CreateSource / CreateFrame into the registry's image store, from which datasets are
exported.

Tracks. With `track_objects`, a frame's kept detections go through its video's tracker once
the frames read before it have (servers/frame_tracking.py), and each object joins its track in
the same BatchCreateObjects (`LabeledObject.track`; the registry creates a track the first
time it is named). A detection the tracker has not confirmed yet is registered untracked.

Exactly once. The batch's request_id is a UUIDv5 of the client's id, the image's SHA-256, its
source and frame, and the config's fingerprint (the settings that decide the objects: classes,
thresholds, maximum, skip_masks, skip_embeddings). A retried image (same client_id, bytes and
config) therefore sends the same request_id and the registry creates nothing twice; it replays
the stored answer (`already_registered`). The models on Triton are not bitwise deterministic
(a batch of 8 rounds differently from a batch of 1), so a retry may compute slightly different
numbers; the registry then refuses the request_id as "used for different content", and the
stored objects of that frame are the answer instead. The registry writes a batch all or
nothing, so a cancelled or failed image leaves either all its objects or none.

Errors are raised as domain errors (servers/auto_label.py turns them into the item's status):
a bad image is InvalidArgument naming the `item.` field, a dependency down is Unavailable,
a passed deadline DeadlineExceeded; objects that the registry refuses although the image was
fine (say an embedding dimension the registry is not configured for) are FailedPrecondition.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from google.protobuf import duration_pb2
from google.rpc import status_pb2  # type: ignore[import-untyped,unused-ignore]

from agentic_labeling.clients.registry_client import RegistryClient
from agentic_labeling.clients.triton_models import DetectedBoxes, TritonModels
from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from agentic_labeling.servers.auto_label_requests import CheckedItem, LabelingConfig, check_item
from agentic_labeling.servers.conversions import box_message, mask_message
from agentic_labeling.servers.frame_tracking import FrameTurn
from agentic_labeling.servers.labeling_window import LabelingWindow
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import common_pb2, labeling_pb2, registry_pb2

__all__ = [
    "REQUEST_ID_NAMESPACE",
    "Deadline",
    "LabelingPipeline",
    "VideoSources",
    "batch_request_id",
    "suppress_duplicates",
]

# Fixed forever: changing it changes every request_id, and retries would register again.
REQUEST_ID_NAMESPACE = uuid.UUID("6f0c8a52-3c7e-5b7a-9d2e-1a4b7c9e0f31")

Deadline = Callable[[], float | None]
"""Seconds left of the caller's deadline (None: no deadline), asked before each call."""


def batch_request_id(
    client_id: str, sha256: str, source: str, frame_index: int, config_fingerprint: str
) -> str:
    """The BatchCreateObjects request_id of one image (see the module docstring)."""
    key = "\x1f".join((client_id, sha256, source, str(frame_index), config_fingerprint))
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, key))


def _iou(box: npt.NDArray[np.float32], boxes: npt.NDArray[np.float32]) -> npt.NDArray[np.float64]:
    """IoU of one x, y, width, height box with each of `boxes`."""
    left = np.maximum(box[0], boxes[:, 0])
    top = np.maximum(box[1], boxes[:, 1])
    right = np.minimum(box[0] + box[2], boxes[:, 0] + boxes[:, 2])
    bottom = np.minimum(box[1] + box[3], boxes[:, 1] + boxes[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = box[2] * box[3] + boxes[:, 2] * boxes[:, 3] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0).astype(np.float64)


def suppress_duplicates(
    boxes: npt.NDArray[np.float32],
    scores: npt.NDArray[np.float32],
    class_ids: npt.NDArray[np.int32],
    threshold: float,
) -> npt.NDArray[np.intp]:
    """Indexes of the boxes to keep, most confident first: a box whose IoU with a kept box of
    the same class is above `threshold` is the same object seen twice and is dropped."""
    kept: list[int] = []
    for index in np.argsort(-scores, kind="stable"):
        same_class = [j for j in kept if class_ids[j] == class_ids[index]]
        if same_class and bool((_iou(boxes[index], boxes[same_class]) > threshold).any()):
            continue
        kept.append(int(index))
    return np.asarray(kept, dtype=np.intp)


def _usable(
    found: DetectedBoxes, class_count: int
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.intp]]:
    """The boxes clipped to the image (a float edge past the border is rounding), and the
    indexes of the detections that name a requested class and cover pixels of the image."""
    boxes = np.array(found.boxes, dtype=np.float32).reshape(-1, 4)
    right = np.minimum(boxes[:, 0] + boxes[:, 2], found.image_width)
    bottom = np.minimum(boxes[:, 1] + boxes[:, 3], found.image_height)
    boxes[:, 0] = np.clip(boxes[:, 0], 0, found.image_width)
    boxes[:, 1] = np.clip(boxes[:, 1], 0, found.image_height)
    boxes[:, 2] = right - boxes[:, 0]
    boxes[:, 3] = bottom - boxes[:, 1]
    with np.errstate(invalid="ignore"):
        ok = (
            np.isfinite(boxes).all(axis=1)
            & (boxes[:, 2] > 0)
            & (boxes[:, 3] > 0)
            & np.isfinite(found.scores)
            & (found.class_ids >= 0)
            & (found.class_ids < class_count)
        )
    return boxes, np.flatnonzero(ok)


def _fraction(value: float) -> float:
    """A model's score as the registry's [0, 1] (an untrained SAM2 may predict IoU past 1)."""
    return float(np.clip(value, 0.0, 1.0)) if np.isfinite(value) else 0.0


@dataclass
class _Objects:
    """The kept detections of one image and what the models computed for them."""

    boxes: npt.NDArray[np.float32]
    scores: npt.NDArray[np.float32]
    class_ids: npt.NDArray[np.int32]
    masks: npt.NDArray[np.bool_] | None = None
    quality: npt.NDArray[np.float32] | None = None
    embeddings: npt.NDArray[np.float32] | None = None
    tracks: list[str] | None = None  # track names, '' for untracked

    def create_requests(
        self, source: str, frame_index: int, class_names: Sequence[str], model: str
    ) -> list[registry_pb2.CreateObjectRequest]:
        """BatchCreateObjects entries (CPU work for big masks: run it off the event loop)."""
        requests = []
        for i, box in enumerate(self.boxes):
            request = registry_pb2.CreateObjectRequest(
                object=registry_pb2.LabeledObject(
                    source=source,
                    frame_index=frame_index,
                    category_name=class_names[int(self.class_ids[i])],
                    bbox=box_message(box),
                    confidence=_fraction(float(self.scores[i])),
                    detection_model=model,
                    quality_score=0.0 if self.quality is None else _fraction(self.quality[i]),
                    track="" if self.tracks is None else self.tracks[i],
                )
            )
            if self.masks is not None:
                request.mask.CopyFrom(mask_message(self.masks[i]))
            if self.embeddings is not None:
                request.embedding.values.extend(self.embeddings[i].tolist())
            requests.append(request)
        return requests


@dataclass
class _Timings:
    """Wall time per stage of one image, from when its request was read."""

    received: float
    spent: dict[str, float] = field(default_factory=dict)

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.perf_counter() - started

    def message(self) -> labeling_pb2.StageTimings:
        def duration(seconds: float) -> duration_pb2.Duration:
            value = duration_pb2.Duration()
            value.FromNanoseconds(round(seconds * 1e9))
            return value

        stages = {name: duration(seconds) for name, seconds in self.spent.items()}
        return labeling_pb2.StageTimings(
            total=duration(time.perf_counter() - self.received), **stages
        )


_SHA256 = re.compile(r"[0-9a-f]{64}")


class VideoSources:
    """The VIDEO source of each video_key of one stream, created (or, for a SHA-256 key,
    found) by the first frame that needs it; frames arriving meanwhile wait for it (one lock
    per key). A failed creation is not remembered: the next frame of that key tries again."""

    def __init__(self, registry: RegistryClient) -> None:
        self._registry = registry
        self._sources: dict[str, registry_pb2.Source] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def source(
        self, key: str, width: int, height: int, display_name: str, *, timeout_s: float | None
    ) -> registry_pb2.Source:
        async with self._locks.setdefault(key, asyncio.Lock()):
            found = self._sources.get(key)
            if found is None:
                content_hash = key if _SHA256.fullmatch(key) else ""
                found = await self._registry.create_source(
                    kind=common_pb2.SOURCE_KIND_VIDEO,
                    width=width,
                    height=height,
                    content_sha256=content_hash,
                    display_name=display_name or key,
                    return_existing=bool(content_hash),
                    timeout_s=timeout_s,
                )
                self._sources[key] = found
            return found


@dataclass(frozen=True)
class _Place:
    """Where an image's objects go."""

    source: registry_pb2.Source
    frame_index: int
    has_objects: bool  # the source held objects when this image found it


def _source_id(source: registry_pb2.Source) -> uuid.UUID:
    return uuid.UUID(source.name.removeprefix("sources/"))


def _reused_request_id(exc: InvalidArgument) -> bool:
    return any(v.field == "request_id" for v in exc.violations)


_OK = status_pb2.Status(code=0)


class LabelingPipeline:
    """Labels one image at a time; shared by every stream of the server (it holds no state
    of its own besides the clients)."""

    def __init__(self, models: TritonModels, registry: RegistryClient, settings: Settings) -> None:
        self._models = models
        self._registry = registry
        self._settings = settings

    async def label(
        self,
        item: labeling_pb2.AutoLabelItem,
        config: LabelingConfig,
        videos: VideoSources,
        remaining: Deadline,
        *,
        received: float,
        window: LabelingWindow,
        turn: FrameTurn | None = None,
    ) -> labeling_pb2.AutoLabelResponse:
        """The answer for one image; raises a domain error when the image fails. `turn`: the
        frame's place in its video's tracking order (track_objects), finished here once the
        tracker has seen the frame (or will not: a skipped frame); the caller finishes it when
        this raises. `window`: the model stages hold one of its slots, the registry calls one
        of its registration slots (never both at once: servers/labeling_window.py)."""
        timings = _Timings(received)
        async with window.registration_slot():
            with timings.stage("decode"):
                checked = await asyncio.to_thread(check_item, item, self._settings)
            with timings.stage("register"):
                place = await self._place(checked, videos, remaining)
        response = labeling_pb2.AutoLabelResponse(
            client_id=checked.client_id,
            status=_OK,
            source=place.source.name,
            frame_index=place.frame_index,
        )
        stored: list[registry_pb2.LabeledObject] = []
        if config.skip_registered and place.has_objects:
            async with window.registration_slot():
                with timings.stage("register"):
                    stored = await self._stored_objects(place, remaining)
        if stored:
            if turn is not None:  # the tracker starts after the frames registered before
                turn.finish()
            response.objects.extend(stored)
            response.already_registered = True
        else:
            async with window.slot():
                objects = await self._run_models(checked, config, timings, remaining)
            if turn is not None and checked.frame is not None:
                await turn.wait()
                objects.tracks = turn.track(
                    _source_id(place.source),
                    place.frame_index,
                    objects.boxes,
                    objects.scores,
                    [config.class_names[int(c)] for c in objects.class_ids],
                    objects.embeddings,
                )
                turn.finish()
            if len(objects.boxes):
                async with window.registration_slot():
                    with timings.stage("register"):
                        registered, replayed, merged = await self._register(
                            checked, config, place, objects, remaining
                        )
                response.objects.extend(registered)
                response.already_registered = replayed
                if not replayed:
                    response.merged_objects.extend(merged)
        response.timings.CopyFrom(timings.message())
        return response

    async def _place(
        self, checked: CheckedItem, videos: VideoSources, remaining: Deadline
    ) -> _Place:
        if checked.frame is None:
            source = await self._registry.create_source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=checked.width,
                height=checked.height,
                content_sha256=checked.sha256,
                display_name=checked.display_name,
                image_data=checked.data,
                return_existing=True,
                timeout_s=remaining(),
            )
            return _Place(source, 0, source.object_count > 0)
        frame = checked.frame
        source = await videos.source(
            frame.video_key,
            checked.width,
            checked.height,
            checked.display_name,
            timeout_s=remaining(),
        )
        if source.kind != common_pb2.SOURCE_KIND_VIDEO:
            raise InvalidArgument(
                f"video_key {frame.video_key!r} is the content hash of an image source, "
                f"{source.name}, not of a video",
                field="item.frame.video_key",
                reason="NOT_A_VIDEO",
            )
        if (source.width, source.height) != (checked.width, checked.height):
            raise InvalidArgument(
                f"the frame is {checked.width}x{checked.height}, but video "
                f"{frame.video_key!r} of this stream is {source.width}x{source.height}",
                field="item.image.data",
                reason="FRAME_SIZE_MISMATCH",
            )
        with contextlib.suppress(AlreadyExists):  # a retried frame: its objects join it
            await self._registry.create_frame(
                source.name,
                registry_pb2.Frame(
                    frame_index=frame.frame_index,
                    timestamp=frame.timestamp,
                    content_sha256=checked.sha256,
                ),
                image_data=checked.data,
                timeout_s=remaining(),
            )
        return _Place(source, frame.frame_index, source.object_count > 0)

    async def _stored_objects(
        self, place: _Place, remaining: Deadline
    ) -> list[registry_pb2.LabeledObject]:
        return await self._registry.list_objects(
            source=place.source.name, frame_index=place.frame_index, timeout_s=remaining()
        )

    async def _run_models(
        self,
        checked: CheckedItem,
        config: LabelingConfig,
        timings: _Timings,
        remaining: Deadline,
    ) -> _Objects:
        with timings.stage("detect"):
            found = await self._models.detect(
                checked.model_input,
                config.class_names,
                min_confidence=config.min_confidence,
                max_detections=config.max_objects_per_image,
                deadline_s=remaining(),
                model=config.detector,
            )
        boxes, usable = _usable(found, len(config.class_names))
        kept = usable[
            suppress_duplicates(
                boxes[usable],
                found.scores[usable],
                found.class_ids[usable],
                config.duplicate_iou_threshold,
            )
        ]
        objects = _Objects(boxes[kept], found.scores[kept], found.class_ids[kept])
        if not len(kept):
            return objects
        if not config.skip_masks:
            with timings.stage("segment"):
                segmented = await self._models.segment(
                    checked.model_input, objects.boxes, deadline_s=remaining()
                )
            objects.masks, objects.quality = segmented.masks, segmented.predicted_iou
        if not config.skip_embeddings:
            with timings.stage("embed"):
                objects.embeddings = await self._models.embed(
                    checked.model_input, objects.boxes, objects.masks, deadline_s=remaining()
                )
        return objects

    async def _register(
        self,
        checked: CheckedItem,
        config: LabelingConfig,
        place: _Place,
        objects: _Objects,
        remaining: Deadline,
    ) -> tuple[list[registry_pb2.LabeledObject], bool, list[str]]:
        """The registered objects, whether an earlier attempt had registered them, and the
        names of those that existed before (a detection merged into a stored object: an
        image labelled again without skip_registered)."""
        source = place.source.name
        request_id = batch_request_id(
            checked.client_id, checked.sha256, source, place.frame_index, config.fingerprint
        )
        requests = await asyncio.to_thread(
            objects.create_requests,
            source,
            place.frame_index,
            config.class_names,
            config.detector,
        )
        try:
            reply = await self._registry.batch_create_objects(
                request_id,
                requests,
                create_missing_categories=True,
                duplicate_iou_threshold=config.duplicate_iou_threshold,
                timeout_s=remaining(),
            )
        except InvalidArgument as exc:
            if _reused_request_id(exc):
                return await self._stored_objects(place, remaining), True, []
            raise FailedPrecondition(
                f"the registry refused this image's objects: {exc.message}",
                reason="REGISTRY_REFUSED_OBJECTS",
                metadata={
                    "registry_field": ", ".join(v.field for v in exc.violations),
                    "request_id": request_id,
                },
            ) from exc
        # Two boxes merged into one stored object come back as that object twice.
        unique = {o.name: o for o in reply.objects}
        # A box may also merge into an object created by an earlier box of this very batch:
        # that object is new.
        merged_indexes = {m.request_index for m in reply.merged}
        created = {o.name for i, o in enumerate(reply.objects) if i not in merged_indexes}
        merged = list(
            dict.fromkeys(
                m.existing_object for m in reply.merged if m.existing_object not in created
            )
        )
        return list(unique.values()), reply.replayed, merged
