"""What a person should review next: unvalidated objects (and images) ranked for SuggestForReview.

Pure (numpy only): the registry gathers the candidates (`Registry.review_candidates`), a
trained model's detections come from `yolo_jobs.predict_yolo`; this module only scores.

Three signals per suggestion, each in [0, 1]:

uncertainty   how close the detection's confidence c is to the decision threshold t, raised by
              a poor mask. u_conf = 1 - (t - c) / t below t and 1 - (c - t) / (1 - t) from t
              up: 1 at the threshold, falling linearly to 0 at confidence 0 and at 1. With a
              recorded SAM2 predicted IoU q, u = u_conf + (1 - u_conf) * (1 - q) / 2: a poor
              mask closes up to half of the remaining gap, so a confident detection with a
              useless mask reaches 0.5, never more than a detection at the threshold.
diversity     k-centre greedy over the embeddings (cosine distance 1 - cos). Each candidate's
              distance is to the nearest of the validated objects and the suggestions picked
              so far; with no validated object yet, the candidates' mean direction stands in
              for them, so the first pick is the most unusual candidate. The value is that
              distance divided by the largest one before the first pick: 1 for the farthest
              candidate, shrinking as suggestions cover the space. No embedding: 0.
disagreement  with a trained model's detections for an image (scores below the threshold
              dropped), matched by IoU >= 0.5: an auto-label the model finds with the same
              class agrees (0); one it finds only with another class scores the model's score
              ("different class"); one it does not find at all scores the auto-label's
              confidence ("extra"); a model box that no object of the image covers (any class)
              becomes an image-level suggestion scoring the model's score ("missed"). Without
              a model: max(0, c - q), a detection more sure of itself than its mask.

Mixing: score = w_u * uncertainty + w_v * diversity + w_d * disagreement with the weights
normalised to sum 1 (all 0: equal). Diversity depends on what was already picked, so the
ranking is itself greedy: at each step the suggestion with the highest score, diversity
measured against the validated objects and the earlier picks, is taken, and the others'
distances are updated. Every score only falls from one step to the next, so the picks come out
in non-increasing score order; ties go to the smaller object id (image-level suggestions after
objects, by source, frame and box).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.values.records import BoundingBox, ObjectRecord

__all__ = [
    "DEFAULT_DECISION_THRESHOLD",
    "DEFAULT_SUGGESTIONS",
    "MATCH_IOU",
    "MAX_SUGGESTIONS",
    "Candidate",
    "ImageKey",
    "ModelDetection",
    "PredictedBox",
    "ReviewWeights",
    "Suggestion",
    "box_iou",
    "candidates_from_records",
    "model_detections",
    "rank_for_review",
]

DEFAULT_DECISION_THRESHOLD = 0.5
DEFAULT_SUGGESTIONS = 50
MAX_SUGGESTIONS = 1000
MATCH_IOU = 0.5
"""A model box and an auto-label at this IoU or more are the same object."""

ImageKey = tuple[UUID, int]
"""An image: (source id, frame index; 0 for an image source)."""

# Reasons worth saying: a mask below this predicted IoU is "poor"; a no-model disagreement
# (confidence minus mask quality) below this is noise.
_POOR_MASK = 0.75
_NOTABLE_GAP = 0.2
# Scores this close are a tie (the mixes are sums of products of floats).
_TIE = 1e-12
_CHUNK = 1024

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Candidate:
    """An unvalidated object. `quality_score`: SAM2's predicted IoU of its mask, None when not
    recorded. `embedding`: any length (compared by cosine), None when it has none."""

    object_id: UUID
    source_id: UUID
    frame_index: int
    bbox: BoundingBox
    class_name: str
    confidence: float
    quality_score: float | None = None
    embedding: Sequence[float] | npt.NDArray[np.floating[Any]] | None = None

    @property
    def image(self) -> ImageKey:
        return (self.source_id, self.frame_index)


@dataclass(frozen=True)
class ModelDetection:
    """One box a trained model found in an image, in the image's pixels."""

    class_name: str
    bbox: BoundingBox
    score: float


