"""Decode and check images that users send, before any model sees them.

Every image entering the mesh goes through `decode_image`: an empty, corrupt, unsupported or
oversized image becomes an InvalidArgument naming the request field, never a crash deeper in.
The pixel limit is checked from the header, before the pixels are decoded, so a
decompression bomb costs nothing; one so large that Pillow refuses to open it (more than
twice `PIL.Image.MAX_IMAGE_PIXELS`) is IMAGE_TOO_LARGE as well, not "unreadable".

Policy on what the pixels are (the registry's image store and exports follow it too):

- Upright. An EXIF orientation (1-8) is applied on decode, as cv2.imread, ultralytics and
  every photo viewer apply it: width, height, boxes and masks all refer to the upright image.
- 8 bits per channel. A 16-bit image (`I;16*` modes, 16-bit PNGs) keeps its high byte
  (`value >> 8`), exactly what cv2.imread gives a trainer reading the exported file; 48/64-bit
  colour PNGs Pillow already opens that way. 32-bit integer (`I`, other than a 16-bit PNG) and
  float (`F`) images have no agreed display range and are refused (UNSUPPORTED_IMAGE_MODE,
  naming the mode) rather than clipped to white or black.
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
from agentic_labeling.pil_errors import pil_error_text

__all__ = [
    "SUPPORTED_FORMATS",
    "DecodedImage",
    "check_pixel_mode",
    "decode_image",
    "exif_orientation",
    "open_image",
    "upright_size",
]

SUPPORTED_FORMATS = frozenset({"JPEG", "PNG", "WEBP", "BMP", "TIFF"})
# Pillow's name for a JPEG with extra frames (many phone cameras write one); read as a JPEG.
_JPEG_VARIANTS = frozenset({"MPO"})

_ORIENTATION_TAG = 0x0112
# Orientations 5-8 turn the image a quarter: the upright image is the stored one transposed.
_QUARTER_TURNS = frozenset({5, 6, 7, 8})
# What turns the stored pixels upright, per orientation (as PIL.ImageOps.exif_transpose).
_TRANSPOSITIONS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16L", "I;16B", "I;16N"})
_REFUSED_MODES = {"F": "32-bit float", "I": "32-bit integer", "I;16S": "signed 16-bit"}


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


def open_image(data: bytes, *, field: str, max_pixels: int | None = None) -> Image.Image:
    """Open `data` lazily (only the header is read) in a supported format.

    Refused with InvalidArgument naming `field`: bytes that are no image (UNREADABLE_IMAGE),
    a format outside SUPPORTED_FORMATS (UNSUPPORTED_IMAGE_FORMAT), and an image Pillow will
    not open as a possible decompression bomb (IMAGE_TOO_LARGE, with `max_pixels` as the
    limit when given). The caller closes the image.
    """
    try:
        with warnings.catch_warnings():
            # Pillow warns (and at twice its own limit raises) on huge images; our limit rules.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        threshold = 2 * (Image.MAX_IMAGE_PIXELS or 0)
        limit = min(threshold, max_pixels) if max_pixels is not None else threshold
        raise InvalidArgument(
            f"image declares more than {threshold} pixels, more than the limit of {limit}",
            field=field,
            reason="IMAGE_TOO_LARGE",
            metadata={"limit": str(limit)},
        ) from None
    except (UnidentifiedImageError, OSError, ValueError):
        # OSError: a header cut short ("Truncated File Read") fails here, before decoding.
        raise InvalidArgument(
            "image data is not a readable image (supported: "
            f"{', '.join(sorted(SUPPORTED_FORMATS))})",
            field=field,
            reason="UNREADABLE_IMAGE",
        ) from None
    if image.format not in SUPPORTED_FORMATS | _JPEG_VARIANTS:
        found = image.format
        image.close()
        raise InvalidArgument(
            f"image format {found} is not supported (supported: "
            f"{', '.join(sorted(SUPPORTED_FORMATS))})",
            field=field,
            reason="UNSUPPORTED_IMAGE_FORMAT",
        )
    return image


def exif_orientation(image: Image.Image) -> int:
    """The image's EXIF orientation, 1 (as stored) to 8; 1 when absent or out of range."""
    try:
        value = image.getexif().get(_ORIENTATION_TAG, 1)
    except (OSError, ValueError, SyntaxError):  # a malformed EXIF block: ignored, as cv2 does
        return 1
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """(width, height) of the image as displayed, its EXIF orientation applied."""
    width, height = image.size
    return (height, width) if exif_orientation(image) in _QUARTER_TURNS else (width, height)


def check_pixel_mode(image: Image.Image, field: str) -> None:
    """InvalidArgument (UNSUPPORTED_IMAGE_MODE, naming the mode) for pixel modes that have no
    faithful 8-bit view (see the module docstring); 16-bit PNGs opened as `I` pass."""
    mode = image.mode
    if mode == "I" and image.format == "PNG":
        return  # a PNG holds at most 16 bits per sample
    if mode in _REFUSED_MODES:
        raise InvalidArgument(
            f"image mode {mode} ({_REFUSED_MODES[mode]} pixels) is not supported: convert it to "
            "8 or 16 bits per channel",
            field=field,
            reason="UNSUPPORTED_IMAGE_MODE",
            metadata={"mode": mode},
        )


def _rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB pixels of a checked image (decodes it)."""
    if image.mode in _SIXTEEN_BIT_MODES or image.mode == "I":
        high_byte = (np.asarray(image).astype(np.uint32) >> 8).clip(0, 255).astype(np.uint8)
        return Image.fromarray(high_byte, mode="L").convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, *, max_pixels: int, field: str = "image.data") -> DecodedImage:
    """Decode encoded image bytes to upright 8-bit RGB, refusing what the mesh cannot or
    should not handle.

    `field` names the request field in the error, e.g. `item.image.data`.
    """
    if not data:
        raise InvalidArgument("image is empty", field=field, reason="EMPTY_IMAGE")
    with open_image(data, field=field, max_pixels=max_pixels) as image:
        width, height = upright_size(image)
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
        check_pixel_mode(image, field)
        image_format = "JPEG" if image.format in _JPEG_VARIANTS else image.format or ""
        orientation = exif_orientation(image)
        try:
            rgb = _rgb(image)  # decodes: truncated or corrupt data fails here
        except (OSError, ValueError, SyntaxError) as exc:
            raise InvalidArgument(
                f"image data is corrupt: {pil_error_text(exc)}", field=field, reason="CORRUPT_IMAGE"
            ) from None
    if orientation != 1:
        rgb = rgb.transpose(_TRANSPOSITIONS[orientation])
    pixels = np.asarray(rgb, dtype=np.uint8)
    return DecodedImage(pixels=pixels, format=image_format, sha256=hashlib.sha256(data).hexdigest())
