"""A registered video with tracks, through the generated stubs: shared by the track RPC tests
and the `alabel tracks` tests."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from google.protobuf import duration_pb2

from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc

WIDTH, HEIGHT = 320, 240
FPS = 10


def frame_time(index: int) -> duration_pb2.Duration:
    """The presentation time of frame `index` at FPS frames per second."""
    time = duration_pb2.Duration()
    time.FromTimedelta(timedelta(seconds=index / FPS))
    return time


@dataclass(frozen=True)
class Box:
    """One object of a track: its frame, top-left corner, confidence and category."""

    frame: int
    x: float
    y: float = 20.0
    confidence: float = 0.8
    category: str = "car"
    size: float = 30.0


@dataclass(frozen=True)
class Video:
    source: registry_pb2.Source
    tracks: dict[str, str]  # label -> tracks/{uuid}
    objects: dict[str, list[registry_pb2.LabeledObject]]  # label -> objects in frame order


def register_video(
    stub: registry_pb2_grpc.RegistryServiceStub,
    key: str,
    tracks: Mapping[str, Sequence[Box]],
    *,
    frames: int,
    untracked: Sequence[Box] = (),
) -> Video:
    """A video source `key`.mp4 with `frames` frames at FPS frames per second, and one track
    per entry of `tracks` (label "" in `untracked`: objects without a track)."""
    source = stub.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_VIDEO,
                width=WIDTH,
                height=HEIGHT,
                display_name=f"{key}.mp4",
                content_sha256=hashlib.sha256(key.encode()).hexdigest(),
            )
        ),
        timeout=30,
    )
    for index in range(frames):
        stub.CreateFrame(
            registry_pb2.CreateFrameRequest(
                parent=source.name,
                frame=registry_pb2.Frame(frame_index=index, timestamp=frame_time(index)),
            ),
            timeout=30,
        )
    names = {label: f"tracks/{uuid.uuid4()}" for label in tracks}
    labelled = [(label, box) for label, boxes in tracks.items() for box in boxes]
    labelled += [("", box) for box in untracked]
    response = stub.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            duplicate_iou_threshold=1.0,
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source.name,
                        frame_index=box.frame,
                        category_name=box.category,
                        bbox=common_pb2.BoundingBox(
                            x=box.x, y=box.y, width=box.size, height=box.size
                        ),
                        confidence=box.confidence,
                        detection_model="test",
                        track=names.get(label, ""),
                    )
                )
                for label, box in labelled
            ],
        ),
        timeout=60,
    )
    objects: dict[str, list[registry_pb2.LabeledObject]] = {}
    for (label, _), created in zip(labelled, response.objects, strict=True):
        objects.setdefault(label, []).append(created)
    for found in objects.values():
        found.sort(key=lambda o: o.frame_index)
    return Video(source, names, objects)
