"""The small deterministic pieces of AutoLabel, in-process: duplicate suppression, the
request_id, the window and the config defaults."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.labeling_defaults import DEFAULT_MIN_CONFIDENCE
from agentic_labeling.servers.auto_label_requests import (
    DEFAULT_MAX_OBJECTS_PER_IMAGE,
    check_config,
)
from agentic_labeling.servers.labeling_pipeline import batch_request_id, suppress_duplicates
from agentic_labeling.servers.labeling_window import LabelingWindow
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import labeling_pb2


def _suppress(
    boxes: list[tuple[float, float, float, float]],
    scores: list[float],
    classes: list[int],
    threshold: float = 0.5,
) -> list[int]:
    kept = suppress_duplicates(
        np.array(boxes, np.float32),
        np.array(scores, np.float32),
        np.array(classes, np.int32),
        threshold,
    )
    return [int(i) for i in kept]


def test_an_overlapping_box_of_the_same_class_keeps_only_the_most_confident() -> None:
    boxes = [(0, 0, 10, 10), (1, 0, 10, 10), (50, 50, 10, 10)]
    assert _suppress(boxes, [0.4, 0.9, 0.5], [0, 0, 0]) == [1, 2]


def test_overlapping_boxes_of_different_classes_are_both_kept() -> None:
    boxes = [(0, 0, 10, 10), (0, 0, 10, 10)]
    assert _suppress(boxes, [0.4, 0.9], [0, 1]) == [1, 0]


def test_boxes_overlapping_up_to_the_threshold_are_both_kept() -> None:
    boxes = [(0, 0, 10, 10), (5, 0, 10, 10)]  # IoU 1/3
    assert _suppress(boxes, [0.9, 0.8], [0, 0], threshold=0.34) == [0, 1]
    assert _suppress(boxes, [0.9, 0.8], [0, 0], threshold=0.33) == [0]


def test_no_boxes_keep_nothing() -> None:
    assert _suppress([], [], []) == []


def test_the_request_id_depends_on_every_part_and_nothing_else() -> None:
    parts = ("img-1", "ab" * 32, "sources/s", 0, "config")
    first = batch_request_id(*parts)
    assert batch_request_id(*parts) == first
    for index, other in enumerate(("img-2", "cd" * 32, "sources/t", 1, "other")):
        changed = list(parts)
        changed[index] = other
        assert batch_request_id(*changed) != first  # type: ignore[arg-type]


def test_the_config_fingerprint_ignores_skip_registered_only() -> None:
    settings = Settings()

    def fingerprint(**fields: object) -> str:
        config = labeling_pb2.AutoLabelConfig(class_names=["cat"], **fields)  # type: ignore[arg-type]
        return check_config(config, settings).fingerprint

    plain = fingerprint()
    assert fingerprint(skip_registered=True) == plain
    assert fingerprint(skip_masks=True) != plain
    assert fingerprint(confidence_threshold=0.25) != plain
    assert fingerprint(confidence_threshold=0.0) != plain  # an explicit 0 is not the default


def test_an_unset_confidence_threshold_is_the_one_default_and_zero_is_kept() -> None:
    settings = Settings()

    def threshold(**fields: object) -> float:
        config = labeling_pb2.AutoLabelConfig(class_names=["cat"], **fields)  # type: ignore[arg-type]
        return check_config(config, settings).min_confidence

    assert threshold() == DEFAULT_MIN_CONFIDENCE == 0.5
    assert threshold(confidence_threshold=0.0) == 0.0
    assert threshold(min_confidence=0.25) == 0.25  # the deprecated field, when above 0
    assert threshold(min_confidence=0.25, confidence_threshold=0.0) == 0.0


def test_config_defaults_come_from_the_server() -> None:
    settings = Settings(duplicate_iou_threshold=0.7)
    config = check_config(labeling_pb2.AutoLabelConfig(class_names=[" big  cat "]), settings)
    assert config.class_names == ("big cat",)
    assert config.duplicate_iou_threshold == 0.7
    assert config.max_objects_per_image == DEFAULT_MAX_OBJECTS_PER_IMAGE


def test_more_objects_per_image_than_a_batch_holds_is_refused() -> None:
    settings = Settings(max_batch_objects=50)
    with pytest.raises(InvalidArgument) as caught:
        check_config(
            labeling_pb2.AutoLabelConfig(class_names=["cat"], max_objects_per_image=51), settings
        )
    assert [v.field for v in caught.value.violations] == ["config.max_objects_per_image"]


async def test_the_window_counts_its_slots_and_waits_when_full() -> None:
    window = LabelingWindow(2)
    release = asyncio.Event()
    entered = 0

    async def hold() -> None:
        nonlocal entered
        async with window.slot():
            entered += 1
            await release.wait()

    holders = [asyncio.create_task(hold()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert (entered, window.in_flight) == (2, 2)
    holders[0].cancel()  # a cancelled holder gives its slot back
    await asyncio.sleep(0.05)
    assert (entered, window.in_flight) == (3, 2)
    release.set()
    await asyncio.gather(*holders[1:])
    assert window.in_flight == 0


def test_a_window_without_slots_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one slot"):
        LabelingWindow(0)
