"""Real-size Florence-2, SAM2 and DINOv2: in-process (how peers work) against Triton.

One "image" of work is what the orchestrator does for each image: detect a fixed list of
classes with Florence-2, segment every box with SAM2, embed every box (masked) with DINOv2.
Images with no box stop after detection, in every variant. Variants, run side by side in one
process on the same images:

1. `in_process_single`: the three models loaded in this process, one image at a time (how
   autodistill, ultralytics auto_annotate, CVAT and Label Studio's ML backend work).
2. `in_process_batched`: the same models, `--batch-size` images per call (the ceiling).
3. `triton_<k>`: through Triton (model_repository/, dynamic batching) with k concurrent
   streams, each stream labelling one image at a time, for each `--concurrency` level and
   each `--max-queue-delay-us` (every delay restarts Triton on a copy of the repository with
   that `max_queue_delay_microseconds` in every config).

Reported per variant: images/s, per-image latency p50/p95, boxes per image (the variants must
do the same work), Triton's average batch size per model (inference_count / execution_count,
deltas around the run), and GPU memory: torch.cuda.max_memory_allocated for in-process, the
peak of nvidia-smi's memory.used during the run (less its reading before Triton started) for
Triton. Ratios: each Triton level over one-at-a-time and over batched. A JSON of everything
goes to `--out`; a markdown table for BENCHMARKS.md goes to stdout.

Weights: `<models-dir>/florence2`, `/sam2`, `/dinov2` in transformers format, else the hub ids
of agentic_labeling.models.loading (Triton resolves them the same way). The in-process models
load with the same code and dtype as the served ones.

On a GPU machine with real weights (the only figures that count):

    python -m bench.models_gpu --models-dir /models --device cuda --images 200 \\
        --concurrency 1,4,16 --max-queue-delay-us 0,20000,100000 --out models_gpu.json

Smoke run on CPU with tiny random models (proves the script runs end to end; its numbers are
labelled "smoke, not a benchmark" and mean nothing):

    alabel models make-tiny /tmp/tiny-models
    python -m bench.models_gpu --models-dir /tmp/tiny-models --device cpu --images 8 \\
        --concurrency 1,4 --max-detections 4 --out /tmp/models_gpu_smoke.json

`--device cuda` without a visible GPU exits with status 2 before loading anything.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import io
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFilter

from agentic_labeling.clients.triton_models import TritonModels
from agentic_labeling.errors import DomainError
from agentic_labeling.images import decode_image
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.models.florence2 import DetectionSettings, Florence2Detector
from agentic_labeling.models.loading import resolve_weights
from agentic_labeling.models.sam2 import Sam2Segmenter
from agentic_labeling.triton_server import (
    TritonLaunch,
    default_model_repository,
    query_status,
    start_triton,
)

__all__ = [
    "DEFAULT_CLASSES",
    "SMOKE_LABEL",
    "Workload",
    "batch_deltas",
    "image_size",
    "machine",
    "main",
    "positive_int_list",
    "run_streams",
    "synthetic_images",
    "triton_counts",
]

MODELS = ("florence2", "sam2", "dinov2")
# Shapes the synthetic images hold, then everyday classes: a real Florence-2 finds the first.
DEFAULT_CLASSES = ("circle", "rectangle", "triangle", "person", "car", "dog")
SMOKE_LABEL = "smoke, not a benchmark"
# Fewer parameters than this: a tiny random test model (the smallest real one, DINOv2-small,
# has 22M).
_TINY_PARAMETERS = 5_000_000
_MAX_PIXELS = 40_000_000  # as the served models' max_image_pixels
_IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
_QUEUE_DELAY = re.compile(r"(max_queue_delay_microseconds\s*:\s*)(\d+)")
_MiB = 1024 * 1024

Device = Literal["cuda", "cpu"]
VariantKind = Literal["in_process_single", "in_process_batched", "triton"]


# --- images ----------------------------------------------------------------------------------


def synthetic_images(
    count: int, *, width: int = 640, height: int = 480, seed: int = 0
) -> list[bytes]:
    """`count` JPEG "photos": a shaded background with circles, rectangles and triangles.

    Reproducible: the same arguments give the same bytes.
    """
    images = []
    for index in range(count):
        rng = np.random.default_rng([seed, index])
        top, bottom = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        ramp = np.linspace(0.0, 1.0, height)[:, None, None]
        background = (top * (1 - ramp) + bottom * ramp).repeat(width, axis=1)
        noise = rng.normal(0.0, 6.0, (height, width, 3))
        image = Image.fromarray(np.clip(background + noise, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(2, 7))):
            side = int(rng.integers(min(width, height) // 10, min(width, height) // 3))
            x0, y0 = int(rng.integers(0, width - side)), int(rng.integers(0, height - side))
            colour = tuple(int(c) for c in rng.integers(0, 256, 3))
            shape = int(rng.integers(0, 3))
            if shape == 0:
                draw.ellipse((x0, y0, x0 + side, y0 + side), fill=colour)
            elif shape == 1:
                aspect = float(rng.uniform(0.5, 1.5))
                draw.rectangle((x0, y0, x0 + side, y0 + int(side * aspect)), fill=colour)
            else:
                draw.polygon(
                    [(x0 + side // 2, y0), (x0, y0 + side), (x0 + side, y0 + side)], colour
                )
        image = image.filter(ImageFilter.GaussianBlur(0.8))
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        images.append(buffer.getvalue())
    return images


def _directory_images(directory: Path, count: int) -> list[bytes]:
    files = sorted(p for p in directory.iterdir() if p.suffix.lower() in _IMAGE_SUFFIXES)
    if not files:
        raise SystemExit(f"--images-dir {directory}: no image files ({', '.join(_IMAGE_SUFFIXES)})")
    return [p.read_bytes() for p in files[:count]]


# --- what is measured --------------------------------------------------------------------------


@dataclass
class VariantResult:
    """One variant's run over every image."""

    name: str
    kind: VariantKind
    description: str
    images: int
    seconds: float
    images_per_s: float
    latency_ms_p50: float
    latency_ms_p95: float
    boxes_per_image: float
    streams: int | None = None
    batch_size: int | None = None
    max_queue_delay_us: int | None = None
    # Per model: inferences, executions and their ratio, the average batch Triton formed.
    triton_batches: dict[str, dict[str, float | None]] = field(default_factory=dict)
    gpu_memory_mib: float | None = None
    gpu_memory_source: str = ""
    over_one_at_a_time: float | None = None
    over_batched: float | None = None


