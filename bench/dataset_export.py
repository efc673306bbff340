"""Dataset export at scale: time and memory of YOLO-seg and COCO exports, small and large,
side by side in one run.

A dataset of `--objects` objects (20 per 320 x 240 image, every one with a mask file, four
classes) is registered in an embedded PostgreSQL with the registry's own stores (image store,
mask store), built, and exported by the same job the server runs
(`registry/datasets/dataset_export.py`). The same is done for a dataset a tenth of the size. The
claim under test: memory is flat, so the export's peak RSS growth (over the process's RSS
before the export) is about the same at 10x the objects. RSS is sampled every 20 ms from
/proc in a thread while the export runs.

    python -m bench.dataset_export --objects 100000 --out export.json

Times hold for the machine named in the output; the memory ratio is the figure to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import psycopg
from PIL import Image
from psycopg import sql
from rich.progress import Progress as Bar

from agentic_labeling.registry.database import (
    EmbeddedPostgres,
    open_database,
    start_embedded_postgres,
)
from agentic_labeling.registry.datasets.dataset_export import ExportRequest, export_dataset
from agentic_labeling.registry.datasets.label_sets import ExportFormat, ImageTransfer
from agentic_labeling.registry.files.image_store import ImageStore
from agentic_labeling.registry.files.masks import MaskStore
from agentic_labeling.registry.repository import Repository
from agentic_labeling.registry.values.dataset_records import NewDataset
from agentic_labeling.registry.values.records import BoundingBox, NewObject, NewSource, SourceKind
from bench.machine import cpu_machine

DATABASE = "dataset_export_bench"
CLASSES = ("cat", "dog", "car", "person")
OBJECTS_PER_IMAGE = 20  # a 5 x 4 grid of 40 x 40 px objects, each a ring (a mask with a hole)
WIDTH, HEIGHT = 320, 240
FORMATS = (ExportFormat.YOLO_SEGMENT, ExportFormat.COCO)
# Flat memory: the large export may grow RSS by at most this much more than the small one.
FLAT_TOLERANCE_MIB = 32.0


@dataclass(frozen=True)
class Result:
    export_format: str
    objects: int
    images: int
    seconds: float
    objects_per_s: float
    rss_before_mib: float
    peak_rss_growth_mib: float


class RssSampler:
    """The highest RSS of this process seen while it runs (sampled every `interval_s`)."""

    def __init__(self, interval_s: float = 0.02) -> None:
        self.interval_s = interval_s
        self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.peak = max(self.peak, _rss_bytes())


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class _Quiet:
    """Progress for the export job: the bench reads the summary, not the stages."""

    def update(self, **_: object) -> None:
        pass

    def check_cancelled(self) -> None:
        pass


def _ring(x: int, y: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y : y + 40, x : x + 40] = True
    mask[y + 12 : y + 28, x + 12 : x + 28] = False
    return mask


def _image_bytes(index: int) -> bytes:
    """A small, distinct PNG per image (low entropy: the bench measures export, not disk)."""
    pixels = np.full((HEIGHT, WIDTH, 3), index % 251, dtype=np.uint8)
    pixels[0, :4, :] = np.frombuffer(index.to_bytes(12, "little"), dtype=np.uint8).reshape(4, 3)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def populate(
    repo: Repository, images: ImageStore, masks: MaskStore, objects: int, tag: str
) -> None:
    """`objects` objects with mask files on objects / 20 stored images, in categories
    `{tag}-{class}` (so the small and large datasets do not overlap), one batch per image."""
    slots = [(10 + 60 * (s % 5), 10 + 57 * (s // 5)) for s in range(OBJECTS_PER_IMAGE)]
    ring_masks = [_ring(x, y) for x, y in slots]
    area = float(ring_masks[0].sum())
    with Bar(transient=True) as bar:
        task = bar.add_task(f"registering {objects:,} objects ({tag})", total=objects)
        for index in range(objects // OBJECTS_PER_IMAGE):
            sha256 = images.put(_image_bytes(index + (0 if tag == "small" else 10**9)))
            source = await repo.sources.create(
                NewSource(
                    SourceKind.IMAGE,
                    WIDTH,
                    HEIGHT,
                    display_name=f"{tag} {index}.png",
                    content_sha256=sha256,
                )
            )
            batch: list[NewObject] = []
            for slot, (x, y) in enumerate(slots):
                object_id = uuid4()
                masks.write(object_id, ring_masks[slot])
                batch.append(
                    NewObject(
                        source_id=source.id,
                        bbox=BoundingBox(float(x), float(y), 40.0, 40.0),
                        category_name=f"{tag}-{CLASSES[slot % len(CLASSES)]}",
                        object_id=object_id,
                        mask_area=area,
                    )
                )
            await repo.objects.batch_create(uuid4(), batch, create_missing_categories=True)
            bar.advance(task, OBJECTS_PER_IMAGE)


async def export_once(
    repo: Repository,
    images: ImageStore,
    masks: MaskStore,
    dataset_id: Any,
    export_format: ExportFormat,
    target: Path,
) -> Result:
    dataset = await repo.datasets.get(dataset_id)
    request = ExportRequest(dataset, export_format, target, ImageTransfer.HARDLINK, False)
    before = _rss_bytes()
    started = time.perf_counter()
    with RssSampler() as sampler:
        summary = await export_dataset(
            request, repo.datasets.images(dataset_id), images, masks, _Quiet()
        )
    seconds = time.perf_counter() - started
    return Result(
        export_format=str(export_format),
        objects=summary.object_count,
        images=summary.image_count,
        seconds=seconds,
        objects_per_s=summary.object_count / seconds,
        rss_before_mib=before / 2**20,
        peak_rss_growth_mib=(sampler.peak - before) / 2**20,
    )


async def measure(objects: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="alabel-bench-export-"))
    server = start_embedded_postgres(workdir / "postgres")
    try:
        results = await _measure_on(server, workdir, objects)
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return summarize(results, objects)


async def _measure_on(server: EmbeddedPostgres, workdir: Path, objects: int) -> list[Result]:
    with psycopg.connect(server.dsn(), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
    db = await open_database(server.dsn(DATABASE), workdir / "data")
    try:
        repo = Repository(db)
        images, masks = ImageStore(workdir / "images"), MaskStore(workdir / "data")
        sizes = {"small": max(OBJECTS_PER_IMAGE, objects // 10), "large": objects}
        datasets = {}
        for tag, count in sizes.items():
            await populate(repo, images, masks, count, tag)
            dataset = await repo.datasets.create(NewDataset(tag, [f"{tag}-{c}" for c in CLASSES]))
            await repo.datasets.begin_build(dataset.id)
            await repo.datasets.build(dataset.id)
            datasets[tag] = dataset.id
        results = []
        for export_format in FORMATS:
            for tag in sizes:  # small first: any warm-up cost lands on it, not on the large
                target = workdir / "exports" / f"{tag}-{export_format}"
                results.append(
                    await export_once(repo, images, masks, datasets[tag], export_format, target)
                )
                shutil.rmtree(target)
        return results
    finally:
        await db.close()


def summarize(results: Sequence[Result], objects: int) -> dict[str, Any]:
    comparisons = []
    for export_format in FORMATS:
        small, large = (r for r in results if r.export_format == str(export_format))
        comparisons.append(
            {
                "format": str(export_format),
                "small_objects": small.objects,
                "large_objects": large.objects,
                "small_peak_growth_mib": small.peak_rss_growth_mib,
                "large_peak_growth_mib": large.peak_rss_growth_mib,
                "memory_flat": large.peak_rss_growth_mib
                <= small.peak_rss_growth_mib + FLAT_TOLERANCE_MIB,
                "large_seconds": large.seconds,
                "large_objects_per_s": large.objects_per_s,
            }
        )
    return {
        "machine": cpu_machine(),
        "config": {"objects": objects, "objects_per_image": OBJECTS_PER_IMAGE},
        "results": [asdict(r) for r in results],
        "comparisons": comparisons,
    }


def markdown(report: dict[str, Any]) -> str:
    machine = report["machine"]
    lines = [
        f"Measured on {machine['cpus']} CPU cores ({machine['platform']}), embedded "
        f"PostgreSQL; {OBJECTS_PER_IMAGE} objects with masks per {WIDTH}x{HEIGHT} image; "
        "images hard-linked from the image store.",
        "",
        "| Format | Objects | Images | Time (s) | Objects/s | Peak RSS growth (MiB) "
        "| Flat vs 1/10 size |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    flat = {c["format"]: c["memory_flat"] for c in report["comparisons"]}
    for r in report["results"]:
        verdict = "met" if flat[r["export_format"]] else "not met"
        lines.append(
            f"| {r['export_format']} | {r['objects']:,} | {r['images']:,} | {r['seconds']:.1f} "
            f"| {r['objects_per_s']:,.0f} | {r['peak_rss_growth_mib']:.1f} | {verdict} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.dataset_export", description=__doc__)
    parser.add_argument("--objects", type=int, default=100_000, help="objects in the large set")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    if args.objects < 10 * OBJECTS_PER_IMAGE:
        parser.error(f"--objects must be at least {10 * OBJECTS_PER_IMAGE}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = asyncio.run(measure(args.objects))
    print(markdown(report))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
