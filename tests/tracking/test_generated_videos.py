"""The tracker on generated videos with known truth, scored by motmetrics (issue 16's target).

The videos (bench/tracking_scenes.py) have objects crossing, hiding behind each other and behind
pillars, leaving the frame and coming back; noisy boxes, missed detections, false positives;
embeddings with a known appearance signal. The same videos as `python -m bench.tracking
--videos 4 --dim 64`, so these figures and BENCHMARKS.md's come from one generator.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from agentic_labeling.tracking import TrackerConfig

pytestmark = pytest.mark.slow
SEEDS = range(4)


@dataclass
class Scored:
    videos: list[Any]
    reid: dict[str, float]
    iou_only: dict[str, float]


@pytest.fixture(scope="module")
def scored(scenes: ModuleType) -> Scored:
    videos = [scenes.generate(scenes.SceneConfig(seed=seed)) for seed in SEEDS]
    reid = [scenes.track(v, TrackerConfig()) for v in videos]
    iou_only = [scenes.track(v, TrackerConfig(reid=False)) for v in videos]
    return Scored(videos, scenes.score(videos, reid), scenes.score(videos, iou_only))


def test_a_generated_video_is_the_same_for_the_same_seed(scenes: ModuleType) -> None:
    config = scenes.SceneConfig(frames=30, seed=11)
    first, second = scenes.generate(config), scenes.generate(config)
    assert [f.truth for f in first.frames] == [f.truth for f in second.frames]
    assert [f.detections for f in first.frames] == [f.detections for f in second.frames]
    for a, b in zip(first.frames, second.frames, strict=True):
        for x, y in zip(a.detections, b.detections, strict=True):
            assert np.array_equal(x.embedding, y.embedding)


def test_generated_videos_have_crossings_returns_and_unsure_detections(scored: Scored) -> None:
    returns = crossings = unsure = 0
    for video in scored.videos:
        frames_seen: dict[int, list[int]] = {}
        for frame in video.frames:
            for identity, _ in frame.truth:
                frames_seen.setdefault(identity, []).append(frame.index)
            boxes = np.array([box for _, box in frame.truth])
            if len(boxes) > 1:
                left = np.maximum(boxes[:, None, 0], boxes[None, :, 0])
                right = np.minimum(boxes[:, None, 2], boxes[None, :, 2])
                top = np.maximum(boxes[:, None, 1], boxes[None, :, 1])
                bottom = np.minimum(boxes[:, None, 3], boxes[None, :, 3])
                touching = (right > left) & (bottom > top)
                crossings += int((touching.sum() - len(boxes)) // 2)
            # True objects without a confident detection (missed, or scored low: half hidden).
            unsure += len(frame.truth) - sum(d.score >= 0.5 for d in frame.detections)
        for indices in frames_seen.values():
            returns += sum(b - a > 10 for a, b in itertools.pairwise(indices))
    assert returns >= 10  # gone (hidden or out of the frame) for 10+ frames, then back
    assert crossings >= 100  # overlapping pairs of true boxes, over all frames
    assert unsure >= 100


def test_reid_reaches_an_idf1_of_at_least_0_9(scored: Scored) -> None:
    assert scored.reid["idf1"] >= 0.9


def test_reid_switches_ids_less_often_than_iou_only(scored: Scored) -> None:
    assert scored.reid["num_switches"] < scored.iou_only["num_switches"]
    assert scored.reid["idf1"] > scored.iou_only["idf1"]
