"""Active learning on constructed data: each signal picks what it should (issue 18 item 4).

Pure: candidates, embeddings and a trained model's detections are built here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from uuid import UUID

import numpy as np
import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.values.records import BoundingBox, ObjectRecord
from agentic_labeling.training.review_ranking import (
    Candidate,
    ModelDetection,
    ReviewWeights,
    Suggestion,
    candidates_from_records,
    model_detections,
    rank_for_review,
)

UNCERTAINTY = ReviewWeights(uncertainty=1)
DIVERSITY = ReviewWeights(diversity=1)
DISAGREEMENT = ReviewWeights(disagreement=1)
SOURCE = UUID(int=1000)
IMAGE = (SOURCE, 0)


def _id(n: int) -> UUID:
    return UUID(int=n)


def _box(x: float, y: float = 0, size: float = 10) -> BoundingBox:
    return BoundingBox(x, y, size, size)


def _candidate(
    n: int,
    confidence: float = 0.9,
    *,
    quality: float | None = None,
    embedding: Sequence[float] | None = None,
    x: float | None = None,
    name: str = "cat",
) -> Candidate:
    return Candidate(
        object_id=_id(n),
        source_id=SOURCE,
        frame_index=0,
        bbox=_box(20.0 * n if x is None else x),
        class_name=name,
        confidence=confidence,
        quality_score=quality,
        embedding=embedding,
    )


def _ids(suggestions: Sequence[Suggestion]) -> list[UUID | None]:
    return [s.object_id for s in suggestions]


def _direction(axis: int, noise: float, seed: int, dim: int = 8) -> list[float]:
    vector = np.random.default_rng(seed).normal(scale=noise, size=dim)
    vector[axis] += 1.0
    return [float(v) for v in vector]


def test_uncertainty_ranks_confidence_nearest_the_threshold_first() -> None:
    candidates = [_candidate(1, 0.95), _candidate(2, 0.52), _candidate(3, 0.05), _candidate(4, 0.4)]
    ranked = rank_for_review(candidates, weights=UNCERTAINTY, count=4)
    assert _ids(ranked) == [_id(2), _id(4), _id(1), _id(3)]
    assert ranked[0].uncertainty == pytest.approx(1 - 0.02 / 0.5)
    assert ranked[0].reasons == ("confidence 0.52 near the threshold 0.50",)


def test_uncertainty_peaks_at_the_requested_decision_threshold() -> None:
    candidates = [_candidate(1, 0.5), _candidate(2, 0.3)]
    ranked = rank_for_review(candidates, weights=UNCERTAINTY, count=2, decision_threshold=0.3)
    assert _ids(ranked) == [_id(2), _id(1)]
    assert ranked[0].uncertainty == 1.0


def test_a_poor_mask_raises_uncertainty_but_not_above_a_borderline_detection() -> None:
    candidates = [
        _candidate(1, 0.99, quality=0.98),
        _candidate(2, 0.99, quality=0.2),
        _candidate(3, 0.5, quality=0.98),
    ]
    ranked = rank_for_review(candidates, weights=UNCERTAINTY, count=3)
    assert _ids(ranked) == [_id(3), _id(2), _id(1)]
    assert "poor mask (SAM2 predicted IoU 0.20)" in ranked[1].reasons


def test_diversity_ranks_the_embedding_outlier_first() -> None:
    candidates = [_candidate(n, embedding=_direction(0, 0.05, n)) for n in range(1, 9)]
    candidates.append(_candidate(9, embedding=_direction(5, 0.05, 9)))
    validated = [_direction(0, 0.05, 100 + n) for n in range(5)]
    ranked = rank_for_review(candidates, weights=DIVERSITY, count=3, validated_embeddings=validated)
    assert ranked[0].object_id == _id(9)
    assert ranked[0].diversity == 1.0
    assert ranked[0].reasons[0].startswith("far from validated examples (distance ")


def test_k_centre_picks_one_per_cluster_before_a_second_from_any() -> None:
    cluster_a = [_candidate(n, embedding=_direction(0, 0.05, n)) for n in range(1, 11)]
    cluster_b = [_candidate(n, embedding=_direction(1, 0.05, n)) for n in range(11, 21)]
    outlier = _candidate(21, embedding=_direction(2, 0.05, 21))
    ranked = rank_for_review([*cluster_a, *cluster_b, outlier], weights=DIVERSITY, count=4)
    first_three = set(_ids(ranked[:3]))
    assert _id(21) in first_three
    assert first_three & {c.object_id for c in cluster_a}
    assert first_three & {c.object_id for c in cluster_b}
    assert [s.score for s in ranked] == sorted((s.score for s in ranked), reverse=True)
    assert ranked[3].diversity < ranked[2].diversity


def test_validated_examples_steer_diversity_to_the_uncovered_cluster() -> None:
    cluster_a = [_candidate(n, embedding=_direction(0, 0.05, n)) for n in range(1, 6)]
    cluster_b = [_candidate(n, embedding=_direction(1, 0.05, n)) for n in range(6, 11)]
    validated = [_direction(0, 0.05, 100 + n) for n in range(5)]
    ranked = rank_for_review(
        [*cluster_a, *cluster_b], weights=DIVERSITY, count=1, validated_embeddings=validated
    )
    assert ranked[0].object_id in {c.object_id for c in cluster_b}


def test_disagreement_finds_extra_different_class_and_missed_objects() -> None:
    agreed = _candidate(1, 0.9, x=0)
    other_class = _candidate(2, 0.9, x=100)
    extra = _candidate(3, 0.8, x=200)
    model = {
        IMAGE: [
            ModelDetection("cat", _box(1), 0.9),
            ModelDetection("dog", _box(101), 0.85),
            ModelDetection("cat", _box(300), 0.7),
            ModelDetection("cat", _box(400), 0.2),  # below the threshold: ignored
        ]
    }
    ranked = rank_for_review(
        [agreed, other_class, extra], weights=DISAGREEMENT, count=10, model_detections=model
    )
    by_object = {s.object_id: s for s in ranked}
    assert by_object[_id(2)].disagreement == 0.85
    assert by_object[_id(2)].reasons == ("trained model says 'dog' (IoU 0.82), not 'cat'",)
    assert by_object[_id(3)].disagreement == 0.8
    assert by_object[_id(3)].reasons == ("trained model does not find this 'cat'",)
    assert by_object[_id(1)].disagreement == 0.0
    missed = by_object[None]
    assert missed.missed_box == _box(300)
    assert missed.missed_class_name == "cat"
    assert (missed.source_id, missed.frame_index) == IMAGE
    assert missed.reasons == ("trained model found a 'cat' no auto-label covers (score 0.70)",)
    assert _ids(ranked) == [_id(2), _id(3), None, _id(1)]


def test_a_model_box_covered_by_an_object_outside_the_candidates_is_not_missed() -> None:
    model = {IMAGE: [ModelDetection("cat", _box(300), 0.7)]}
    ranked = rank_for_review(
        [_candidate(1, x=0)],
        weights=DISAGREEMENT,
        count=10,
        model_detections=model,
        image_boxes={IMAGE: [_box(0), _box(301)]},
    )
    assert all(s.object_id is not None for s in ranked)


def test_without_a_model_disagreement_is_a_confident_detection_with_a_poor_mask() -> None:
    candidates = [
        _candidate(1, 0.95, quality=0.95),
        _candidate(2, 0.95, quality=0.3),
        _candidate(3, 0.4, quality=0.3),
        _candidate(4, 0.95),
    ]
    ranked = rank_for_review(candidates, weights=DISAGREEMENT, count=4)
    assert ranked[0].object_id == _id(2)
    assert ranked[0].disagreement == pytest.approx(0.65)
    assert ranked[0].reasons == (
        "confident detection (0.95) with a poor mask (SAM2 predicted IoU 0.30)",
    )


def test_weights_mix_the_signals() -> None:
    borderline = _candidate(1, 0.5, embedding=_direction(0, 0.01, 1))
    twin = _candidate(2, 0.95, embedding=_direction(0, 0.01, 2))
    outlier = _candidate(3, 0.95, embedding=_direction(4, 0.01, 3))
    candidates = [borderline, twin, outlier]
    validated = [_direction(0, 0.01, 50)]

    def first(weights: ReviewWeights) -> UUID | None:
        ranked = rank_for_review(
            candidates, weights=weights, count=1, validated_embeddings=validated
        )
        return ranked[0].object_id

    assert first(ReviewWeights(uncertainty=1)) == _id(1)
    assert first(ReviewWeights(diversity=1)) == _id(3)
    assert first(ReviewWeights(uncertainty=3, diversity=1)) == _id(1)
    assert first(ReviewWeights(uncertainty=1, diversity=3)) == _id(3)
    mixed = rank_for_review(
        candidates,
        weights=ReviewWeights(uncertainty=1, diversity=1),
        count=3,
        validated_embeddings=validated,
    )
    top = mixed[0]
    assert top.score == pytest.approx((top.uncertainty + top.diversity) / 2)


def test_all_zero_weights_count_every_signal_equally() -> None:
    assert ReviewWeights().normalised() == ReviewWeights(1 / 3, 1 / 3, 1 / 3)
    ranked = rank_for_review([_candidate(1, 0.5, quality=0.9)], weights=ReviewWeights(), count=1)
    assert ranked[0].score == pytest.approx((ranked[0].uncertainty + ranked[0].disagreement) / 3)


def test_count_caps_the_suggestions() -> None:
    candidates = [_candidate(n, 0.5 + n / 100) for n in range(1, 21)]
    ranked = rank_for_review(candidates, weights=UNCERTAINTY, count=5)
    assert _ids(ranked) == [_id(n) for n in range(1, 6)]


def test_ties_are_broken_by_object_id() -> None:
    candidates = [_candidate(n, 0.7) for n in (5, 3, 9, 1)]
    ranked = rank_for_review(candidates, weights=UNCERTAINTY, count=4)
    assert _ids(ranked) == [_id(1), _id(3), _id(5), _id(9)]


def test_every_suggestion_says_why() -> None:
    candidates = [
        _candidate(n, 0.3 + n / 20, quality=0.5, embedding=_direction(n % 3, 0.1, n))
        for n in range(1, 11)
    ]
    ranked = rank_for_review(
        candidates,
        weights=ReviewWeights(1, 1, 1),
        count=10,
        validated_embeddings=[_direction(0, 0.1, 99)],
    )
    assert len(ranked) == 10
    assert all(s.reasons for s in ranked)


def test_no_candidates_give_no_suggestions() -> None:
    assert rank_for_review([], weights=UNCERTAINTY, count=5) == []


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"count": 0}, "count"),
        ({"count": 1001}, "count"),
        ({"decision_threshold": 0.0}, "decision_threshold"),
        ({"decision_threshold": 1.5}, "decision_threshold"),
        ({"weights": ReviewWeights(uncertainty=-1)}, "strategy.uncertainty"),
        ({"weights": ReviewWeights(diversity=float("nan"))}, "strategy.diversity"),
    ],
)
def test_bad_options_are_refused_naming_the_field(options: dict[str, object], field: str) -> None:
    arguments: dict[str, object] = {"weights": UNCERTAINTY, "count": 5, **options}
    with pytest.raises(InvalidArgument) as raised:
        rank_for_review([_candidate(1)], **arguments)  # type: ignore[arg-type]
    assert raised.value.violations[0].field == field


@dataclass(frozen=True)
class _Predicted:
    class_id: int
    x: float
    y: float
    w: float
    h: float
    score: float


def test_predicted_boxes_become_model_detections_by_image_with_class_names() -> None:
    other = (UUID(int=2000), 3)
    found = model_detections(
        [IMAGE, other],
        [[_Predicted(1, 5, 6, 7, 8, 0.9)], []],
        ["cat", "dog"],
    )
    assert found == {
        IMAGE: [ModelDetection("dog", BoundingBox(5, 6, 7, 8), 0.9)],
        other: [],
    }


def test_an_unrecorded_mask_quality_is_no_quality_at_all() -> None:
    record = ObjectRecord(
        id=_id(1),
        source_id=SOURCE,
        frame_index=0,
        category_id=_id(50),
        category_name="cat",
        bbox=_box(0),
        confidence=0.9,
        area=100,
        has_mask=False,
        has_embedding=True,
        detection_model="florence2",
        is_validated=False,
        validated_by=None,
        validate_time=None,
        quality_score=0.0,
        track_id=None,
        attributes={},
        create_time=datetime.now(UTC),
        update_time=datetime.now(UTC),
    )
    (candidate,) = candidates_from_records([record], {_id(1): [1.0, 0.0]})
    assert candidate.quality_score is None
    assert candidate.class_name == "cat"
    assert candidate.embedding == [1.0, 0.0]
