"""Video tracking: identity metrics and speed of the tracker, IoU-only against IoU + Re-ID.

Both variants run on the same synthetic videos (bench/tracking_scenes.py: objects moving,
crossing, occluding each other and pillars, leaving the frame and coming back; noisy boxes,
missed detections, false positives; embeddings with a known appearance signal):

1. **IoU only**: `TrackerConfig(reid=False)`: constant-velocity prediction, IoU assignment and
   ByteTrack's low-score pass; embeddings ignored.
2. **IoU + Re-ID**: `TrackerConfig()`, the defaults: the same, plus appearance in the first
   pass and Re-ID of lost tracks by embedding cosine similarity.

Metrics are motmetrics' over all videos together (IoU >= 0.5 with the true box to match):
IDF1 (how long each object keeps one id), MOTA, ID switches, fragmentations, misses, false
positives. Speed: frames per second through `Tracker.update` alone (the detections are made
beforehand), one thread, by this thread's CPU time (what a shared, busy machine does not
inflate) and by the wall clock; the variants alternate video by video, so noise hits both.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agentic_labeling.tracking import TrackerConfig
from bench.machine import cpu_machine
from bench.tracking_scenes import SceneConfig, TrackingRun, generate, score, track

__all__ = ["main", "markdown", "measure"]

VARIANTS = {"IoU only": TrackerConfig(reid=False), "IoU + Re-ID": TrackerConfig()}


def measure(videos: int, scene: SceneConfig) -> dict[str, Any]:
    """Run every variant over `videos` scenes made from `scene` (seeds seed .. seed+videos-1)."""
    scenes = [generate(_with_seed(scene, scene.seed + i)) for i in range(videos)]
    runs: dict[str, list[TrackingRun]] = {name: [] for name in VARIANTS}
    for video in scenes:
        for name, config in VARIANTS.items():
            runs[name].append(track(video, config))
    frames = sum(len(s.frames) for s in scenes)
    results = []
    for name, config in VARIANTS.items():
        seconds = sum(r.seconds for r in runs[name])
        cpu_seconds = sum(r.cpu_seconds for r in runs[name])
        results.append(
            {
                "variant": name,
                "config": {k: getattr(config, k) for k in config.__dataclass_fields__},
                "metrics": score(scenes, runs[name]),
                "seconds": seconds,
                "frames_per_s": frames / seconds if seconds > 0 else float("inf"),
                "cpu_seconds": cpu_seconds,
                "frames_per_cpu_s": frames / cpu_seconds if cpu_seconds > 0 else float("inf"),
            }
        )
    return {
        "machine": cpu_machine(),
        "scenes": {
            "videos": videos,
            "frames": frames,
            "truth_boxes": sum(len(f.truth) for s in scenes for f in s.frames),
            "detections": sum(len(f.detections) for s in scenes for f in s.frames),
            "config": {
                k: list(v) if isinstance(v, tuple) else v
                for k, v in ((k, getattr(scene, k)) for k in scene.__dataclass_fields__)
            },
        },
        "results": results,
    }


def _with_seed(scene: SceneConfig, seed: int) -> SceneConfig:
    fields = {k: getattr(scene, k) for k in scene.__dataclass_fields__}
    return SceneConfig(**{**fields, "seed": seed})


def markdown(report: dict[str, Any]) -> str:
    scenes, machine = report["scenes"], report["machine"]
    config = scenes["config"]
    about = (
        f"{scenes['videos']} synthetic videos of {config['frames']} frames "
        f"({config['width']}x{config['height']}), {config['objects']} objects each "
        f"({', '.join(config['categories'])}), {config['occluders']} pillars, seeds "
        f"{config['seed']}..{config['seed'] + scenes['videos'] - 1}: "
        f"{scenes['truth_boxes']:,} true boxes, {scenes['detections']:,} detections "
        f"({scenes['detections'] / scenes['frames']:.1f} per frame), "
        f"{config['dim']}-dimensional embeddings. Measured on {machine['cpus']} CPU cores "
        f"({machine['platform']}), one thread."
    )
    header = (
        "| Tracker | IDF1 | MOTA | ID switches | Fragmentations | Misses | False positives "
        "| Frames/s (CPU) | Frames/s (wall) |"
    )
    lines = [about, "", header, "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in report["results"]:
        m = r["metrics"]
        lines.append(
            f"| {r['variant']} | {m['idf1']:.3f} | {m['mota']:.3f} | {m['num_switches']:.0f} "
            f"| {m['num_fragmentations']:.0f} | {m['num_misses']:,.0f} "
            f"| {m['num_false_positives']:,.0f} | {r['frames_per_cpu_s']:,.0f} "
            f"| {r['frames_per_s']:,.0f} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.tracking", description=__doc__)
    parser.add_argument("--videos", type=int, default=10, help="synthetic videos (one seed each)")
    parser.add_argument("--frames", type=int, default=300, help="frames per video")
    parser.add_argument("--objects", type=int, default=8, help="objects per video")
    parser.add_argument("--dim", type=int, default=768, help="embedding dimensions")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first video")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    if min(args.videos, args.frames, args.objects, args.dim) < 1:
        parser.error("--videos, --frames, --objects and --dim must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    scene = SceneConfig(frames=args.frames, objects=args.objects, dim=args.dim, seed=args.seed)
    report = measure(args.videos, scene)
    print(markdown(report))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
