"""Masks as polygons and back, for YOLO segmentation labels.

YOLO-seg stores an object as one polygon per line, so a mask must become polygons: exact masks
live in COCO exports (RLE); YOLO gets polygons that rasterise back to within one pixel of the
mask's boundary. This module owns the one convention both directions use.

Coordinates: a vertex (x, y) is in pixels, in the continuous frame where pixel (col, row)
covers [col, col + 1) x [row, row + 1). Vertices are the CENTRES of boundary pixels,
(col + 0.5, row + 0.5), taken from `cv2.findContours` (which returns the pixel indices of the
mask's own boundary pixels). The half-pixel offset makes readers robust to float formatting:
ultralytics (`polygon2mask`) truncates `x_norm * width` to int32 and gets `col` back whether
the printed value rounds up or down; `polygons_to_mask` here subtracts 0.5 and rounds. Both
then run `cv2.fillPoly`, which fills the pixels under the edges too, so the rasterised polygon
is usually the mask exactly; where the boundary walk passes a one-pixel neck or a diagonal
gap, fillPoly may fill a pixel next to the boundary: always within one pixel of it (the tests
check this on random masks).

Parts and holes (`cv2.findContours` with `RETR_CCOMP`, whose two-level hierarchy gives outer
boundaries and the holes inside each):
- each outer boundary (a separate part, or an island inside a hole) becomes its own polygon.
  A YOLO-seg writer writes one line per polygon, so ultralytics and supervision see each part
  as one instance of the object's class: a two-part object is two instances there.
- each hole is joined to its outer polygon by a zero-width cut: the polygon walks from the
  current vertex closest to the hole (of the outer boundary or of a hole joined before it)
  to the hole's closest vertex, around the hole, and back along the same segment. Filling the
  polygon (`cv2.fillPoly`, as ultralytics does) leaves the hole empty: the cut's two passes
  cancel, and the cut, being the shortest link, runs over the object's own pixels (to within
  a pixel). Holes are joined closest first, so a cut rarely passes over another hole; if it
  does, a one-pixel line of that hole is filled.
- parts and holes with fewer than 3 boundary points (one or two pixels) are dropped, and so
  are parts (8-connected pixel groups) of fewer than `min_area` pixels: a mask from a
  segmenter often carries specks that would each become a polygon of their own.

Vertices along straight runs (same direction) are removed; they add nothing to the shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument

__all__ = [
    "MIN_POLYGON_POINTS",
    "box_polygon",
    "mask_to_polygons",
    "polygon_pixel_box",
    "polygons_to_mask",
]

MIN_POLYGON_POINTS = 3
"""Parts and holes with fewer boundary points than this are dropped."""

_PIXEL_CENTRE = 0.5
# Distances are computed between at most this many pairs of points at a time.
_MAX_PAIRS = 1 << 22
# How many points of a hole bound the distance to its closest vertex before the full search.
_SAMPLE_POINTS = 16

Polygon = npt.NDArray[np.float64]
_Points = npt.NDArray[np.int64]


def mask_to_polygons(mask: npt.NDArray[np.bool_], *, min_area: int = 0) -> list[Polygon]:
    """The polygons of a bool (H, W) mask: one (N, 2) array of (x, y) pixels per part.

    Holes are joined into their part's polygon by zero-width cuts (see the module docstring).
    Parts of fewer than `min_area` pixels are left out; the others rasterise back exactly as
    without it. An empty mask gives no polygons.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = getattr(mask, "shape", None)
        raise InvalidArgument(f"mask must have shape (height, width), got {shape}", field="mask")
    pixels = np.ascontiguousarray(mask, dtype=np.uint8)
    if min_area > 1:
        pixels = _without_small_parts(pixels, min_area)
    contours, hierarchy = cv2.findContours(pixels, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_NONE)
    if hierarchy is None:
        return []
    links = hierarchy.reshape(-1, 4)
    polygons: list[Polygon] = []
    for index, contour in enumerate(contours):
        if links[index][3] != -1 or len(contour) < MIN_POLYGON_POINTS:
            continue  # a hole (joined below) or a part too small to be a polygon
        outer = contour.reshape(-1, 2).astype(np.int64)
        holes: list[_Points] = []
        child = int(links[index][2])
        while child != -1:
            if len(contours[child]) >= MIN_POLYGON_POINTS:
                holes.append(contours[child].reshape(-1, 2).astype(np.int64))
            child = int(links[child][0])
        joined = _join_holes(outer, holes)
        polygons.append(_drop_straight_run_points(joined).astype(np.float64) + _PIXEL_CENTRE)
    return polygons


