"""The orchestrator's per-stream tracking: frames reach the tracker in the order they were read
whatever order they finish in, a failed frame never stalls its video, a repeated or earlier
frame is refused, and track names are deterministic (servers/frame_tracking.py)."""

from __future__ import annotations

import asyncio
import random
import uuid

import numpy as np
import numpy.typing as npt
import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.servers.frame_tracking import (
    FrameTurn,
    StreamTracking,
    track_name,
    tracker_config,
)
from agentic_labeling.v1 import labeling_pb2

SOURCE = uuid.UUID("0e4f6c8a-1b2c-4d5e-8f90-123456789abc")


def _position(key: str, index: int) -> labeling_pb2.FramePosition:
    return labeling_pb2.FramePosition(video_key=key, frame_index=index)


def _box(x: float) -> npt.NDArray[np.float32]:
    return np.array([[x, 10.0, 20.0, 20.0]], dtype=np.float32)  # x, y, width, height


def _turn(tracking: StreamTracking, key: str, index: int, threshold: float = 0.5) -> FrameTurn:
    turn = tracking.ticket(_position(key, index), threshold)
    assert turn is not None
    return turn


def _track_one_box(turn: FrameTurn, index: int) -> list[str]:
    return turn.track(SOURCE, index, _box(2.0 * index), np.array([0.9], np.float32), ["cat"], None)


async def test_frames_that_finish_in_any_order_reach_the_tracker_in_reading_order() -> None:
    tracking = StreamTracking()
    turns = [_turn(tracking, "clip", i) for i in range(20)]
    seen: list[int] = []
    names: dict[int, list[str]] = {}
    rng = random.Random(7)

    async def frame(index: int) -> None:
        turn = turns[index]
        try:
            for _ in range(rng.randrange(1, 30)):  # the models, finishing in shuffled order
                await asyncio.sleep(0)
            await turn.wait()
            seen.append(index)
            names[index] = _track_one_box(turn, index)  # the real tracker refuses disorder
        finally:
            turn.finish()

    await asyncio.gather(*(frame(i) for i in reversed(range(20))))
    assert seen == list(range(20))
    # One box moving steadily: one track once confirmed (min_hits frames), the same name after.
    confirmed = {n for i in range(2, 20) for n in names[i]}
    assert len(confirmed) == 1
    assert "" not in confirmed


async def test_a_frame_that_fails_before_its_turn_lets_the_next_frames_go_on() -> None:
    tracking = StreamTracking()
    first, failed, last = (_turn(tracking, "clip", i) for i in (0, 1, 2))
    failed.finish()  # say its image was corrupt: it never waits
    waiting = asyncio.create_task(last.wait())
    await asyncio.sleep(0)
    assert not waiting.done(), "frame 2 waits for frame 0"
    first.finish()
    await asyncio.wait_for(waiting, timeout=30)


async def test_a_cancelled_waiting_frame_passes_its_turn_on() -> None:
    tracking = StreamTracking()
    first, middle, last = (_turn(tracking, "clip", i) for i in range(3))
    middle_task = asyncio.create_task(middle.wait())
    last_task = asyncio.create_task(last.wait())
    await asyncio.sleep(0)
    middle_task.cancel()
    middle.finish()
    first.finish()
    await asyncio.wait_for(last_task, timeout=30)


@pytest.mark.parametrize("index", [3, 2], ids=["repeated", "earlier"])
def test_a_frame_not_after_the_last_one_read_is_refused_naming_frame_index(index: int) -> None:
    tracking = StreamTracking()
    assert tracking.ticket(_position("clip", 3), 0.5) is not None
    with pytest.raises(InvalidArgument) as caught:
        tracking.ticket(_position("clip", index), 0.5)
    assert caught.value.reason == "FRAME_OUT_OF_ORDER"
    assert [v.field for v in caught.value.violations] == ["item.frame.frame_index"]
    # The refused frame changed nothing: the next frame and other videos go on.
    assert tracking.ticket(_position("clip", 4), 0.5) is not None
    assert tracking.ticket(_position("other", 0), 0.5) is not None


def test_a_position_the_item_checks_refuse_gets_no_turn() -> None:
    tracking = StreamTracking()
    assert tracking.ticket(_position("", 1), 0.5) is None
    assert tracking.ticket(_position("clip", -1), 0.5) is None
    beyond = labeling_pb2.FramePosition(video_key="clip", frame_index=9, video_frame_count=9)
    assert tracking.ticket(beyond, 0.5) is None
    assert tracking.ticket(_position("clip", 0), 0.5) is not None


def test_track_names_depend_only_on_source_first_frame_and_number() -> None:
    assert track_name(SOURCE, 0, 1) == track_name(SOURCE, 0, 1)
    others = {track_name(SOURCE, 0, 2), track_name(SOURCE, 5, 1), track_name(uuid.uuid4(), 0, 1)}
    assert track_name(SOURCE, 0, 1) not in others
    assert len(others) == 3
    assert track_name(SOURCE, 0, 1).startswith("tracks/")


def test_every_detection_a_stream_keeps_may_start_a_track() -> None:
    """Random-weight tiny models give near-0 confidences, kept at threshold 0."""
    assert tracker_config(0.0).high_score_threshold == 0.0
    assert tracker_config(0.0).low_score_threshold == 0.0
    default = tracker_config(0.9)  # above the tracker's own thresholds: they stay
    assert (default.low_score_threshold, default.high_score_threshold) == (0.1, 0.5)


async def test_zero_confidence_detections_form_tracks_at_threshold_0() -> None:
    tracking = StreamTracking()
    names = []
    for index in range(4):
        turn = _turn(tracking, "tiny", index, 0.0)
        await turn.wait()
        names.append(
            turn.track(SOURCE, index, _box(index), np.array([0.0], np.float32), ["cat"], None)
        )
        turn.finish()
    assert names[0] == [""]
    assert len({n for [n] in names[1:]}) == 1
    assert names[3] != [""]
