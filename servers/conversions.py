"""Between protobuf messages and the arrays the models work with, in one place.

Masks leave the servers as COCO-style uncompressed RLE (compact, and what exports use) and
arrive as RLE or PNG; boxes are x, y, width, height in pixels either way.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models.mask_codec import masks_to_rle, rle_to_mask
from agentic_labeling.v1 import common_pb2

__all__ = ["box_message", "boxes_array", "mask_array", "mask_message"]


def box_message(box: npt.ArrayLike) -> common_pb2.BoundingBox:
    x, y, width, height = (float(v) for v in np.asarray(box, dtype=np.float64))
    return common_pb2.BoundingBox(x=x, y=y, width=width, height=height)


def boxes_array(boxes: tuple[tuple[float, float, float, float], ...]) -> npt.NDArray[np.float32]:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


def mask_message(mask: npt.NDArray[np.bool_]) -> common_pb2.Mask:
    height, width = mask.shape
    return common_pb2.Mask(
        rle=common_pb2.RunLengthEncoding(height=height, width=width, counts=masks_to_rle(mask))
    )


def mask_array(
    message: common_pb2.Mask, *, height: int, width: int, field: str
) -> npt.NDArray[np.bool_]:
    """A request's mask as bool (height, width); it must be the image's size."""
    kind = message.WhichOneof("encoding")
    if kind == "rle":
        if (message.rle.height, message.rle.width) != (height, width):
            raise InvalidArgument(
                f"mask is {message.rle.width}x{message.rle.height}, the image {width}x{height}",
                field=field,
            )
        try:
            return rle_to_mask(list(message.rle.counts), height, width)
        except InvalidArgument as exc:  # name the request's field, not the codec's argument
            raise InvalidArgument(exc.message, field=f"{field}.rle") from None
    if kind == "png":
        try:
            with Image.open(io.BytesIO(message.png)) as image:
                pixels = np.asarray(image.convert("L")) > 0
        except (UnidentifiedImageError, OSError):
            raise InvalidArgument("mask PNG cannot be read", field=f"{field}.png") from None
        if pixels.shape != (height, width):
            raise InvalidArgument(
                f"mask is {pixels.shape[1]}x{pixels.shape[0]}, the image {width}x{height}",
                field=f"{field}.png",
            )
        return pixels
    raise InvalidArgument("mask is empty: set png or rle", field=field)