@dataclass(frozen=True)
class ReviewWeights:
    """How much each signal counts (SuggestForReviewRequest.strategy); relative, >= 0."""

    uncertainty: float = 0.0
    diversity: float = 0.0
    disagreement: float = 0.0

    def normalised(self) -> ReviewWeights:
        """The weights summing to 1 (all 0: a third each); InvalidArgument naming
        `strategy.<signal>` for a negative or non-finite weight."""
        values = {"uncertainty": self.uncertainty, "diversity": self.diversity}
        values["disagreement"] = self.disagreement
        for name, value in values.items():
            if not math.isfinite(value) or value < 0:
                raise InvalidArgument(
                    f"the {name} weight must be a finite number >= 0, got {value}",
                    field=f"strategy.{name}",
                )
        total = sum(values.values())
        if total == 0:
            return ReviewWeights(1 / 3, 1 / 3, 1 / 3)
        return ReviewWeights(
            self.uncertainty / total, self.diversity / total, self.disagreement / total
        )


@dataclass(frozen=True)
class Suggestion:
    """An object to review, or (object_id None) an image where the trained model found an
    object that no auto-label covers (`missed_box`, `missed_class_name`). The three signals
    are as defined in the module docstring, diversity as it stood when this was picked."""

    source_id: UUID
    frame_index: int
    score: float
    uncertainty: float
    diversity: float
    disagreement: float
    reasons: tuple[str, ...]
    object_id: UUID | None = None
    missed_box: BoundingBox | None = None
    missed_class_name: str = ""


class PredictedBox(Protocol):
    """A box as `yolo_jobs.predict_yolo` returns it: pixels, (x, y) the top-left corner."""

    @property
    def class_id(self) -> int: ...
    @property
    def x(self) -> float: ...
    @property
    def y(self) -> float: ...
    @property
    def w(self) -> float: ...
    @property
    def h(self) -> float: ...
    @property
    def score(self) -> float: ...


def candidates_from_records(
    objects: Sequence[ObjectRecord],
    embeddings: Mapping[UUID, Sequence[float] | npt.NDArray[np.floating[Any]]],
) -> list[Candidate]:
    """The registry's objects (`Registry.review_candidates`) as candidates. A quality_score of
    0 is the registry's "not recorded" (no SAM2 mask score was sent), so it becomes None."""
    return [
        Candidate(
            object_id=o.id,
            source_id=o.source_id,
            frame_index=o.frame_index,
            bbox=o.bbox,
            class_name=o.category_name,
            confidence=o.confidence,
            quality_score=o.quality_score if o.quality_score > 0 else None,
            embedding=embeddings.get(o.id),
        )
        for o in objects
    ]


def model_detections(
    images: Sequence[ImageKey],
    predictions: Sequence[Sequence[PredictedBox]],
    class_names: Sequence[str],
) -> dict[ImageKey, list[ModelDetection]]:
    """`predict_yolo`'s boxes for `images` (one list per image, in that order) by image, with
    the run's class names."""
    if len(images) != len(predictions):
        raise ValueError(f"{len(predictions)} prediction lists for {len(images)} images")
    return {
        key: [
            ModelDetection(
                class_names[d.class_id]
                if 0 <= d.class_id < len(class_names)
                else f"class {d.class_id}",
                BoundingBox(d.x, d.y, d.w, d.h),
                d.score,
            )
            for d in found
        ]
        for key, found in zip(images, predictions, strict=True)
    }


def box_iou(a: BoundingBox, b: BoundingBox) -> float:
    """Intersection over union of two boxes (0 when either is empty)."""
    width = min(a.x + a.width, b.x + b.width) - max(a.x, b.x)
    height = min(a.y + a.height, b.y + b.height) - max(a.y, b.y)
    if width <= 0 or height <= 0:
        return 0.0
    inter = width * height
    union = a.width * a.height + b.width * b.height - inter
    return inter / union if union > 0 else 0.0


