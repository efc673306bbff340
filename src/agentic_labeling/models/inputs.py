"""Checks of the arrays every model takes, so each refuses bad input the same way.

Images are RGB uint8 (height, width, 3); boxes are (n, 4) x, y, width, height in pixels.
What counts as a box inside its image differs per model (SAM2 refuses a box past the border,
DINOv2 clips it), so range checks stay with the models; these are the shared shape checks.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument

__all__ = ["box_columns", "check_rgb_image"]


def check_rgb_image(image: npt.NDArray[Any], field: str) -> None:
    """InvalidArgument naming `field` unless `image` is a non-empty uint8 RGB array."""
    if not isinstance(image, np.ndarray):
        raise InvalidArgument(f"{field} must be a numpy array", field=field)
    if image.dtype != np.uint8:
        raise InvalidArgument(f"{field} must be uint8 RGB, got {image.dtype}", field=field)
    if image.ndim != 3 or image.shape[2] != 3:
        raise InvalidArgument(
            f"{field} must have shape (height, width, 3), got {image.shape}", field=field
        )
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise InvalidArgument(f"{field} is empty: {image.shape}", field=field)


def box_columns(
    boxes: npt.NDArray[Any], field: str
) -> tuple[
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
    npt.NDArray[np.float64],
]:
    """x, y, width, height of an (n, 4) numeric box array with finite values, as float64."""
    if not isinstance(boxes, np.ndarray):
        raise InvalidArgument(f"{field} must be a numpy array", field=field)
    if not (np.issubdtype(boxes.dtype, np.floating) or np.issubdtype(boxes.dtype, np.integer)):
        raise InvalidArgument(f"{field} must be float, got {boxes.dtype}", field=field)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise InvalidArgument(
            f"{field} must have shape (n, 4) as x, y, width, height; got {boxes.shape}",
            field=field,
        )
    if not np.all(np.isfinite(boxes)):
        raise InvalidArgument(f"{field} holds a non-finite value", field=field)
    x, y, w, h = (boxes[:, k].astype(np.float64) for k in range(4))
    return x, y, w, h
