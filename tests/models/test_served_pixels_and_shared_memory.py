"""Images sent as decoded pixels (PIXELS) and through Triton system shared memory, on the real
tritonserver with the tiny models.

The orchestrator decodes every image to check it and sends the models its pixels, so no model
decodes the file again; with `triton_shared_memory` those tensors go through /dev/shm. Both
must give the models exactly what the encoded bytes over the wire give them.
"""

from __future__ import annotations

import asyncio
import io
import logging
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw
from tritonclient.grpc import InferInput
from tritonclient.grpc import aio as triton_aio
from tritonclient.utils import InferenceServerException
from tritonclient.utils import shared_memory as system_shm

from agentic_labeling.clients.triton_models import ImageAndPixels, ImageInput, TritonModels
from agentic_labeling.images import decode_image
from agentic_labeling.triton_server import TritonHandle

pytestmark = pytest.mark.slow

SHM = Path("/dev/shm")
MAX_DETECTIONS = 4


def _photo(width: int, height: int, seed: int, image_format: str) -> bytes:
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        x1, y1 = x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 60))
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    return buffer.getvalue()


IMAGES = [_photo(160, 120, 1, "PNG"), _photo(96, 128, 2, "JPEG"), _photo(200, 100, 3, "WEBP")]
CLASSES = [["cat", "dog"], ["person"], ["car", "bicycle", "traffic light"]]
BOXES = [
    np.array([[10, 10, 50, 40], [60, 30, 80, 60]], np.float32),
    np.array([[0, 0, 96, 128]], np.float32),
    np.array([[5, 5, 20, 20], [100, 10, 90, 80], [30, 40, 60, 50]], np.float32),
]


def _pixels(data: bytes) -> npt.NDArray[np.uint8]:
    return decode_image(data, max_pixels=10**8).pixels


async def _label(models: TritonModels, image: ImageInput, index: int) -> list[npt.NDArray[Any]]:
    """Boxes, masks and embeddings of one image: what AutoLabel asks of the three models."""
    found = await models.detect(image, CLASSES[index], max_detections=MAX_DETECTIONS)
    segmented = await models.segment(image, BOXES[index])
    embeddings = await models.embed(image, BOXES[index], segmented.masks)
    return [
        found.boxes,
        found.class_ids,
        np.array([found.image_width, found.image_height]),
        segmented.masks,
        embeddings,
    ]


def _assert_same(left: list[npt.NDArray[Any]], right: list[npt.NDArray[Any]]) -> None:
    for mine, theirs in zip(left, right, strict=True):
        if mine.dtype == np.float32 and mine.ndim == 2 and mine.shape[-1] != 4:
            np.testing.assert_allclose(mine, theirs, atol=1e-5)  # embeddings
        else:
            np.testing.assert_array_equal(mine, theirs)


async def _one_by_one(models: TritonModels, kind: str) -> list[list[npt.NDArray[Any]]]:
    # One image at a time, so every call is a batch of one and the numbers are comparable.
    return [
        await _label(models, image if kind == "bytes" else _pixels(image), index)
        for index, image in enumerate(IMAGES)
    ]


async def test_pixels_give_the_models_the_same_answers_as_the_encoded_image(
    served_triton: TritonHandle,
) -> None:
    async with TritonModels(served_triton.address, deadline_s=60) as models:
        from_bytes = await _one_by_one(models, "bytes")
        from_pixels = await _one_by_one(models, "pixels")
    for left, right in zip(from_bytes, from_pixels, strict=True):
        _assert_same(left, right)


@pytest.mark.parametrize("model", ["florence2", "sam2", "dinov2"])
async def test_a_request_with_both_image_and_pixels_is_refused(
    served_triton: TritonHandle, model: str
) -> None:
    encoded = np.frombuffer(IMAGES[0], np.uint8)[np.newaxis]
    pixels = _pixels(IMAGES[0])[np.newaxis]
    inputs = [InferInput("IMAGE", list(encoded.shape), "UINT8")]
    inputs[0].set_data_from_numpy(encoded)
    inputs.append(InferInput("PIXELS", list(pixels.shape), "UINT8"))
    inputs[1].set_data_from_numpy(pixels)
    names = np.array([[b"cat"]], dtype=np.object_)
    boxes = np.array([[[0, 0, 10, 10]]], np.float32)
    if model == "florence2":
        extra = InferInput("CLASS_NAMES", [1, 1], "BYTES")
        extra.set_data_from_numpy(names)
    else:
        extra = InferInput("BOXES", [1, 1, 4], "FP32")
        extra.set_data_from_numpy(boxes)
    async with triton_aio.InferenceServerClient(served_triton.address) as client:
        with pytest.raises(InferenceServerException) as refused:
            await client.infer(model, [*inputs, extra])
    assert "exactly one of IMAGE and PIXELS" in refused.value.message()
    assert "INVALID_ARGUMENT" in str(refused.value.status())