def rank_for_review(
    candidates: Sequence[Candidate],
    *,
    weights: ReviewWeights,
    count: int = DEFAULT_SUGGESTIONS,
    decision_threshold: float = DEFAULT_DECISION_THRESHOLD,
    validated_embeddings: Sequence[Sequence[float]] | npt.NDArray[np.floating[Any]] = (),
    model_detections: Mapping[ImageKey, Sequence[ModelDetection]] | None = None,
    image_boxes: Mapping[ImageKey, Sequence[BoundingBox]] | None = None,
) -> list[Suggestion]:
    """At most `count` suggestions, highest score first (see the module docstring).

    `model_detections`: a trained model's boxes per image it was run on (an image it was not
    run on has no entry, and its candidates no disagreement); None: no model. `image_boxes`:
    every object's box per image (validated ones and those outside the filter too), which a
    model box must miss to count as "missed"; default: the candidates' boxes.
    InvalidArgument names `count`, `decision_threshold` or `strategy.<signal>`.

    CPU-bound (a diversity step reads every candidate's embedding once: 1,000 suggestions from
    10,000 768-d candidates took about 5 s on two cores): call it in a worker thread.
    """
    if not 1 <= count <= MAX_SUGGESTIONS:
        raise InvalidArgument(
            f"count must be between 1 and {MAX_SUGGESTIONS}, got {count}", field="count"
        )
    if not 0 < decision_threshold < 1:
        raise InvalidArgument(
            f"decision_threshold must be between 0 and 1 (exclusive), got {decision_threshold}",
            field="decision_threshold",
        )
    mix = weights.normalised()
    items = [_Item.of(c) for c in candidates]
    if model_detections is not None:
        kept = {
            key: [d for d in found if d.score >= decision_threshold]
            for key, found in model_detections.items()
        }
        for item in items:
            _model_disagreement(item, kept.get(item.candidate.image) if item.candidate else None)
        items += _missed(kept, image_boxes, candidates)
    else:
        for item in items:
            _mask_disagreement(item)
    items.sort(key=lambda item: item.tie_key)
    for item in items:
        if item.candidate is not None:
            _uncertainty(item, decision_threshold)
    return _greedy(items, mix, count, validated_embeddings)


@dataclass
class _Item:
    """One possible suggestion while it is being scored."""

    candidate: Candidate | None
    tie_key: tuple[int, int, int, float, float, float, float]
    uncertainty: float = 0.0
    disagreement: float = 0.0
    uncertainty_reasons: list[str] = field(default_factory=list)
    disagreement_reasons: list[str] = field(default_factory=list)
    missed: ModelDetection | None = None
    image: ImageKey | None = None

    @classmethod
    def of(cls, candidate: Candidate) -> _Item:
        return cls(candidate, (0, candidate.object_id.int, 0, 0.0, 0.0, 0.0, 0.0))


def _uncertainty(item: _Item, threshold: float) -> None:
    candidate = item.candidate
    assert candidate is not None
    c = min(max(candidate.confidence, 0.0), 1.0)
    near = (
        1 - (threshold - c) / threshold if c < threshold else 1 - (c - threshold) / (1 - threshold)
    )
    value = near
    where = "near" if near >= 0.5 else "far from"
    reasons = [f"confidence {c:.2f} {where} the threshold {threshold:.2f}"]
    q = candidate.quality_score
    if q is not None:
        value = near + (1 - near) * (1 - q) / 2
        if q < _POOR_MASK:
            reasons.append(f"poor mask (SAM2 predicted IoU {q:.2f})")
    item.uncertainty = value
    item.uncertainty_reasons = reasons


def _mask_disagreement(item: _Item) -> None:
    candidate = item.candidate
    assert candidate is not None
    if candidate.quality_score is None:
        return
    gap = max(0.0, candidate.confidence - candidate.quality_score)
    item.disagreement = gap
    if gap >= _NOTABLE_GAP:
        item.disagreement_reasons = [
            f"confident detection ({candidate.confidence:.2f}) with a poor mask"
            f" (SAM2 predicted IoU {candidate.quality_score:.2f})"
        ]


