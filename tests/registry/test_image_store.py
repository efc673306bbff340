"""The content-addressed image store: what it accepts, where it puts it, and that storing the
same bytes twice writes nothing new."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.image_store import ImageStore


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
    ("data", "message"),
    [(b"plain text", "not an image"), (_encoded("GIF"), "GIF image")],
)
def test_bytes_that_are_no_stored_format_are_refused(
    tmp_path: Path, data: bytes, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        ImageStore(tmp_path).put(data)
    assert not any(tmp_path.iterdir())


def test_find_says_none_for_unknown_or_malformed_hashes(tmp_path: Path) -> None:
    store = ImageStore(tmp_path)
    assert store.find("b" * 64) is None
    assert store.find("../../etc/passwd") is None
    with pytest.raises(ValueError, match="SHA-256"):
        store.path("../x")
