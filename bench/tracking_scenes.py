"""Synthetic videos with known ground truth for the tracker, and their MOT metrics.

A scene is what a detector would report on a video, frame by frame, plus the truth behind it;
no pixels. Objects move with noisy, slowly changing velocities (a random walk on velocity, so
motion is predictable over a few frames and not over many), cross and occlude each other (each
has a depth; the nearer one hides the farther), pass behind static occluders (pillars as tall
as the frame), and leave the frame and come back later elsewhere. Per frame:

- truth: every object at least half visible (`Frame.truth`, MOTChallenge-style: occluded and
  off-screen parts count as not visible), with its true box clipped to the frame;
- detections: each true object is detected with probability 1 - `miss_rate`, with a noisy box;
  a mostly visible one (>= 80%) at a high score, a partly occluded one at a low score (what
  ByteTrack's second pass is for); plus false positives at low scores and a few at high ones.
- embeddings with a known appearance signal: each object has a base vector (objects of one
  category share part of it, so they look alike more than unlike objects do); a detection's
  embedding is its base plus noise, a partly occluded one mixed with something else. DINOv2
  on real crops would do the same thing, less cleanly.

Everything comes from `SceneConfig.seed`. `track` runs a tracker over a scene, timing only its
`update` calls; `score` computes motmetrics' MOTA, IDF1 and ID switches against the truth.
Shared by bench/tracking.py and the tracker's tests (tests/tracking/).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from agentic_labeling.tracking import Detection, Tracker, TrackerConfig

__all__ = [
    "METRICS",
    "Frame",
    "Scene",
    "SceneConfig",
    "TrackingRun",
    "generate",
    "score",
    "track",
]

Box = tuple[float, float, float, float]
FloatArray = npt.NDArray[np.float64]

# What `score` reports, by motmetrics' names.
METRICS = (
    "idf1",
    "mota",
    "num_switches",
    "num_fragmentations",
    "num_false_positives",
    "num_misses",
    "mostly_tracked",
    "num_unique_objects",
)
# Sampling grid (per side) for an object's visible fraction.
_GRID = 12


@dataclass(frozen=True)
class SceneConfig:
    frames: int = 300
    objects: int = 8
    width: int = 1280
    height: int = 720
    categories: tuple[str, ...] = ("person", "car")
    occluders: int = 2  # vertical pillars
    miss_rate: float = 0.05  # chance a visible object is not detected on a frame
    box_noise: float = 0.03  # std of each box coordinate, as a fraction of the box size
    false_positives: float = 0.5  # low-score false detections per frame (mean)
    high_false_positives: float = 0.02  # high-score false detections per frame (mean)
    dim: int = 64  # embedding dimensions
    embedding_noise: float = 0.5  # noise norm relative to the (unit) base vector
    category_likeness: float = 0.4  # cosine between two objects' bases within a category
    leave_and_return: bool = True  # an object leaving the frame comes back after a while
    seed: int = 0


@dataclass(frozen=True)
class Frame:
    index: int
    truth: list[tuple[int, Box]]  # (object id, box) of every object at least half visible
    detections: list[Detection]


@dataclass(frozen=True)
class Scene:
    config: SceneConfig
    frames: list[Frame]


@dataclass
class _Object:
    identity: int
    category: str
    size: FloatArray  # w, h
    centre: FloatArray
    velocity: FloatArray
    depth: float  # smaller is nearer
    base: FloatArray  # unit appearance vector
    away: int = 0  # frames left before it comes back (0: in the scene)

    def box(self) -> FloatArray:
        half = self.size / 2
        return np.concatenate([self.centre - half, self.centre + half])


@dataclass
class TrackingRun:
    """What a tracker answered on each frame of a scene, and the time its updates took: wall
    clock, and this thread's CPU time (what a busy, shared machine does not inflate)."""

    numbers: list[list[int | None]] = field(default_factory=list)
    seconds: float = 0.0
    cpu_seconds: float = 0.0


def _unit(vector: FloatArray) -> FloatArray:
    return vector / np.linalg.norm(vector)


def _bases(config: SceneConfig, rng: np.random.Generator, categories: list[str]) -> FloatArray:
    """Unit vectors whose cosine within a category is about `category_likeness`."""
    shared = {c: _unit(rng.standard_normal(config.dim)) for c in config.categories}
    weight = np.sqrt(config.category_likeness)
    return np.stack(
        [
            _unit(
                weight * shared[c] + np.sqrt(1 - weight**2) * _unit(rng.standard_normal(config.dim))
            )
            for c in categories
        ]
    )


