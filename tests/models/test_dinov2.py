"""Dinov2Embedder on a tiny random-weight DINOv2: unit vectors, batching, crops, masks, bad input.

Random weights make the vectors meaningless as features; these tests prove the plumbing (one
unit vector per crop, batched == one at a time, the mask and the crop reach the model).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch
from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models import dinov2
from agentic_labeling.models.dinov2 import Dinov2Embedder

SIZES = [(480, 640), (37, 53), (300, 200)]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return dinov2.build_tiny(tmp_path_factory.mktemp("dinov2") / "dinov2", seed=0)


@pytest.fixture(scope="module")
def embedder(tiny_dir: Path) -> Dinov2Embedder:
    return Dinov2Embedder.load(tiny_dir)


def _images(seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (h, w, 3), dtype=np.uint8) for h, w in SIZES]


def _boxes(image: np.ndarray, count: int, seed: int) -> np.ndarray:
    """`count` random x, y, w, h boxes inside the image, at least 2 px each way."""
    rng = np.random.default_rng(seed)
    height, width = image.shape[:2]
    x = rng.uniform(0, width - 2, count)
    y = rng.uniform(0, height - 2, count)
    w = rng.uniform(2, width - x)
    h = rng.uniform(2, height - y)
    return np.stack([x, y, w, h], axis=1).astype(np.float32)


def _cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    return np.sum(first * second, axis=1) / (
        np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    )


@contextmanager
def _model_inputs(embedder: Dinov2Embedder) -> Iterator[list[tuple[int, ...]]]:
    """Records the pixel_values shape of every model forward pass."""
    shapes: list[tuple[int, ...]] = []

    def hook(_module: Any, _args: Any, kwargs: Any) -> None:
        shapes.append(tuple(kwargs["pixel_values"].shape))

    handle = embedder.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield shapes
    finally:
        handle.remove()


def test_build_tiny_saves_a_checkpoint_that_loads_like_a_real_one(
    tiny_dir: Path, embedder: Dinov2Embedder
) -> None:
    assert {"config.json", "model.safetensors", "preprocessor_config.json"} <= {
        path.name for path in tiny_dir.iterdir()
    }
    assert isinstance(embedder.model, Dinov2Model)
    assert isinstance(embedder._processor, BitImageProcessor)
    assert embedder.model.config.patch_size == 14
    assert not embedder.model.training


def test_build_tiny_is_deterministic_for_a_seed(tmp_path: Path, tiny_dir: Path) -> None:
    reference = Dinov2Model.from_pretrained(tiny_dir).state_dict()
    again = Dinov2Model.from_pretrained(dinov2.build_tiny(tmp_path / "a", seed=0)).state_dict()
    other = Dinov2Model.from_pretrained(dinov2.build_tiny(tmp_path / "b", seed=1)).state_dict()
    assert all(torch.equal(reference[name], again[name]) for name in reference)
    assert not all(torch.equal(reference[name], other[name]) for name in reference)


def test_dimension_is_read_from_the_model_config(embedder: Dinov2Embedder) -> None:
    assert embedder.dimension == embedder.model.config.hidden_size == 32
    wider = Dinov2Model(
        Dinov2Config(hidden_size=48, num_hidden_layers=1, num_attention_heads=3, image_size=56)
    )
    other = Dinov2Embedder(wider, embedder._processor)
    assert other.dimension == 48
    image = _images()[1]
    (vectors,) = other.embed([image], [_boxes(image, 2, seed=0)])
    assert vectors.shape == (2, 48)


def test_embed_returns_float32_unit_vectors_one_per_box(embedder: Dinov2Embedder) -> None:
    images = _images()
    boxes = [
        _boxes(image, count, seed)
        for seed, (image, count) in enumerate(zip(images, [5, 1, 3], strict=True))
    ]
    results = embedder.embed(images, boxes)
    assert [result.shape for result in results] == [(5, 32), (1, 32), (3, 32)]
    for result in results:
        assert result.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(result, axis=1), 1.0, atol=1e-5)


def test_an_image_without_boxes_is_embedded_whole_as_one_row(embedder: Dinov2Embedder) -> None:
    image = _images()[0]
    (whole,) = embedder.embed([image], [np.zeros((0, 4), dtype=np.float32)])
    (boxed,) = embedder.embed([image], [np.array([[0, 0, 640, 480]], dtype=np.float32)])
    assert whole.shape == (1, 32)
    assert _cosines(whole, boxed).min() >= 0.9999


def test_batched_call_equals_one_crop_at_a_time(
    embedder: Dinov2Embedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    images = _images(seed=1)
    boxes = [_boxes(image, 4, seed) for seed, image in enumerate(images)]
    boxes[1] = np.zeros((0, 4), dtype=np.float32)
    monkeypatch.setattr(dinov2, "MAX_BATCH", 3)  # 9 crops: batches of 3 across image borders
    with _model_inputs(embedder) as shapes:
        batched = embedder.embed(images, boxes)
    assert [shape[0] for shape in shapes] == [3, 3, 3]
    for image, image_boxes, result in zip(images, boxes, batched, strict=True):
        if len(image_boxes) == 0:
            (alone,) = embedder.embed([image], [image_boxes])
            assert _cosines(result, alone).min() >= 0.9999
        for row in range(len(image_boxes)):
            (alone,) = embedder.embed([image], [image_boxes[row : row + 1]])
            assert _cosines(result[row : row + 1], alone).min() >= 0.9999


def test_all_crops_of_all_images_share_one_forward_pass(embedder: Dinov2Embedder) -> None:
    images = _images()
    boxes = [_boxes(image, 4, seed) for seed, image in enumerate(images)]
    with _model_inputs(embedder) as shapes:
        embedder.embed(images, boxes)
    assert shapes == [(12, 3, 56, 56)]


def test_masking_the_background_changes_the_embedding(embedder: Dinov2Embedder) -> None:
    image = _images()[0]
    boxes = np.array([[100, 100, 200, 150]], dtype=np.float32)
    (plain,) = embedder.embed([image], [boxes])
    everything = np.ones((1, 480, 640), dtype=bool)
    (kept,) = embedder.embed([image], [boxes], [everything])
    object_only = np.zeros((1, 480, 640), dtype=bool)
    object_only[0, 150:200, 150:250] = True
    (masked,) = embedder.embed([image], [boxes], [object_only])
    np.testing.assert_allclose(kept, plain, atol=1e-6)  # a full mask blanks nothing
    assert _cosines(masked, plain).max() < 0.999


def test_masks_may_be_given_for_some_images_only(embedder: Dinov2Embedder) -> None:
    images = _images()[:2]
    boxes = [_boxes(image, 2, seed) for seed, image in enumerate(images)]
    masks = [None, np.ones((2, *images[1].shape[:2]), dtype=bool)]
    with_masks = embedder.embed(images, boxes, masks)
    without = embedder.embed(images, boxes)
    for first, second in zip(with_masks, without, strict=True):
        assert _cosines(first, second).min() >= 0.9999


def test_boxes_are_clipped_to_the_image_and_kept_at_least_one_pixel(
    embedder: Dinov2Embedder,
) -> None:
    image = _images()[1]  # 37 x 53
    (clipped,) = embedder.embed([image], [np.array([[-10, -5, 40, 30]], dtype=np.float32)])
    (inside,) = embedder.embed([image], [np.array([[0, 0, 30, 25]], dtype=np.float32)])
    assert _cosines(clipped, inside).min() >= 0.9999
    (dot,) = embedder.embed([image], [np.array([[52.5, 36.5, 0, 0]], dtype=np.float32)])
    (pixel,) = embedder.embed([image], [np.array([[52, 36, 1, 1]], dtype=np.int32)])
    assert _cosines(dot, pixel).min() >= 0.9999


def test_a_processor_without_center_crop_is_read_for_its_resize_size(
    embedder: Dinov2Embedder,
) -> None:
    processor = BitImageProcessor(do_center_crop=False, size={"height": 42, "width": 42})
    other = Dinov2Embedder(embedder.model, processor)
    image = _images()[1]
    with _model_inputs(other) as shapes:
        (vectors,) = other.embed([image], [_boxes(image, 2, seed=0)])
    assert shapes == [(2, 3, 42, 42)]
    assert vectors.shape == (2, 32)


def test_a_processor_without_a_usable_size_is_refused(embedder: Dinov2Embedder) -> None:
    processor = SimpleNamespace(
        do_center_crop=False, size=SimpleNamespace(longest_edge=64), image_mean=None
    )
    with pytest.raises(ValueError, match="input size"):
        Dinov2Embedder(embedder.model, processor)


_GOOD_IMAGE = np.zeros((20, 30, 3), dtype=np.uint8)
_GOOD_BOXES = np.array([[1, 2, 10, 10]], dtype=np.float32)
_GOOD_MASKS = np.ones((1, 20, 30), dtype=bool)


@pytest.mark.parametrize(
    ("images", "boxes", "masks", "field"),
    [
        ([_GOOD_IMAGE.astype(np.int16)], [_GOOD_BOXES], None, "images[0]"),
        ([_GOOD_IMAGE[..., :1]], [_GOOD_BOXES], None, "images[0]"),
        ([np.zeros((20, 0, 3), dtype=np.uint8)], [_GOOD_BOXES], None, "images[0]"),
        ([None], [_GOOD_BOXES], None, "images[0]"),
        ([_GOOD_IMAGE, _GOOD_IMAGE], [_GOOD_BOXES, _GOOD_BOXES[0]], None, "boxes[1]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES.astype(complex)], None, "boxes[0]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES.tolist()], None, "boxes[0]"),
        ([_GOOD_IMAGE], [np.array([[1, 2, np.nan, 4]])], None, "boxes[0]"),
        ([_GOOD_IMAGE], [np.array([[1, 2, 3, -4]])], None, "boxes[0]"),
        ([_GOOD_IMAGE], [np.array([[30, 2, 3, 4]])], None, "boxes[0]"),  # starts past the right
        ([_GOOD_IMAGE], [np.array([[-9, 2, 9, 4]])], None, "boxes[0]"),  # ends at the left edge
        ([_GOOD_IMAGE], [_GOOD_BOXES, _GOOD_BOXES], None, "boxes"),
        ([_GOOD_IMAGE], [_GOOD_BOXES], [_GOOD_MASKS[:, :10]], "masks[0]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES], [_GOOD_MASKS.astype(np.uint8)], "masks[0]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES], [np.ones((2, 20, 30), dtype=bool)], "masks[0]"),
        ([_GOOD_IMAGE], [_GOOD_BOXES], [_GOOD_MASKS, _GOOD_MASKS], "masks"),
    ],
    ids=[
        "int16-image",
        "one-channel-image",
        "empty-image",
        "no-image",
        "one-dim-boxes",
        "complex-boxes",
        "list-boxes",
        "nan",
        "negative-height",
        "right-of-image",
        "left-of-image",
        "count-mismatch",
        "mask-wrong-size",
        "mask-not-bool",
        "mask-count-mismatch",
        "masks-count-mismatch",
    ],
)
def test_bad_input_is_an_invalid_argument_naming_the_field(
    embedder: Dinov2Embedder, images: list[Any], boxes: list[Any], masks: Any, field: str
) -> None:
    with _model_inputs(embedder) as shapes, pytest.raises(InvalidArgument) as caught:
        embedder.embed(images, boxes, masks)
    assert caught.value.violations[0].field == field
    assert shapes == []  # refused before any model work
