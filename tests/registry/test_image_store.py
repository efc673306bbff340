"""The content-addressed image store: what it accepts, where it puts it, and that storing the
same bytes twice writes nothing new."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import cv2
import numpy as np
import pytest
from image_samples import declared_png, oriented_jpeg, upright_test_image
from PIL import Image

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.files.image_store import ImageStore


def _encoded(image_format: str, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=image_format)
    return buffer.getvalue()


@pytest.mark.parametrize("image_format", ["PNG", "JPEG", "WEBP", "BMP", "TIFF"])
def test_an_image_is_stored_under_its_hash_byte_for_byte(tmp_path: Path, image_format: str) -> None:
    store = ImageStore(tmp_path / "images")
    data = _encoded(image_format)
    sha256 = store.put(data)
    assert sha256 == hashlib.sha256(data).hexdigest()
    path = store.find(sha256)
    assert path == tmp_path / "images" / sha256[:2] / sha256[2:4] / sha256
    assert path.read_bytes() == data


def test_storing_the_same_bytes_again_leaves_the_file_alone(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    data = _encoded("PNG")
    sha256 = store.put(data)
    path = store.path(sha256)
    before = path.stat().st_mtime_ns
    assert store.put(data, expected_sha256=sha256) == sha256
    assert path.stat().st_mtime_ns == before
    assert [p.name for p in path.parent.iterdir()] == [sha256]  # no temp file left


def test_a_hash_that_does_not_match_the_bytes_is_refused_and_nothing_is_written(
    tmp_path: Path,
) -> None:
    store = ImageStore(tmp_path / "images")
    with pytest.raises(InvalidArgument, match="not the content_sha256 given") as caught:
        store.put(_encoded("PNG"), expected_sha256="a" * 64, field="frame_image")
    assert caught.value.reason == "CONTENT_HASH_MISMATCH"
    assert not (tmp_path / "images").exists()


@pytest.mark.parametrize(
    ("data", "reason"),
    [(b"plain text", "UNREADABLE_IMAGE"), (_encoded("GIF"), "UNSUPPORTED_IMAGE_FORMAT")],
)
def test_bytes_that_are_no_stored_format_are_refused(
    tmp_path: Path, data: bytes, reason: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ImageStore(tmp_path).put(data)
    assert caught.value.reason == reason
    assert [v.field for v in caught.value.violations] == ["image_data"]
    assert not any(tmp_path.iterdir())


def test_find_says_none_for_unknown_or_malformed_hashes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    assert store.find("b" * 64) is None
    assert store.find("../../etc/passwd") is None
    with pytest.raises(ValueError, match="SHA-256"):
        store.path("../x")


@pytest.mark.parametrize("side", [20_000, 60_000])
def test_a_decompression_bomb_is_too_large_and_nothing_is_written(
    tmp_path: Path, side: int
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        ImageStore(tmp_path, max_pixels=40_000_000).put(declared_png(side, side))
    assert caught.value.reason == "IMAGE_TOO_LARGE"
    assert caught.value.metadata["limit"] == "40000000"
    assert not any(tmp_path.iterdir())


def test_a_float_tiff_is_refused_naming_its_mode(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((4, 4), np.float32)).save(buffer, format="TIFF")
    with pytest.raises(InvalidArgument) as caught:
        ImageStore(tmp_path).put(buffer.getvalue())
    assert caught.value.reason == "UNSUPPORTED_IMAGE_MODE"
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("orientation", range(1, 9))
def test_inspect_reports_the_upright_size(tmp_path: Path, orientation: int) -> None:
    facts = ImageStore(tmp_path).inspect(oriented_jpeg(orientation, upright_test_image(80, 40)))
    assert (facts.width, facts.height) == (80, 40)


@pytest.mark.parametrize("orientation", range(2, 9))
def test_an_oriented_image_is_exported_as_upright_pixels_without_the_tag(
    tmp_path: Path, orientation: int
) -> None:
    store = ImageStore(tmp_path / "images")
    upright = upright_test_image(80, 40)
    data = oriented_jpeg(orientation, upright)
    stored = store.path(store.put(data))
    exported = store.upright(stored)
    assert exported != stored
    assert stored.read_bytes() == data  # the original bytes stay, named by their hash
    assert store.upright(stored) == exported  # made once
    with Image.open(exported) as image:
        assert image.size == (80, 40)
        assert image.getexif().get(0x0112, 1) == 1
    read_back = cv2.imread(str(exported))[:, :, ::-1].astype(int)
    assert np.abs(read_back - np.asarray(upright).astype(int)).mean() < 3


def test_an_image_without_orientation_is_exported_as_stored(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    stored = store.path(store.put(oriented_jpeg(1, upright_test_image())))
    assert store.upright(stored) == stored


def test_remove_deletes_the_file_and_its_upright_copy(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    sha256 = store.put(oriented_jpeg(6, upright_test_image()))
    upright = store.upright(store.path(sha256))
    store.remove(sha256)
    assert store.find(sha256) is None
    assert not upright.exists()
