"""The vector store on a Qdrant server or cluster (`--qdrant-url`), through qdrant-client.

One collection (default "objects") with one named vector ("embedding", cosine, the model's
dimension), and the payload indexes of `vector_filters.OBJECT_PAYLOAD`, created when the store
opens. The client is qdrant-client's asyncio client over REST, so nothing blocks the event loop
and the store is safe to share between tasks. Connection failures and 5xx / 429 answers become
Unavailable.

HNSW build policy: the server's own optimizer builds the graph in the background once a segment
passes `HnswSettings.indexing_threshold_kb` (set when the collection is created), without
blocking searches, so `optimize()` has nothing to do. Searches use `hnsw_ef` =
`HnswSettings.default_hnsw_ef` unless told otherwise, as the embedded store does.

Quantization (`ScalarQuantization`, on by default): the collection is created with int8
scalar quantization (kept in RAM), and searches ask for rescoring on the original vectors with
`oversampling`. A collection created without it (before it was the default) gets it when the
store opens: `update_collection` sets the config, and the server's optimizer quantizes the
existing segments in the background, keeping every vector; searches meanwhile score the
segments not yet quantized on their float vectors. With quantization off, new collections get
none and searches ignore a quantized copy an existing collection has (the config is left as it
is, as the embedded store must leave it).

Durability: writes are sent with `wait=True`, so an acknowledged write is in the server's
write-ahead log; `flush()` has nothing to add.

How this is tested, honestly: there is no Qdrant server in this project's test environment (no
Docker, no network), so the tests run this class against qdrant-client's local mode
(`AsyncQdrantClient(location=":memory:")`), a pure-Python re-implementation of Qdrant's API:
brute-force search, filters evaluated in Python, payload indexes ignored. That checks the
requests this class builds and the filter semantics as local mode implements them; it does not
check the real engine's HNSW recall or its payload-index code paths (the embedded store's tests
do that, with the real engine).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Awaitable, Iterable, Sequence
from typing import Any, TypeVar
from uuid import UUID

import httpx
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from agentic_labeling.errors import FailedPrecondition, Unavailable
from agentic_labeling.registry.query.filtering import Expr
from agentic_labeling.registry.vectors.vector_filters import (
    OBJECT_PAYLOAD,
    PayloadKind,
    to_client_filter,
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

__all__ = ["DEFAULT_COLLECTION", "UPSERT_CHUNK", "VECTOR_NAME", "QdrantServerVectorStore"]

VECTOR_NAME = "embedding"
DEFAULT_COLLECTION = "objects"
UPSERT_CHUNK = 512

logger = logging.getLogger(__name__)

T = TypeVar("T")


def _index_schema(kind: PayloadKind) -> models.PayloadSchemaType | models.IntegerIndexParams:
    match kind:
        case PayloadKind.KEYWORD:
            return models.PayloadSchemaType.KEYWORD
        case PayloadKind.FLOAT:
            return models.PayloadSchemaType.FLOAT
        case PayloadKind.BOOL:
            return models.IntegerIndexParams(
                type=models.IntegerIndexType.INTEGER, lookup=True, range=False
            )
        case PayloadKind.INTEGER | PayloadKind.TIMESTAMP:  # pragma: no branch
            return models.IntegerIndexParams(
                type=models.IntegerIndexType.INTEGER, lookup=True, range=True
            )


class QdrantServerVectorStore(VectorStore):
    """Embeddings in a Qdrant collection. Open with `QdrantServerVectorStore.open`."""

    def __init__(
        self,
        client: AsyncQdrantClient,
        collection: str,
        dimension: int,
        hnsw: HnswSettings,
        owns_client: bool,
        quantization: ScalarQuantization | None = None,
    ) -> None:
        super().__init__(dimension)
        self.collection = collection
        self.hnsw = hnsw
        self.quantization = quantization or ScalarQuantization()
        self._client = client
        self._owns_client = owns_client
        self._closed = False

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        dimension: int,
        collection: str = DEFAULT_COLLECTION,
        api_key: str | None = None,
        timeout_s: int = 30,
        hnsw: HnswSettings | None = None,
        check_compatibility: bool = True,
        quantization: ScalarQuantization | None = None,
    ) -> QdrantServerVectorStore:
        """Open the store on the server at `url` (e.g. http://qdrant:6333).
        `check_compatibility`: qdrant-client compares its version with the server's in a
        background thread and warns when they are too far apart (or it cannot tell)."""
        client = AsyncQdrantClient(
            url=url,
            api_key=api_key,
            timeout=timeout_s,
            check_compatibility=check_compatibility,
        )
        try:
            return await cls.open(
                client,
                dimension=dimension,
                collection=collection,
                hnsw=hnsw,
                owns_client=True,
                quantization=quantization,
            )
        except BaseException:
            await client.close()
            raise

    @classmethod
    async def open(
        cls,
        client: AsyncQdrantClient,
        *,
        dimension: int,
        collection: str = DEFAULT_COLLECTION,
        hnsw: HnswSettings | None = None,
        owns_client: bool = False,
        quantization: ScalarQuantization | None = None,
    ) -> QdrantServerVectorStore:
        """Use `collection` through `client`, creating it (and its payload indexes) when it does
        not exist, and turning quantization on for one created without it (unless
        `quantization` is off). FailedPrecondition when it holds vectors of another dimension
        or distance. With `owns_client`, `close` closes the client too."""
        if dimension < 1:
            raise ValueError(f"dimension must be positive, got {dimension}")
        store = cls(
            client, collection, dimension, hnsw or HnswSettings(), owns_client, quantization
        )
        await store._ensure_collection()
        return store

    async def _ensure_collection(self) -> None:
        if not await self._rpc(self._client.collection_exists(self.collection)):
            try:
                await self._rpc(
                    self._client.create_collection(
                        self.collection,
                        vectors_config={
                            VECTOR_NAME: models.VectorParams(
                                size=self.dimension, distance=models.Distance.COSINE
                            )
                        },
                        hnsw_config=models.HnswConfigDiff(
                            m=self.hnsw.m,
                            ef_construct=self.hnsw.ef_construct,
                            full_scan_threshold=self.hnsw.full_scan_threshold_kb,
                        ),
                        optimizers_config=models.OptimizersConfigDiff(
                            indexing_threshold=self.hnsw.indexing_threshold_kb
                        ),
                        quantization_config=self._client_quantization(),
                    )
                )
            except (UnexpectedResponse, ValueError):
                # Another registry process created it first (409; local mode: ValueError).
                if not await self._rpc(self._client.collection_exists(self.collection)):
                    raise
        info = await self._rpc(self._client.get_collection(self.collection))
        self._check_vectors(info.config.params.vectors)
        wanted = self._client_quantization()
        if wanted is not None and info.config.quantization_config is None:
            logger.warning(
                "Qdrant collection %r has no int8 quantization; turning it on (the server "
                "quantizes the existing segments in the background)",
                self.collection,
            )
            await self._rpc(
                self._client.update_collection(self.collection, quantization_config=wanted)
            )
        with warnings.catch_warnings():
            # Local mode (tests) says once that it ignores payload indexes; known, see above.
            warnings.filterwarnings("ignore", message="Payload indexes have no effect")
            for key, kind in OBJECT_PAYLOAD.items():
                if key not in info.payload_schema:
                    await self._rpc(
                        self._client.create_payload_index(
                            self.collection, key, field_schema=_index_schema(kind), wait=True
                        )
                    )

    def _client_quantization(self) -> models.ScalarQuantization | None:
        if not self.quantization.enabled:
            return None
        return models.ScalarQuantization(
            scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=self.quantization.quantile, always_ram=True
            )
        )

    def _check_vectors(self, vectors: Any) -> None:
        params = vectors.get(VECTOR_NAME) if isinstance(vectors, dict) else None
        if params is None:
            raise FailedPrecondition(
                f"Qdrant collection {self.collection!r} has no {VECTOR_NAME!r} vectors; it was "
                "not created by this registry",
                reason="VECTOR_STORE_INCOMPATIBLE",
            )
        if params.size != self.dimension or params.distance != models.Distance.COSINE:
            raise FailedPrecondition(
                f"Qdrant collection {self.collection!r} holds {params.distance} vectors of "
                f"{params.size} dimensions; the embedding model gives {self.dimension}. Use the "
                "model the registry was built with, or another collection",
                reason="EMBEDDING_DIMENSION_MISMATCH",
                metadata={"stored": str(params.size), "model": str(self.dimension)},
            )

    async def _rpc(self, call: Awaitable[T]) -> T:
        """Await one client call, with the failures of a remote service as Unavailable."""
        try:
            return await call
        except (ResponseHandlingException, httpx.TransportError) as error:
            raise Unavailable(f"Qdrant cannot be reached: {error}") from error
        except UnexpectedResponse as error:
            if error.status_code is not None and (
                error.status_code >= 500 or error.status_code == 429
            ):
                raise Unavailable(
                    f"Qdrant answered {error.status_code}: {error.reason_phrase}"
                ) from error
            raise

    def _open_client(self) -> AsyncQdrantClient:
        if self._closed:
            raise FailedPrecondition(
                f"the vector store on collection {self.collection!r} is closed",
                reason="VECTOR_STORE_CLOSED",
            )
        return self._client

    # --- Writes -------------------------------------------------------------------------------

    async def upsert(self, points: Sequence[VectorPoint]) -> None:
        checked = self._checked_points(points)
        client = self._open_client()
        for start in range(0, len(checked), UPSERT_CHUNK):
            chunk = [
                models.PointStruct(id=str(key), vector={VECTOR_NAME: vector}, payload=payload)
                for key, vector, payload in checked[start : start + UPSERT_CHUNK]
            ]
            await self._rpc(client.upsert(self.collection, points=chunk, wait=True))

    async def set_payload(self, payloads: Sequence[tuple[UUID, ObjectPayload]]) -> None:
        latest = {key: payload.to_json() for key, payload in payloads}
        if not latest:
            return
        client = self._open_client()
        # Only existing points: the server refuses an overwrite for a missing id.
        present = await self._rpc(
            client.retrieve(
                self.collection,
                [str(key) for key in latest],
                with_payload=False,
                with_vectors=False,
            )
        )
        operations: list[models.UpdateOperation] = [
            models.OverwritePayloadOperation(
                overwrite_payload=models.SetPayload(
                    payload=latest[_uuid(record.id)], points=[record.id]
                )
            )
            for record in present
        ]
        if operations:
            await self._rpc(
                client.batch_update_points(self.collection, update_operations=operations, wait=True)
            )

    async def delete(self, ids: Iterable[UUID]) -> None:
        keys: list[models.ExtendedPointId] = [str(key) for key in dict.fromkeys(ids)]
        if keys:
            await self._rpc(
                self._open_client().delete(
                    self.collection, points_selector=models.PointIdsList(points=keys), wait=True
                )
            )

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
        response = await self._rpc(
            self._open_client().query_points(
                self.collection,
                query=query,
                using=VECTOR_NAME,
                query_filter=to_client_filter(filter),
                search_params=models.SearchParams(
                    hnsw_ef=max(top_k, hnsw_ef or self.hnsw.default_hnsw_ef),
                    exact=exact,
                    quantization=models.QuantizationSearchParams(
                        # An exact search (for checks) compares the float vectors only.
                        ignore=exact or not self.quantization.enabled,
                        rescore=True,
                        oversampling=self.quantization.oversampling,
                    ),
                ),
                limit=top_k,
                with_payload=False,
                with_vectors=False,
            )
        )
        return [ScoredId(_uuid(hit.id), hit.score) for hit in response.points]

    async def retrieve(
        self, ids: Iterable[UUID], *, with_vectors: bool = False
    ) -> dict[UUID, VectorRecord]:
        keys = [str(key) for key in dict.fromkeys(ids)]
        if not keys:
            return {}
        records = await self._rpc(
            self._open_client().retrieve(
                self.collection, keys, with_payload=True, with_vectors=with_vectors
            )
        )
        found: dict[UUID, VectorRecord] = {}
        for record in records:
            key = _uuid(record.id)
            vector = _named_vector(record.vector) if with_vectors else None
            found[key] = VectorRecord(key, ObjectPayload.from_json(record.payload or {}), vector)
        return found

    async def count(self, filter: Expr | None = None) -> int:
        result = await self._rpc(
            self._open_client().count(
                self.collection, count_filter=to_client_filter(filter), exact=True
            )
        )
        return result.count

    async def ids(self, *, page_size: int = 1024) -> AsyncIterator[UUID]:
        offset: models.ExtendedPointId | None = None
        while True:
            records, next_offset = await self._rpc(
                self._open_client().scroll(
                    self.collection,
                    limit=page_size,
                    offset=offset,
                    with_payload=False,
                    with_vectors=False,
                )
            )
            for record in records:
                yield _uuid(record.id)
            if next_offset is None:
                return
            offset = next_offset  # type: ignore[assignment]  # gRPC ids never come over REST

    async def stats(self) -> VectorStoreStats:
        info = await self._rpc(self._open_client().get_collection(self.collection))
        return VectorStoreStats(
            info.points_count or 0, info.indexed_vectors_count or 0, info.segments_count or 0
        )

    async def quantization_config(self) -> dict[str, Any] | None:
        """The collection's quantization config, as the server reports it."""
        info = await self._rpc(self._open_client().get_collection(self.collection))
        config = info.config.quantization_config
        if config is None:
            return None
        dumped: dict[str, Any] = config.model_dump(mode="json", exclude_none=True)
        return dumped

    # --- Maintenance --------------------------------------------------------------------------

    async def flush(self) -> None:
        """Nothing to do: acknowledged writes are in the server's write-ahead log."""
        self._open_client()

    async def optimize(self) -> bool:
        """Nothing to do: the server's optimizer builds the graph in the background."""
        self._open_client()
        return False

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            await self._client.close()


def _uuid(point_id: Any) -> UUID:
    return point_id if isinstance(point_id, UUID) else UUID(str(point_id))


def _named_vector(vector: Any) -> list[float] | None:
    if isinstance(vector, dict):
        value = vector.get(VECTOR_NAME)
        if isinstance(value, list):
            return [float(x) for x in value]
    return None  # pragma: no cover - the collection has one named dense vector