def _visible_fractions(
    boxes: FloatArray, depths: FloatArray, pillars: FloatArray, width: int, height: int
) -> FloatArray:
    """Share of each of `boxes` (n, 4) inside the frame and hidden neither by a pillar nor by a
    nearer box (smaller depth), sampled on a grid of points in each box."""
    steps = (np.arange(_GRID) + 0.5) / _GRID
    xs = boxes[:, :1] + steps * (boxes[:, 2:3] - boxes[:, :1])  # (n, grid)
    ys = boxes[:, 1:2] + steps * (boxes[:, 3:4] - boxes[:, 1:2])
    covers = np.concatenate([pillars.reshape(-1, 4), boxes])  # (k, 4)
    # Which covers count for each box: every pillar, and the boxes nearer than it.
    active = np.concatenate(
        [
            np.ones((len(boxes), len(pillars)), dtype=bool),
            depths[None, :] < depths[:, None],
        ],
        axis=1,
    )
    in_x = (xs[:, :, None] >= covers[:, 0]) & (xs[:, :, None] <= covers[:, 2])  # (n, grid, k)
    in_y = (ys[:, :, None] >= covers[:, 1]) & (ys[:, :, None] <= covers[:, 3])
    hidden = (in_y[:, :, None, :] & in_x[:, None, :, :] & active[:, None, None, :]).any(axis=-1)
    inside = ((ys >= 0) & (ys < height))[:, :, None] & ((xs >= 0) & (xs < width))[:, None, :]
    return np.asarray((inside & ~hidden).mean(axis=(1, 2)), dtype=np.float64)


def _enter(obj: _Object, config: SceneConfig, rng: np.random.Generator) -> None:
    """Place `obj` just inside a random edge, heading into the frame."""
    w, h = config.width, config.height
    speed = rng.uniform(2, 7)
    side = int(rng.integers(4))
    margin = obj.size / 2 + 1
    if side == 0:  # left
        obj.centre = np.array([margin[0], rng.uniform(margin[1], h - margin[1])])
        angle = rng.uniform(-0.8, 0.8)
    elif side == 1:  # right
        obj.centre = np.array([w - margin[0], rng.uniform(margin[1], h - margin[1])])
        angle = np.pi + rng.uniform(-0.8, 0.8)
    elif side == 2:  # top
        obj.centre = np.array([rng.uniform(margin[0], w - margin[0]), margin[1]])
        angle = np.pi / 2 + rng.uniform(-0.8, 0.8)
    else:  # bottom
        obj.centre = np.array([rng.uniform(margin[0], w - margin[0]), h - margin[1]])
        angle = -np.pi / 2 + rng.uniform(-0.8, 0.8)
    obj.velocity = speed * np.array([np.cos(angle), np.sin(angle)])


def _move(obj: _Object, config: SceneConfig, rng: np.random.Generator) -> None:
    if obj.away:
        obj.away -= 1
        if obj.away == 0:
            _enter(obj, config, rng)
        return
    obj.velocity = obj.velocity + rng.normal(0, 0.3, 2)
    speed = float(np.linalg.norm(obj.velocity))
    if speed > 8:
        obj.velocity *= 8 / speed
    obj.centre = obj.centre + obj.velocity
    x, y = obj.centre
    if not (0 <= x < config.width and 0 <= y < config.height):
        if config.leave_and_return:
            obj.away = int(rng.integers(5, 25))
        else:  # bounce back in
            obj.velocity = -obj.velocity
            obj.centre = np.clip(obj.centre, 0, [config.width - 1, config.height - 1])


def _noisy_embedding(
    own: FloatArray, visible: float, config: SceneConfig, rng: np.random.Generator
) -> FloatArray:
    mixed = (
        own
        if visible >= 0.8
        else visible * own + (1 - visible) * _unit(rng.standard_normal(config.dim))
    )
    noise = rng.standard_normal(config.dim) * config.embedding_noise / np.sqrt(config.dim)
    return _unit(mixed + noise)


def _false_positive(config: SceneConfig, rng: np.random.Generator, score: float) -> Detection:
    w, h = rng.uniform(30, 100, 2)
    x, y = rng.uniform(0, config.width - w), rng.uniform(0, config.height - h)
    return Detection(
        box=(float(x), float(y), float(x + w), float(y + h)),
        score=score,
        category=str(rng.choice(config.categories)),
        embedding=_unit(rng.standard_normal(config.dim)),
    )


