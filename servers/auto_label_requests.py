"""Checks of AutoLabel's messages: a config and each image item.

A bad config is InvalidArgument naming the `config.` field (the stream fails with it: every
later image depends on the config). A bad item is
InvalidArgument naming the `item.` field, or FailedPrecondition for a server-side URI; that
item fails alone. Decoding happens here, so no model and no registry call ever sees an image
that is empty, corrupt, of an unsupported format or over `settings.max_image_pixels`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from google.protobuf import duration_pb2

from agentic_labeling.clients.triton_models import ImageAndPixels
from agentic_labeling.errors import FieldViolation, InvalidArgument
from agentic_labeling.registry.values.input_checks import check_text
from agentic_labeling.servers.detector_choice import DEFAULT_DETECTOR, checked_detector

# The same class-name, fraction and image rules as Detect, Segment and Embed.
from agentic_labeling.servers.labeling_requests import (
    checked_class_names,
    checked_fraction,
    checked_image,
    checked_min_confidence,
)
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import labeling_pb2

__all__ = [
    "DEFAULT_MAX_OBJECTS_PER_IMAGE",
    "MAX_CLIENT_ID_LENGTH",
    "MAX_KEPT_PIXEL_BYTES",
    "CheckedFrame",
    "CheckedItem",
    "LabelingConfig",
    "check_config",
    "check_item",
]

DEFAULT_MAX_OBJECTS_PER_IMAGE = 100
MAX_CLIENT_ID_LENGTH = 4096  # room for a file path as the id
_MAX_KEY_LENGTH = 1024


@dataclass(frozen=True)
class LabelingConfig:
    """A checked AutoLabelConfig with the server defaults filled in."""

    class_names: tuple[str, ...]
    min_confidence: float
    duplicate_iou_threshold: float
    max_objects_per_image: int
    skip_masks: bool
    skip_embeddings: bool
    skip_registered: bool
    track_objects: bool = False
    detector: str = DEFAULT_DETECTOR  # the Triton model that detects

    @property
    def fingerprint(self) -> str:
        """What decides the objects an image gets (not skip_registered, which decides only
        whether to compute them): part of each image's request_id."""
        facts = [
            list(self.class_names),
            self.min_confidence,
            self.duplicate_iou_threshold,
            self.max_objects_per_image,
            self.skip_masks,
            self.skip_embeddings,
        ]
        if self.track_objects:  # appended only when set: untracked request_ids stay as they were
            facts.append("track_objects")
        if self.detector != DEFAULT_DETECTOR:  # likewise: florence2's request_ids stay
            facts.append(f"detector:{self.detector}")
        return hashlib.sha256(json.dumps(facts).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class CheckedFrame:
    video_key: str
    frame_index: int
    timestamp: duration_pb2.Duration


# Pixels of an image up to this size are kept from the check and sent to the models (PIXELS),
# so Triton's three models do not decode the file again: measured on 640x480 JPEGs, a decode
# costs about 3 ms of CPU, passing 0.9 MB of pixels well under 1 ms. A bigger image (over
# about 5.6 megapixels) goes as its bytes, so an image waiting for a slot holds at most this
# much beside its file, and its pixels stay far below the gRPC message limit.
MAX_KEPT_PIXEL_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class CheckedItem:
    """An image that decoded and passed every check, with its pixels when they are small
    enough to keep (`MAX_KEPT_PIXEL_BYTES`)."""

    client_id: str
    data: bytes
    width: int
    height: int
    sha256: str
    display_name: str
    frame: CheckedFrame | None
    pixels: npt.NDArray[np.uint8] | None = None

    @property
    def model_input(self) -> bytes | ImageAndPixels:
        """What the models get: the file's bytes, with its decoded pixels when kept (sent to
        each model that takes them)."""
        return self.data if self.pixels is None else ImageAndPixels(self.data, self.pixels)


def _check_category_names(names: tuple[str, ...]) -> None:
    """Rules the registry sets for category names, checked once for the whole stream."""
    violations = [
        FieldViolation(f"config.class_names[{i}]", why)
        for i, name in enumerate(names)
        for why in (
            "class name contains control characters" if not name.isprintable() else "",
            "class name cannot start with 'categories/'" if name.startswith("categories/") else "",
        )
        if why
    ]
    if violations:
        raise InvalidArgument(violations[0].description, violations=violations)


def check_config(config: labeling_pb2.AutoLabelConfig, settings: Settings) -> LabelingConfig:
    """The config with defaults filled in, or the error that fails the stream."""
    class_names = checked_class_names(config.class_names, "config.class_names")
    _check_category_names(class_names)
    min_confidence = checked_min_confidence(config, "config.")
    threshold = checked_fraction(config.duplicate_iou_threshold, "config.duplicate_iou_threshold")
    if not 0 <= config.max_objects_per_image <= settings.max_batch_objects:
        raise InvalidArgument(
            f"must be between 0 (the server default, {DEFAULT_MAX_OBJECTS_PER_IMAGE}) and "
            f"{settings.max_batch_objects}, got {config.max_objects_per_image}",
            field="config.max_objects_per_image",
        )
    return LabelingConfig(
        class_names=class_names,
        min_confidence=min_confidence,
        duplicate_iou_threshold=threshold or settings.duplicate_iou_threshold,
        max_objects_per_image=config.max_objects_per_image or DEFAULT_MAX_OBJECTS_PER_IMAGE,
        skip_masks=config.skip_masks,
        skip_embeddings=config.skip_embeddings,
        skip_registered=config.skip_registered,
        track_objects=config.track_objects,
        detector=checked_detector(config.detector),
    )


def check_client_id(client_id: str) -> None:
    if not client_id:
        raise InvalidArgument(
            "client_id is required: an id of the image, unique within the stream",
            field="item.client_id",
        )
    if len(client_id) > MAX_CLIENT_ID_LENGTH:
        raise InvalidArgument(
            f"client_id is longer than {MAX_CLIENT_ID_LENGTH} characters", field="item.client_id"
        )


def _check_frame(frame: labeling_pb2.FramePosition, width: int, height: int) -> CheckedFrame:
    key = frame.video_key
    if not key.strip():
        raise InvalidArgument(
            "video_key is required for a video frame", field="item.frame.video_key"
        )
    check_text(key, "item.frame.video_key", max_length=_MAX_KEY_LENGTH)
    if frame.frame_index < 0:
        raise InvalidArgument(
            f"must not be negative, got {frame.frame_index}", field="item.frame.frame_index"
        )
    if frame.video_frame_count < 0:
        raise InvalidArgument(
            f"must not be negative (0: unknown), got {frame.video_frame_count}",
            field="item.frame.video_frame_count",
        )
    if frame.video_frame_count and frame.frame_index >= frame.video_frame_count:
        raise InvalidArgument(
            f"frame {frame.frame_index} is beyond the video, which has"
            f" {frame.video_frame_count} frames (0 to {frame.video_frame_count - 1})",
            field="item.frame.frame_index",
            reason="FRAME_BEYOND_VIDEO",
        )
    for name, given, actual in (
        ("video_width", frame.video_width, width),
        ("video_height", frame.video_height, height),
    ):
        if given and given != actual:
            raise InvalidArgument(
                f"the video is said to be {frame.video_width}x{frame.video_height}, the frame "
                f"is {width}x{height}; every frame of a video has the video's size",
                field=f"item.frame.{name}",
            )
    timestamp = frame.timestamp
    if timestamp.seconds < 0 or timestamp.nanos < 0:
        raise InvalidArgument("must not be negative", field="item.frame.timestamp")
    return CheckedFrame(key, frame.frame_index, timestamp)


def check_item(item: labeling_pb2.AutoLabelItem, settings: Settings) -> CheckedItem:
    """Decode and check one image (CPU work: run it off the event loop)."""
    check_client_id(item.client_id)
    check_text(item.display_name, "item.display_name")
    decoded = checked_image(item.image, settings, "item.image")
    frame = (
        _check_frame(item.frame, decoded.width, decoded.height) if item.HasField("frame") else None
    )
    return CheckedItem(
        client_id=item.client_id,
        data=item.image.data,
        width=decoded.width,
        height=decoded.height,
        sha256=decoded.sha256,
        display_name=item.display_name,
        frame=frame,
        pixels=decoded.pixels if decoded.pixels.nbytes <= MAX_KEPT_PIXEL_BYTES else None,
    )