def _variant(
    name: str,
    kind: VariantKind,
    description: str,
    seconds: float,
    latencies_s: Sequence[float],
    boxes: Sequence[int],
    **extra: Any,
) -> VariantResult:
    latencies_ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    return VariantResult(
        name=name,
        kind=kind,
        description=description,
        images=len(boxes),
        seconds=seconds,
        images_per_s=len(boxes) / seconds,
        latency_ms_p50=float(np.percentile(latencies_ms, 50)),
        latency_ms_p95=float(np.percentile(latencies_ms, 95)),
        boxes_per_image=float(np.mean(boxes)),
        **extra,
    )


@dataclass(frozen=True)
class Workload:
    classes: tuple[str, ...]
    max_detections: int

    @property
    def settings(self) -> DetectionSettings:
        return DetectionSettings(max_detections=self.max_detections)


# --- in process --------------------------------------------------------------------------------


@dataclass
class InProcessModels:
    """The three models in this process, loaded as the served model.py files load them."""

    detector: Florence2Detector
    segmenter: Sam2Segmenter
    embedder: Dinov2Embedder

    @classmethod
    def load(cls, weights: dict[str, str], device: str) -> InProcessModels:
        return cls(
            detector=Florence2Detector.load(weights["florence2"], device=device),
            segmenter=Sam2Segmenter.load(weights["sam2"], device=device),
            embedder=Dinov2Embedder.load(weights["dinov2"], device=device),
        )

    def parameters(self) -> dict[str, int]:
        modules: dict[str, torch.nn.Module] = {
            "florence2": self.detector.model,
            "sam2": self.segmenter.model,
            "dinov2": self.embedder.model,
        }
        return {name: sum(p.numel() for p in m.parameters()) for name, m in modules.items()}

    def label(self, images: Sequence[bytes], workload: Workload) -> list[int]:
        """Decode, detect, segment every box, embed every masked box; boxes per image."""
        pixels = [decode_image(data, max_pixels=_MAX_PIXELS).pixels for data in images]
        found = self.detector.detect(
            pixels, [workload.classes] * len(pixels), [workload.settings] * len(pixels)
        )
        boxes = [np.array([d.box for d in image], np.float32).reshape(-1, 4) for image in found]
        with_boxes = [i for i, image_boxes in enumerate(boxes) if len(image_boxes)]
        if with_boxes:
            chosen = [pixels[i] for i in with_boxes]
            chosen_boxes = [boxes[i] for i in with_boxes]
            masks = self.segmenter.segment(chosen, chosen_boxes)
            self.embedder.embed(chosen, chosen_boxes, [m.masks for m in masks])
        return [len(image_boxes) for image_boxes in boxes]


