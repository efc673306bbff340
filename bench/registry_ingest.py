"""Registry ingest: objects/s through `batch_create` (the bulk path) against one INSERT per object.

Side by side in one run, on one embedded PostgreSQL (pgserver) and one database, each variant in
a fresh schema migrated by the registry's own migrations, with the same rows:

1. **bulk**: `repo.objects.batch_create` with `--batch` objects a call (one transaction: the
   idempotency record, category/source/frame resolution, the duplicate check, a binary COPY,
   the vector outbox, the stored response).
2. **per-INSERT**: what a peer would write: one `INSERT INTO objects ...` per object through
   psycopg in autocommit (a transaction per object), the embedding sent as pgvector text, the
   category IDs looked up once beforehand. It does less work per object than the bulk path (no
   idempotency record, no duplicate check, no outbox), so the ratio is conservative.

Each runs with every writer count of `--writers`: that many asyncio tasks, each on its own
connection and its own sources. The whole set runs `--repeat` times, variants interleaved, and
the tables give medians: one run of 10,000 objects is about a second, short enough for a
neighbour's burst to move it by a fifth. Every object carries a `--embedding-dim` embedding;
20 objects per image source on a non-overlapping grid (nothing merges as a duplicate), four
categories.

    python -m bench.registry_ingest --objects 10000 --batch 100 --writers 1,16 --repeat 5 \
        --out ingest.json

Figures are ratios within the run; absolute objects/s hold for the machine named in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote
from uuid import UUID, uuid4

import numpy as np
import numpy.typing as npt
import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from agentic_labeling.registry.database import (
    EmbeddedPostgres,
    open_database,
    start_embedded_postgres,
)
from agentic_labeling.registry.repository import Repository
from agentic_labeling.registry.values.records import (
    BoundingBox,
    NewCategory,
    NewObject,
    NewSource,
    SourceKind,
)
from bench.machine import cpu_machine

DATABASE = "registry_ingest_bench"
CATEGORIES = ("cat", "dog", "car", "person")
OBJECTS_PER_SOURCE = 20  # a 5 x 4 grid of 100 px boxes, 120 px apart, on a 640 x 480 image
WIDTH, HEIGHT = 640, 480
TARGET_BULK_OBJECTS_PER_S = 5000.0
TARGET_RATIO = 5.0
BULK, PER_INSERT = "bulk", "per-INSERT"

_INSERT = (
    "INSERT INTO objects (id, source_id, frame_index, category_id, x, y, width, height, "
    "confidence, quality_score, area, has_mask, embedding, detection_model, attributes) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s::vector, %s, %s)"
)


@dataclass(frozen=True)
class Row:
    """One object to write, independent of the schema's source and category IDs."""

    source: int  # index into the variant's sources
    category: str
    box: tuple[float, float, float, float]
    confidence: float
    embedding: npt.NDArray[np.float32]


@dataclass(frozen=True)
class Result:
    variant: str
    writers: int
    repeat: int
    objects: int
    rows_written: int
    seconds: float
    objects_per_s: float


