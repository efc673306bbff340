"""The vector store of the registry: one embedding per object, searched with filters.

Postgres is the source of truth; the vector store holds each object's embedding under the
object's UUID, with the payload that filtered similarity search needs (`ObjectPayload`, laid out
in `vector_filters.OBJECT_PAYLOAD`). Two implementations share this interface:

- `EdgeVectorStore` (`edge_vectors.py`): qdrant-edge, the Qdrant engine in-process, in the
  registry's data directory. The embedded default.
- `QdrantServerVectorStore` (`qdrant_server_vectors.py`): qdrant-client against a Qdrant
  server or cluster (`--qdrant-url`).

Contract, for both:

- Cosine similarity; the dimension comes from the embedding model when the store is opened and
  is checked against an existing collection (a mismatch is FailedPrecondition: the data was
  written by another model and searching it would be meaningless).
- `upsert` is idempotent by object id (the same point twice leaves one point): the outbox may
  apply an entry again after a crash, and reconcile re-applies whatever Postgres says.
- `search` pushes the filter down into Qdrant's payload filter (never post-filtered), so a
  selective filter still returns top_k matches when that many exist.
- Every method is a coroutine and the stores are safe to share between tasks.
- Stored vectors are int8 scalar quantized by default (`ScalarQuantization`): the graph
  search compares the 1-byte copies, and the best `top_k * oversampling` candidates are
  rescored on the original float vectors, so scores and order are the exact cosine ones. A
  store created without quantization gets it when opened with it on (see each
  implementation); with it off, searches use the float vectors only.
- Values are validated before anything is written: a wrong dimension, a non-finite or zero
  vector, a non-finite number or a timestamp without offset raises InvalidArgument naming the
  point, and nothing of the batch is written.
"""

from __future__ import annotations

import abc
import math
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from types import TracebackType
from typing import Any, NamedTuple, Self
from uuid import UUID

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.query.filtering import Expr
from agentic_labeling.registry.vectors.vector_filters import (
    MAX_EXACT_INTEGER,
    OBJECT_PAYLOAD,
    PayloadKind,
    from_timestamp_us,
    to_timestamp_us,
)

__all__ = [
    "DEFAULT_HNSW_EF",
    "MAX_TOP_K",
    "Embedding",
    "HnswSettings",
    "ObjectPayload",
    "ScalarQuantization",
    "ScoredId",
    "VectorPoint",
    "VectorRecord",
    "VectorStore",
    "VectorStoreStats",
]

DEFAULT_HNSW_EF = 256
"""Search breadth when the caller gives none. Qdrant's default (ef = ef_construct = 100) gave
recall@10 0.83 on 200k clustered 768-d vectors here; 256 gave 0.95 at p95 2.2 ms (2 cores)."""

MAX_TOP_K = 10_000
"""The most hits one search returns."""


@dataclass(frozen=True)
class HnswSettings:
    """How the HNSW graph is built and when, shared by both implementations.

    m / ef_construct: Qdrant's defaults (16 / 100); recall is bought at search time with
    `hnsw_ef` instead, which costs nothing to change. full_scan_threshold_kb: a filtered search
    whose matching vectors fit in this many KB scans them exactly rather than walking the graph
    (Qdrant's default, 10 MB: about 3,300 vectors of 768 floats). indexing_threshold_kb:
    segments smaller than this stay unindexed (searched exactly) when the index is built.
    """

    m: int = 16
    ef_construct: int = 100
    full_scan_threshold_kb: int = 10_000
    indexing_threshold_kb: int = 10_000
    default_hnsw_ef: int = DEFAULT_HNSW_EF


@dataclass(frozen=True)
class ScalarQuantization:
    """int8 scalar quantization of the stored vectors, searched with rescoring.

    Measured at 1M clustered 768-d vectors on 2 cores (BENCHMARKS.md): recall@10 0.998 at p95
    1.51 ms (hnsw_ef 256) against 0.997 at 4.73 ms without it, and a 3x faster graph build,
    for a quarter more disk and memory (the 1-byte copy sits beside the float vectors, which
    rescoring reads). `enabled=False` (the `vector_quantization` setting off) creates stores
    without it and makes searches ignore a quantized copy an older store already has.
    `quantile`: the share of values the int8 range covers (outliers are clipped);
    `oversampling`: candidates rescored per hit wanted (2.0 measured above).
    """

    enabled: bool = True
    quantile: float = 0.99
    oversampling: float = 2.0

    def config_json(self) -> dict[str, Any] | None:
        """The quantization config as Qdrant writes it (None when off)."""
        if not self.enabled:
            return None
        return {"scalar": {"type": "int8", "quantile": self.quantile}}