def _run_in_process(
    models: InProcessModels, images: Sequence[bytes], workload: Workload, batch_size: int
) -> tuple[float, list[float], list[int]]:
    """Wall time, each image's latency (its call's time) and boxes per image."""
    latencies: list[float] = []
    boxes: list[int] = []
    start = time.perf_counter()
    for first in range(0, len(images), batch_size):
        called = time.perf_counter()
        boxes.extend(models.label(images[first : first + batch_size], workload))
        elapsed = time.perf_counter() - called
        latencies.extend([elapsed] * (len(boxes) - len(latencies)))
    return time.perf_counter() - start, latencies, boxes


def _reset_peak_memory(device: Device) -> None:
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()


def _peak_memory_mib(device: Device) -> float | None:
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() / _MiB


def measure_in_process(
    weights: dict[str, str],
    device: Device,
    images: Sequence[bytes],
    workload: Workload,
    batch_size: int,
    warmup: int,
) -> tuple[list[VariantResult], dict[str, int]]:
    """One-at-a-time and batched, on one set of loaded models; the models' parameter counts."""
    models = InProcessModels.load(weights, device)
    try:
        parameters = models.parameters()
        warm = list(images[: max(1, warmup)])
        _run_in_process(models, warm, workload, 1)
        _run_in_process(models, warm, workload, batch_size)
        results = []
        variants: tuple[tuple[int, VariantKind, str], ...] = (
            (1, "in_process_single", "in-process, one image at a time"),
            (batch_size, "in_process_batched", f"in-process, batch {batch_size}"),
        )
        for size, kind, description in variants:
            _reset_peak_memory(device)
            seconds, latencies, boxes = _run_in_process(models, images, workload, size)
            results.append(
                _variant(
                    kind,
                    kind,
                    description,
                    seconds,
                    latencies,
                    boxes,
                    batch_size=size,
                    gpu_memory_mib=_peak_memory_mib(device),
                    gpu_memory_source="torch.cuda.max_memory_allocated" if device == "cuda" else "",
                )
            )
        return results, parameters
    finally:
        del models
        gc.collect()
        if device == "cuda":
            torch.cuda.empty_cache()


# --- through Triton ----------------------------------------------------------------------------


async def _label_served(models: TritonModels, image: bytes, workload: Workload) -> int:
    found = await models.detect(image, workload.classes, max_detections=workload.max_detections)
    if len(found.boxes) == 0:
        return 0
    segmented = await models.segment(image, found.boxes)
    await models.embed(image, found.boxes, segmented.masks)
    return len(found.boxes)


async def run_streams(
    models: TritonModels, images: Sequence[bytes], workload: Workload, streams: int
) -> tuple[float, list[float], list[int]]:
    """`streams` concurrent loops, each labelling the next unclaimed image: wall time, each
    image's latency and its boxes (as `_run_in_process`)."""
    latencies = [0.0] * len(images)
    boxes = [0] * len(images)
    unclaimed = iter(range(len(images)))

    async def stream() -> None:
        for index in unclaimed:  # shared: each stream takes the next image
            called = time.perf_counter()
            boxes[index] = await _label_served(models, images[index], workload)
            latencies[index] = time.perf_counter() - called

    start = time.perf_counter()
    await asyncio.gather(*(stream() for _ in range(streams)))
    return time.perf_counter() - start, latencies, boxes


