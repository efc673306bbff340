"""The embedded vector store: qdrant-edge (the Qdrant engine in-process) in `data_dir/qdrant`.

One EdgeShard with one named dense vector ("embedding", cosine, the model's dimension) and a
payload index on every field of `vector_filters.OBJECT_PAYLOAD`, created when the store opens
(before the graph is built, so the HNSW graph gets the extra payload-aware links that keep
filtered graph search connected).

Threads and the event loop. qdrant-edge-py is synchronous, so every call runs in a worker
thread (`asyncio.to_thread`). But qdrant-edge-py 0.9.0 holds the GIL for the whole of every
call (measured here: a Python thread ticking every 10 ms got 1 tick during a 7.6 s optimize,
and almost none during 6 ms searches). So the thread does not let the event loop run
meanwhile; short calls (a search, an upsert chunk: milliseconds) are fine, `optimize` is not.
Upserts go to the engine in chunks of `UPSERT_CHUNK` points so that a large batch lets other
tasks in between chunks. Calls from many tasks are safe (they run one at a time, under the
GIL); `close` waits for calls in flight and then refuses new ones with FailedPrecondition.

HNSW build policy. New points land in an appendable segment that is searched exactly (recall
1.0; cost grows with the number of unindexed points: about 6 ms a search for 60k unindexed
768-d vectors on 2 cores). `optimize()` builds the graph for segments above the indexing
threshold, merging segments as it goes, so its cost grows with the whole collection (13 s for
20k 768-d vectors on 2 cores, 60 s for 200k) and, holding the GIL, it stops the whole process
for that long. Hence:

- `optimize_if_needed(min_unindexed)` at start-up, before the server reports ready, and after
  a reconcile pass: builds only when at least that many points are outside the graph;
- `optimize()` on demand (an admin command);
- `optimize_after=N` (off by default): after N points upserted since the last build, an
  optimize starts in the background; for deployments that accept the pause.

Search parameters: `hnsw_ef` defaults to `HnswSettings.default_hnsw_ef` (256, measured when
it was chosen: Qdrant's default gave recall@10 0.83 on 200k clustered 768-d vectors on 2 cores,
256 gave 0.95; on the tests' 4,000 clustered 768-d vectors, 0.98-0.995 against 0.81-0.94 at
Qdrant's default of 100, with and without filters, p95 under 2 ms); never below top_k. A
filtered search whose matches fit in `full_scan_threshold_kb` is exact anyway.

Quantization (`ScalarQuantization`, on by default): the shard's config asks for int8 scalar
quantization; the engine writes the quantized copy when it builds a segment's graph (new
points stay in the unindexed segment, searched on the float vectors). Searches ask for
rescoring on the original vectors with `oversampling`. qdrant-edge applies a config given at
load to the shard, but leaves segments already built as they are until the optimizer rebuilds
them; so a store created without quantization (before it was the default) is migrated when
opened: `optimize()` rebuilds every graph segment that lacks the quantized copy, from the
stored vectors (a one-time cost: a full graph build, see above, before the store is returned).
With quantization off, new shards get none; qdrant-edge cannot drop it from a shard that has it
(an absent setting keeps the stored one), so searches then ignore the quantized copy.

Durability: the shard keeps a write-ahead log (on by default), so an acknowledged write
survives the process being killed (tested with SIGKILL); `flush()` writes the segments to
disk, for power loss and quicker restarts; call it at commit points (after the outbox applies
a batch).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import qdrant_edge as edge

from agentic_labeling.errors import FailedPrecondition
from agentic_labeling.registry.query.filtering import Expr
from agentic_labeling.registry.vectors.vector_filters import (
    OBJECT_PAYLOAD,
    PayloadKind,
    to_edge_filter,
)
from agentic_labeling.registry.vectors.vector_store import (
    Embedding,
    HnswSettings,
    ObjectPayload,
    ScalarQuantization,
    ScoredId,
    VectorPoint,
    VectorRecord,
    VectorStore,
    VectorStoreStats,
)

__all__ = ["UPSERT_CHUNK", "VECTOR_NAME", "EdgeVectorStore"]

logger = logging.getLogger(__name__)

VECTOR_NAME = "embedding"
UPSERT_CHUNK = 512
_CONFIG_FILE = "edge_config.json"

T = TypeVar("T")


def _index_schema(kind: PayloadKind) -> edge.PayloadSchemaType | edge.IntegerIndexParams:
    match kind:
        case PayloadKind.KEYWORD:
            return edge.PayloadSchemaType.Keyword
        case PayloadKind.FLOAT:
            return edge.PayloadSchemaType.Float
        case PayloadKind.BOOL:
            return edge.IntegerIndexParams(lookup=True, range=False)
        case PayloadKind.INTEGER | PayloadKind.TIMESTAMP:  # pragma: no branch
            return edge.IntegerIndexParams(lookup=True, range=True)


class EdgeVectorStore(VectorStore):
    """Embeddings in an in-process qdrant-edge shard. Open with `EdgeVectorStore.open`."""

    def __init__(
        self,
        shard: edge.EdgeShard,
        path: Path,
        dimension: int,
        hnsw: HnswSettings,
        optimize_after: int | None,
        quantization: ScalarQuantization | None = None,
    ) -> None:
        super().__init__(dimension)
        self.path = path
        self.hnsw = hnsw
        self.quantization = quantization or ScalarQuantization()
        self.optimize_after = optimize_after
        self._shard = shard
        self._state = threading.Condition()
        self._active = 0
        self._closed = False
        self._optimizing = threading.Lock()
        self._upserted_since_build = 0
        self._background: asyncio.Task[bool] | None = None

    # --- Opening ------------------------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: Path,
        *,
        dimension: int,
        hnsw: HnswSettings | None = None,
        optimize_after: int | None = None,
        quantization: ScalarQuantization | None = None,
    ) -> EdgeVectorStore:
        """Open the shard at `path`, creating it when there is none.

        With quantization on (the default), a shard built without it is migrated first (see
        the module docstring). FailedPrecondition when the existing shard holds vectors of
        another dimension or distance (written for another embedding model).
        """
        if dimension < 1:
            raise ValueError(f"dimension must be positive, got {dimension}")
        settings = hnsw or HnswSettings()
        wanted = quantization or ScalarQuantization()
        shard = await asyncio.to_thread(cls._open_shard, path, dimension, settings, wanted)
        store = cls(shard, path, dimension, settings, optimize_after, wanted)
        try:
            await store._quantize_old_segments()
        except BaseException:
            await store.close()
            raise
        return store

    async def _quantize_old_segments(self) -> None:
        if not self.quantization.enabled:
            return
        missing = await self.unquantized_segments()
        if missing:
            logger.warning(
                "the vector store at %s has %d graph segment(s) without int8 quantization; "
                "rebuilding them now from the stored vectors (once)",
                self.path,
                missing,
            )
            await self.optimize()
            await self.flush()

    async def unquantized_segments(self) -> int:
        """How many graph-indexed segments hold no quantized copy of their vectors (read from
        the segments' own configs on disk). Unindexed segments never have one."""

        def work(shard: edge.EdgeShard) -> int:
            # The engine removes the directories of segments an optimize replaced on flush.
            shard.flush()
            return _unquantized_segments(self.path)

        return await self._call(work)

    async def quantization_config(self) -> dict[str, Any] | None:
        """The shard's quantization config, as the engine persisted it."""

        def work(_shard: edge.EdgeShard) -> dict[str, Any] | None:
            stored = json.loads((self.path / _CONFIG_FILE).read_text())
            config: dict[str, Any] | None = stored.get("quantization_config")
            return config

        return await self._call(work)

    @staticmethod
    def _open_shard(
        path: Path, dimension: int, hnsw: HnswSettings, quantization: ScalarQuantization
    ) -> edge.EdgeShard:
        config = edge.EdgeConfig(
            vectors={VECTOR_NAME: edge.EdgeVectorParams(size=dimension, distance=_COSINE)},
            hnsw_config=edge.HnswIndexConfig(
                m=hnsw.m,
                ef_construct=hnsw.ef_construct,
                full_scan_threshold=hnsw.full_scan_threshold_kb,
            ),
            optimizers=edge.EdgeOptimizersConfig(indexing_threshold=hnsw.indexing_threshold_kb),
            # None keeps what a loaded shard has (qdrant-edge cannot remove quantization).
            quantization_config=_edge_quantization(quantization),
        )
        config_file = path / _CONFIG_FILE
        if config_file.exists():
            _check_stored_config(config_file, dimension)
            # Passing the config re-applies the HNSW and optimizer settings given now.
            shard = edge.EdgeShard.load(str(path), config)
        else:
            path.mkdir(parents=True, exist_ok=True)
            shard = edge.EdgeShard.create(str(path), config)
        existing = shard.info().payload_schema
        for key, kind in OBJECT_PAYLOAD.items():
            if key not in existing:
                shard.update(edge.UpdateOperation.create_field_index(key, _index_schema(kind)))
        return shard

    # --- Calls into the engine ----------------------------------------------------------------

    @contextlib.contextmanager
    def _using(self) -> Iterator[edge.EdgeShard]:
        with self._state:
            if self._closed:
                raise FailedPrecondition(
                    f"the vector store at {self.path} is closed", reason="VECTOR_STORE_CLOSED"
                )
            self._active += 1
        try:
            yield self._shard
        finally:
            with self._state:
                self._active -= 1
                self._state.notify_all()

    async def _call(self, work: Callable[[edge.EdgeShard], T]) -> T:
        """`work(shard)` in a worker thread. The in-flight count is kept by the thread, so a
        cancelled caller does not let `close` pull the shard from under a running call."""

        def run() -> T:
            with self._using() as shard:
                return work(shard)

        return await asyncio.to_thread(run)

    # --- Writes -------------------------------------------------------------------------------

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        checked = self._checked_points(points)
        for start in range(0, len(checked), UPSERT_CHUNK):
            chunk = [
                edge.Point(key, {VECTOR_NAME: vector}, payload)
                for key, vector, payload in checked[start : start + UPSERT_CHUNK]
            ]
            await self._call(_apply(edge.UpdateOperation.upsert_points(chunk)))
        with self._state:
            self._upserted_since_build += len(checked)
        self._maybe_optimize_in_background()

    async def set_payload(self, payloads: Sequence[tuple[UUID, ObjectPayload]]) -> None:
        latest = {key: payload.to_json() for key, payload in payloads}

        def work(shard: edge.EdgeShard) -> None:
            # Only existing points: the engine would refuse the whole operation for one
            # missing id, after having applied part of it.
            present = {record.id for record in shard.retrieve(list(latest), False, False)}
            for key, stored in latest.items():
                if key not in present:
                    continue
                try:
                    shard.update(edge.UpdateOperation.overwrite_payload([key], stored))
                except Exception as error:  # deleted meanwhile by another task: skip it too
                    if "No point with id" not in str(error):
                        raise

        if latest:
            await self._call(work)

    async def delete(self, ids: Iterable[UUID]) -> None:
        keys: list[edge.PointId] = list(dict.fromkeys(ids))
        if keys:
            await self._call(_apply(edge.UpdateOperation.delete_points(keys)))

    # --- Reads --------------------------------------------------------------------------------

    async def search(
        self,
        vector: Embedding,
        *,
        filter: Expr | None = None,
        top_k: int = 10,
        hnsw_ef: int | None = None,
        exact: bool = False,
    ) -> list[ScoredId]:
        self._checked_top_k(top_k, hnsw_ef)
        query = self._checked_vector(vector, "vector")
        request = edge.QueryRequest(
            limit=top_k,
            query=edge.Query.Nearest(query, using=VECTOR_NAME),
            filter=to_edge_filter(filter),
            params=edge.SearchParams(
                hnsw_ef=max(top_k, hnsw_ef or self.hnsw.default_hnsw_ef),
                exact=exact,
                quantization=edge.QuantizationSearchParams(
                    # An exact search (for checks) compares the float vectors only.
                    ignore=exact or not self.quantization.enabled,
                    rescore=True,
                    oversampling=self.quantization.oversampling,
                ),
            ),
            with_payload=False,
            with_vector=False,
        )
        hits = await self._call(lambda shard: shard.query(request))
        return [ScoredId(_uuid(hit.id), hit.score) for hit in hits]

    async def retrieve(
        self, ids: Iterable[UUID], *, with_vectors: bool = False
    ) -> dict[UUID, VectorRecord]:
        keys: list[edge.PointId] = list(dict.fromkeys(ids))
        if not keys:
            return {}
        records = await self._call(lambda shard: shard.retrieve(keys, True, with_vectors))
        found: dict[UUID, VectorRecord] = {}
        for record in records:
            key = _uuid(record.id)
            vector = _named_vector(record.vector) if with_vectors else None
            found[key] = VectorRecord(key, ObjectPayload.from_json(record.payload or {}), vector)
        return found

    async def count(self, filter: Expr | None = None) -> int:
        request = edge.CountRequest(exact=True, filter=to_edge_filter(filter))
        return await self._call(lambda shard: shard.count(request))

    async def ids(self, *, page_size: int = 1024) -> AsyncIterator[UUID]:
        offset: edge.PointId | None = None
        while True:
            request = edge.ScrollRequest(
                offset=offset, limit=page_size, with_payload=False, with_vector=False
            )
            records, offset = await self._call(_scroll(request))
            for record in records:
                yield _uuid(record.id)
            if offset is None:
                return

    async def stats(self) -> VectorStoreStats:
        info = await self._call(lambda shard: shard.info())
        return VectorStoreStats(info.points_count, info.indexed_vectors_count, info.segments_count)

    # --- Maintenance --------------------------------------------------------------------------

    async def flush(self) -> None:
        await self._call(lambda shard: shard.flush())

    async def optimize(self) -> bool:
        """Build the HNSW graph now (see the module docstring: blocks the process meanwhile).
        Concurrent calls run one after the other."""

        def work(shard: edge.EdgeShard) -> bool:
            with self._optimizing:
                with self._state:
                    pending = self._upserted_since_build
                changed = shard.optimize()
                with self._state:
                    self._upserted_since_build -= pending
                return changed

        return await self._call(work)

    async def optimize_if_needed(self, min_unindexed: int) -> bool:
        """`optimize()` when at least `min_unindexed` points are outside the HNSW graph."""
        stats = await self.stats()
        if stats.points - stats.indexed_vectors < min_unindexed:
            return False
        return await self.optimize()

    def _maybe_optimize_in_background(self) -> None:
        with self._state:
            due = self._upserted_since_build
        if self.optimize_after is None or due < self.optimize_after:
            return
        if self._background is not None and not self._background.done():
            return
        self._background = asyncio.get_running_loop().create_task(self._optimize_logged())

    async def _optimize_logged(self) -> bool:
        try:
            return await self.optimize()
        except FailedPrecondition:  # closed meanwhile
            return False
        except Exception:
            logger.exception("background optimize of the vector store at %s failed", self.path)
            return False

    async def wait_for_background_optimize(self) -> None:
        """Wait until a background optimize (see `optimize_after`) has finished, if one runs."""
        if self._background is not None:
            await asyncio.shield(self._background)

    async def close(self) -> None:
        if self._background is not None:
            await asyncio.shield(self._background)

        def work() -> None:
            with self._state:
                if self._closed:
                    return
                self._closed = True
                while self._active:
                    self._state.wait()
            self._shard.flush()
            self._shard.close()

        await asyncio.to_thread(work)


_COSINE = edge.Distance.Cosine


def _check_stored_config(config_file: Path, dimension: int) -> None:
    """FailedPrecondition unless the shard holds cosine vectors of `dimension`."""
    stored = json.loads(config_file.read_text()).get("vectors", {}).get(VECTOR_NAME)
    where = config_file.parent
    if stored is None:
        raise FailedPrecondition(
            f"the vector store at {where} has no {VECTOR_NAME!r} vectors; it was not written "
            "by this registry",
            reason="VECTOR_STORE_INCOMPATIBLE",
        )
    if stored.get("size") != dimension or stored.get("distance") != "Cosine":
        raise FailedPrecondition(
            f"the vector store at {where} holds {stored.get('distance')} vectors of "
            f"{stored.get('size')} dimensions; the embedding model gives {dimension}. "
            "Use the model the registry was built with, or re-embed into a new data directory",
            reason="EMBEDDING_DIMENSION_MISMATCH",
            metadata={"stored": str(stored.get("size")), "model": str(dimension)},
        )


def _edge_quantization(quantization: ScalarQuantization) -> edge.ScalarQuantizationConfig | None:
    if not quantization.enabled:
        return None
    return edge.ScalarQuantizationConfig(type=edge.ScalarType.Int8, quantile=quantization.quantile)


def _unquantized_segments(path: Path) -> int:
    """Segments with an HNSW graph but no quantization in their config (`segment.json`)."""
    missing = 0
    for segment_file in (path / "segments").glob("*/segment.json"):
        try:
            vectors = json.loads(segment_file.read_text())["config"]["vector_data"]
        except (OSError, ValueError, KeyError):
            continue  # a segment being written or removed by the optimizer meanwhile
        params = vectors.get(VECTOR_NAME, {})
        if params.get("index", {}).get("type") == "hnsw" and not params.get("quantization_config"):
            missing += 1
    return missing


def _apply(operation: edge.UpdateOperation) -> Callable[[edge.EdgeShard], None]:
    return lambda shard: shard.update(operation)


def _scroll(
    request: edge.ScrollRequest,
) -> Callable[[edge.EdgeShard], tuple[list[edge.Record], edge.PointId | None]]:
    return lambda shard: shard.scroll(request)


def _uuid(point_id: edge.PointId) -> UUID:
    return point_id if isinstance(point_id, UUID) else UUID(str(point_id))


def _named_vector(vector: Any) -> list[float] | None:
    if isinstance(vector, dict):
        value = vector.get(VECTOR_NAME)
        return [float(x) for x in value] if value is not None else None
    return None  # pragma: no cover - the shard has one named vector
