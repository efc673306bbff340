"""Decode and check images that users send, before any model sees them.

Every image entering the mesh goes through `decode_image`: an empty, corrupt, unsupported or
oversized image becomes an InvalidArgument naming the request field, never a crash deeper in.
The pixel limit is checked from the header, before the pixels are decoded, so a
decompression bomb costs nothing.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from agentic_labeling.errors import InvalidArgument

__all__ = ["SUPPORTED_FORMATS", "DecodedImage", "decode_image"]

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF"})


@dataclass(frozen=True)
class DecodedImage:
    """An RGB image as a height x width x 3 uint8 array, with facts about its file."""

    pixels: npt.NDArray[np.uint8]
    format: str
    sha256: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])


def decode_image(data: bytes, *, max_pixels: int, field: str = "image.data") -> DecodedImage:
    """Decode encoded image bytes to RGB, refusing what the mesh cannot or should not handle.

    `field` names the request field in the error, e.g. `item.image.data`.
    """
    if not data:
        raise InvalidArgument("image is empty", field=field, reason="EMPTY_IMAGE")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and at twice its own limit raises) on huge images; our limit rules.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, Image.DecompressionBombError, OSError):
        # OSError: a header cut short ("Truncated File Read") fails here, before decoding.
        raise InvalidArgument(
            "image data is not a readable image (supported: "
            f"{', '.join(sorted(SUPPORTED_FORMATS))})",
            field=field,
            reason="UNREADABLE_IMAGE",
        ) from None
    with image:
        if image.format not in SUPPORTED_FORMATS:
            raise InvalidArgument(
                f"image format {image.format} is not supported (supported: "
                f"{', '.join(sorted(SUPPORTED_FORMATS))})",
                field=field,
                reason="UNSUPPORTED_IMAGE_FORMAT",
            )
        width, height = image.size
        if width <= 0 or height <= 0:
            raise InvalidArgument("image has no pixels", field=field, reason="EMPTY_IMAGE")
        if width * height > max_pixels:
            raise InvalidArgument(
                f"image is {width}x{height} = {width * height} pixels, more than the limit of "
                f"{max_pixels}",
                field=field,
                reason="IMAGE_TOO_LARGE",
                metadata={"width": str(width), "height": str(height), "limit": str(max_pixels)},
            )
        image_format = image.format
        try:
            rgb = image.convert("RGB")  # decodes: truncated or corrupt data fails here
        except (OSError, ValueError, SyntaxError) as exc:
            raise InvalidArgument(
                f"image data is corrupt: {exc}", field=field, reason="CORRUPT_IMAGE"
            ) from None
    pixels = np.asarray(rgb, dtype=np.uint8)
    return DecodedImage(pixels=pixels, format=image_format, sha256=hashlib.sha256(data).hexdigest())