def triton_counts(address: str) -> dict[str, tuple[int, int]]:
    """Per model of the Triton at `address`: (inference_count, execution_count) so far."""
    status = query_status(address, timeout_s=30.0)
    if status.error:
        raise RuntimeError(f"Triton at {address} did not answer: {status.error}")
    return {m.name: (m.inference_count, m.execution_count) for m in status.models}


def batch_deltas(
    before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]
) -> dict[str, dict[str, float | None]]:
    """Per model: inferences and executions between two `triton_counts`, and their ratio."""
    deltas: dict[str, dict[str, float | None]] = {}
    for model in MODELS:
        inferences = after.get(model, (0, 0))[0] - before.get(model, (0, 0))[0]
        executions = after.get(model, (0, 0))[1] - before.get(model, (0, 0))[1]
        deltas[model] = {
            "inferences": inferences,
            "executions": executions,
            "average_batch_size": inferences / executions if executions else None,
        }
    return deltas


class GpuMemorySampler:
    """Peak of nvidia-smi's memory.used (all GPUs summed, MiB) while running, in a thread."""

    def __init__(self, interval_s: float = 0.25) -> None:
        self.interval_s = interval_s
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    @staticmethod
    def read() -> float | None:
        if shutil.which("nvidia-smi") is None:
            return None
        try:
            output = subprocess.run(
                ["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits"],
                capture_output=True,
                text=True,
                timeout=10,
                check=True,
            ).stdout
            return float(sum(float(line) for line in output.split()))
        except (OSError, ValueError, subprocess.SubprocessError):
            return None

    def _sample(self) -> None:
        while True:
            used = self.read()
            if used is not None:
                self.peak = used if self.peak is None else max(self.peak, used)
            if self._stop.wait(self.interval_s):
                return

    def __enter__(self) -> GpuMemorySampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def _measure_server(
    address: str,
    images: Sequence[bytes],
    workload: Workload,
    concurrency: Sequence[int],
    warmup: int,
    delay_us: int | None,
    name_suffix: str,
    memory_baseline: float | None,
    device: Device,
) -> list[VariantResult]:
    """Every concurrency level against the server at `address`, after a warm-up."""
    results = []
    async with TritonModels(address, deadline_s=600.0) as models:
        if warmup:
            await run_streams(models, images[:warmup], workload, max(concurrency))
        for streams in concurrency:
            before = await asyncio.to_thread(triton_counts, address)
            with contextlib.ExitStack() as stack:
                sampler = stack.enter_context(GpuMemorySampler()) if device == "cuda" else None
                seconds, latencies, boxes = await run_streams(models, images, workload, streams)
            after = await asyncio.to_thread(triton_counts, address)
            memory = None if sampler is None or sampler.peak is None else sampler.peak
            if memory is not None and memory_baseline is not None:
                memory -= memory_baseline
            plural = "" if streams == 1 else "s"
            results.append(
                _variant(
                    f"triton_{streams}{name_suffix}",
                    "triton",
                    f"Triton, {streams} concurrent stream{plural}",
                    seconds,
                    latencies,
                    boxes,
                    streams=streams,
                    max_queue_delay_us=delay_us,
                    triton_batches=batch_deltas(before, after),
                    gpu_memory_mib=memory,
                    gpu_memory_source=(
                        ""
                        if memory is None
                        else "nvidia-smi memory.used peak"
                        + (" minus before Triton started" if memory_baseline is not None else "")
                    ),
                )
            )
    return results


def configured_queue_delays(repository: Path) -> dict[str, int]:
    """max_queue_delay_microseconds of each model in a repository's config.pbtxt files."""
    delays = {}
    for model in MODELS:
        found = _QUEUE_DELAY.search((repository / model / "config.pbtxt").read_text())
        if found is not None:
            delays[model] = int(found.group(2))
    return delays