@dataclass(frozen=True)
class ObjectPayload:
    """What filtered search needs to know about an object (see `vector_filters`).

    `category`, `source` and `track` are ids as the registry names them; filters must use the
    same form (`vector_filters.map_comparisons` rewrites names and synonyms). None means null.
    """

    category: str
    source: str
    frame_index: int
    confidence: float
    area: float
    is_validated: bool
    detection_model: str
    create_time: datetime
    update_time: datetime
    quality_score: float | None = None
    validated_by: str | None = None
    track: str | None = None

    def to_json(self) -> dict[str, str | int | float]:
        """The payload as stored: null fields left out, timestamps as epoch microseconds,
        booleans as 0 / 1 (see `vector_filters`)."""
        stored: dict[str, str | int | float] = {}
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            kind = OBJECT_PAYLOAD[item.name]
            if kind is PayloadKind.TIMESTAMP:
                stored[item.name] = to_timestamp_us(value)
            elif kind is PayloadKind.FLOAT:
                stored[item.name] = float(value)
            elif kind is PayloadKind.BOOL:
                stored[item.name] = int(value)
            else:
                stored[item.name] = value
        return stored

    @classmethod
    def from_json(cls, stored: dict[str, Any]) -> ObjectPayload:
        """The inverse of `to_json`."""
        values: dict[str, Any] = {}
        for key, value in stored.items():
            kind = OBJECT_PAYLOAD.get(key)
            if value is None or kind is None:
                continue
            if kind is PayloadKind.TIMESTAMP:
                values[key] = from_timestamp_us(int(value))
            elif kind is PayloadKind.BOOL:
                values[key] = bool(value)
            else:
                values[key] = value
        return cls(**values)

    def problems(self) -> list[str]:
        """What makes this payload unstorable (empty when it is fine)."""
        found: list[str] = []
        for item in fields(self):
            value = getattr(self, item.name)
            if value is None:
                continue
            kind = OBJECT_PAYLOAD[item.name]
            if kind is PayloadKind.FLOAT and not math.isfinite(value):
                found.append(f"{item.name} must be a finite number, got {value!r}")
            elif kind is PayloadKind.INTEGER and abs(value) > MAX_EXACT_INTEGER:
                found.append(f"{item.name} {value} is out of range")
            elif kind is PayloadKind.TIMESTAMP:
                if value.utcoffset() is None:
                    found.append(f"{item.name} must have a UTC offset, got {value!r}")
                elif abs(to_timestamp_us(value)) > MAX_EXACT_INTEGER:
                    found.append(f"{item.name} {value.isoformat()} is out of range")
        return found


Embedding = Sequence[float] | npt.NDArray[np.floating[Any]]


@dataclass(frozen=True)
class VectorPoint:
    """One object's embedding and payload, stored under the object's id."""

    id: UUID
    vector: Embedding
    payload: ObjectPayload


@dataclass(frozen=True)
class VectorRecord:
    """A stored point as `retrieve` returns it; `vector` is unit length (cosine) or None when
    not asked for."""

    id: UUID
    payload: ObjectPayload
    vector: list[float] | None = None


class ScoredId(NamedTuple):
    """One search hit: the object id and its cosine similarity to the query (1 is identical)."""

    id: UUID
    score: float


@dataclass(frozen=True)
class VectorStoreStats:
    """Sizes, for status pages and for the optimize policy."""

    points: int
    indexed_vectors: int
    segments: int


