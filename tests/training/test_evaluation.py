"""evaluate_boxes on cases worked out by hand, and against pycocotools run on COCO files."""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import pytest
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.training.evaluation import (
    BACKGROUND,
    ScoredBox,
    box_iou,
    evaluate_boxes,
)

CLASSES = ["cat", "dog", "bird"]
IMAGES = [(1, 640, 480), (2, 640, 480)]


def _box(image_id: int, name: str, x: float, y: float, score: float = 1.0) -> ScoredBox:
    return ScoredBox(image_id, name, x, y, 100.0, 100.0, score)


TRUTH = [
    _box(1, "cat", 10, 10),
    _box(1, "dog", 300, 10),
    _box(2, "cat", 10, 200),
    _box(2, "bird", 400, 300),
]


def _cell(result: object, predicted: str, actual: str) -> int:
    labels = result.confusion_labels  # type: ignore[attr-defined]
    counts = result.confusion_counts  # type: ignore[attr-defined]
    return int(counts[labels.index(predicted)][labels.index(actual)])


def test_perfect_predictions_score_one_on_both_maps() -> None:
    predictions = [ScoredBox(b.image_id, b.class_name, b.x, b.y, b.w, b.h, 0.9) for b in TRUTH]
    result = evaluate_boxes(TRUTH, predictions, images=IMAGES, class_names=CLASSES)
    # COCO divides by tp + fp + machine epsilon: "1.0" is 1 - 2e-16 for a single box.
    assert (result.map50, result.map50_95) == (pytest.approx(1.0), pytest.approx(1.0))
    assert [(c.ap50, c.ap50_95, c.precision, c.recall) for c in result.per_class] == [
        (pytest.approx(1.0), pytest.approx(1.0), 1.0, 1.0)
    ] * 3
    assert [c.support for c in result.per_class] == [2, 1, 1]
    assert result.image_count == 2


def test_a_shifted_box_keeps_ap50_and_scores_the_thresholds_its_iou_reaches() -> None:
    truth = [_box(1, "cat", 0, 0)]
    shifted = [_box(1, "cat", 20, 0, 0.8)]  # overlap 80 x 100, union 120 x 100: IoU 2/3
    assert box_iou(truth[0], shifted[0]) == pytest.approx(2 / 3)
    result = evaluate_boxes(truth, shifted, images=IMAGES, class_names=["cat"])
    # Of COCO's thresholds 0.50, 0.55, ..., 0.95, four (0.50-0.65) are at most 2/3.
    assert result.map50 == pytest.approx(1.0)
    assert result.map50_95 == pytest.approx(4 / 10)
    assert result.per_class[0].ap50_95 == pytest.approx(4 / 10)


def test_an_iou_exactly_on_a_threshold_counts_as_a_match_there() -> None:
    truth = [_box(1, "cat", 0, 0)]
    shifted = [_box(1, "cat", 25, 0, 0.8)]  # overlap 75 x 100, union 125 x 100: IoU 0.6
    assert box_iou(truth[0], shifted[0]) == 0.6
    result = evaluate_boxes(truth, shifted, images=IMAGES, class_names=["cat"], iou_threshold=0.6)
    # 0.50, 0.55 and 0.60 are reached (IoU >= threshold, as COCO matches).
    assert result.map50_95 == pytest.approx(3 / 10)
    assert result.per_class[0].recall == 1.0


def test_a_confused_class_lands_in_its_confusion_cell() -> None:
    predictions = [_box(1, "cat", 10, 10, 0.9), _box(1, "cat", 300, 10, 0.8)]  # 2nd is a dog
    result = evaluate_boxes(TRUTH[:2], predictions, images=IMAGES, class_names=CLASSES)
    assert _cell(result, "cat", "cat") == 1
    assert _cell(result, "cat", "dog") == 1
    assert _cell(result, BACKGROUND, "dog") == 0
    assert _cell(result, "cat", BACKGROUND) == 0
    assert sum(map(sum, result.confusion_counts)) == 2


def test_a_missed_box_and_an_extra_box_land_in_the_background_row_and_column() -> None:
    predictions = [_box(1, "cat", 10, 10, 0.9), _box(2, "dog", 500, 370, 0.7)]
    result = evaluate_boxes(TRUTH[:1] + TRUTH[2:3], predictions, images=IMAGES, class_names=CLASSES)
    assert _cell(result, "cat", "cat") == 1
    assert _cell(result, BACKGROUND, "cat") == 1  # image 2's cat was missed
    assert _cell(result, "dog", BACKGROUND) == 1  # a dog where there is nothing
    assert result.confusion_labels == [*CLASSES, BACKGROUND]


