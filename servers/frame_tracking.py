"""Tracking the objects of video frames within one AutoLabel stream (`track_objects`).

One `Tracker` (agentic_labeling.tracking) per video_key of a stream, fed each frame's kept
detections (boxes, scores, categories, DINOv2 embeddings) in frame order.

Order. The pipeline labels several frames at once, and they finish in any order, but a tracker
must see them in index order. So each frame takes a ticket (`StreamTracking.ticket`) when the
stream reads it: reading is sequential, and a frame whose index is not after the last frame
read for its video is refused then (INVALID_ARGUMENT on `item.frame.frame_index`, reason
FRAME_OUT_OF_ORDER: repeated or out of order). The frame then runs its models alongside the
others and waits for its turn (`FrameTurn.wait`) only to update the tracker, which is cheap,
and passes the turn on at once; registering happens after, concurrently again. A frame that
fails, is skipped (already registered) or is cancelled passes its turn on too (`finish` in a
`finally`), so one bad frame never stalls the video. No deadlock with the labeling window
or the registration queue (servers/labeling_window.py): a frame waits for its turn between its
model stages and its registration, holding a slot of neither, and only for frames read before
it.

Thresholds. The tracker's defaults (TrackerConfig), except its score thresholds, which follow
the stream's confidence threshold: every detection the stream keeps is an object and may start
a track (at the 0 that random-weight tiny models need, every detection may), so the high
threshold is lowered to it, and the low one with it when it is lower still.

Track ids. Track number n of the tracker that first ran on frame f of source s is written as
`tracks/{uuid5(s, "f/n")}`: a retried stream computes the same ids, so its batches stay
idempotent; a run resumed after an interruption (its first frames skipped as registered)
starts new tracks at the resume point rather than mixing with the old numbering.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.tracking.tracker import Detection, Tracker, TrackerConfig
from agentic_labeling.v1 import labeling_pb2

__all__ = ["FrameTurn", "StreamTracking", "track_name", "tracker_config"]


def tracker_config(min_confidence: float) -> TrackerConfig:
    """The tracker settings for a stream that keeps detections from `min_confidence` up."""
    default = TrackerConfig()
    return replace(
        default,
        low_score_threshold=min(default.low_score_threshold, min_confidence),
        high_score_threshold=min(default.high_score_threshold, min_confidence),
    )


def track_name(source_id: uuid.UUID, first_frame: int, number: int) -> str:
    """The registry name of track `number` of the tracker that started at `first_frame`."""
    return f"tracks/{uuid.uuid5(source_id, f'{first_frame}/{number}')}"


@dataclass
class _Video:
    """The tracker of one video_key and the turns of its frames."""

    tracker: Tracker
    last_index: int = -1  # of the last frame read
    tickets: int = 0  # handed out
    next_turn: int = 0
    finished: set[int] = field(default_factory=set)
    waiting: dict[int, asyncio.Future[None]] = field(default_factory=dict)
    first_frame: int | None = None  # the tracker's first frame

    def finish(self, ticket: int) -> None:
        self.finished.add(ticket)
        while self.next_turn in self.finished:
            self.finished.discard(self.next_turn)
            self.next_turn += 1
        waiter = self.waiting.get(self.next_turn)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class FrameTurn:
    """One frame's place in its video's order: wait for it, update the tracker, finish."""

    def __init__(self, video: _Video, ticket: int) -> None:
        self._video = video
        self._ticket = ticket
        self._finished = False

    async def wait(self) -> None:
        """Returns once every frame read before this one has finished its turn."""
        video = self._video
        if video.next_turn == self._ticket:
            return
        waiter = asyncio.get_running_loop().create_future()
        video.waiting[self._ticket] = waiter
        try:
            await waiter
        finally:
            del video.waiting[self._ticket]

    def track(
        self,
        source_id: uuid.UUID,
        frame_index: int,
        boxes: npt.NDArray[np.float32],
        scores: npt.NDArray[np.float32],
        categories: Sequence[str],
        embeddings: npt.NDArray[np.float32] | None,
    ) -> list[str]:
        """The track name of each detection ('' for one not in a confirmed track). Call it
        after `wait`; `boxes` are x, y, width, height in pixels."""
        video = self._video
        if video.first_frame is None:
            video.first_frame = frame_index
        detections = [
            Detection(
                box=(
                    float(box[0]),
                    float(box[1]),
                    float(box[0] + box[2]),
                    float(box[1] + box[3]),
                ),
                score=float(scores[i]),
                category=categories[i],
                embedding=None if embeddings is None else embeddings[i],
            )
            for i, box in enumerate(boxes)
        ]
        numbers = video.tracker.update(frame_index, detections)
        first = video.first_frame
        return ["" if n is None else track_name(source_id, first, n) for n in numbers]

    def finish(self) -> None:
        """Pass the turn on (idempotent)."""
        if not self._finished:
            self._finished = True
            self._video.finish(self._ticket)


class StreamTracking:
    """The trackers of one stream, one per video_key, made when a key's first frame is read
    (with the thresholds of the config in force then)."""

    def __init__(self) -> None:
        self._videos: dict[str, _Video] = {}

    def ticket(self, frame: labeling_pb2.FramePosition, min_confidence: float) -> FrameTurn | None:
        """The frame's turn, taken in reading order; None for a position the item checks
        refuse anyway (no video_key, a negative index, one past video_frame_count), so that it
        does not move its video's order on. Raises InvalidArgument for a frame that is not
        after the last one read for its video."""
        count = frame.video_frame_count
        if not frame.video_key.strip() or not 0 <= frame.frame_index < (count or 2**63):
            return None
        video = self._videos.get(frame.video_key)
        if video is None:
            tracker = Tracker(tracker_config(min_confidence))
            video = self._videos[frame.video_key] = _Video(tracker)
        if frame.frame_index <= video.last_index:
            repeated = frame.frame_index == video.last_index
            raise InvalidArgument(
                f"frame {frame.frame_index} of video {frame.video_key!r} "
                + ("was already sent" if repeated else f"comes after frame {video.last_index}")
                + " in this stream; with track_objects, send each video's frames once, in"
                " increasing frame_index order",
                field="item.frame.frame_index",
                reason="FRAME_OUT_OF_ORDER",
            )
        video.last_index = frame.frame_index
        turn = FrameTurn(video, video.tickets)
        video.tickets += 1
        return turn
