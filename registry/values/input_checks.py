"""Checks of the values a request wants written, before any SQL runs.

Each raises InvalidArgument naming the request field it was given (`requests[3].object.bbox`),
so a bad value never reaches the database as a constraint violation (the schema's CHECKs are
the second line of defence, not the error message).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.values.records import BoundingBox
from agentic_labeling.storable_text import check_storable

__all__ = [
    "MAX_ATTRIBUTES",
    "MAX_NAME_LENGTH",
    "MAX_TEXT_LENGTH",
    "check_attributes",
    "check_bbox",
    "check_bbox_inside",
    "check_embedding",
    "check_fraction",
    "check_mask_area",
    "check_name",
    "check_sha256",
    "check_text",
]

MAX_NAME_LENGTH = 200
MAX_TEXT_LENGTH = 4096
MAX_ATTRIBUTES = 64
# Box edges may pass the image border by this many pixels: float32 rounding of an edge at the
# border, not a real overhang.
BORDER_TOLERANCE = 1e-3
# pgvector's limit for a stored vector; its values are float32.
MAX_EMBEDDING_DIM = 16000
_FLOAT32_MAX = 3.4028234663852886e38

_SHA256 = re.compile(r"[0-9a-f]{64}")


def check_text(value: str, field: str, *, max_length: int = MAX_TEXT_LENGTH) -> str:
    """Free text (URI, display name, model name): at most `max_length` characters, none that
    the stores cannot hold (NUL, lone surrogates: `check_storable`)."""
    if len(value) > max_length:
        raise InvalidArgument(f"is longer than {max_length} characters", field=field)
    return check_storable(value, field)


def check_name(value: str, field: str) -> str:
    """A category name or synonym: printable, not blank, no surrounding whitespace."""
    if not value:
        raise InvalidArgument("must not be empty", field=field)
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgument(f"is longer than {MAX_NAME_LENGTH} characters", field=field)
    check_storable(value, field)
    if value != value.strip():
        raise InvalidArgument(f"{value!r} has leading or trailing whitespace", field=field)
    if not value.isprintable():
        raise InvalidArgument(f"{value!r} contains control characters", field=field)
    if value.startswith("categories/"):
        raise InvalidArgument(
            f"{value!r} looks like a resource name; a category name cannot start with "
            "'categories/'",
            field=field,
        )
    return value


def check_sha256(value: str, field: str) -> str:
    """Lower-case hex SHA-256, or "" for unknown."""
    if value and _SHA256.fullmatch(value) is None:
        raise InvalidArgument("must be 64 lower-case hex digits (SHA-256)", field=field)
    return value


def check_attributes(values: Mapping[str, str], field: str) -> dict[str, str]:
    """Key/value facts: at most MAX_ATTRIBUTES, keys non-empty, all text."""
    if len(values) > MAX_ATTRIBUTES:
        raise InvalidArgument(f"has more than {MAX_ATTRIBUTES} entries", field=field)
    checked: dict[str, str] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidArgument("keys and values must be strings", field=field)
        if not key:
            raise InvalidArgument("keys must not be empty", field=field)
        check_text(key, f"{field}[{key!r}]", max_length=MAX_NAME_LENGTH)
        check_text(value, f"{field}[{key!r}]")
        checked[key] = value
    return checked


def check_fraction(value: float, field: str) -> float:
    """A finite number in [0, 1] (confidence, quality score)."""
    if not math.isfinite(value):
        raise InvalidArgument(f"must be a finite number, got {value!r}", field=field)
    if not 0.0 <= value <= 1.0:
        raise InvalidArgument(f"must be between 0 and 1, got {value!r}", field=field)
    return float(value)


def check_bbox(box: BoundingBox, field: str) -> BoundingBox:
    """Finite numbers, non-negative corner, positive size."""
    for name in ("x", "y", "width", "height"):
        value = getattr(box, name)
        if not math.isfinite(value):
            raise InvalidArgument(f"{name} must be a finite number, got {value!r}", field=field)
    if box.width <= 0 or box.height <= 0:
        raise InvalidArgument(
            f"width and height must be positive, got {box.width!r} x {box.height!r}",
            field=field,
        )
    if box.x < 0 or box.y < 0:
        raise InvalidArgument(
            f"the corner must not be left of or above the image, got ({box.x!r}, {box.y!r})",
            field=field,
        )
    return BoundingBox(float(box.x), float(box.y), float(box.width), float(box.height))


def check_bbox_inside(box: BoundingBox, width: int, height: int, field: str) -> None:
    """The box lies within a `width` x `height` image."""
    if (
        box.x + box.width > width + BORDER_TOLERANCE
        or box.y + box.height > height + BORDER_TOLERANCE
    ):
        raise InvalidArgument(
            f"box ({box.x:g}, {box.y:g}, {box.width:g} x {box.height:g}) reaches outside the "
            f"{width} x {height} image",
            field=field,
        )


def check_mask_area(value: float, width: int, height: int, field: str) -> float:
    """A mask's pixel count: finite, between 0 and the image's pixels."""
    if not math.isfinite(value) or not 0 <= value <= width * height:
        raise InvalidArgument(
            f"mask area must be between 0 and {width * height} pixels, got {value!r}",
            field=field,
        )
    return float(value)


def check_embedding(
    values: Sequence[float] | npt.NDArray[np.floating[Any]], dimension: int | None, field: str
) -> npt.NDArray[np.float64]:
    """A vector of the configured dimension (any up to pgvector's limit when None), finite, in
    float32 range (pgvector stores float32), and not all zeros (cosine needs a direction)."""
    try:
        vector = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgument("embedding must be a sequence of numbers", field=field) from None
    if vector.ndim != 1:
        raise InvalidArgument("embedding must be a flat sequence of numbers", field=field)
    if dimension is not None and len(vector) != dimension:
        raise InvalidArgument(
            f"embedding has {len(vector)} dimensions, the registry's has {dimension}",
            field=field,
        )
    if not 1 <= len(vector) <= MAX_EMBEDDING_DIM:
        raise InvalidArgument(
            f"embedding must have 1 to {MAX_EMBEDDING_DIM} dimensions, got {len(vector)}",
            field=field,
        )
    # One pass decides all three: NaN makes the peak NaN, which fails `<=` like an infinity.
    peak = np.abs(vector).max()
    if not peak <= _FLOAT32_MAX:
        raise InvalidArgument(
            "embedding values must be finite numbers in float32 range", field=field
        )
    if peak == 0:
        raise InvalidArgument("embedding must not be all zeros", field=field)
    return vector