def _model_disagreement(item: _Item, found: Sequence[ModelDetection] | None) -> None:
    candidate = item.candidate
    assert candidate is not None
    if found is None:  # the model was not run on this image
        return
    overlapping = [(box_iou(candidate.bbox, d.bbox), d) for d in found]
    overlapping = [(iou, d) for iou, d in overlapping if iou >= MATCH_IOU]
    if any(d.class_name == candidate.class_name for _, d in overlapping):
        return
    if overlapping:
        iou, best = max(overlapping, key=lambda pair: (pair[0], pair[1].score))
        item.disagreement = best.score
        item.disagreement_reasons = [
            f"trained model says {best.class_name!r} (IoU {iou:.2f}), not {candidate.class_name!r}"
        ]
        return
    item.disagreement = candidate.confidence
    item.disagreement_reasons = [f"trained model does not find this {candidate.class_name!r}"]


def _missed(
    found: Mapping[ImageKey, Sequence[ModelDetection]],
    image_boxes: Mapping[ImageKey, Sequence[BoundingBox]] | None,
    candidates: Sequence[Candidate],
) -> list[_Item]:
    """An image-level item per model box that no object of its image covers."""
    if image_boxes is None:
        boxes: dict[ImageKey, list[BoundingBox]] = {}
        for candidate in candidates:
            boxes.setdefault(candidate.image, []).append(candidate.bbox)
        image_boxes = boxes
    missed: list[_Item] = []
    for key, detections in found.items():
        covering = image_boxes.get(key, ())
        for d in detections:
            if any(box_iou(d.bbox, box) >= MATCH_IOU for box in covering):
                continue
            box = d.bbox
            tie = (1, key[0].int, key[1], box.x, box.y, box.width, box.height)
            missed.append(
                _Item(
                    None,
                    tie,
                    disagreement=d.score,
                    disagreement_reasons=[
                        f"trained model found a {d.class_name!r} no auto-label covers"
                        f" (score {d.score:.2f})"
                    ],
                    missed=d,
                    image=key,
                )
            )
    return missed


_VALIDATED, _MEAN, _PICK = 0, 1, 2  # what a candidate's distance is measured to


class _Coverage:
    """k-centre state: each item's cosine distance to the nearest centre so far (validated
    objects, or the candidates' mean direction, then every pick), for items with an
    embedding; the others stay at 0. float32: one step reads every candidate's vector once."""

    def __init__(
        self,
        items: Sequence[_Item],
        validated: Sequence[Sequence[float]] | npt.NDArray[np.floating[Any]],
    ) -> None:
        embedded = [
            (i, item.candidate.embedding)
            for i, item in enumerate(items)
            if item.candidate is not None and item.candidate.embedding is not None
        ]
        self.rows = np.array([i for i, _ in embedded], dtype=np.int64)
        self.row_of = np.full(len(items), -1, dtype=np.int64)  # item -> row of `vectors`
        self.row_of[self.rows] = np.arange(len(self.rows))
        self.distance = np.zeros(len(items))
        self.nearest = np.full(len(items), _MEAN, dtype=np.int8)
        self.scale = 0.0
        self.vectors = np.zeros((0, 0), dtype=np.float32)
        if not embedded:
            return
        self.vectors = _unit(np.array([e for _, e in embedded], dtype=np.float32))
        seeds = np.asarray(validated, dtype=np.float32)
        if seeds.size:
            if seeds.ndim != 2 or seeds.shape[1] != self.vectors.shape[1]:
                raise ValueError(
                    f"validated embeddings of shape {seeds.shape} do not match candidate"
                    f" embeddings of {self.vectors.shape[1]} dimensions"
                )
            start = _min_distance(self.vectors, _unit(seeds))
            self.nearest[self.rows] = _VALIDATED
        else:
            mean = self.vectors.mean(axis=0)
            norm = np.linalg.norm(mean)
            centre = mean / norm if norm > 0 else mean
            start = 1 - self.vectors @ centre
        self.distance[self.rows] = np.maximum(start, 0.0)
        self.scale = float(self.distance.max())

    def value(self) -> FloatArray:
        """Each item's diversity now: its distance over the largest distance at the start."""
        if self.scale <= 0:
            return np.zeros_like(self.distance)
        return np.clip(self.distance / self.scale, 0.0, 1.0)

    def picked(self, index: int) -> None:
        """`index` is now a centre: every item's distance to it counts."""
        row = self.row_of[index]
        if row < 0:
            return
        to_pick = np.maximum(1 - self.vectors @ self.vectors[row], 0.0)
        current = self.distance[self.rows]
        closer = to_pick < current
        self.distance[self.rows[closer]] = to_pick[closer]
        self.nearest[self.rows[closer]] = _PICK

    def reason(self, index: int) -> str:
        distance = self.distance[index]
        kind = self.nearest[index]
        if kind == _VALIDATED:
            return f"far from validated examples (distance {distance:.2f})"
        if kind == _PICK:
            return f"unlike the suggestions before it (distance {distance:.2f})"
        return f"unusual among the candidates (distance {distance:.2f} from their mean)"


