"""The tracker on hand-made frames: bad input, each matching pass, track life and numbering."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np
import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.tracking import Detection, Tracker, TrackerConfig
from agentic_labeling.tracking.association import assign, iou_matrix

DIM = 32
RNG = np.random.default_rng(7)
# Two unrelated appearances (random unit vectors in 32 dimensions are nearly orthogonal).
LOOKS = [v / np.linalg.norm(v) for v in RNG.standard_normal((2, DIM))]


def seen(
    x: float,
    y: float = 100.0,
    *,
    size: float = 50.0,
    score: float = 0.9,
    category: str = "person",
    look: int | None = None,
) -> Detection:
    embedding = None
    if look is not None:
        noisy = LOOKS[look] + RNG.standard_normal(DIM) * 0.1 / np.sqrt(DIM)
        embedding = noisy / np.linalg.norm(noisy)
    return Detection((x, y, x + size, y + size), score, category, embedding)


# --- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("iou_threshold", 0.0),
        ("iou_threshold", 1.5),
        ("iou_threshold", float("nan")),
        ("low_score_threshold", -0.1),
        ("high_score_threshold", 2.0),
        ("reid_threshold", 1.01),
        ("reid_threshold", float("inf")),
        ("max_age", -1),
        ("max_age", 2.5),
        ("min_hits", 0),
        ("min_hits", True),
        ("reid", "yes"),
    ],
)
def test_an_absurd_config_value_is_refused_naming_its_field(field: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        TrackerConfig(**{field: value})
    assert [v.field for v in caught.value.violations] == [field]


def test_a_low_score_threshold_above_the_high_one_is_refused() -> None:
    with pytest.raises(InvalidArgument) as caught:
        TrackerConfig(low_score_threshold=0.6, high_score_threshold=0.5)
    assert caught.value.violations[0].field == "low_score_threshold"


@pytest.mark.parametrize("frame_index", [3, 2])
def test_a_frame_not_after_the_previous_one_is_refused_and_tracking_goes_on(
    frame_index: int,
) -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert tracker.update(3, [seen(10)]) == [1]
    with pytest.raises(InvalidArgument) as caught:
        tracker.update(frame_index, [seen(500)])
    assert caught.value.violations[0].field == "frame_index"
    assert caught.value.reason == "FRAME_OUT_OF_ORDER"
    assert tracker.update(4, [seen(12)]) == [1]  # the refused frame changed nothing


@pytest.mark.parametrize("frame_index", [-1, 1.0, None, True])
def test_a_frame_index_that_is_not_a_whole_number_from_0_is_refused(
    frame_index: Any,
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        Tracker().update(frame_index, [])
    assert caught.value.violations[0].field == "frame_index"


@pytest.mark.parametrize(
    ("detection", "field"),
    [
        (Detection((10, 10, 5, 50), 0.9, "person"), "detections[1].box"),
        (Detection((10, 10, float("nan"), 50), 0.9, "person"), "detections[1].box"),
        (Detection((10, 10, 50, 50), 1.5, "person"), "detections[1].score"),
        (Detection((10, 10, 50, 50), float("nan"), "person"), "detections[1].score"),
        (
            Detection((10, 10, 50, 50), 0.9, "person", np.zeros(DIM)),
            "detections[1].embedding",
        ),
        (
            Detection((10, 10, 50, 50), 0.9, "person", np.ones(DIM + 1)),
            "detections[1].embedding",
        ),
        (
            Detection((10, 10, 50, 50), 0.9, "person", np.ones((2, DIM))),
            "detections[1].embedding",
        ),
    ],
)
def test_a_malformed_detection_is_refused_naming_it_and_changes_nothing(
    detection: Detection, field: str
) -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert tracker.update(0, [seen(300, look=0)]) == [1]
    with pytest.raises(InvalidArgument) as caught:
        tracker.update(1, [seen(302, look=0), detection])
    assert caught.value.violations[0].field == field
    # Frame 1 was not consumed, and the track was not touched.
    assert tracker.update(1, [seen(302, look=0)]) == [1]


# --- tracks ----------------------------------------------------------------------------------


def test_a_new_track_is_numbered_once_seen_on_min_hits_consecutive_frames() -> None:
    tracker = Tracker(TrackerConfig(min_hits=3))
    assert [tracker.update(f, [seen(10 + 3 * f)]) for f in range(4)] == [
        [None],
        [None],
        [1],
        [1],
    ]


def test_a_one_frame_false_detection_never_gets_a_number() -> None:
    tracker = Tracker(TrackerConfig(min_hits=2))
    assert tracker.update(0, [seen(10), seen(600)]) == [None, None]
    assert tracker.update(1, [seen(12)]) == [1]
    assert tracker.update(2, [seen(14), seen(900)]) == [1, None]


def test_separated_objects_keep_one_track_each_with_idf1_of_1(
    scenes: ModuleType,
) -> None:
    frames = []
    for f in range(40):
        truth = [
            (
                k + 1,
                (
                    100.0 + 300 * k + 4 * f,
                    100.0 + 2 * f,
                    160.0 + 300 * k + 4 * f,
                    200.0 + 2 * f,
                ),
            )
            for k in range(3)
        ]
        detections = [Detection(box, 0.9, "person") for _, box in reversed(truth)]
        frames.append(scenes.Frame(f, truth, detections))
    video = scenes.Scene(scenes.SceneConfig(), frames)
    run = scenes.track(video, TrackerConfig(min_hits=1, reid=False))
    metrics = scenes.score([video], [run])
    assert metrics["idf1"] == 1.0
    assert metrics["num_switches"] == 0
    assert {n for numbers in run.numbers for n in numbers} == {1, 2, 3}


def test_an_object_speeding_up_is_followed_by_its_predicted_box() -> None:
    # x = 2.5 f^2: by the last frame it moves 52.5 px on a 50 px box, so the boxes of
    # consecutive frames do not overlap at all; the box predicted from its velocity does.
    tracker = Tracker(TrackerConfig(min_hits=1, reid=False))
    xs = [2.5 * f * f for f in range(12)]
    assert xs[-1] - xs[-2] > 50
    assert {n for f, x in enumerate(xs) for n in tracker.update(f, [seen(x)])} == {1}


def test_a_category_never_continues_another_categorys_track() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert tracker.update(0, [seen(10, category="car")]) == [1]
    assert tracker.update(1, [seen(10, category="person")]) == [2]


def test_a_low_score_detection_continues_a_track_but_never_starts_one() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, low_score_threshold=0.1, high_score_threshold=0.5))
    assert tracker.update(0, [seen(10), seen(600, score=0.3)]) == [1, None]
    assert tracker.update(1, [seen(12, score=0.3), seen(600, score=0.3)]) == [1, None]
    assert tracker.update(2, [seen(14, score=0.05)]) == [None]  # below low: ignored


def meet_and_bounce(tracker: Tracker) -> tuple[set[int | None], set[int | None]]:
    """Two people walk into each other, stand on the same spot for 6 frames, and walk back
    where they came from: the numbers each of them got."""
    numbers_of_a, numbers_of_b = set(), set()
    for f in range(36):
        step = min(f, 15) - max(f - 20, 0)  # 0..15, 15 until frame 20, then back to 0
        a, b = seen(100.0 + 10 * step, look=0), seen(400.0 - 10 * step, look=1)
        if f % 2:  # the detector's order says nothing
            number_of_b, number_of_a = tracker.update(f, [b, a])
        else:
            number_of_a, number_of_b = tracker.update(f, [a, b])
        numbers_of_a.add(number_of_a)
        numbers_of_b.add(number_of_b)
    return numbers_of_a, numbers_of_b


def test_two_objects_that_meet_and_part_keep_their_numbers_by_appearance() -> None:
    assert meet_and_bounce(Tracker(TrackerConfig(min_hits=1))) == ({1}, {2})


def test_without_reid_two_objects_that_meet_and_part_swap_numbers() -> None:
    # Their motion before the meeting says each goes on the way it came: the wrong way.
    assert meet_and_bounce(Tracker(TrackerConfig(min_hits=1, reid=False))) == (
        {1, 2},
        {1, 2},
    )


def reappearing(tracker: Tracker) -> list[int | None]:
    """Seen walking right for 10 frames, hidden 15 frames, back 300 px away walking left."""
    answers = []
    for f in range(10):
        answers += tracker.update(f, [seen(100.0 + 5 * f, look=0)])
    for f in range(10, 25):
        tracker.update(f, [])
    for f in range(25, 30):
        answers += tracker.update(f, [seen(450.0 - 5 * f, look=0)])
    return answers


def test_reid_gives_an_object_back_its_number_after_a_gap_iou_cannot_bridge() -> None:
    assert set(reappearing(Tracker(TrackerConfig(min_hits=1)))) == {1}


def test_without_reid_the_same_object_comes_back_under_a_new_number() -> None:
    answers = reappearing(Tracker(TrackerConfig(min_hits=1, reid=False)))
    assert answers[:10] == [1] * 10
    assert set(answers[10:]) == {2}


def test_reid_never_gives_a_number_to_an_object_that_looks_different() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert tracker.update(0, [seen(100, look=0)]) == [1]
    assert tracker.update(5, [seen(600, look=1)]) == [2]


def test_a_track_unseen_for_more_than_max_age_frames_is_forgotten() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_age=5))
    assert tracker.update(0, [seen(100, look=0)]) == [1]
    assert tracker.update(6, [seen(100, look=0)]) == [1]  # 5 frames missed: still known
    assert tracker.update(13, [seen(100, look=0)]) == [2]  # 6 missed: forgotten, new number


def test_numbers_are_never_reused_once_a_track_is_forgotten() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1, max_age=0, reid=False))
    assert [tracker.update(f, [seen(100.0 + 400 * (f % 2))]) for f in range(4)] == [
        [1],
        [2],
        [3],
        [4],
    ]


def test_detections_without_embeddings_are_tracked_by_overlap_with_reid_on() -> None:
    tracker = Tracker(TrackerConfig(min_hits=1))
    assert {n for f in range(5) for n in tracker.update(f, [seen(10.0 + 2 * f)])} == {1}


# --- association -----------------------------------------------------------------------------


def test_iou_of_boxes_of_zero_area_is_0() -> None:
    boxes = np.array([[10.0, 10.0, 10.0, 20.0], [0.0, 0.0, 20.0, 20.0]])
    assert iou_matrix(boxes, boxes).tolist() == [[0.0, 0.0], [0.0, 1.0]]


def test_assign_never_returns_a_forbidden_pair() -> None:
    score = np.array([[0.9, 0.8], [0.7, 0.1]])
    allowed = np.array([[True, True], [False, False]])
    assert assign(score, allowed) == [(0, 0)]
    # Row 0 gives up its best column so that row 1 gets its only allowed one.
    assert assign(score, np.array([[True, True], [True, False]])) == [(0, 1), (1, 0)]
