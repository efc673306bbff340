"""Checks of LabelingService requests: each bad field becomes INVALID_ARGUMENT naming it.

Handlers call these first, so no model ever sees an undecodable image, an empty class list
or a box outside the image.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from agentic_labeling.class_names import MAX_CLASS_NAMES, special_token_in
from agentic_labeling.errors import FailedPrecondition, FieldViolation, InvalidArgument
from agentic_labeling.images import DecodedImage, decode_image
from agentic_labeling.labeling_defaults import DEFAULT_MIN_CONFIDENCE
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import common_pb2, labeling_pb2

__all__ = [
    "MAX_BOXES",
    "MAX_CLASS_NAMES",
    "MAX_CLASS_NAME_LENGTH",
    "CheckedDetect",
    "CheckedImageBoxes",
    "check_detect",
    "check_embed",
    "check_segment",
    "checked_class_names",
    "checked_fraction",
    "checked_image",
    "checked_min_confidence",
]

MAX_CLASS_NAME_LENGTH = 128
MAX_BOXES = 1024


@dataclass(frozen=True)
class CheckedDetect:
    image: DecodedImage
    class_names: tuple[str, ...]
    min_confidence: float
    max_detections: int


@dataclass(frozen=True)
class CheckedImageBoxes:
    image: DecodedImage
    boxes: tuple[tuple[float, float, float, float], ...]  # x, y, width, height in pixels


def checked_image(image: common_pb2.Image, settings: Settings, field: str) -> DecodedImage:
    kind = image.WhichOneof("content")
    if kind is None:
        raise InvalidArgument("image is required: set data or uri", field=field)
    if kind == "uri":
        raise FailedPrecondition(
            f"this server does not read server-side image URIs yet; send the bytes in {field}.data",
            reason="IMAGE_URI_NOT_ENABLED",
        )
    return decode_image(image.data, max_pixels=settings.max_image_pixels, field=f"{field}.data")


def checked_class_names(names: Sequence[str], field: str) -> tuple[str, ...]:
    if not names:
        raise InvalidArgument("at least one class name is required", field=field)
    if len(names) > MAX_CLASS_NAMES:
        raise InvalidArgument(
            f"{len(names)} class names given, at most {MAX_CLASS_NAMES} allowed; label in"
            f" several runs of at most {MAX_CLASS_NAMES} classes",
            field=field,
        )
    cleaned: list[str] = []
    seen: set[str] = set()
    violations: list[FieldViolation] = []
    for index, raw in enumerate(names):
        name = " ".join(raw.split())
        where = f"{field}[{index}]"
        token = special_token_in(name)
        if not name:
            violations.append(FieldViolation(where, "class name is empty"))
        elif token is not None:
            violations.append(
                FieldViolation(
                    where,
                    f"class name {name!r} contains {token}, which is written like one of the"
                    " detector's special tokens (<OD>, <loc_0>..<loc_999>, </s>, ...); name the"
                    " class without angle brackets",
                )
            )
        elif len(name) > MAX_CLASS_NAME_LENGTH:
            violations.append(
                FieldViolation(where, f"class name longer than {MAX_CLASS_NAME_LENGTH} characters")
            )
        elif name.casefold() in seen:
            violations.append(FieldViolation(where, f"class name {name!r} given twice"))
        else:
            seen.add(name.casefold())
            cleaned.append(name)
    if violations:
        raise InvalidArgument(violations[0].description, violations=violations)
    return tuple(cleaned)


def checked_fraction(value: float, field: str) -> float:
    if not math.isfinite(value) or not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"must be between 0 and 1, got {value}", field=field)
    return value


def checked_min_confidence(
    message: labeling_pb2.AutoLabelConfig | labeling_pb2.DetectRequest, prefix: str = ""
) -> float:
    """The confidence threshold a request asks for: `confidence_threshold` when set (0
    included), else the deprecated `min_confidence` when above 0, else DEFAULT_MIN_CONFIDENCE.
    `prefix` is the path of `message` in the request, e.g. `config.`."""
    if message.HasField("confidence_threshold"):
        return checked_fraction(message.confidence_threshold, f"{prefix}confidence_threshold")
    if message.min_confidence != 0:  # NaN included: checked_fraction refuses it
        return checked_fraction(message.min_confidence, f"{prefix}min_confidence")
    return DEFAULT_MIN_CONFIDENCE


def _boxes(
    boxes: Sequence[common_pb2.BoundingBox], image: DecodedImage, field: str
) -> tuple[tuple[float, float, float, float], ...]:
    if len(boxes) > MAX_BOXES:
        raise InvalidArgument(f"{len(boxes)} boxes given, at most {MAX_BOXES}", field=field)
    checked = []
    violations: list[FieldViolation] = []
    for index, box in enumerate(boxes):
        where = f"{field}[{index}]"
        values = (box.x, box.y, box.width, box.height)
        if not all(math.isfinite(v) for v in values):
            violations.append(FieldViolation(where, "box has a non-finite coordinate"))
        elif box.width <= 0 or box.height <= 0:
            violations.append(FieldViolation(where, "box width and height must be positive"))
        elif (
            box.x < 0
            or box.y < 0
            or box.x + box.width > image.width
            or box.y + box.height > image.height
        ):
            violations.append(
                FieldViolation(
                    where,
                    f"box ({box.x}, {box.y}, {box.width}, {box.height}) is outside the "
                    f"{image.width}x{image.height} image",
                )
            )
        else:
            checked.append(values)
    if violations:
        raise InvalidArgument(violations[0].description, violations=violations)
    return tuple(checked)


def check_detect(request: labeling_pb2.DetectRequest, settings: Settings) -> CheckedDetect:
    class_names = checked_class_names(request.class_names, "class_names")
    min_confidence = checked_min_confidence(request)
    if request.max_detections < 0:
        raise InvalidArgument("must not be negative", field="max_detections")
    image = checked_image(request.image, settings, "image")
    return CheckedDetect(image, class_names, min_confidence, request.max_detections)


def check_segment(request: labeling_pb2.SegmentRequest, settings: Settings) -> CheckedImageBoxes:
    if not request.boxes:
        raise InvalidArgument("at least one box is required", field="boxes")
    image = checked_image(request.image, settings, "image")
    return CheckedImageBoxes(image, _boxes(request.boxes, image, "boxes"))


def check_embed(request: labeling_pb2.EmbedRequest, settings: Settings) -> CheckedImageBoxes:
    if request.masks and len(request.masks) != len(request.boxes):
        raise InvalidArgument(
            f"{len(request.masks)} masks for {len(request.boxes)} boxes; give one mask per box "
            "or none",
            field="masks",
        )
    image = checked_image(request.image, settings, "image")
    return CheckedImageBoxes(image, _boxes(request.boxes, image, "boxes"))
