"""Compact, exact encodings for binary masks.

A float mask at image resolution costs 4 bytes a pixel; masks leave the models as bits instead.
Two encodings, both lossless:

- packed bits (`pack_masks` / `unpack_masks`): a batch of (n, H, W) masks becomes uint8
  (n, ceil(H*W/8)), row-major, most significant bit first (numpy's `packbits`). Fixed size per
  mask, so a batch travels as one Triton tensor.
- COCO uncompressed RLE (`masks_to_rle` / `rle_to_mask`): run lengths over the mask flattened in
  column-major (Fortran) order, starting with a run of background (possibly 0). This is exactly
  what pycocotools' `frPyObjects({"size": [H, W], "counts": [...]}, H, W)` accepts, and what the
  proto's `RunLengthEncoding` documents; it is small for the blob-like masks SAM2 produces.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument

__all__ = ["masks_to_rle", "pack_masks", "packed_length", "rle_to_mask", "unpack_masks"]


def packed_length(height: int, width: int) -> int:
    """Bytes one packed mask of height x width takes: ceil(height * width / 8)."""
    return (height * width + 7) // 8


def pack_masks(masks: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint8]:
    """Pack bool masks (n, H, W) into uint8 (n, ceil(H*W/8)), row-major, MSB first."""
    if masks.ndim != 3:
        raise InvalidArgument(
            f"masks must have shape (n, height, width), got {masks.shape}", field="masks"
        )
    if masks.dtype != np.bool_:
        raise InvalidArgument(f"masks must be bool, got {masks.dtype}", field="masks")
    count, height, width = masks.shape
    return np.packbits(masks.reshape(count, height * width), axis=1)


def unpack_masks(packed: npt.NDArray[np.uint8], height: int, width: int) -> npt.NDArray[np.bool_]:
    """The exact inverse of `pack_masks`: uint8 (n, ceil(H*W/8)) to bool (n, H, W)."""
    if height < 0 or width < 0:
        raise InvalidArgument(
            f"mask size must not be negative, got {height}x{width}", field="height"
        )
    if packed.ndim != 2 or packed.dtype != np.uint8:
        raise InvalidArgument(
            f"packed masks must be uint8 of shape (n, bytes), got {packed.dtype} {packed.shape}",
            field="packed",
        )
    expected = packed_length(height, width)
    if packed.shape[1] != expected:
        raise InvalidArgument(
            f"a {height}x{width} mask packs into {expected} bytes, got {packed.shape[1]}",
            field="packed",
        )
    bits = np.unpackbits(packed, axis=1, count=height * width)
    return bits.reshape(packed.shape[0], height, width).astype(np.bool_)


def masks_to_rle(mask: npt.NDArray[np.bool_]) -> list[int]:
    """COCO uncompressed RLE counts of one bool (H, W) mask: column-major, background first."""
    if mask.ndim != 2:
        raise InvalidArgument(
            f"mask must have shape (height, width), got {mask.shape}", field="mask"
        )
    if mask.dtype != np.bool_:
        raise InvalidArgument(f"mask must be bool, got {mask.dtype}", field="mask")
    flat = mask.ravel(order="F")
    if flat.size == 0:
        return []
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    edges = np.concatenate(([0], changes, [flat.size]))
    runs = np.diff(edges).tolist()
    # Counts always start with background: a mask whose first pixel is set opens with 0.
    return [0, *runs] if flat[0] else runs


def rle_to_mask(
    counts: Sequence[int] | npt.NDArray[np.integer[Any]], height: int, width: int
) -> npt.NDArray[np.bool_]:
    """The exact inverse of `masks_to_rle`: bool (height, width) from COCO uncompressed counts."""
    if height < 0 or width < 0:
        raise InvalidArgument(
            f"mask size must not be negative, got {height}x{width}", field="height"
        )
    runs = np.asarray(counts)
    if runs.ndim != 1 or (runs.size and not np.issubdtype(runs.dtype, np.integer)):
        raise InvalidArgument("counts must be a flat list of integers", field="counts")
    runs = runs.astype(np.int64)
    if np.any(runs < 0):
        raise InvalidArgument("counts must not be negative", field="counts")
    total = int(runs.sum())
    if total != height * width:
        raise InvalidArgument(
            f"counts cover {total} pixels, a {height}x{width} mask has {height * width}",
            field="counts",
        )
    values = (np.arange(runs.size) % 2).astype(np.bool_)
    flat = np.repeat(values, runs)
    return flat.reshape((height, width), order="F")
