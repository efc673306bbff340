"""Pairing tracks with detections: overlap and appearance scores, and the assignment itself.

Pure numpy + scipy, no state: the tracker decides what to pair, this module how.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

__all__ = ["assign", "cosine_matrix", "iou_matrix"]

FloatArray = npt.NDArray[np.float64]


def iou_matrix(boxes_a: FloatArray, boxes_b: FloatArray) -> FloatArray:
    """Intersection over union of every box in `boxes_a` (n, 4) with every one of `boxes_b` (m, 4).

    Boxes are x1, y1, x2, y2; a box of zero area overlaps nothing (IoU 0, never a division by 0).
    """
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return np.zeros((len(boxes_a), len(boxes_b)))
    a = boxes_a[:, None, :]
    b = boxes_b[None, :, :]
    width = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    height = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = width * height
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def cosine_matrix(vectors_a: FloatArray, vectors_b: FloatArray) -> FloatArray:
    """Cosine similarity of every row of `vectors_a` with every row of `vectors_b`.

    Both are expected L2-normalised already (the tracker normalises what it stores).
    """
    if len(vectors_a) == 0 or len(vectors_b) == 0:
        return np.zeros((len(vectors_a), len(vectors_b)))
    return np.asarray(vectors_a @ vectors_b.T, dtype=np.float64)


def assign(score: FloatArray, allowed: npt.NDArray[np.bool_]) -> list[tuple[int, int]]:
    """The (row, column) pairs maximising the total `score` among the `allowed` pairs.

    Pairs outside `allowed` are never returned, even when the solver had to place them to
    complete its assignment (the usual gating of SORT-style trackers).
    """
    if score.size == 0 or not allowed.any():
        return []
    # A forbidden pair costs more than any set of allowed ones could gain, so the solver uses
    # one only where no allowed pair is left for that row.
    penalty = (float(np.abs(score[allowed]).max()) + 1) * (min(score.shape) + 1)
    cost = np.where(allowed, -score, penalty)
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols, strict=True) if allowed[r, c]]
