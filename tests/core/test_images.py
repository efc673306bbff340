"""decode_image: what the mesh accepts and how it refuses the rest."""

from __future__ import annotations

import hashlib
import io

import numpy as np
import pytest
from image_samples import declared_png, oriented_jpeg, upright_test_image
from PIL import Image

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.images import decode_image


def _encoded(fmt: str, size: tuple[int, int] = (32, 24), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, color=200 if mode == "L" else (10, 20, 30)).save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_supported_formats_decode_to_rgb_pixels(fmt: str) -> None:
    data = _encoded(fmt)
    decoded = decode_image(data, max_pixels=10_000)
    assert decoded.pixels.shape == (24, 32, 3)
    assert decoded.pixels.dtype == np.uint8
    assert (decoded.width, decoded.height) == (32, 24)
    assert decoded.format == fmt
    assert decoded.sha256 == hashlib.sha256(data).hexdigest()


def test_grayscale_image_becomes_three_channels() -> None:
    decoded = decode_image(_encoded("PNG", mode="L"), max_pixels=10_000)
    assert decoded.pixels.shape == (24, 32, 3)
    assert int(decoded.pixels[0, 0, 0]) == 200


def _refusal(data: bytes, max_pixels: int = 10_000) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as caught:
        decode_image(data, max_pixels=max_pixels, field="item.image.data")
    assert [v.field for v in caught.value.violations] == ["item.image.data"]
    return caught.value


def test_empty_bytes_are_refused_naming_the_field() -> None:
    assert _refusal(b"").reason == "EMPTY_IMAGE"


def test_random_bytes_are_refused_as_unreadable() -> None:
    assert _refusal(b"definitely not an image").reason == "UNREADABLE_IMAGE"


def test_truncated_jpeg_is_refused_as_corrupt() -> None:
    data = _encoded("JPEG", size=(256, 256))
    assert _refusal(data[: len(data) // 2], max_pixels=1_000_000).reason == "CORRUPT_IMAGE"


def test_gif_is_refused_as_unsupported() -> None:
    error = _refusal(_encoded("GIF"))
    assert error.reason == "UNSUPPORTED_IMAGE_FORMAT"
    assert "GIF" in error.message


def test_too_many_pixels_is_refused_from_the_header() -> None:
    error = _refusal(_encoded("PNG", size=(200, 100)), max_pixels=19_999)
    assert error.reason == "IMAGE_TOO_LARGE"
    assert error.metadata == {"width": "200", "height": "100", "limit": "19999"}


def test_image_at_the_pixel_limit_is_accepted() -> None:
    assert decode_image(_encoded("PNG", size=(200, 100)), max_pixels=20_000).width == 200


def test_jpeg_cut_inside_its_header_is_refused_as_unreadable() -> None:
    data = _encoded("JPEG", size=(64, 64))
    assert _refusal(data[:40]).reason == "UNREADABLE_IMAGE"


# --- decompression bombs, EXIF orientation, high bit depths -------------------------------------


@pytest.mark.parametrize("side", [20_000, 60_000])
def test_a_decompression_bomb_is_too_large_with_the_limit_not_unreadable(side: int) -> None:
    error = _refusal(declared_png(side, side), max_pixels=40_000_000)
    assert error.reason == "IMAGE_TOO_LARGE"
    assert error.metadata["limit"] == "40000000"
    assert "40000000" in error.message


def test_an_image_over_the_limit_but_under_pillows_bomb_limit_names_its_size() -> None:
    error = _refusal(declared_png(10_000, 5_000), max_pixels=40_000_000)
    assert error.reason == "IMAGE_TOO_LARGE"
    assert error.metadata == {"width": "10000", "height": "5000", "limit": "40000000"}


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied_on_decode(orientation: int) -> None:
    upright = upright_test_image()
    decoded = decode_image(oriented_jpeg(orientation, upright), max_pixels=10_000)
    assert (decoded.width, decoded.height) == upright.size
    difference = np.abs(decoded.pixels.astype(int) - np.asarray(upright).astype(int))
    assert difference.mean() < 3


def test_sixteen_bit_grayscale_png_keeps_its_gradient_as_the_high_byte() -> None:
    gradient = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (8, 1))
    buffer = io.BytesIO()
    Image.fromarray(gradient).save(buffer, format="PNG")
    decoded = decode_image(buffer.getvalue(), max_pixels=10_000)
    row = decoded.pixels[0, :, 0].astype(int)
    assert np.array_equal(row, gradient[0] >> 8)
    assert row[0] == 0
    assert row[-1] == 255
    assert np.all(np.diff(row) >= 0)
    assert len(np.unique(row)) > 200  # a gradient, not white or black


@pytest.mark.parametrize(
    ("array", "mode"),
    [
        (np.linspace(0, 1, 64, dtype=np.float32).reshape(8, 8), "F"),
        ((np.arange(64) * 100_000).reshape(8, 8).astype(np.int32), "I"),
    ],
)
def test_float_and_32_bit_tiffs_are_refused_naming_the_mode(array: np.ndarray, mode: str) -> None:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="TIFF")
    error = _refusal(buffer.getvalue())
    assert error.reason == "UNSUPPORTED_IMAGE_MODE"
    assert error.metadata == {"mode": mode}
    assert f"mode {mode}" in error.message