def test_a_correct_prediction_takes_its_box_before_a_higher_scored_wrong_class() -> None:
    truth = [_box(1, "cat", 10, 10)]
    predictions = [_box(1, "dog", 10, 10, 0.9), _box(1, "cat", 12, 10, 0.8)]
    result = evaluate_boxes(truth, predictions, images=IMAGES, class_names=CLASSES)
    assert _cell(result, "cat", "cat") == 1
    assert _cell(result, "dog", BACKGROUND) == 1


def test_a_class_without_ground_truth_has_nan_ap_and_stays_out_of_the_mean() -> None:
    truth = [_box(1, "cat", 10, 10)]
    predictions = [_box(1, "cat", 10, 10, 0.9), _box(2, "bird", 10, 10, 0.5)]
    result = evaluate_boxes(truth, predictions, images=IMAGES, class_names=CLASSES)
    cat, dog, bird = result.per_class
    assert (result.map50, result.map50_95) == (pytest.approx(1.0), pytest.approx(1.0))
    assert math.isnan(bird.ap50)
    assert math.isnan(bird.ap50_95)
    assert math.isnan(bird.recall)
    assert (bird.precision, bird.support) == (0.0, 0)  # predicted, never right
    assert math.isnan(dog.precision)
    assert dog.support == 0
    assert cat.support == 1


def test_no_predictions_score_zero_instead_of_failing() -> None:
    result = evaluate_boxes(TRUTH, [], images=IMAGES, class_names=CLASSES)
    assert (result.map50, result.map50_95) == (0.0, 0.0)
    assert [(c.precision, c.recall) for c in result.per_class] == [(0.0, 0.0)] * 3
    assert _cell(result, BACKGROUND, "cat") == 2


def test_a_class_with_boxes_but_no_prediction_scores_zero() -> None:
    predictions = [ScoredBox(b.image_id, b.class_name, b.x, b.y, b.w, b.h) for b in TRUTH[:2]]
    result = evaluate_boxes(TRUTH, predictions, images=IMAGES, class_names=CLASSES)
    bird = result.per_class[2]
    assert (bird.ap50, bird.precision, bird.recall, bird.support) == (0.0, 0.0, 0.0, 1)


def test_precision_and_recall_are_taken_where_f1_is_best() -> None:
    truth = [_box(1, "cat", 0, 0), _box(1, "cat", 200, 0), _box(2, "cat", 0, 0)]
    predictions = [
        _box(1, "cat", 0, 0, 0.9),  # hit
        _box(1, "cat", 200, 0, 0.8),  # hit
        _box(2, "cat", 300, 300, 0.3),  # miss
        _box(2, "cat", 0, 0, 0.2),  # hit
    ]
    # Cut at 0.8: P 1, R 2/3, F1 0.8; at 0.2: P 3/4, R 1, F1 6/7 (best).
    result = evaluate_boxes(truth, predictions, images=IMAGES, class_names=["cat"])
    assert result.per_class[0].precision == pytest.approx(3 / 4)
    assert result.per_class[0].recall == 1.0


def test_the_diagonal_counts_the_true_positives_at_the_iou_threshold() -> None:
    truth = [_box(1, "cat", 0, 0)]
    shifted = [_box(1, "cat", 20, 0, 0.8)]  # IoU 2/3
    loose = evaluate_boxes(truth, shifted, images=IMAGES, class_names=["cat"])
    strict = evaluate_boxes(truth, shifted, images=IMAGES, class_names=["cat"], iou_threshold=0.7)
    assert _cell(loose, "cat", "cat") == 1
    assert loose.per_class[0].recall == 1.0
    assert _cell(strict, "cat", "cat") == 0
    assert strict.per_class[0].recall == 0.0
    assert _cell(strict, "cat", BACKGROUND) == 1
    assert _cell(strict, BACKGROUND, "cat") == 1


