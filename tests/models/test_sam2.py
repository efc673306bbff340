"""Sam2Segmenter on a tiny random-weight SAM2: shapes, batching, encode-once, bad input.

Random weights make the masks meaningless; these tests prove the plumbing (sizes, order,
batched == one at a time, the encoder runs once per image), never segmentation quality.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from transformers import Sam2Model, Sam2Processor

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models import sam2
from agentic_labeling.models.sam2 import Sam2Segmenter, SegmentedMasks

SIZES = [(480, 640), (37, 53), (300, 200), (1, 1)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return sam2.build_tiny(tmp_path_factory.mktemp("sam2") / "sam2", seed=0)


@pytest.fixture(scope="module")
def segmenter(tiny_dir: Path) -> Sam2Segmenter:
    return Sam2Segmenter.load(tiny_dir)


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


def _boxes(image: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` random x, y, w, h boxes inside the image."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    x = rng.uniform(0, width, count)
    y = rng.uniform(0, height, count)
    w = rng.uniform(0, width - x)
    h = rng.uniform(0, height - y)
    return np.stack([x, y, w, h], axis=1).astype(np.float32)


@contextmanager
def _encoder_calls(segmenter: Sam2Segmenter) -> Iterator[list[int]]:
    """Counts vision-encoder forward passes; yields a list with one entry (batch size) each."""
    calls: list[int] = []

    def hook(_module: Any, inputs: Any, _output: Any) -> None:
        calls.append(int(inputs[0].shape[0]))

    handle = segmenter.model.vision_encoder.register_forward_hook(hook)
    try:
        yield calls
    finally:
        handle.remove()


def _iou(first: np.ndarray, second: np.ndarray) -> float:
    union = np.logical_or(first, second).sum()
    return 1.0 if union == 0 else float(np.logical_and(first, second).sum() / union)


def _assert_same(batched: SegmentedMasks, alone: SegmentedMasks) -> None:
    assert batched.masks.shape == alone.masks.shape
    for first, second in zip(batched.masks, alone.masks, strict=True):
        assert _iou(first, second) >= 0.999
    np.testing.assert_allclose(batched.predicted_iou, alone.predicted_iou, atol=1e-5, rtol=0)


def test_build_tiny_saves_a_checkpoint_that_loads_like_a_real_one(
    tiny_dir: Path, segmenter: Sam2Segmenter
) -> None:
    assert {"config.json", "model.safetensors", "processor_config.json"} <= {
        path.name for path in tiny_dir.iterdir()
    }
    assert isinstance(segmenter.model, Sam2Model)
    assert isinstance(segmenter._processor, Sam2Processor)
    assert segmenter._processor.target_size == 256
    assert segmenter.model.config.vision_config.backbone_feature_sizes == [
        [64, 64],
        [32, 32],
        [16, 16],
    ]
    assert not segmenter.model.training


def test_build_tiny_is_deterministic_for_a_seed(tmp_path: Path, tiny_dir: Path) -> None:
    reference = Sam2Model.from_pretrained(tiny_dir).state_dict()
    again = Sam2Model.from_pretrained(sam2.build_tiny(tmp_path / "same", seed=0)).state_dict()
    other = Sam2Model.from_pretrained(sam2.build_tiny(tmp_path / "other", seed=1)).state_dict()
    assert all(torch.equal(reference[name], again[name]) for name in reference)
    assert not all(torch.equal(reference[name], other[name]) for name in reference)


def test_segment_returns_one_bool_mask_per_box_at_the_original_resolution(
    segmenter: Sam2Segmenter,
) -> None:
    images = _images()
    boxes = [
        _boxes(image, count, seed)
        for seed, (image, count) in enumerate(zip(images, [5, 2, 3, 1], strict=True))
    ]
    results = segmenter.segment(images, boxes)
    assert len(results) == len(images)
    for image, image_boxes, result in zip(images, boxes, results, strict=True):
        assert result.masks.dtype == np.bool_
        assert result.masks.shape == (len(image_boxes), *image.shape[:2])
        assert result.predicted_iou.dtype == np.float32
        assert result.predicted_iou.shape == (len(image_boxes),)
        assert np.all(np.isfinite(result.predicted_iou))


def test_an_image_without_boxes_gives_empty_masks_and_is_not_encoded(
    segmenter: Sam2Segmenter,
) -> None:
    image = _images()[0]
    with _encoder_calls(segmenter) as calls:
        (result,) = segmenter.segment([image], [np.zeros((0, 4), dtype=np.float32)])
    assert calls == []
    assert result.masks.shape == (0, 480, 640)
    assert result.masks.dtype == np.bool_
    assert result.predicted_iou.shape == (0,)
    assert result.predicted_iou.dtype == np.float32


def test_batched_call_equals_one_image_at_a_time(segmenter: Sam2Segmenter) -> None:
    images = _images(seed=1)
    boxes = [_boxes(image, 3, seed) for seed, image in enumerate(images)]
    boxes[2] = np.zeros((0, 4), dtype=np.float32)  # an empty image in the middle keeps order
    batched = segmenter.segment(images, boxes)
    for image, image_boxes, result in zip(images, boxes, batched, strict=True):
        (alone,) = segmenter.segment([image], [image_boxes])
        _assert_same(result, alone)


def test_all_boxes_of_an_image_decode_together_like_each_box_alone(
    segmenter: Sam2Segmenter,
) -> None:
    image = _images()[0]
    boxes = _boxes(image, 4, seed=7)
    together = segmenter.segment([image], [boxes])[0]
    for row in range(len(boxes)):
        (alone,) = segmenter.segment([image], [boxes[row : row + 1]])
        _assert_same(
            SegmentedMasks(together.masks[row : row + 1], together.predicted_iou[row : row + 1]),
            alone,
        )


def test_each_image_is_encoded_once_whatever_the_box_count(segmenter: Sam2Segmenter) -> None:
    images = _images()
    for count in (1, 70):  # 70 > MAX_BOXES_PER_DECODE: the decoder runs twice, the encoder once
        with _encoder_calls(segmenter) as calls:
            segmenter.segment(images[:1], [_boxes(images[0], count, seed=count)])
        assert calls == [1]
    with _encoder_calls(segmenter) as calls:
        segmenter.segment(images, [_boxes(image, 9, seed=3) for image in images])
    assert calls == [len(images)]  # several images share one encoder pass


def test_more_images_than_one_pass_holds_are_encoded_in_several_passes(
    segmenter: Sam2Segmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _images()
    boxes = [_boxes(image, 2, seed) for seed, image in enumerate(images)]
    expected = segmenter.segment(images, boxes)
    monkeypatch.setattr(sam2, "MAX_IMAGES_PER_ENCODE", 3)
    with _encoder_calls(segmenter) as calls:
        results = segmenter.segment(images, boxes)
    assert calls == [3, 1]
    for result, reference in zip(results, expected, strict=True):
        _assert_same(result, reference)


def test_box_chunks_and_upsampling_slices_do_not_change_the_masks(
    segmenter: Sam2Segmenter, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = _images()[0]
    boxes = _boxes(image, 5, seed=11)
    (expected,) = segmenter.segment([image], [boxes])
    monkeypatch.setattr(sam2, "MAX_BOXES_PER_DECODE", 2)
    monkeypatch.setattr(sam2, "_MAX_UPSAMPLED_VALUES", 1)  # one mask per upsampling step
    (sliced,) = segmenter.segment([image], [boxes])
    _assert_same(sliced, expected)


def test_integer_boxes_and_boxes_touching_the_border_are_accepted(
    segmenter: Sam2Segmenter,
) -> None:
    image = _images()[1]  # 37 x 53
    boxes = np.array([[0, 0, 53, 37], [-1, -1, 54, 38], [10, 10, 0, 0]], dtype=np.int64)
    (result,) = segmenter.segment([image], [boxes])
    assert result.masks.shape == (3, 37, 53)


def test_loading_in_bfloat16_still_returns_bool_masks_and_float32_scores(tiny_dir: Path) -> None:
    half = Sam2Segmenter.load(tiny_dir, dtype=torch.bfloat16)
    assert half.model.dtype == torch.bfloat16
    image = _images()[0]
    (result,) = half.segment([image], [_boxes(image, 2, seed=0)])
    assert result.masks.dtype == np.bool_
    assert result.masks.shape == (2, 480, 640)
    assert result.predicted_iou.dtype == np.float32


_GOOD_IMAGE = np.zeros((20, 30, 3), dtype=np.uint8)
_GOOD_BOXES = np.array([[1, 2, 10, 10]], dtype=np.float32)


@pytest.mark.parametrize(
    ("images", "boxes", "field"),
    [
        ([_GOOD_IMAGE.astype(np.float32)], [_GOOD_BOXES], "images[0]"),
        ([_GOOD_IMAGE[..., 0]], [_GOOD_BOXES], "images[0]"),
        ([np.zeros((20, 30, 4), dtype=np.uint8)], [_GOOD_BOXES], "images[0]"),
        ([np.zeros((0, 30, 3), dtype=np.uint8)], [np.zeros((0, 4))], "images[0]"),
        ([_GOOD_IMAGE.tolist()], [_GOOD_BOXES], "images[0]"),
        ([_GOOD_IMAGE, _GOOD_IMAGE], [_GOOD_BOXES, _GOOD_BOXES[:, :3]], "boxes[1]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES.astype(str)], "boxes[0]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES.astype(bool)], "boxes[0]"),
        ([_GOOD_IMAGE], [[[1.0, 2.0, 3.0, 4.0]]], "boxes[0]"),
        ([_GOOD_IMAGE], [np.array([[1, 2, np.nan, 4]])], "boxes[0]"),
        ([_GOOD_IMAGE], [np.array([[1, 2, np.inf, 4]])], "boxes[0]"),
        ([_GOOD_IMAGE], [np.array([[1, 2, -3, 4]])], "boxes[0]"),
        ([_GOOD_IMAGE], [np.array([[25, 2, 10, 4]])], "boxes[0]"),  # right edge at 35 > 30
        ([_GOOD_IMAGE], [np.array([[1, 15, 4, 10]])], "boxes[0]"),  # bottom edge at 25 > 20
        ([_GOOD_IMAGE], [np.array([[-5, 2, 4, 4]])], "boxes[0]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES, _GOOD_BOXES], "boxes"),
    ],
    ids=[
        "float-image",
        "grey-image",
        "rgba-image",
        "empty-image",
        "list-image",
        "three-columns",
        "string-boxes",
        "bool-boxes",
        "list-boxes",
        "nan",
        "inf",
        "negative-width",
        "past-right-edge",
        "past-bottom-edge",
        "left-of-image",
        "count-mismatch",
    ],
)
def test_bad_input_is_an_invalid_argument_naming_the_field(
    segmenter: Sam2Segmenter, images: list[Any], boxes: list[Any], field: str
) -> None:
    with _encoder_calls(segmenter) as calls, pytest.raises(InvalidArgument) as caught:
        segmenter.segment(images, boxes)
    assert caught.value.violations[0].field == field
    assert calls == []  # refused before any model work
