"""Scoring boxes against ground truth by the COCO protocol: mAP, per-class AP, precision and
recall, and a confusion matrix. Pure: no registry, no files, no model.

`evaluate_boxes` hands the boxes to pycocotools' COCOeval (bbox) as in-memory COCO
datasets, so mAP@0.5 and mAP@0.5:0.95 are COCO's own figures (101-point interpolated AP,
IoU thresholds 0.50:0.05:0.95, area range "all", at most 100 detections per image, as the
protocol fixes). Around that, with one matching rule of its own (greedy by score, each
ground-truth box matched once, the unmatched box of highest IoU >= `iou_threshold`):

- precision and recall per class at the confidence that maximises F1 (ties: the higher
  confidence); every prediction counts, the caller applies any confidence floor first;
- a confusion matrix, rows predicted class and columns true class, the last row and column
  "background". Matching is in two passes per image: each prediction first takes a box of its
  own class (the diagonal is then the true positives of the per-class figures), then the
  predictions left take any box left (a class confusion). A prediction that matches no box is
  (its class, background); a box no prediction matched is (background, its class).

Undefined figures are NaN, never a made-up 0 or COCO's -1: a class with no ground-truth box
(support 0) has AP and recall NaN and is left out of the means, as COCO leaves it out; its
precision is 0 when it was predicted (every prediction was wrong) and NaN when it was not. A
class with boxes but no prediction has AP, precision and recall 0. With no ground truth at all
both means are NaN; with no predictions they are 0.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentic_labeling.errors import InvalidArgument

__all__ = [
    "BACKGROUND",
    "ClassScore",
    "EvaluationResult",
    "ScoredBox",
    "box_iou",
    "evaluate_boxes",
]

BACKGROUND = "background"
"""The last label of the confusion matrix: no box (a row) or no prediction (a column)."""


@dataclass(frozen=True)
class ScoredBox:
    """A box on an image, in pixels (x, y = top-left); `score` is a prediction's confidence
    (ground truth keeps the default 1.0)."""

    image_id: int
    class_name: str
    x: float
    y: float
    w: float
    h: float
    score: float = 1.0


@dataclass(frozen=True)
class ClassScore:
    """One class's figures; NaN where undefined (see the module docstring)."""

    class_name: str
    ap50: float
    ap50_95: float
    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class EvaluationResult:
    """`confusion_counts[row][column]`: rows predictions, columns ground truth, both in
    `confusion_labels` order (the class names, then "background")."""

    map50: float
    map50_95: float
    per_class: list[ClassScore]
    confusion_labels: list[str]
    confusion_counts: list[list[int]]
    image_count: int


def box_iou(a: ScoredBox, b: ScoredBox) -> float:
    """Intersection over union of two boxes (continuous coordinates, as COCO)."""
    width = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    height = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    return inter / (a.w * a.h + b.w * b.h - inter)


def evaluate_boxes(
    ground_truth: Sequence[ScoredBox],
    predictions: Sequence[ScoredBox],
    *,
    images: Sequence[tuple[int, int, int]],
    class_names: Sequence[str],
    iou_threshold: float = 0.5,
) -> EvaluationResult:
    """Score `predictions` against `ground_truth` on `images` ((image_id, width, height)).

    Every box must name a class of `class_names` and an image of `images`, and have a finite
    position and a positive size; InvalidArgument naming `ground_truth[i]` or `predictions[i]`
    otherwise. `iou_threshold` (in (0, 1]) is for precision, recall and the confusion matrix;
    the APs use COCO's thresholds whatever it is.
    """
    names = list(class_names)
    if not names or len(set(names)) != len(names):
        raise InvalidArgument("name each class once, at least one", field="class_names")
    if not (math.isfinite(iou_threshold) and 0 < iou_threshold <= 1):
        raise InvalidArgument(f"must be in (0, 1], got {iou_threshold!r}", field="iou_threshold")
    image_ids = [image_id for image_id, _, _ in images]
    if len(set(image_ids)) != len(image_ids):
        raise InvalidArgument("an image id repeats", field="images")
    known_images = set(image_ids)
    _check_boxes(ground_truth, "ground_truth", names, known_images)
    _check_boxes(predictions, "predictions", names, known_images)

    ap50, ap50_95 = _coco_average_precision(ground_truth, predictions, images, names)
    per_class = [
        _class_score(name, ap50[k], ap50_95[k], ground_truth, predictions, iou_threshold)
        for k, name in enumerate(names)
    ]
    return EvaluationResult(
        map50=_mean_over_supported(ap50),
        map50_95=_mean_over_supported(ap50_95),
        per_class=per_class,
        confusion_labels=[*names, BACKGROUND],
        confusion_counts=_confusion(ground_truth, predictions, names, iou_threshold),
        image_count=len(image_ids),
    )