def generate(config: SceneConfig) -> Scene:
    """A reproducible synthetic video (see the module docstring)."""
    rng = np.random.default_rng(config.seed)
    categories = [str(rng.choice(config.categories)) for _ in range(config.objects)]
    bases = _bases(config, rng, categories)
    objects = []
    for i in range(config.objects):
        size = np.array([rng.uniform(40, 90), rng.uniform(60, 140)])
        obj = _Object(
            identity=i + 1,
            category=categories[i],
            size=size,
            centre=rng.uniform(size, [config.width - size[0], config.height - size[1]]),
            velocity=rng.normal(0, 3, 2),
            depth=float(rng.uniform()),
            base=bases[i],
        )
        objects.append(obj)
    pillars = np.zeros((config.occluders, 4))
    for row in pillars:
        x = rng.uniform(0.15, 0.85) * config.width
        row[:] = [x, 0.0, x + rng.uniform(50, 90), float(config.height)]

    frames = []
    for index in range(config.frames):
        truth: list[tuple[int, Box]] = []
        detections: list[Detection] = []
        present = [o for o in objects if not o.away]
        boxes = np.array([o.box() for o in present]).reshape(-1, 4)
        depths = np.array([o.depth for o in present])
        visibility = _visible_fractions(boxes, depths, pillars, config.width, config.height)
        for obj, box, visible in zip(present, boxes, visibility, strict=True):
            if visible < 0.5:
                continue
            clipped = np.clip(box, 0, [config.width, config.height] * 2)
            truth.append((obj.identity, _as_box(clipped)))
            if rng.uniform() < config.miss_rate:
                continue
            size = np.tile(clipped[2:] - clipped[:2], 2)
            noisy = clipped + rng.normal(0, config.box_noise, 4) * size
            noisy = np.concatenate(
                [np.minimum(noisy[:2], noisy[2:]), np.maximum(noisy[:2], noisy[2:])]
            )
            high = visible >= 0.8
            detections.append(
                Detection(
                    box=_as_box(noisy),
                    score=float(rng.uniform(0.6, 0.95) if high else rng.uniform(0.2, 0.5)),
                    category=obj.category,
                    embedding=_noisy_embedding(obj.base, visible, config, rng),
                )
            )
        for _ in range(rng.poisson(config.false_positives)):
            detections.append(_false_positive(config, rng, float(rng.uniform(0.1, 0.45))))
        for _ in range(rng.poisson(config.high_false_positives)):
            detections.append(_false_positive(config, rng, float(rng.uniform(0.5, 0.7))))
        order = rng.permutation(len(detections))  # a detector's order says nothing
        frames.append(Frame(index, truth, [detections[i] for i in order]))
        for obj in objects:
            _move(obj, config, rng)
    return Scene(config, frames)


def _as_box(values: FloatArray) -> Box:
    return (float(values[0]), float(values[1]), float(values[2]), float(values[3]))


def without_embeddings(scene: Scene) -> Scene:
    """The same scene with every embedding removed (what a box-only detector reports)."""
    frames = [
        Frame(
            f.index,
            f.truth,
            [Detection(d.box, d.score, d.category) for d in f.detections],
        )
        for f in scene.frames
    ]
    return Scene(scene.config, frames)


def track(scene: Scene, config: TrackerConfig) -> TrackingRun:
    """Run a fresh Tracker over `scene`, timing its `update` calls alone."""
    tracker = Tracker(config)
    run = TrackingRun()
    for frame in scene.frames:
        started, cpu_started = time.perf_counter(), time.thread_time()
        numbers = tracker.update(frame.index, frame.detections)
        run.seconds += time.perf_counter() - started
        run.cpu_seconds += time.thread_time() - cpu_started
        run.numbers.append(numbers)
    return run


def accumulate(scene: Scene, run: TrackingRun) -> Any:
    """A motmetrics MOTAccumulator of `run` against the scene's truth (IoU >= 0.5 matches)."""
    import motmetrics  # dev-only dependency: imported where used

    accumulator = motmetrics.MOTAccumulator(auto_id=True)
    for frame, numbers in zip(scene.frames, run.numbers, strict=True):
        hypotheses = [
            (n, d.box) for n, d in zip(numbers, frame.detections, strict=True) if n is not None
        ]
        distances = motmetrics.distances.iou_matrix(
            _xywh([b for _, b in frame.truth]),
            _xywh([b for _, b in hypotheses]),
            max_iou=0.5,
        )
        accumulator.update([i for i, _ in frame.truth], [n for n, _ in hypotheses], distances)
    return accumulator


def score(scenes: Sequence[Scene], runs: Sequence[TrackingRun]) -> dict[str, float]:
    """MOTA, IDF1, ID switches and the rest of `METRICS` over all `scenes` together."""
    import motmetrics

    accumulators = [accumulate(s, r) for s, r in zip(scenes, runs, strict=True)]
    names = [str(i) for i in range(len(accumulators))]
    summary = motmetrics.metrics.create().compute_many(
        accumulators, metrics=list(METRICS), names=names, generate_overall=True
    )
    overall = summary.loc["OVERALL"]
    return {name: float(overall[name]) for name in METRICS}


def _xywh(boxes: Sequence[Box]) -> FloatArray:
    if not boxes:
        return np.zeros((0, 4))
    array = np.asarray(boxes, dtype=np.float64)
    return np.concatenate([array[:, :2], array[:, 2:] - array[:, :2]], axis=1)
