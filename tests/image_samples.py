"""Encoded images that exercise the edges of decoding: a PNG header declaring any size (a
decompression bomb costs a few bytes), and JPEGs tagged with each EXIF orientation."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

__all__ = ["STORED_FROM_UPRIGHT", "declared_png", "oriented_jpeg", "upright_test_image"]

# Stored pixels that orientation `o` turns upright: the inverse of what a viewer applies.
STORED_FROM_UPRIGHT: dict[int, Image.Transpose | None] = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


def declared_png(width: int, height: int) -> bytes:
    """A grayscale PNG whose header declares `width` x `height` (the pixels never follow)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        crc = struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        return struct.pack(">I", len(body)) + kind + body + crc

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + chunk(b"IEND", b"")
    )


def upright_test_image(width: int = 80, height: int = 40) -> Image.Image:
    """Black, with a white block in the top-left corner and a grey one at the bottom right:
    every flip or turn of it looks different."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[: height // 4, : width // 4] = 255
    pixels[-height // 4 :, -width // 4 :] = 128
    return Image.fromarray(pixels)


def oriented_jpeg(orientation: int, upright: Image.Image) -> bytes:
    """A JPEG whose stored grid is `upright` undone by `orientation`, tagged with it."""
    transposition = STORED_FROM_UPRIGHT[orientation]
    stored = upright if transposition is None else upright.transpose(transposition)
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    stored.save(buffer, format="JPEG", quality=95, exif=exif.tobytes())
    return buffer.getvalue()