def _greedy(
    items: list[_Item],
    mix: ReviewWeights,
    count: int,
    validated: Sequence[Sequence[float]] | npt.NDArray[np.floating[Any]],
) -> list[Suggestion]:
    if not items:
        return []
    fixed = np.array(
        [mix.uncertainty * i.uncertainty + mix.disagreement * i.disagreement for i in items]
    )
    coverage = _Coverage(items, validated) if mix.diversity > 0 else None
    taken = np.zeros(len(items), dtype=bool)
    chosen: list[Suggestion] = []
    for _ in range(min(count, len(items))):
        diversity = coverage.value() if coverage is not None else np.zeros(len(items))
        total = np.where(taken, -np.inf, fixed + mix.diversity * diversity)
        # Items are in tie-key order: the first of the (near-)best is the tie's winner.
        index = int(np.flatnonzero(total >= total.max() - _TIE)[0])
        chosen.append(
            _suggestion(
                items[index], float(total[index]), float(diversity[index]), mix, coverage, index
            )
        )
        taken[index] = True
        if coverage is not None:
            coverage.picked(index)
    return chosen


def _suggestion(
    item: _Item,
    score: float,
    diversity: float,
    mix: ReviewWeights,
    coverage: _Coverage | None,
    index: int,
) -> Suggestion:
    """The item as picked, its reasons ordered by what each signal added to the score."""
    said: list[tuple[float, list[str]]] = []
    if mix.uncertainty > 0:
        said.append((mix.uncertainty * item.uncertainty, item.uncertainty_reasons))
    if coverage is not None and item.candidate is not None and item.candidate.embedding is not None:
        said.append((mix.diversity * diversity, [coverage.reason(index)]))
    if mix.disagreement > 0:
        said.append((mix.disagreement * item.disagreement, item.disagreement_reasons))
    said.sort(key=lambda pair: -pair[0])
    reasons = tuple(reason for _, found in said for reason in found)
    if item.candidate is None:
        assert item.missed is not None
        assert item.image is not None
        return Suggestion(
            source_id=item.image[0],
            frame_index=item.image[1],
            score=score,
            uncertainty=0.0,
            diversity=0.0,
            disagreement=item.disagreement,
            reasons=reasons,
            missed_box=item.missed.bbox,
            missed_class_name=item.missed.class_name,
        )
    candidate = item.candidate
    return Suggestion(
        source_id=candidate.source_id,
        frame_index=candidate.frame_index,
        score=score,
        uncertainty=item.uncertainty,
        diversity=diversity,
        disagreement=item.disagreement,
        reasons=reasons,
        object_id=candidate.object_id,
    )


def _unit(vectors: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Rows scaled to length 1 (a zero row stays zero)."""
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return np.divide(vectors, norms, out=np.zeros_like(vectors), where=norms > 0)


def _min_distance(vectors: npt.NDArray[np.float32], centres: npt.NDArray[np.float32]) -> FloatArray:
    """Each row's cosine distance to its nearest centre, in chunks (bounded memory)."""
    nearest = np.empty(len(vectors))
    for start in range(0, len(vectors), _CHUNK):
        block = vectors[start : start + _CHUNK] @ centres.T
        nearest[start : start + _CHUNK] = 1 - block.max(axis=1)
    return nearest