class VectorStore(abc.ABC):
    """Embeddings by object id, with filtered top-k search. See the module docstring."""

    def __init__(self, dimension: int) -> None:
        self.dimension = dimension

    @abc.abstractmethod
    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        """Store each point under its id, replacing any point with that id (idempotent).

        Within one call a later point with the same id wins. Validates everything first:
        InvalidArgument (naming `points[i]...`) and nothing written when a point is bad.
        """

    @abc.abstractmethod
    async def set_payload(self, payloads: Sequence[tuple[UUID, ObjectPayload]]) -> None:
        """Replace the payload of points that exist, keeping their vectors (after a review or
        an update that does not change the embedding). Ids without a point are skipped."""

    @abc.abstractmethod
    async def delete(self, ids: Iterable[UUID]) -> None:
        """Remove the points with these ids; ids without a point are fine."""

    @abc.abstractmethod
    async def search(
        self,
        vector: Embedding,
        *,
        filter: Expr | None = None,
        top_k: int = 10,
        hnsw_ef: int | None = None,
        exact: bool = False,
    ) -> list[ScoredId]:
        """The `top_k` points most similar to `vector` among those matching `filter`, best
        first. `hnsw_ef` widens the graph search (default `HnswSettings.default_hnsw_ef`);
        `exact` scans every matching vector instead (slow, for checks)."""

    @abc.abstractmethod
    async def retrieve(
        self, ids: Iterable[UUID], *, with_vectors: bool = False
    ) -> dict[UUID, VectorRecord]:
        """The stored points with these ids; ids without a point are absent from the result."""

    @abc.abstractmethod
    async def count(self, filter: Expr | None = None) -> int:
        """How many points there are (matching `filter`, when given); exact."""

    @abc.abstractmethod
    def ids(self, *, page_size: int = 1024) -> AsyncIterator[UUID]:
        """Every stored id, in pages of `page_size` (for reconcile). Points added or removed
        meanwhile may or may not be seen."""

    @abc.abstractmethod
    async def stats(self) -> VectorStoreStats:
        """Point, indexed-vector and segment counts."""

    @abc.abstractmethod
    async def quantization_config(self) -> dict[str, Any] | None:
        """The quantization config the engine holds for the stored vectors, in Qdrant's JSON
        form (`{"scalar": {"type": "int8", "quantile": 0.99}}`), or None when it has none."""

    @abc.abstractmethod
    async def flush(self) -> None:
        """Make every write so far durable (call at commit points)."""

    @abc.abstractmethod
    async def optimize(self) -> bool:
        """Build or rebuild the HNSW index now; True when something changed. See the
        implementation for its cost and its policy."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Flush and release the store; later calls raise FailedPrecondition. Idempotent."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # --- Shared by the implementations ---------------------------------------------------------

    def _checked_points(
        self, points: Sequence[VectorPoint]
    ) -> list[tuple[UUID, list[float], dict[str, str | int | float]]]:
        """(id, vector, stored payload) per distinct id (the last point of an id wins), or
        InvalidArgument naming the first bad point."""
        latest: dict[UUID, tuple[list[float], dict[str, str | int | float]]] = {}
        for index, point in enumerate(points):
            if not isinstance(point.id, UUID):
                raise InvalidArgument(
                    f"points[{index}].id must be a UUID, got {point.id!r}",
                    field=f"points[{index}].id",
                )
            vector = self._checked_vector(point.vector, f"points[{index}].vector")
            problems = point.payload.problems()
            if problems:
                raise InvalidArgument(
                    f"points[{index}].payload: {problems[0]}", field=f"points[{index}].payload"
                )
            latest.pop(point.id, None)  # keep the order of the last occurrence
            latest[point.id] = (vector, point.payload.to_json())
        return [(key, vector, payload) for key, (vector, payload) in latest.items()]

    def _checked_vector(self, vector: Embedding, field: str) -> list[float]:
        array = np.asarray(vector, dtype=np.float64)
        if array.ndim != 1 or array.shape[0] != self.dimension:
            raise InvalidArgument(
                f"{field} must have {self.dimension} dimensions, got shape {array.shape}",
                field=field,
                reason="WRONG_EMBEDDING_DIMENSION",
                metadata={"expected": str(self.dimension), "actual": str(array.size)},
            )
        if not np.all(np.isfinite(array)):
            raise InvalidArgument(f"{field} holds a non-finite number", field=field)
        if not np.any(array):
            raise InvalidArgument(
                f"{field} is all zeros, which has no direction to compare by cosine",
                field=field,
            )
        values: list[float] = array.tolist()
        return values

    @staticmethod
    def _checked_top_k(top_k: int, hnsw_ef: int | None) -> None:
        if not 1 <= top_k <= MAX_TOP_K:
            raise InvalidArgument(
                f"top_k must be between 1 and {MAX_TOP_K}, got {top_k}", field="top_k"
            )
        if hnsw_ef is not None and not 1 <= hnsw_ef <= MAX_TOP_K:
            raise InvalidArgument(
                f"hnsw_ef must be between 1 and {MAX_TOP_K}, got {hnsw_ef}", field="hnsw_ef"
            )