def _without_small_parts(pixels: npt.NDArray[np.uint8], min_area: int) -> npt.NDArray[np.uint8]:
    """The mask without its 8-connected parts of fewer than `min_area` pixels.

    8-connectivity is findContours' own for outer boundaries, so each part removed here is
    exactly one outer polygon (or an island inside a hole) it would have returned."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(pixels, connectivity=8)
    small = np.flatnonzero(stats[:, cv2.CC_STAT_AREA] < min_area)
    small = small[small != 0]  # label 0 is the background
    if len(small) == 0 or count <= 1:
        return pixels
    kept: npt.NDArray[np.uint8] = np.where(np.isin(labels, small), 0, pixels).astype(np.uint8)
    return kept


def polygons_to_mask(polygons: Sequence[Polygon], height: int, width: int) -> npt.NDArray[np.bool_]:
    """Rasterise polygons (pixel coordinates, this module's convention) into one bool mask."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    for polygon in polygons:
        points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
        if len(points) == 0:
            continue
        pixels = np.rint(points - _PIXEL_CENTRE).astype(np.int32)
        # One polygon per call: with several in one call, fillPoly's even-odd rule would make
        # the overlap of two parts a hole.
        cv2.fillPoly(canvas, [pixels.reshape(-1, 1, 2)], color=(1,))
    return canvas.astype(bool)


def polygon_pixel_box(polygon: Polygon) -> tuple[float, float, float, float]:
    """(x, y, width, height) of the pixels a polygon covers: its vertices are pixel centres."""
    points = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    low = points.min(axis=0) - _PIXEL_CENTRE
    high = points.max(axis=0) + _PIXEL_CENTRE
    return (float(low[0]), float(low[1]), float(high[0] - low[0]), float(high[1] - low[1]))


def box_polygon(bbox: tuple[float, float, float, float]) -> Polygon:
    """A box (x, y, width, height) as a 4-point polygon in this module's convention.

    The corners are the centres of the box's corner pixels, so `polygon_pixel_box` gives the
    box back and `polygons_to_mask` fills the box's pixels; a box under one pixel wide (or
    high) collapses to its centre line.
    """
    x, y, width, height = bbox
    inset_x = min(_PIXEL_CENTRE, width / 2)
    inset_y = min(_PIXEL_CENTRE, height / 2)
    left, right = x + inset_x, x + width - inset_x
    top, bottom = y + inset_y, y + height - inset_y
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]], dtype=np.float64)


def _join_holes(outer: _Points, holes: list[_Points]) -> _Points:
    """One closed walk: the outer boundary with each hole spliced in by a zero-width cut."""
    if not holes:
        return outer
    order = sorted(range(len(holes)), key=lambda i: _closest_pair(outer, holes[i])[2])
    path = outer
    for index in order:
        hole = holes[index]
        at_path, at_hole, _ = _closest_pair(path, hole)
        detour = np.concatenate([hole[at_hole:], hole[: at_hole + 1]])
        path = np.concatenate([path[: at_path + 1], detour, path[at_path:]])
    return path


def _closest_pair(points: _Points, others: _Points) -> tuple[int, int, int]:
    """Indices of the closest pair (one from each set) and their squared distance.

    A few of `others` give an upper bound on the distance first; only points within that
    bound of the other set's bounding box are then compared pairwise, so a hole far from most
    of a long boundary costs little.
    """
    sample = others[:: max(1, len(others) // _SAMPLE_POINTS)]
    bound = int(_squared_distances(sample, points).min())
    reach = math.isqrt(bound) + 1
    near_points = np.flatnonzero(_within(points, others, reach))
    near_others = np.flatnonzero(_within(others, points[near_points], reach))
    candidates, targets = points[near_points], others[near_others]
    best = (0, 0, bound + 1)
    step = max(1, _MAX_PAIRS // max(1, len(candidates)))
    for start in range(0, len(targets), step):
        squared = _squared_distances(targets[start : start + step], candidates)
        row, column = divmod(int(np.argmin(squared)), squared.shape[1])
        distance = int(squared[row, column])
        if distance < best[2]:
            best = (int(near_points[column]), int(near_others[start + row]), distance)
    return best


def _squared_distances(rows: _Points, columns: _Points) -> _Points:
    across: _Points = rows[:, 0, None] - columns[None, :, 0]
    down: _Points = rows[:, 1, None] - columns[None, :, 1]
    return across * across + down * down


def _within(points: _Points, box_of: _Points, reach: int) -> npt.NDArray[np.bool_]:
    """Which `points` lie within `reach` of the bounding box of `box_of`."""
    low, high = box_of.min(axis=0) - reach, box_of.max(axis=0) + reach
    inside: npt.NDArray[np.bool_] = ((points >= low) & (points <= high)).all(axis=1)
    return inside


def _drop_straight_run_points(path: _Points) -> _Points:
    """The closed walk without vertices in the middle of a straight run (same direction)."""
    if len(path) <= MIN_POLYGON_POINTS:
        return path
    before = path - np.roll(path, 1, axis=0)
    after = np.roll(path, -1, axis=0) - path
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    dot = (before * after).sum(axis=1)
    keep = (cross != 0) | (dot <= 0)
    kept = path[keep]
    return kept if len(kept) >= MIN_POLYGON_POINTS else path