def _check_boxes(
    boxes: Sequence[ScoredBox], field: str, names: Sequence[str], images: set[int]
) -> None:
    known = set(names)
    for i, box in enumerate(boxes):
        where = f"{field}[{i}]"
        if box.class_name not in known:
            raise InvalidArgument(
                f"class {box.class_name!r} is not one of the {len(names)} class names",
                field=f"{where}.class_name",
            )
        if box.image_id not in images:
            raise InvalidArgument(
                f"image {box.image_id} is not one of the images", field=f"{where}.image_id"
            )
        values = (box.x, box.y, box.w, box.h, box.score)
        if not all(math.isfinite(v) for v in values) or box.w <= 0 or box.h <= 0:
            raise InvalidArgument(
                f"box ({box.x}, {box.y}, {box.w}, {box.h}) score {box.score} must be finite "
                "with a positive width and height",
                field=where,
            )


# --- COCO's AP ----------------------------------------------------------------------------------


def _coco_average_precision(
    ground_truth: Sequence[ScoredBox],
    predictions: Sequence[ScoredBox],
    images: Sequence[tuple[int, int, int]],
    names: Sequence[str],
) -> tuple[list[float], list[float]]:
    """Per class: (AP@0.5, AP@0.5:0.95) by COCOeval; NaN for a class without ground truth."""
    support = [sum(1 for b in ground_truth if b.class_name == n) for n in names]
    if not predictions:
        # COCO.loadRes cannot take an empty list; nothing predicted is AP 0 wherever defined.
        zeros = [0.0 if s else math.nan for s in support]
        return zeros, list(zeros)
    # Imported here: pycocotools is only needed when something is scored.
    from pycocotools.coco import COCO  # type: ignore[import-untyped]  # no stubs shipped
    from pycocotools.cocoeval import COCOeval  # type: ignore[import-untyped]

    class_ids = {name: k + 1 for k, name in enumerate(names)}
    ground = COCO()
    ground.dataset = coco_ground_truth(ground_truth, images, names)
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        ground.createIndex()
        detected = ground.loadRes(coco_detections(predictions, class_ids))
        scoring = COCOeval(ground, detected, "bbox")
        scoring.evaluate()
        scoring.accumulate()
    # precision[T, R, K, A, M]: IoU thresholds, recall points, classes, area ranges, max dets.
    precision = scoring.eval["precision"][:, :, :, 0, -1]
    at_50 = int(np.argmin(np.abs(scoring.params.iouThrs - 0.5)))
    ap50, ap50_95 = [], []
    for k in range(len(names)):
        if not support[k]:
            ap50.append(math.nan)
            ap50_95.append(math.nan)
            continue
        ap50.append(float(np.mean(precision[at_50, :, k])))
        ap50_95.append(float(np.mean(precision[:, :, k])))
    return ap50, ap50_95


def coco_ground_truth(
    ground_truth: Sequence[ScoredBox],
    images: Sequence[tuple[int, int, int]],
    names: Sequence[str],
) -> dict[str, Any]:
    """The ground truth as a COCO instances dataset (class k is category id k + 1)."""
    class_ids = {name: k + 1 for k, name in enumerate(names)}
    return {
        "images": [{"id": i, "width": w, "height": h} for i, w, h in images],
        "categories": [{"id": class_ids[n], "name": n} for n in names],
        # Annotation ids start at 1: COCOeval records a match as the box's id, and id 0
        # would read as "unmatched".
        "annotations": [
            {
                "id": index,
                "image_id": box.image_id,
                "category_id": class_ids[box.class_name],
                "bbox": [box.x, box.y, box.w, box.h],
                "area": box.w * box.h,
                "iscrowd": 0,
            }
            for index, box in enumerate(ground_truth, start=1)
        ],
    }


def coco_detections(
    predictions: Sequence[ScoredBox], class_ids: dict[str, int]
) -> list[dict[str, Any]]:
    """The predictions as a COCO results list."""
    return [
        {
            "image_id": box.image_id,
            "category_id": class_ids[box.class_name],
            "bbox": [box.x, box.y, box.w, box.h],
            "score": box.score,
        }
        for box in predictions
    ]


