"""Masks as requests carry them (PNG or RLE), decoded at their image's size.

A request's mask can only be decoded once its source's size is known, which the registry
looks up; decoding (PNG inflate, RLE expansion) is CPU work that runs in a worker thread, all
masks of a request in one hop (see `Registry.create_objects` and `Registry.validate_objects`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

__all__ = ["EncodedMask", "decode_masks"]


class EncodedMask(Protocol):
    """A request's mask, not decoded yet (the gRPC side's `MaskInput`)."""

    def array(self, *, height: int, width: int) -> npt.NDArray[np.bool_]:
        """The mask as bool (height, width); InvalidArgument naming the request's field when
        it is not that size or cannot be decoded."""
        ...


def decode_masks(
    masks: Sequence[EncodedMask | None], sizes: Sequence[tuple[int, int] | None]
) -> list[npt.NDArray[np.bool_] | None]:
    """Each mask decoded at its (height, width), in order; the first bad one raises. Blocking:
    call it in a worker thread."""
    decoded: list[npt.NDArray[np.bool_] | None] = []
    for mask, size in zip(masks, sizes, strict=True):
        if mask is None or size is None:
            decoded.append(None)
        else:
            decoded.append(mask.array(height=size[0], width=size[1]))
    return decoded