def make_rows(objects: int, embedding_dim: int, seed: int = 0) -> list[Row]:
    rng = np.random.default_rng(seed)
    embeddings = rng.standard_normal((objects, embedding_dim), dtype=np.float32)
    confidences = rng.uniform(0.3, 1.0, objects)
    rows = []
    for i in range(objects):
        slot = i % OBJECTS_PER_SOURCE
        x, y = 10.0 + 120.0 * (slot % 5), 10.0 + 120.0 * (slot // 5)
        rows.append(
            Row(
                source=i // OBJECTS_PER_SOURCE,
                category=CATEGORIES[i % len(CATEGORIES)],
                box=(x, y, 100.0, 100.0),
                confidence=float(confidences[i]),
                embedding=embeddings[i],
            )
        )
    return rows


def split(rows: Sequence[Row], writers: int) -> list[list[Row]]:
    """Each writer gets whole sources (source s goes to writer s % writers)."""
    parts: list[list[Row]] = [[] for _ in range(writers)]
    for row in rows:
        parts[row.source % writers].append(row)
    return parts


def vector_text(embedding: npt.NDArray[np.float32]) -> str:
    return "[" + ",".join(map(str, embedding.tolist())) + "]"


async def run_variant(
    server: EmbeddedPostgres,
    variant: str,
    rows: Sequence[Row],
    writers: int,
    batch: int,
    embedding_dim: int,
    data_dir: Path,
    repeat: int = 0,
) -> Result:
    schema = f"bench_{uuid4().hex[:12]}"
    base = server.dsn(DATABASE)
    with psycopg.connect(base, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    dsn = base + "&options=" + quote(f"-csearch_path={schema},public")
    db = await open_database(dsn, data_dir, max_pool_size=writers + 2)
    try:
        repo = Repository(db, embedding_dim=embedding_dim)
        category_ids = {
            name: (await repo.categories.create(NewCategory(name))).id for name in CATEGORIES
        }
        sources: list[UUID] = []
        for _ in range(rows[-1].source + 1):
            source = await repo.sources.create(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT))
            sources.append(source.id)
        parts = split(rows, writers)

        async def bulk_writer(part: list[Row]) -> None:
            for start in range(0, len(part), batch):
                objects = [
                    NewObject(
                        source_id=sources[row.source],
                        bbox=BoundingBox(*row.box),
                        category_name=row.category,
                        confidence=row.confidence,
                        detection_model="bench",
                        embedding=cast(
                            "Sequence[float]", row.embedding
                        ),  # check_embedding takes arrays
                    )
                    for row in part[start : start + batch]
                ]
                await repo.objects.batch_create(uuid4(), objects, create_missing_categories=True)

        async def insert_writer(part: list[Row]) -> None:
            async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
                for row in part:
                    x, y, w, h = row.box
                    await conn.execute(
                        _INSERT,
                        (
                            uuid4(),
                            sources[row.source],
                            0,
                            category_ids[row.category],
                            x,
                            y,
                            w,
                            h,
                            row.confidence,
                            0.0,
                            w * h,
                            False,
                            vector_text(row.embedding),
                            "bench",
                            Jsonb({}),
                        ),
                    )

        writer = bulk_writer if variant == BULK else insert_writer
        started = time.perf_counter()
        await asyncio.gather(*(writer(part) for part in parts))
        seconds = time.perf_counter() - started
        async with db.connection() as conn:
            cursor = await conn.execute("SELECT count(*) FROM objects")
            counted = await cursor.fetchone()
        written = int(counted[0]) if counted else 0
    finally:
        await db.close()
        with psycopg.connect(base, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    return Result(variant, writers, repeat, len(rows), written, seconds, len(rows) / seconds)


async def measure(
    objects: int, batch: int, writer_counts: Sequence[int], embedding_dim: int, repeats: int = 1
) -> dict[str, Any]:
    rows = make_rows(objects, embedding_dim)
    workdir = Path(tempfile.mkdtemp(prefix="alabel-bench-ingest-"))
    server = start_embedded_postgres(workdir / "postgres")
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as admin:
            admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        with psycopg.connect(server.dsn(DATABASE), autocommit=True) as admin:
            admin.execute("CREATE EXTENSION vector SCHEMA public")
        results: list[Result] = []
        for repeat in range(repeats):
            for writers in writer_counts:
                for variant in (BULK, PER_INSERT):
                    results.append(
                        await run_variant(
                            server,
                            variant,
                            rows,
                            writers,
                            batch,
                            embedding_dim,
                            workdir / "data",
                            repeat,
                        )
                    )
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    return summarize(results, objects, batch, embedding_dim, repeats)


def summarize(
    results: Sequence[Result], objects: int, batch: int, embedding_dim: int, repeats: int = 1
) -> dict[str, Any]:
    """Medians over the repeats; each repeat's own ratio pairs the two variants it ran."""
    rates: dict[tuple[str, int], list[float]] = {}
    by_repeat = {(r.variant, r.writers, r.repeat): r.objects_per_s for r in results}
    for r in results:
        rates.setdefault((r.variant, r.writers), []).append(r.objects_per_s)
    comparisons = []
    for writers in sorted({r.writers for r in results}):
        bulk = statistics.median(rates[(BULK, writers)])
        naive = statistics.median(rates[(PER_INSERT, writers)])
        paired = [
            by_repeat[(BULK, writers, i)] / by_repeat[(PER_INSERT, writers, i)]
            for i in range(repeats)
        ]
        ratio = statistics.median(paired)
        comparisons.append(
            {
                "writers": writers,
                "bulk_objects_per_s": bulk,
                "per_insert_objects_per_s": naive,
                "ratio": ratio,
                "ratio_min": min(paired),
                "ratio_max": max(paired),
                "target_bulk_met": bulk >= TARGET_BULK_OBJECTS_PER_S,
                "target_ratio_met": ratio >= TARGET_RATIO,
            }
        )
    return {
        "machine": cpu_machine(),
        "config": {
            "objects": objects,
            "batch": batch,
            "embedding_dim": embedding_dim,
            "repeats": repeats,
        },
        "targets": {"bulk_objects_per_s": TARGET_BULK_OBJECTS_PER_S, "ratio": TARGET_RATIO},
        "results": [asdict(r) for r in results],
        "comparisons": comparisons,
    }


def markdown(report: dict[str, Any]) -> str:
    config, machine = report["config"], report["machine"]
    lines = [
        f"Measured on {machine['cpus']} CPU cores ({machine['platform']}), embedded PostgreSQL, "
        f"{config['objects']} objects of {config['embedding_dim']} dimensions per variant, "
        f"batch {config['batch']}; medians of {config['repeats']} interleaved repeats.",
        "",
        "| Writers | Bulk (objects/s) | Per-INSERT (objects/s) | Bulk / per-INSERT "
        f"| Range over repeats | ≥ {TARGET_BULK_OBJECTS_PER_S:,.0f}/s bulk | ≥ {TARGET_RATIO:g}x |",
        "|---:|---:|---:|---:|---|---|---|",
    ]
    for c in report["comparisons"]:
        lines.append(
            f"| {c['writers']} | {c['bulk_objects_per_s']:,.0f} "
            f"| {c['per_insert_objects_per_s']:,.0f} | {c['ratio']:.2f}x "
            f"| {c['ratio_min']:.2f}x to {c['ratio_max']:.2f}x "
            f"| {'met' if c['target_bulk_met'] else 'not met'} "
            f"| {'met' if c['target_ratio_met'] else 'not met'} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.registry_ingest", description=__doc__)
    parser.add_argument("--objects", type=int, default=10_000, help="objects per variant")
    parser.add_argument("--batch", type=int, default=100, help="objects per batch_create call")
    parser.add_argument("--writers", default="1,16", help="concurrent writer counts, e.g. 1,16")
    parser.add_argument("--embedding-dim", type=int, default=768)
    parser.add_argument(
        "--repeat", type=int, default=5, help="run every variant this many times (medians)"
    )
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    args.writers = [int(w) for w in str(args.writers).split(",") if w]
    if (
        args.objects < 1
        or args.batch < 1
        or args.repeat < 1
        or not args.writers
        or min(args.writers) < 1
    ):
        parser.error("--objects, --batch, --repeat and every --writers count must be at least 1")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = asyncio.run(
        measure(args.objects, args.batch, args.writers, args.embedding_dim, args.repeat)
    )
    print(markdown(report))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