def _ours(prefix: str) -> set[str]:
    return {path.name for path in SHM.glob(f"{prefix}-*")}


async def _registered(address: str) -> set[str]:
    async with triton_aio.InferenceServerClient(address) as client:
        status = await client.get_system_shared_memory_status(as_json=True)
    return set(status.get("regions", {}))


async def test_shared_memory_gives_the_same_answers_and_leaves_no_region_behind(
    served_triton: TritonHandle,
) -> None:
    prefix = "alabel-test-same"
    async with TritonModels(served_triton.address, deadline_s=60) as wire:
        expected = await _one_by_one(wire, "pixels")
    async with TritonModels(
        served_triton.address, deadline_s=60, shared_memory=True, shared_memory_prefix=prefix
    ) as shared:
        got = await _one_by_one(shared, "pixels")
        pool = shared.shared_memory
        assert pool is not None
        assert pool.active
        in_use = _ours(prefix)
        # One call at a time: one region, reused by every call of every image.
        assert len(in_use) == 1
        assert in_use <= await _registered(served_triton.address)
    for left, right in zip(expected, got, strict=True):
        _assert_same(left, right)
    assert _ours(prefix) == set()
    assert not {
        name for name in await _registered(served_triton.address) if name.startswith(prefix)
    }


async def test_concurrent_calls_each_get_a_region_and_encoded_bytes_go_too(
    served_triton: TritonHandle,
) -> None:
    prefix = "alabel-test-concurrent"
    async with TritonModels(
        served_triton.address, deadline_s=60, shared_memory=True, shared_memory_prefix=prefix
    ) as shared:
        async with TritonModels(served_triton.address, deadline_s=60) as wire:
            expected = await asyncio.gather(
                *(wire.segment(image, BOXES[i]) for i, image in enumerate(IMAGES))
            )
        got = await asyncio.gather(
            *(shared.segment(image, BOXES[i]) for i, image in enumerate(IMAGES))
        )
        assert 1 <= len(_ours(prefix)) <= len(IMAGES)
    for mine, theirs in zip(expected, got, strict=True):
        np.testing.assert_array_equal(mine.masks, theirs.masks)
    assert _ours(prefix) == set()


async def test_a_failed_registration_sends_over_the_wire_after_one_warning(
    served_triton: TritonHandle, caplog: pytest.LogCaptureFixture
) -> None:
    prefix = "alabel-test-taken"
    # Triton already holds a region under the name the pool would register first.
    taken = system_shm.create_shared_memory_region(f"{prefix}-0", "/alabel-other-region", 64)
    async with triton_aio.InferenceServerClient(served_triton.address) as client:
        await client.register_system_shared_memory(f"{prefix}-0", "/alabel-other-region", 64)
        try:
            caplog.set_level(logging.WARNING, "agentic_labeling.clients.triton_shared_memory")
            async with TritonModels(served_triton.address, deadline_s=60) as wire:
                expected = await _one_by_one(wire, "pixels")
            async with TritonModels(
                served_triton.address,
                deadline_s=60,
                shared_memory=True,
                shared_memory_prefix=prefix,
            ) as shared:
                got = await _one_by_one(shared, "pixels")
                assert shared.shared_memory is not None
                assert not shared.shared_memory.active
                # The region the pool made for its failed registration is unlinked at once.
                assert _ours(prefix) == set()
        finally:
            await client.unregister_system_shared_memory(f"{prefix}-0")
            system_shm.destroy_shared_memory_region(taken)
    for left, right in zip(expected, got, strict=True):
        _assert_same(left, right)
    warnings = [r for r in caplog.records if "shared memory is off" in r.getMessage()]
    assert len(warnings) == 1


async def test_shared_memory_with_a_remote_triton_stays_off_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "agentic_labeling.clients.triton_models")
    async with TritonModels("192.0.2.1:8001", shared_memory=True) as models:
        assert models.shared_memory is None
    assert any("needs Triton on this host" in r.getMessage() for r in caplog.records)


async def test_a_model_gets_pixels_only_when_its_config_declares_them(
    served_triton: TritonHandle,
) -> None:
    async with TritonModels(served_triton.address, deadline_s=60) as models:
        for model in ("florence2", "sam2", "dinov2"):
            assert await models.takes_pixels(model)
        # An IMAGE-only detector (or one Triton cannot describe) is sent the bytes instead.
        assert not await models.takes_pixels("no-such-model")
        both = ImageAndPixels(IMAGES[0], _pixels(IMAGES[0]))
        _assert_same(await _label(models, both, 0), await _label(models, IMAGES[0], 0))