def repository_with_delay(repository: Path, delay_us: int, destination: Path) -> Path:
    """A copy of `repository` whose every model waits at most `delay_us` to fill a batch."""
    shutil.copytree(repository, destination, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for config in destination.glob("*/config.pbtxt"):
        text, replaced = _QUEUE_DELAY.subn(rf"\g<1>{delay_us}", config.read_text())
        if replaced != 1:
            raise SystemExit(
                f"{config}: expected one max_queue_delay_microseconds, found {replaced}"
            )
        config.write_text(text)
    return destination


def measure_triton(
    args: argparse.Namespace,
    images: Sequence[bytes],
    workload: Workload,
    work_dir: Path,
) -> list[VariantResult]:
    """Every concurrency level on each server: an external one, or one started per delay."""
    concurrency: list[int] = args.concurrency
    if args.triton_url:
        return asyncio.run(
            _measure_server(
                args.triton_url,
                images,
                workload,
                concurrency,
                args.warmup,
                None,
                "",
                None,
                args.device,
            )
        )
    repository: Path = args.model_repository or default_model_repository()
    delays: list[int | None] = list(args.max_queue_delay_us) or [None]
    results: list[VariantResult] = []
    for delay in delays:
        served = repository
        if delay is not None:
            served = repository_with_delay(repository, delay, work_dir / f"repository-{delay}")
        configured = set(configured_queue_delays(served).values())
        shown = configured.pop() if len(configured) == 1 else None
        baseline = GpuMemorySampler.read() if args.device == "cuda" else None
        handle = start_triton(
            TritonLaunch(
                model_repository=served,
                grpc_port=0,
                http_port=0,
                metrics_port=0,
                models_dir=args.models_dir,
                log_file=work_dir / f"tritonserver-{'config' if delay is None else delay}.log",
                device="gpu" if args.device == "cuda" else "cpu",
                ready_timeout_s=args.ready_timeout_s,
            )
        )
        try:
            results += asyncio.run(
                _measure_server(
                    handle.address,
                    images,
                    workload,
                    concurrency,
                    args.warmup,
                    shown,
                    "" if len(delays) == 1 else f"_delay_{delay}",
                    baseline,
                    args.device,
                )
            )
        finally:
            handle.stop()
    return results


# --- the report ----------------------------------------------------------------------------


def _gpu_description() -> list[str]:
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        output = subprocess.run(
            [
                "nvidia-smi",
                "--query-gpu=name,memory.total,driver_version",
                "--format=csv,noheader",
            ],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in output.splitlines() if line.strip()]


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    return {
        "cpu": _cpu_model(),
        "cpu_cores_usable": cores,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "gpus": _gpu_description(),
    }


def add_ratios(results: list[VariantResult]) -> dict[str, float]:
    """Each variant over one-at-a-time and over batched; the headline ratios by name."""
    by_kind = {r.kind: r for r in results if r.kind != "triton"}
    single = by_kind["in_process_single"].images_per_s
    batched = by_kind["in_process_batched"].images_per_s
    headline: dict[str, float] = {}
    for result in results:
        result.over_one_at_a_time = result.images_per_s / single
        result.over_batched = result.images_per_s / batched
    served = [r for r in results if r.kind == "triton"]
    if served:
        top = max(r.streams or 0 for r in served)
        for result in served:
            if result.streams == top:
                headline[f"{result.name}_over_in_process_batched"] = result.images_per_s / batched
                headline[f"{result.name}_over_one_at_a_time"] = result.images_per_s / single
    return headline


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def markdown(report: dict[str, Any], results: Sequence[VariantResult]) -> str:
    """The table (with its command and machine) to paste into BENCHMARKS.md."""
    title = "Models" + (f": {SMOKE_LABEL.upper()}" if report["smoke"] else "")
    lines = [f"### {title}", ""]
    if report["smoke"]:
        lines += [
            f"**{SMOKE_LABEL}**: {'; '.join(report['smoke_reasons'])}. These numbers prove the"
            " script runs end to end; they are not performance figures.",
            "",
        ]
    gpus = ", ".join(report["machine"]["gpus"]) or "no GPU"
    lines += [
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']['cpu']} ({report['machine']['cpu_cores_usable']} cores),"
        f" {gpus}; torch {report['machine']['torch']}, device {report['settings']['device']}.",
        "",
        f"Workload per image: detect {len(report['settings']['classes'])} classes (at most"
        f" {report['settings']['max_detections']} boxes) → segment every box → embed every"
        f" masked box; {report['images']['count']} images ({report['images']['source']}).",
        "",
        "| Variant | Queue delay (µs) | Images/s | vs one-at-a-time | vs batched | p50 (ms)"
        " | p95 (ms) | Boxes/image | Triton batch florence2 / sam2 / dinov2 | GPU memory (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in results:
        batches = (
            " / ".join(
                _number(r.triton_batches[m]["average_batch_size"], 2)
                for m in MODELS
                if m in r.triton_batches
            )
            if r.triton_batches
            else "-"
        )
        lines.append(
            f"| {r.description} | {'-' if r.max_queue_delay_us is None else r.max_queue_delay_us}"
            f" | {_number(r.images_per_s, 2)} | {_number(r.over_one_at_a_time, 2)}"
            f" | {_number(r.over_batched, 2)} | {_number(r.latency_ms_p50)}"
            f" | {_number(r.latency_ms_p95)} | {_number(r.boxes_per_image)} | {batches}"
            f" | {_number(r.gpu_memory_mib, 0)} |"
        )
    if report["ratios"]:
        lines += ["", "Ratios: " + ", ".join(f"{k} = {v:.2f}" for k, v in report["ratios"].items())]
    if not report["smoke"]:
        lines += ["", "Targets (issue 8): " + "; ".join(_targets(report["ratios"]))]
    return "\n".join(lines)


def _targets(ratios: dict[str, float]) -> list[str]:
    verdicts = []
    for key, value in ratios.items():
        target = 0.9 if "over_in_process_batched" in key else 3.0
        verdicts.append(f"{key} ≥ {target}: {'met' if value >= target else 'NOT met'}")
    return verdicts


# --- command line --------------------------------------------------------------------------


def _int_list(text: str) -> list[int]:
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected integers separated by commas: {text!r}"
        ) from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers: {text!r}")
    return values


def positive_int_list(text: str) -> list[int]:
    """argparse type: "1,4,16" as [1, 4, 16], every value above zero."""
    values = _int_list(text)
    if 0 in values:
        raise argparse.ArgumentTypeError(f"expected positive integers: {text!r}")
    return values


def image_size(text: str) -> tuple[int, int]:
    """argparse type: "640x480" as (640, 480), each side at least 32."""
    found = re.fullmatch(r"(\d+)x(\d+)", text)
    if found is None or int(found.group(1)) < 32 or int(found.group(2)) < 32:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, at least 32x32: {text!r}")
    return int(found.group(1)), int(found.group(2))


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python -m bench.models_gpu",
        description="Florence-2 → SAM2 → DINOv2 per image: in-process one at a time, in-process"
        " batched, and through Triton with concurrent streams. Real figures need a GPU and real"
        " weights; on CPU with tiny models it is a smoke run.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    command.add_argument(
        "--models-dir",
        type=Path,
        help="directory with florence2/, sam2/, dinov2/ in transformers format; a missing one"
        " falls back to its hub id (needs a reachable hub)",
    )
    command.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    command.add_argument("--images", type=int, default=200, help="images per variant")
    command.add_argument(
        "--images-dir", type=Path, help="real images (the first --images, sorted by name)"
    )
    command.add_argument(
        "--image-size", type=image_size, default=(640, 480), help="synthetic images, WIDTHxHEIGHT"
    )
    command.add_argument("--seed", type=int, default=0, help="of the synthetic images")
    command.add_argument(
        "--classes", default=",".join(DEFAULT_CLASSES), help="class names to detect, by commas"
    )
    command.add_argument("--max-detections", type=int, default=20, help="boxes per image, at most")
    command.add_argument("--batch-size", type=int, default=8, help="of the in-process batched run")
    command.add_argument(
        "--concurrency", type=positive_int_list, default=[1, 4, 16], help="Triton streams to try"
    )
    command.add_argument(
        "--max-queue-delay-us",
        type=_int_list,
        default=[],
        help="Triton max queue delays to compare (one server each); default: as configured",
    )
    command.add_argument(
        "--warmup", type=int, default=8, help="images run before each measurement, not counted"
    )
    command.add_argument(
        "--triton-url",
        help="use this running Triton (gRPC host:port) instead of starting one; it must serve"
        " the same weights",
    )
    command.add_argument(
        "--model-repository", type=Path, help="default: the checkout's model_repository/"
    )
    command.add_argument("--ready-timeout-s", type=float, default=900.0)
    command.add_argument(
        "--work-dir", type=Path, help="for Triton's logs and repository copies; default: a temp dir"
    )
    command.add_argument("--out", type=Path, help="write the JSON results here")
    return command


