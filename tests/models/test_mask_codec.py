"""Packed bits and COCO uncompressed RLE: exact round trips, the documented layouts, bad input."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models.mask_codec import (
    masks_to_rle,
    pack_masks,
    packed_length,
    rle_to_mask,
    unpack_masks,
)

# Odd sizes on purpose: H*W not a multiple of 8 leaves padding bits in the last byte.
SHAPES = [(1, 1), (1, 7), (3, 5), (7, 13), (8, 8), (37, 53), (480, 640)]


def _random_masks(count: int, height: int, width: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    density = rng.uniform(0.05, 0.95)
    return rng.random((count, height, width)) < density


@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_pack_then_unpack_returns_the_same_random_masks(height: int, width: int) -> None:
    for seed in range(5):
        masks = _random_masks(3, height, width, seed)
        packed = pack_masks(masks)
        assert packed.dtype == np.uint8
        assert packed.shape == (3, packed_length(height, width))
        assert packed.shape[1] == -(-height * width // 8)
        restored = unpack_masks(packed, height, width)
        assert restored.dtype == np.bool_
        np.testing.assert_array_equal(restored, masks)


@pytest.mark.parametrize("value", [False, True])
@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_pack_round_trips_all_zero_and_all_one_masks(value: bool, height: int, width: int) -> None:
    masks = np.full((2, height, width), value)
    np.testing.assert_array_equal(unpack_masks(pack_masks(masks), height, width), masks)


def test_pack_is_row_major_with_the_first_pixel_in_the_high_bit() -> None:
    mask = np.zeros((1, 3, 3), dtype=bool)
    mask[0, 0, 0] = True  # pixel 0 -> bit 7 of byte 0
    mask[0, 2, 2] = True  # pixel 8 -> bit 7 of byte 1
    np.testing.assert_array_equal(pack_masks(mask), [[0b1000_0000, 0b1000_0000]])


def test_pack_and_unpack_handle_an_empty_batch() -> None:
    empty = np.zeros((0, 5, 7), dtype=bool)
    packed = pack_masks(empty)
    assert packed.shape == (0, packed_length(5, 7))
    assert unpack_masks(packed, 5, 7).shape == (0, 5, 7)


@pytest.mark.parametrize(
    "masks",
    [np.zeros((2, 3, 3), dtype=np.uint8), np.zeros((3, 3), dtype=bool)],
    ids=["not-bool", "not-3d"],
)
def test_pack_refuses_anything_but_bool_n_h_w(masks: np.ndarray) -> None:
    with pytest.raises(InvalidArgument) as caught:
        pack_masks(masks)
    assert caught.value.violations[0].field == "masks"


@pytest.mark.parametrize(
    ("packed", "height", "width", "field"),
    [
        (np.zeros((1, 2), dtype=np.uint8), 3, 6, "packed"),  # 18 px need 3 bytes
        (np.zeros((1, 3), dtype=np.uint8), 3, 5, "packed"),  # 15 px need 2 bytes
        (np.zeros(2, dtype=np.uint8), 3, 5, "packed"),
        (np.zeros((1, 2), dtype=np.int32), 3, 5, "packed"),
        (np.zeros((1, 0), dtype=np.uint8), -1, 5, "height"),
    ],
    ids=["too-short", "too-long", "not-2d", "not-uint8", "negative-size"],
)
def test_unpack_refuses_a_wrong_length_or_layout(
    packed: np.ndarray, height: int, width: int, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        unpack_masks(packed, height, width)
    assert caught.value.violations[0].field == field


@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_rle_round_trips_random_masks_and_counts_cover_every_pixel(height: int, width: int) -> None:
    for seed in range(5):
        mask = _random_masks(1, height, width, seed)[0]
        counts = masks_to_rle(mask)
        assert sum(counts) == height * width
        assert all(isinstance(run, int) and run >= 0 for run in counts)
        assert all(run > 0 for run in counts[1:])  # only the first (background) run may be 0
        restored = rle_to_mask(counts, height, width)
        assert restored.dtype == np.bool_
        np.testing.assert_array_equal(restored, mask)


@pytest.mark.parametrize(("height", "width"), SHAPES)
def test_rle_of_all_zero_and_all_one_masks_is_one_run(height: int, width: int) -> None:
    zeros = np.zeros((height, width), dtype=bool)
    ones = np.ones((height, width), dtype=bool)
    assert masks_to_rle(zeros) == [height * width]
    assert masks_to_rle(ones) == [0, height * width]
    np.testing.assert_array_equal(rle_to_mask([height * width], height, width), zeros)
    np.testing.assert_array_equal(rle_to_mask([0, height * width], height, width), ones)


def test_rle_is_column_major_and_starts_with_background_like_coco() -> None:
    # Column-major order reads column 0 top to bottom, then column 1: 0 1 | 1 1 -> runs 1, 3.
    mask = np.array([[0, 1], [1, 1]], dtype=bool)
    assert masks_to_rle(mask) == [1, 3]
    # A mask whose first pixel is set opens with an empty background run.
    mask = np.array([[1, 0, 0], [0, 0, 1]], dtype=bool)
    assert masks_to_rle(mask) == [0, 1, 4, 1]
    np.testing.assert_array_equal(rle_to_mask(np.array([0, 1, 4, 1]), 2, 3), mask)


def test_rle_of_an_empty_mask_is_empty() -> None:
    assert masks_to_rle(np.zeros((0, 4), dtype=bool)) == []
    assert rle_to_mask([], 0, 4).shape == (0, 4)


@pytest.mark.parametrize(
    ("counts", "height", "width", "field"),
    [
        ([3, 2], 2, 3, "counts"),  # 5 pixels for a 6-pixel mask
        ([7], 2, 3, "counts"),
        ([-1, 7], 2, 3, "counts"),
        ([1.5, 4.5], 2, 3, "counts"),
        ([[6]], 2, 3, "counts"),
        ([6], -2, -3, "height"),
    ],
    ids=["too-few", "too-many", "negative", "not-integers", "nested", "negative-size"],
)
def test_rle_to_mask_refuses_counts_that_do_not_fit(
    counts: Any, height: int, width: int, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        rle_to_mask(counts, height, width)
    assert caught.value.violations[0].field == field


@pytest.mark.parametrize(
    "mask",
    [np.zeros((2, 2), dtype=np.uint8), np.zeros((1, 2, 2), dtype=bool)],
    ids=["not-bool", "not-2d"],
)
def test_masks_to_rle_refuses_anything_but_bool_h_w(mask: np.ndarray) -> None:
    with pytest.raises(InvalidArgument) as caught:
        masks_to_rle(mask)
    assert caught.value.violations[0].field == "mask"
