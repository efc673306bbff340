"""Reading back a stored source or frame image (Registry.get_source_image, GetSourceImage).

Real embedded Postgres (a fresh schema per test), real qdrant-edge and a real image store.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest
from PIL import Image

from agentic_labeling.errors import FailedPrecondition, NotFound, ResourceExhausted
from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.registry.metadata.source_image_reads import MESSAGE_OVERHEAD_BYTES, mime_type
from agentic_labeling.registry.values.records import NewFrame, NewSource, SourceKind
from agentic_labeling.settings import Settings

DIM = 8
WIDTH, HEIGHT = 64, 48


def _image_bytes(seed: int, fmt: str = "PNG") -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format=fmt)
    return buffer.getvalue()


async def _open(empty_dsn: str, data_dir: Path, **settings: int) -> Registry:
    return await Registry.open(
        Settings(postgres_dsn=empty_dsn, data_dir=data_dir, embedding_dimension=DIM, **settings)
    )


@pytest.fixture
async def registry(empty_dsn: str, tmp_path: Path) -> AsyncIterator[Registry]:
    opened = await _open(empty_dsn, tmp_path)
    yield opened
    await opened.close()


async def test_an_image_source_returns_the_bytes_it_was_sent_with(registry: Registry) -> None:
    data = _image_bytes(1)
    source = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT), data)

    image = await registry.get_source_image(source.id, None)

    assert image.data == data
    assert (image.mime_type, image.width, image.height) == ("image/png", WIDTH, HEIGHT)
    assert image.sha256 == hashlib.sha256(data).hexdigest()
    assert image.owner == f"sources/{source.id}"


async def test_frame_zero_of_an_image_source_is_the_source_image(registry: Registry) -> None:
    data = _image_bytes(2)
    source = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT), data)

    image = await registry.get_source_image(source.id, 0)

    assert image.data == data
    assert image.owner == f"sources/{source.id}/frames/0"


async def test_each_video_frame_returns_its_own_bytes(registry: Registry) -> None:
    video = await registry.create_source(NewSource(SourceKind.VIDEO, WIDTH, HEIGHT))
    frames = {i: _image_bytes(10 + i, "JPEG") for i in range(2)}
    for i, data in frames.items():
        await registry.create_frame(video.id, NewFrame(frame_index=i), data)

    read = {i: await registry.get_source_image(video.id, i) for i in frames}

    assert {i: image.data for i, image in read.items()} == frames
    assert {image.mime_type for image in read.values()} == {"image/jpeg"}


async def test_a_video_without_a_frame_index_is_not_stored(registry: Registry) -> None:
    video = await registry.create_source(NewSource(SourceKind.VIDEO, WIDTH, HEIGHT))
    await registry.create_frame(video.id, NewFrame(frame_index=0), _image_bytes(3))

    with pytest.raises(FailedPrecondition, match="frame_index") as caught:
        await registry.get_source_image(video.id, None)
    assert caught.value.reason == "IMAGE_NOT_STORED"


async def test_a_source_registered_without_bytes_is_a_failed_precondition(
    registry: Registry,
) -> None:
    sha = hashlib.sha256(b"elsewhere").hexdigest()
    source = await registry.create_source(
        NewSource(SourceKind.IMAGE, WIDTH, HEIGHT, content_sha256=sha)
    )

    with pytest.raises(FailedPrecondition, match="without its image bytes") as caught:
        await registry.get_source_image(source.id, None)
    assert caught.value.reason == "IMAGE_NOT_STORED"


async def test_an_unknown_source_or_frame_is_not_found(registry: Registry) -> None:
    video = await registry.create_source(NewSource(SourceKind.VIDEO, WIDTH, HEIGHT))

    with pytest.raises(NotFound):
        await registry.get_source_image(uuid4(), None)
    with pytest.raises(NotFound, match="frames/5"):
        await registry.get_source_image(video.id, 5)


async def test_an_image_larger_than_a_message_is_refused_naming_the_limit(
    empty_dsn: str, tmp_path: Path
) -> None:
    data = _image_bytes(4)
    limit = len(data) + MESSAGE_OVERHEAD_BYTES - 1
    registry = await _open(empty_dsn, tmp_path, max_message_bytes=limit)
    try:
        source = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT), data)
        with pytest.raises(ResourceExhausted, match="--max-message-bytes") as caught:
            await registry.get_source_image(source.id, None)
    finally:
        await registry.close()
    assert caught.value.reason == "IMAGE_TOO_LARGE_FOR_MESSAGE"
    assert caught.value.metadata["bytes"] == str(len(data))


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("PNG", "image/png"),
        ("JPEG", "image/jpeg"),
        ("WEBP", "image/webp"),
        ("BMP", "image/bmp"),
        ("TIFF", "image/tiff"),
    ],
)
def test_media_type_is_read_from_the_header(fmt: str, expected: str) -> None:
    assert mime_type(_image_bytes(5, fmt)) == expected
