"""The three models served by the real tritonserver from model_repository/, with tiny weights.

Served outputs must equal the same model called in-process (the serving layer changes
nothing), Triton's dynamic batcher must really merge concurrent requests, and one bad request
must fail alone. Random tiny weights prove the plumbing only.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image, ImageDraw

from agentic_labeling.clients.triton_models import TritonModels
from agentic_labeling.errors import DeadlineExceeded, InvalidArgument, Unavailable
from agentic_labeling.images import decode_image
from agentic_labeling.local_mesh import unused_port
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.models.florence2 import DetectionSettings, Florence2Detector
from agentic_labeling.models.sam2 import Sam2Segmenter
from agentic_labeling.triton_server import TritonHandle, query_status

pytestmark = pytest.mark.slow
MAX_DETECTIONS = 4  # the random tiny detector writes boxes until its budget runs out


def _photo(width: int, height: int, seed: int) -> bytes:
    """A PNG with a few coloured shapes, so crops and masks differ between objects."""
    rng = np.random.default_rng(seed)
    image = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 255, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(4):
        x0, y0 = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        x1, y1 = x0 + int(rng.integers(10, 60)), y0 + int(rng.integers(10, 60))
        draw.ellipse((x0, y0, x1, y1), fill=tuple(int(c) for c in rng.integers(0, 255, 3)))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


IMAGES = [_photo(160, 120, 1), _photo(96, 128, 2), _photo(200, 100, 3)]
CLASSES = [["cat", "dog"], ["person"], ["car", "bicycle", "traffic light"]]
BOXES = [
    np.array([[10, 10, 50, 40], [60, 30, 80, 60]], np.float32),
    np.array([[0, 0, 96, 128]], np.float32),
    np.array([[5, 5, 20, 20], [100, 10, 90, 80], [30, 40, 60, 50]], np.float32),
]


def _pixels(data: bytes) -> npt.NDArray[np.uint8]:
    return decode_image(data, max_pixels=10**8).pixels


@pytest.fixture
async def models(served_triton: TritonHandle) -> AsyncIterator[TritonModels]:
    async with TritonModels(served_triton.address, deadline_s=60) as client:
        yield client


def _counts(triton: TritonHandle, model: str) -> tuple[int, int]:
    [status] = [m for m in query_status(triton.address).models if m.name == model]
    return status.inference_count, status.execution_count


# A hang guard only: Triton may record an execution in its statistics after the responses are
# sent, so on a loaded machine the statistics can trail the last answer by a moment.
_STATISTICS_HANG_S = 30.0


async def _counts_after(
    triton: TritonHandle, model: str, before: tuple[int, int], inferences: int
) -> tuple[int, int]:
    """The (inferences, executions) since `before`, once Triton has counted `inferences`."""
    deadline = asyncio.get_running_loop().time() + _STATISTICS_HANG_S
    while True:
        done, executed = (a - b for a, b in zip(_counts(triton, model), before, strict=True))
        if done >= inferences or asyncio.get_running_loop().time() > deadline:
            return done, executed
        await asyncio.sleep(0.1)


async def test_served_detection_equals_in_process_detection(
    models: TritonModels, tiny_models_dir: Path
) -> None:
    detector = Florence2Detector.load(tiny_models_dir / "florence2")
    settings = DetectionSettings(max_detections=MAX_DETECTIONS)
    expected = detector.detect([_pixels(i) for i in IMAGES], CLASSES, [settings] * len(IMAGES))
    served = await asyncio.gather(
        *(
            models.detect(image, names, max_detections=MAX_DETECTIONS)
            for image, names in zip(IMAGES, CLASSES, strict=True)
        )
    )
    for local, remote, data in zip(expected, served, IMAGES, strict=True):
        assert len(local) > 0  # the tiny model is steered to produce boxes
        np.testing.assert_array_equal(remote.boxes, np.array([d.box for d in local], np.float32))
        np.testing.assert_array_equal(remote.class_ids, [d.class_id for d in local])
        np.testing.assert_allclose(remote.scores, [d.confidence for d in local], atol=1e-4)
        pixels = _pixels(data)
        assert (remote.image_width, remote.image_height) == (pixels.shape[1], pixels.shape[0])


async def test_served_masks_equal_in_process_masks(
    models: TritonModels, tiny_models_dir: Path
) -> None:
    segmenter = Sam2Segmenter.load(tiny_models_dir / "sam2")
    expected = segmenter.segment([_pixels(i) for i in IMAGES], BOXES)
    served = await asyncio.gather(
        *(models.segment(image, boxes) for image, boxes in zip(IMAGES, BOXES, strict=True))
    )
    for local, remote in zip(expected, served, strict=True):
        assert remote.masks.shape == local.masks.shape
        for mine, theirs in zip(local.masks, remote.masks, strict=True):
            union = np.logical_or(mine, theirs).sum()
            iou = 1.0 if union == 0 else np.logical_and(mine, theirs).sum() / union
            assert iou >= 0.999
        np.testing.assert_allclose(remote.predicted_iou, local.predicted_iou, atol=1e-4)


async def test_served_embeddings_equal_in_process_embeddings(
    models: TritonModels, tiny_models_dir: Path
) -> None:
    embedder = Dinov2Embedder.load(tiny_models_dir / "dinov2")
    masks = [np.zeros((2, 120, 160), bool), None, None]
    masks[0][:, 20:60, 20:60] = True  # type: ignore[index]
    expected = embedder.embed([_pixels(i) for i in IMAGES], BOXES, masks)
    served = await asyncio.gather(
        *(
            models.embed(image, boxes, mask)
            for image, boxes, mask in zip(IMAGES, BOXES, masks, strict=True)
        )
    )
    for local, remote in zip(expected, served, strict=True):
        assert remote.shape == local.shape == (len(local), embedder.dimension)
        cosine = np.sum(local * remote, axis=1) / (
            np.linalg.norm(local, axis=1) * np.linalg.norm(remote, axis=1)
        )
        assert np.all(cosine >= 0.9999)


@pytest.mark.parametrize("model", ["florence2", "sam2", "dinov2"])
async def test_concurrent_requests_are_batched_by_triton(
    models: TritonModels, served_triton: TritonHandle, model: str
) -> None:
    before = _counts(served_triton, model)
    image, names, boxes = IMAGES[0], CLASSES[0], BOXES[0]
    calls = {
        "florence2": lambda: models.detect(image, names, max_detections=MAX_DETECTIONS),
        "sam2": lambda: models.segment(image, boxes),
        "dinov2": lambda: models.embed(image, boxes),
    }[model]
    await asyncio.gather(*(calls() for _ in range(16)))
    inferences, executions = await _counts_after(served_triton, model, before, 16)
    assert inferences == 16
    average_batch = inferences / executions
    print(f"{model}: 16 concurrent requests in {executions} executions, batch {average_batch:.2f}")
    assert average_batch > 1


async def test_a_corrupt_image_fails_alone_among_concurrent_requests(
    models: TritonModels,
) -> None:
    images = [IMAGES[i % 3] for i in range(8)]
    images[5] = b"\x89PNG\r\n\x1a\n but the rest is garbage"
    results = await asyncio.gather(
        *(models.embed(image, np.zeros((0, 4), np.float32)) for image in images),
        return_exceptions=True,
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    assert len(failures) == 1
    assert results[5] is failures[0]
    assert isinstance(failures[0], InvalidArgument)
    assert "image" in failures[0].message.lower()
    assert all(
        isinstance(r, np.ndarray) and r.shape[0] == 1 for i, r in enumerate(results) if i != 5
    )


async def test_a_box_outside_its_image_fails_alone(models: TritonModels) -> None:
    outside = np.array([[150, 100, 50, 50]], np.float32)  # past the 160x120 image
    results = await asyncio.gather(
        models.segment(IMAGES[0], BOXES[0]),
        models.segment(IMAGES[0], outside),
        models.segment(IMAGES[1], BOXES[1]),
        return_exceptions=True,
    )
    assert isinstance(results[1], InvalidArgument)
    assert not isinstance(results[0], BaseException)
    assert not isinstance(results[2], BaseException)


async def test_detect_without_class_names_is_refused_by_the_served_model(
    models: TritonModels,
) -> None:
    with pytest.raises(InvalidArgument):
        await models.detect(IMAGES[0], [], max_detections=MAX_DETECTIONS)


async def test_a_deadline_too_short_for_the_model_is_deadline_exceeded(
    models: TritonModels,
) -> None:
    with pytest.raises(DeadlineExceeded) as caught:
        await models.detect(IMAGES[2], CLASSES[2], max_detections=50, deadline_s=0.001)
    assert caught.value.metadata["model"] == "florence2"


async def test_an_unreachable_triton_is_unavailable() -> None:
    async with TritonModels(f"127.0.0.1:{unused_port()}", deadline_s=5) as client:
        with pytest.raises(Unavailable):
            await client.embed(IMAGES[0], BOXES[0])
