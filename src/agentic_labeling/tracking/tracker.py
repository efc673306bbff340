"""Link each frame's detections to tracks: motion, overlap, then appearance.

One `Tracker` per video stream, fed frame after frame. Each frame runs three passes, after
ByteTrack (Zhang et al. 2022) and BoT-SORT's appearance matching:

1. confident detections (score >= `high_score_threshold`) against every live track, by the
   IoU of the detection with the track's box predicted at constant velocity (plus, when both
   carry one, the cosine similarity of their embeddings, which settles crossings);
2. the tracks left against the low-score detections (in [`low_score_threshold`,
   `high_score_threshold`)), asking for more overlap: a partly occluded object scores low and
   would otherwise break its track;
3. Re-ID: detections still unmatched against confirmed tracks still unmatched, by embedding
   cosine similarity alone, anywhere in the frame: an object back from behind an occluder or
   from outside the frame, too far from its predicted box for IoU.

Matching is category-aware (a car never continues a person's track) and each pass is solved as
an assignment problem (`scipy.optimize.linear_sum_assignment`). A new track is confirmed, and
gets its number, after `min_hits` consecutive frames; a confirmed track missing for more than
`max_age` frames is forgotten. Numbers start at 1 and are never reused within a Tracker.

Cost: a few small numpy matrices and an assignment per frame, about a millisecond of CPU for
eight objects with 768-dimensional embeddings (bench/tracking.py): fine on an event loop for a
few streams; numpy overhead dominates, so it grows slowly with the number of objects.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.tracking.association import assign, cosine_matrix, iou_matrix

__all__ = ["Detection", "Tracker", "TrackerConfig"]

FloatArray = npt.NDArray[np.float64]

# A low-score detection is less reliable: the second pass asks for at least this much overlap.
_LOW_SCORE_MIN_IOU = 0.5
# Share of a new observation in the track's smoothed embedding (BoT-SORT keeps 0.9 of the old).
_EMBEDDING_UPDATE = 0.1
# Alpha-beta filter gains: how far a track's box and velocity move toward what was observed.
_BOX_GAIN = 0.8
_VELOCITY_GAIN = 0.4


@dataclass(frozen=True)
class TrackerConfig:
    """Thresholds of the tracker; `reid=False` gives IoU-and-motion-only tracking."""

    iou_threshold: float = 0.3  # least IoU with a track's predicted box to continue it
    low_score_threshold: float = 0.1  # below: ignored; [low, high): only continue a track
    high_score_threshold: float = 0.5  # at or above: may continue or start a track
    reid_threshold: float = 0.7  # least cosine similarity to re-identify a lost track
    max_age: int = 60  # frames a confirmed track may go unseen before it is forgotten
    min_hits: int = 2  # consecutive frames before a new track is confirmed and numbered
    reid: bool = True  # use embeddings (pass 1 tie-breaks, pass 3 Re-ID) when detections have them

    def __post_init__(self) -> None:
        for name in ("iou_threshold", "low_score_threshold", "high_score_threshold"):
            _check_range(name, getattr(self, name), 0.0, 1.0)
        if self.iou_threshold == 0:
            raise InvalidArgument(
                "iou_threshold must be above 0: at 0 any two boxes would match",
                field="iou_threshold",
            )
        if self.low_score_threshold > self.high_score_threshold:
            raise InvalidArgument(
                f"low_score_threshold ({self.low_score_threshold}) must not exceed "
                f"high_score_threshold ({self.high_score_threshold})",
                field="low_score_threshold",
            )
        _check_range("reid_threshold", self.reid_threshold, -1.0, 1.0)
        _check_count("max_age", self.max_age, 0)
        _check_count("min_hits", self.min_hits, 1)
        if not isinstance(self.reid, bool):
            raise InvalidArgument(f"reid must be true or false, not {self.reid!r}", field="reid")


def _check_range(name: str, value: object, low: float, high: float) -> None:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        raise InvalidArgument(
            f"{name} must be a number in [{low}, {high}], not {value!r}", field=name
        )


def _check_count(name: str, value: object, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise InvalidArgument(
            f"{name} must be a whole number >= {least}, not {value!r}", field=name
        )


@dataclass(frozen=True)
class Detection:
    """One object found in one frame, as the tracker sees it."""

    box: tuple[float, float, float, float]  # x1, y1, x2, y2 in pixels
    score: float
    category: str
    # An L2-normalised appearance vector (DINOv2), or None; excluded from ==, an array has none.
    embedding: npt.NDArray[np.floating[Any]] | None = field(default=None, compare=False)


@dataclass
class _Track:
    box: FloatArray  # filtered x1, y1, x2, y2 at `last_frame`
    velocity: FloatArray  # per frame index
    category: str
    last_frame: int
    embedding: FloatArray | None
    hits: int = 1
    number: int | None = None  # set once confirmed

    def predicted(self, frame_index: int) -> FloatArray:
        return self.box + self.velocity * (frame_index - self.last_frame)


class Tracker:
    """Per-stream tracking state; not thread-safe (one stream, one caller)."""

    def __init__(self, config: TrackerConfig = TrackerConfig()) -> None:
        self.config = config
        self._tracks: list[_Track] = []
        self._last_frame: int | None = None
        self._next_number = 1

    def update(self, frame_index: int, detections: Sequence[Detection]) -> list[int | None]:
        """Take one frame's detections; return a track number per detection, or None.

        Frames come in increasing index order; a gap is allowed (missed frames age the
        tracks). None marks a detection not (yet) part of a confirmed track: too low a score,
        or a new track before `min_hits`. Raises InvalidArgument for a frame index not above
        the previous one, or a malformed detection (the field named), changing no state.
        """
        if isinstance(frame_index, bool) or not isinstance(frame_index, int) or frame_index < 0:
            raise InvalidArgument(
                f"frame_index must be a whole number >= 0, not {frame_index!r}",
                field="frame_index",
            )
        if self._last_frame is not None and frame_index <= self._last_frame:
            raise InvalidArgument(
                f"frame_index {frame_index} must be greater than the previous frame's "
                f"({self._last_frame}): frames go in increasing order, each once",
                field="frame_index",
                reason="FRAME_OUT_OF_ORDER",
            )
        boxes, embeddings = self._checked(detections)
        self._last_frame = frame_index
        self._forget_old(frame_index)

        cfg = self.config
        scores = np.array([d.score for d in detections], dtype=np.float64)
        high = [i for i in range(len(detections)) if scores[i] >= cfg.high_score_threshold]
        low = [
            i
            for i in range(len(detections))
            if cfg.low_score_threshold <= scores[i] < cfg.high_score_threshold
        ]
        confident = set(high)
        matched: dict[int, _Track] = {}  # detection index -> track

        # Pass 1: confident detections against every track, by predicted overlap.
        free = list(self._tracks)
        pairs = self._match_overlap(frame_index, free, high, detections, boxes, embeddings)
        matched.update(pairs)
        # Pass 2: the tracks left against low-score detections. ByteTrack takes only those seen
        # on the previous frame; a lost one is let in too, as an object coming out from behind
        # something is often half hidden for many frames after it was missed.
        taken = {id(t) for t in matched.values()}
        left = [t for t in self._tracks if id(t) not in taken]
        matched.update(
            self._match_overlap(frame_index, left, low, detections, boxes, None, low_pass=True)
        )
        # Pass 3: Re-ID of confirmed tracks by appearance alone.
        reidentified: dict[int, _Track] = {}
        if cfg.reid:
            taken = {id(t) for t in matched.values()}
            lost = [t for t in self._tracks if id(t) not in taken and t.number is not None]
            # Low-score detections too: a lost object often comes back partly hidden.
            unmatched = [i for i in high + low if i not in matched]
            reidentified = self._match_appearance(lost, unmatched, detections, embeddings)

        for i, track in matched.items():
            self._observe(track, frame_index, boxes[i], embeddings[i], i in confident)
        for i, track in reidentified.items():
            # Its motion no longer says where it is: start again from what is seen now.
            track.box, track.velocity, track.last_frame = (
                boxes[i].copy(),
                np.zeros(4),
                frame_index,
            )
            self._observe(track, frame_index, boxes[i], embeddings[i], i in confident)
        matched.update(reidentified)
        taken = {id(t) for t in matched.values()}
        # A tentative track must be seen on consecutive frames; one miss ends it.
        self._tracks = [t for t in self._tracks if id(t) in taken or t.number is not None]
        for i in high:
            if i not in matched:
                track = _Track(
                    box=boxes[i].copy(),
                    velocity=np.zeros(4),
                    category=detections[i].category,
                    last_frame=frame_index,
                    embedding=embeddings[i],
                )
                self._tracks.append(track)
                self._confirm_if_ready(track)
                matched[i] = track
        return [matched[i].number if i in matched else None for i in range(len(detections))]

    def _checked(
        self, detections: Sequence[Detection]
    ) -> tuple[FloatArray, list[FloatArray | None]]:
        """The detections' boxes (n, 4) and normalised embeddings, or InvalidArgument."""
        boxes = np.zeros((len(detections), 4))
        embeddings: list[FloatArray | None] = []
        dimension = next((t.embedding.size for t in self._tracks if t.embedding is not None), None)
        for i, detection in enumerate(detections):
            box = np.asarray(detection.box, dtype=np.float64)
            if (
                box.shape != (4,)
                or not np.isfinite(box).all()
                or box[2] < box[0]
                or box[3] < box[1]
            ):
                raise InvalidArgument(
                    f"box must be four finite numbers x1, y1, x2, y2 with x1 <= x2 and "
                    f"y1 <= y2, not {detection.box!r}",
                    field=f"detections[{i}].box",
                )
            boxes[i] = box
            score = detection.score
            if isinstance(score, bool) or not isinstance(score, int | float) or not 0 <= score <= 1:
                raise InvalidArgument(
                    f"score must be a number in [0, 1], not {score!r}",
                    field=f"detections[{i}].score",
                )
            embeddings.append(
                self._normalised(detection.embedding, f"detections[{i}].embedding", dimension)
            )
            if embeddings[-1] is not None:
                dimension = embeddings[-1].size
        return boxes, embeddings

    @staticmethod
    def _normalised(
        vector: npt.NDArray[np.floating[Any]] | None, name: str, dimension: int | None
    ) -> FloatArray | None:
        if vector is None:
            return None
        array = np.asarray(vector, dtype=np.float64)
        if array.ndim != 1 or array.size == 0 or not np.isfinite(array).all():
            raise InvalidArgument(
                "embedding must be a non-empty one-dimensional vector of finite numbers",
                field=name,
            )
        if dimension is not None and array.size != dimension:
            raise InvalidArgument(
                f"embedding has {array.size} dimensions where this stream's have {dimension}",
                field=name,
            )
        norm = float(np.linalg.norm(array))
        if norm == 0:
            raise InvalidArgument("embedding is all zeros: it has no direction", field=name)
        return array / norm

    def _forget_old(self, frame_index: int) -> None:
        # A track matched on frame f and missing since has missed frame_index - f - 1 frames.
        self._tracks = [
            t for t in self._tracks if frame_index - t.last_frame - 1 <= self.config.max_age
        ]

    def _match_overlap(
        self,
        frame_index: int,
        tracks: list[_Track],
        indices: list[int],
        detections: Sequence[Detection],
        boxes: FloatArray,
        embeddings: list[FloatArray | None] | None,
        *,
        low_pass: bool = False,
    ) -> dict[int, _Track]:
        if not tracks or not indices:
            return {}
        predicted = np.stack([t.predicted(frame_index) for t in tracks])
        iou = iou_matrix(predicted, boxes[indices])
        same = np.array(
            [[t.category == detections[i].category for i in indices] for t in tracks],
            dtype=bool,
        )
        least = (
            max(_LOW_SCORE_MIN_IOU, self.config.iou_threshold)
            if low_pass
            else self.config.iou_threshold
        )
        allowed = same & (iou >= least)
        score = iou
        if embeddings is not None and self.config.reid:
            # Where both sides carry an embedding, appearance adds to overlap: two crossing
            # objects overlap both predictions, but each looks like only one of them.
            score = iou + self._appearance(tracks, [embeddings[i] for i in indices])
        return {indices[c]: tracks[r] for r, c in assign(score, allowed)}

    @staticmethod
    def _appearance(tracks: list[_Track], vectors: list[FloatArray | None]) -> FloatArray:
        similarity = np.zeros((len(tracks), len(vectors)))
        rows = [r for r, t in enumerate(tracks) if t.embedding is not None]
        cols = [c for c, v in enumerate(vectors) if v is not None]
        if rows and cols:
            a = np.stack([tracks[r].embedding for r in rows])  # type: ignore[misc]
            b = np.stack([vectors[c] for c in cols])  # type: ignore[misc]
            similarity[np.ix_(rows, cols)] = cosine_matrix(a, b)
        return similarity

    def _match_appearance(
        self,
        tracks: list[_Track],
        indices: list[int],
        detections: Sequence[Detection],
        embeddings: list[FloatArray | None],
    ) -> dict[int, _Track]:
        tracks = [t for t in tracks if t.embedding is not None]
        indices = [i for i in indices if embeddings[i] is not None]
        if not tracks or not indices:
            return {}
        similarity = self._appearance(tracks, [embeddings[i] for i in indices])
        same = np.array(
            [[t.category == detections[i].category for i in indices] for t in tracks],
            dtype=bool,
        )
        allowed = same & (similarity >= self.config.reid_threshold)
        return {indices[c]: tracks[r] for r, c in assign(similarity, allowed)}

    def _observe(
        self,
        track: _Track,
        frame_index: int,
        box: FloatArray,
        embedding: FloatArray | None,
        confident: bool,
    ) -> None:
        """Move `track` to what was seen on `frame_index` (an alpha-beta filter)."""
        elapsed = max(frame_index - track.last_frame, 1)
        predicted = track.predicted(frame_index)
        if track.hits == 1:
            # Second sighting of a new track: its first real velocity estimate.
            track.velocity = (box - track.box) / elapsed
            track.box = box.copy()
        else:
            residual = box - predicted
            track.box = predicted + _BOX_GAIN * residual
            track.velocity = track.velocity + _VELOCITY_GAIN * residual / elapsed
        track.last_frame = frame_index
        track.hits += 1
        if embedding is not None and confident:
            # Low-score crops are mostly occluded: they would blur the track's appearance.
            if track.embedding is None:
                track.embedding = embedding
            else:
                mixed = (1 - _EMBEDDING_UPDATE) * track.embedding + _EMBEDDING_UPDATE * embedding
                track.embedding = mixed / np.linalg.norm(mixed)
        self._confirm_if_ready(track)

    def _confirm_if_ready(self, track: _Track) -> None:
        if track.number is None and track.hits >= self.config.min_hits:
            track.number = self._next_number
            self._next_number += 1