@pytest.mark.parametrize(
    ("truth", "predictions", "field"),
    [
        ([_box(1, "horse", 0, 0)], [], "ground_truth[0].class_name"),
        ([], [_box(9, "cat", 0, 0)], "predictions[0].image_id"),
        ([], [ScoredBox(1, "cat", 0, 0, 0, 10)], "predictions[0]"),
        ([ScoredBox(1, "cat", math.nan, 0, 10, 10)], [], "ground_truth[0]"),
    ],
)
def test_a_bad_box_is_refused_naming_it(
    truth: list[ScoredBox], predictions: list[ScoredBox], field: str
) -> None:
    with pytest.raises(InvalidArgument) as raised:
        evaluate_boxes(truth, predictions, images=IMAGES, class_names=CLASSES)
    assert raised.value.violations[0].field == field


def test_an_iou_threshold_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(InvalidArgument) as raised:
        evaluate_boxes(TRUTH, [], images=IMAGES, class_names=CLASSES, iou_threshold=1.5)
    assert raised.value.violations[0].field == "iou_threshold"


def _random_case(seed: int) -> tuple[list[ScoredBox], list[ScoredBox]]:
    """Ground truth on 6 images and noisy predictions: jittered, confused, missed, extra."""
    rng = random.Random(seed)
    truth: list[ScoredBox] = []
    predictions: list[ScoredBox] = []
    for image_id in range(1, 7):
        for _ in range(rng.randint(0, 5)):
            w, h = rng.uniform(20, 150), rng.uniform(20, 150)
            x, y = rng.uniform(0, 640 - w), rng.uniform(0, 480 - h)
            name = rng.choice(CLASSES[:2])  # "bird" never appears: a class without support
            truth.append(ScoredBox(image_id, name, x, y, w, h))
            if rng.random() < 0.8:
                jitter = rng.uniform(-15, 15)
                label = name if rng.random() < 0.8 else rng.choice(CLASSES)
                predictions.append(
                    ScoredBox(image_id, label, max(0.0, x + jitter), y, w, h, rng.random())
                )
        for _ in range(rng.randint(0, 2)):
            predictions.append(
                ScoredBox(
                    image_id,
                    rng.choice(CLASSES),
                    rng.uniform(0, 500),
                    rng.uniform(0, 300),
                    rng.uniform(20, 100),
                    rng.uniform(20, 100),
                    rng.random(),
                )
            )
    return truth, predictions


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_maps_equal_pycocotools_run_on_coco_files(tmp_path: Path, seed: int) -> None:
    truth, predictions = _random_case(seed)
    images = [(i, 640, 480) for i in range(1, 7)]
    # The COCO files are written here, by hand, not by the module's own conversion.
    ground_file, results_file = tmp_path / "instances.json", tmp_path / "results.json"
    ground_file.write_text(
        json.dumps(
            {
                "images": [
                    {"id": i, "width": w, "height": h, "file_name": f"{i}.png"}
                    for i, w, h in images
                ],
                "categories": [{"id": k + 10, "name": n} for k, n in enumerate(CLASSES)],
                "annotations": [
                    {
                        "id": 100 + j,
                        "image_id": b.image_id,
                        "category_id": CLASSES.index(b.class_name) + 10,
                        "bbox": [b.x, b.y, b.w, b.h],
                        "area": b.w * b.h,
                        "iscrowd": 0,
                    }
                    for j, b in enumerate(truth)
                ],
            }
        )
    )
    results_file.write_text(
        json.dumps(
            [
                {
                    "image_id": b.image_id,
                    "category_id": CLASSES.index(b.class_name) + 10,
                    "bbox": [b.x, b.y, b.w, b.h],
                    "score": b.score,
                }
                for b in predictions
            ]
        )
    )
    ground = COCO(str(ground_file))
    scoring = COCOeval(ground, ground.loadRes(str(results_file)), "bbox")
    scoring.evaluate()
    scoring.accumulate()
    scoring.summarize()
    result = evaluate_boxes(truth, predictions, images=images, class_names=CLASSES)
    assert result.map50_95 == pytest.approx(scoring.stats[0], abs=1e-12)
    assert result.map50 == pytest.approx(scoring.stats[1], abs=1e-12)
    # Per class, COCOeval restricted to that category's id.
    for k, score in enumerate(result.per_class):
        scoring.params.catIds = [k + 10]
        scoring.evaluate()
        scoring.accumulate()
        scoring.summarize()
        if score.support:
            assert score.ap50_95 == pytest.approx(scoring.stats[0], abs=1e-12)
            assert score.ap50 == pytest.approx(scoring.stats[1], abs=1e-12)
        else:
            assert scoring.stats[0] == -1
            assert math.isnan(score.ap50_95)
