"""Masks to polygons and back: parts, holes, the pixel-centre convention, one-pixel accuracy."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from label_fixtures import ring_mask, two_part_mask, within_one_pixel

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.datasets.mask_polygons import (
    box_polygon,
    mask_to_polygons,
    polygon_pixel_box,
    polygons_to_mask,
)


def test_ring_is_one_polygon_whose_hole_stays_empty() -> None:
    ring = ring_mask()
    polygons = mask_to_polygons(ring)
    assert len(polygons) == 1
    back = polygons_to_mask(polygons, *ring.shape)
    assert within_one_pixel(back, ring)
    assert not back[60, 50]  # the centre of the hole
    assert not back[60, 50 - 10 : 50 + 11].any()  # the hole's whole middle row


def test_two_separate_parts_become_two_polygons() -> None:
    pair = two_part_mask()
    polygons = mask_to_polygons(pair)
    assert len(polygons) == 2
    back = polygons_to_mask(polygons, *pair.shape)
    assert within_one_pixel(back, pair)
    for polygon in polygons:
        assert within_one_pixel(
            polygons_to_mask([polygon], *pair.shape), pair & _part(pair, polygon)
        )


def _part(mask: npt.NDArray[np.bool_], polygon: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    """The connected component of `mask` under the polygon's first vertex."""
    _, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    column, row = (polygon[0] - 0.5).round().astype(int)
    part: npt.NDArray[np.bool_] = labels == labels[row, column]
    return part


def test_vertices_are_the_centres_of_boundary_pixels() -> None:
    square = np.zeros((30, 40), dtype=bool)
    square[10:20, 5:25] = True  # rows 10..19, columns 5..24
    (polygon,) = mask_to_polygons(square)
    assert sorted({tuple(point) for point in polygon.tolist()}) == [
        (5.5, 10.5),
        (5.5, 19.5),
        (24.5, 10.5),
        (24.5, 19.5),
    ]
    assert polygon_pixel_box(polygon) == (5.0, 10.0, 20.0, 10.0)
    assert np.array_equal(polygons_to_mask([polygon], 30, 40), square)


def test_every_hole_of_a_part_is_joined_and_stays_a_hole() -> None:
    mask = np.zeros((80, 120), dtype=np.uint8)
    mask[5:75, 5:115] = 1
    centres = [(25, 25), (60, 40), (95, 25), (30, 60)]
    for centre in centres:
        cv2.circle(mask, centre, 7, (0,), thickness=-1)
    mask[58:63, 28:33] = 1  # an island inside the last hole: a part of its own
    mask_bool = mask.astype(bool)
    polygons = mask_to_polygons(mask_bool)
    assert len(polygons) == 2
    back = polygons_to_mask(polygons, 80, 120)
    assert within_one_pixel(back, mask_bool)
    for column, row in centres[:3]:
        assert not back[row, column]
    assert back[60, 30]  # the island


def test_random_blobs_come_back_within_one_pixel() -> None:
    rng = np.random.default_rng(7)
    for _ in range(60):
        height, width = (int(value) for value in rng.integers(20, 100, 2))
        canvas = np.zeros((height, width), dtype=np.uint8)
        for _ in range(int(rng.integers(1, 5))):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(canvas, centre, int(rng.integers(3, 20)), (1,), thickness=-1)
        for _ in range(int(rng.integers(0, 3))):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(canvas, centre, int(rng.integers(2, 6)), (0,), thickness=-1)
        mask = canvas.astype(bool)
        # Parts of one or two pixels are dropped by design; remove them from the expectation.
        count, labels, stats, _ = cv2.connectedComponentsWithStats(canvas, connectivity=8)
        for label in range(1, count):
            if stats[label, cv2.CC_STAT_AREA] <= 2:
                mask[labels == label] = False
        back = polygons_to_mask(mask_to_polygons(mask), height, width)
        assert within_one_pixel(back, mask)


def test_parts_of_one_or_two_pixels_are_dropped() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[2, 2] = True
    mask[10, 10:12] = True
    assert mask_to_polygons(mask) == []
    assert mask_to_polygons(np.zeros((5, 5), dtype=bool)) == []


def test_specks_under_the_minimum_area_are_dropped_and_the_rest_comes_back_exactly() -> None:
    """A segmenter's mask with specks around its object: one polygon per speck without the
    minimum area, only the object's own (rasterising back as without it) with it."""
    ring = ring_mask()
    specked = ring.copy()
    for row in range(2, 118, 6):
        for column in range(2, 158, 6):
            if not ring[max(0, row - 2) : row + 5, max(0, column - 2) : column + 5].any():
                specked[row : row + 3, column : column + 3] = True  # 9 pixels each
    assert len(mask_to_polygons(specked)) > 10
    kept = mask_to_polygons(specked, min_area=16)
    assert len(kept) == 1
    assert np.array_equal(
        polygons_to_mask(kept, *ring.shape), polygons_to_mask(mask_to_polygons(ring), *ring.shape)
    )
    assert len(mask_to_polygons(specked, min_area=9)) == len(mask_to_polygons(specked))


def test_straight_runs_keep_only_their_ends() -> None:
    square = np.zeros((200, 200), dtype=bool)
    square[20:180, 20:180] = True
    (polygon,) = mask_to_polygons(square)
    assert len(polygon) == 4


def test_box_polygon_fills_the_box_pixels_and_gives_the_box_back() -> None:
    polygon = box_polygon((4.0, 3.0, 10.0, 6.0))
    assert polygon_pixel_box(polygon) == (4.0, 3.0, 10.0, 6.0)
    expected = np.zeros((12, 20), dtype=bool)
    expected[3:9, 4:14] = True
    assert np.array_equal(polygons_to_mask([polygon], 12, 20), expected)


def test_a_mask_that_is_not_two_dimensional_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="shape"):
        mask_to_polygons(np.zeros((2, 3, 4), dtype=bool))