def _check(args: argparse.Namespace, command: argparse.ArgumentParser) -> None:
    if args.images < 1:
        command.error("--images must be at least 1")
    if args.batch_size < 1 or args.max_detections < 1 or args.warmup < 0:
        command.error("--batch-size and --max-detections must be positive, --warmup >= 0")
    if args.triton_url and args.max_queue_delay_us:
        command.error("--max-queue-delay-us restarts Triton; it cannot apply to --triton-url")
    args.classes = tuple(name.strip() for name in args.classes.split(",") if name.strip())
    if not args.classes:
        command.error("--classes needs at least one name")


def main(argv: Sequence[str] | None = None) -> int:
    """Run every variant, print the markdown table, write --out; the exit status."""
    command = parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = command.parse_args(arguments)
    _check(args, command)
    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "models_gpu: --device cuda was asked for, but no GPU is visible"
            " (torch.cuda.is_available() is False). Run it on a GPU machine, or add"
            " --device cpu with tiny models (`alabel models make-tiny DIR`) for a smoke run.",
            file=sys.stderr,
        )
        return 2
    if args.images_dir is not None:
        images = _directory_images(args.images_dir, args.images)
        source = f"files from {args.images_dir}"
    else:
        width, height = args.image_size
        images = synthetic_images(args.images, width=width, height=height, seed=args.seed)
        source = f"synthetic {width}x{height} JPEG, seed {args.seed}"
    workload = Workload(classes=args.classes, max_detections=args.max_detections)
    weights = {name: resolve_weights(name, args.models_dir) for name in MODELS}
    for name, weight in weights.items():
        if args.models_dir is None or not (args.models_dir / name).is_dir():
            print(f"models_gpu: no {name}/ under --models-dir: using {weight}", file=sys.stderr)
    warmup = min(args.warmup, len(images))

    try:
        with contextlib.ExitStack() as stack:
            work_dir = args.work_dir or Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="models_gpu-"))
            )
            work_dir.mkdir(parents=True, exist_ok=True)
            args.warmup = warmup
            results, parameters = measure_in_process(
                weights, args.device, images, workload, args.batch_size, warmup
            )
            results += measure_triton(args, images, workload, work_dir)
    except DomainError as error:
        print(f"models_gpu: {error}", file=sys.stderr)
        return 1

    reasons = []
    if args.device == "cpu":
        reasons.append("ran on CPU (absolute times count only on a GPU)")
    tiny = sorted(name for name, count in parameters.items() if count < _TINY_PARAMETERS)
    if tiny:
        reasons.append(f"tiny random-weight models ({', '.join(tiny)})")
    report: dict[str, Any] = {
        "benchmark": "models_gpu",
        "smoke": bool(reasons),
        "label": SMOKE_LABEL if reasons else "benchmark",
        "smoke_reasons": reasons,
        "command": "python -m bench.models_gpu " + shlex.join(arguments),
        "machine": machine(),
        "settings": {
            "device": args.device,
            "classes": list(workload.classes),
            "max_detections": workload.max_detections,
            "batch_size": args.batch_size,
            "concurrency": args.concurrency,
            "max_queue_delay_us": args.max_queue_delay_us,
            "warmup": warmup,
            "triton_url": args.triton_url,
        },
        "weights": weights,
        "parameters": parameters,
        "images": {"count": len(images), "source": source},
    }
    report["ratios"] = add_ratios(results)
    report["variants"] = [asdict(r) for r in results]
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