def _mean_over_supported(values: Sequence[float]) -> float:
    defined = [v for v in values if not math.isnan(v)]
    return float(np.mean(defined)) if defined else math.nan


# --- Matching, precision and recall, confusion --------------------------------------------------


def _by_score(boxes: Sequence[ScoredBox]) -> list[int]:
    """Indices of `boxes`, highest score first (stable, so ties keep their input order)."""
    return sorted(range(len(boxes)), key=lambda i: -boxes[i].score)


def _match(
    truth: Sequence[ScoredBox],
    predicted: Sequence[ScoredBox],
    taken: set[int],
    threshold: float,
    *,
    same_class: bool,
) -> dict[int, int]:
    """Greedy by score: prediction index -> the index of the box it matches in `truth`, the
    free box of highest IoU >= `threshold` (of the prediction's class when `same_class`).
    Matched boxes are added to `taken`."""
    matches: dict[int, int] = {}
    for p in _by_score(predicted):
        best, best_iou = -1, threshold
        for g, box in enumerate(truth):
            if g in taken or (same_class and box.class_name != predicted[p].class_name):
                continue
            iou = box_iou(predicted[p], box)
            if iou >= best_iou:
                best, best_iou = g, iou
        if best >= 0:
            taken.add(best)
            matches[p] = best
    return matches


def _per_image(boxes: Sequence[ScoredBox]) -> dict[int, list[ScoredBox]]:
    grouped: dict[int, list[ScoredBox]] = {}
    for box in boxes:
        grouped.setdefault(box.image_id, []).append(box)
    return grouped


def _class_score(
    name: str,
    ap50: float,
    ap50_95: float,
    ground_truth: Sequence[ScoredBox],
    predictions: Sequence[ScoredBox],
    threshold: float,
) -> ClassScore:
    truth = _per_image([b for b in ground_truth if b.class_name == name])
    predicted = _per_image([b for b in predictions if b.class_name == name])
    support = sum(len(boxes) for boxes in truth.values())
    scored: list[tuple[float, bool]] = []  # (score, true positive)
    for image_id, boxes in predicted.items():
        matches = _match(truth.get(image_id, []), boxes, set(), threshold, same_class=True)
        scored += [(box.score, i in matches) for i, box in enumerate(boxes)]
    precision, recall = _best_f1(scored, support)
    return ClassScore(name, ap50, ap50_95, precision, recall, support)


def _best_f1(scored: list[tuple[float, bool]], support: int) -> tuple[float, float]:
    """(precision, recall) keeping the predictions at or above the confidence of best F1."""
    if not scored:
        return (0.0, 0.0) if support else (math.nan, math.nan)
    if not support:
        return 0.0, math.nan
    scored.sort(key=lambda item: -item[0])
    best = (-1.0, 0.0, 0.0)
    true_positives = 0
    for kept, (score, hit) in enumerate(scored, start=1):
        true_positives += hit
        # A cut between two equal scores is no confidence threshold: only cut after the last.
        if kept < len(scored) and scored[kept][0] == score:
            continue
        precision, recall = true_positives / kept, true_positives / support
        f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0
        if f1 > best[0]:
            best = (f1, precision, recall)
    return best[1], best[2]


def _confusion(
    ground_truth: Sequence[ScoredBox],
    predictions: Sequence[ScoredBox],
    names: Sequence[str],
    threshold: float,
) -> list[list[int]]:
    index = {name: k for k, name in enumerate(names)}
    background = len(names)
    counts = [[0] * (len(names) + 1) for _ in range(len(names) + 1)]
    truth_by_image = _per_image(ground_truth)
    predicted_by_image = _per_image(predictions)
    for image_id in truth_by_image.keys() | predicted_by_image.keys():
        truth = truth_by_image.get(image_id, [])
        predicted = predicted_by_image.get(image_id, [])
        taken: set[int] = set()
        matches = _match(truth, predicted, taken, threshold, same_class=True)
        rest = [i for i in range(len(predicted)) if i not in matches]
        confused = _match(truth, [predicted[i] for i in rest], taken, threshold, same_class=False)
        matches.update({rest[p]: g for p, g in confused.items()})
        for p, box in enumerate(predicted):
            column = index[truth[matches[p]].class_name] if p in matches else background
            counts[index[box.class_name]][column] += 1
        for g, box in enumerate(truth):
            if g not in taken:
                counts[background][index[box.class_name]] += 1
    return counts
