"""int8 scalar quantization of the vector stores: on by default, off by setting, searched with
rescoring, and turned on for a store created without it.

The embedded store runs on the real engine (qdrant-edge), whose config is read back from what
the engine persisted. There is no Qdrant server here (see test_vectors.py), so for
`QdrantServerVectorStore` these tests check the requests it sends to qdrant-client's local mode
(which accepts and ignores quantization), recorded on their way in.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import qdrant_edge as edge
from qdrant_client import AsyncQdrantClient, models

from agentic_labeling.registry.coordinator import _open_vectors
from agentic_labeling.registry.vectors.edge_vectors import VECTOR_NAME, EdgeVectorStore
from agentic_labeling.registry.vectors.qdrant_server_vectors import QdrantServerVectorStore
from agentic_labeling.registry.vectors.vector_store import (
    HnswSettings,
    ObjectPayload,
    ScalarQuantization,
    VectorPoint,
)
from agentic_labeling.settings import load_settings

pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")

DIM = 32
POINTS = 600
INT8 = {"scalar": {"type": "int8", "quantile": 0.99}}
T0 = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
# Tiny thresholds, so that optimize() builds a graph segment (quantized) for a few points.
SMALL_HNSW = HnswSettings(full_scan_threshold_kb=1, indexing_threshold_kb=1)
OFF = ScalarQuantization(enabled=False)


def _payload(n: int) -> ObjectPayload:
    return ObjectPayload("c1", "s1", n, 0.9, 100.0, False, "florence2", T0, T0)


def _unit_rows(count: int, seed: int) -> npt.NDArray[np.float32]:
    rows = np.random.default_rng(seed).standard_normal((count, DIM)).astype(np.float32)
    normalised: npt.NDArray[np.float32] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return normalised


DATA = _unit_rows(POINTS, seed=1)
QUERIES = _unit_rows(20, seed=2)
KEYS = [uuid.UUID(int=n + 1) for n in range(POINTS)]


async def _fill(store: EdgeVectorStore) -> None:
    await store.upsert([VectorPoint(KEYS[n], DATA[n], _payload(n)) for n in range(POINTS)])
    await store.optimize()


def _exact_top(query: npt.NDArray[np.float32], k: int = 10) -> tuple[list[uuid.UUID], list[float]]:
    scores = DATA @ query
    order = np.argsort(-scores)[:k]
    return [KEYS[n] for n in order], [float(scores[n]) for n in order]


@pytest.fixture
async def filled(tmp_path: Path) -> AsyncIterator[EdgeVectorStore]:
    """An embedded store with the default quantization and a built (quantized) graph."""
    async with await EdgeVectorStore.open(
        tmp_path / "qdrant", dimension=DIM, hnsw=SMALL_HNSW
    ) as store:
        await _fill(store)
        yield store


# --- Embedded store (qdrant-edge) ----------------------------------------------------------------


async def test_edge_store_quantizes_int8_by_default(filled: EdgeVectorStore) -> None:
    assert await filled.quantization_config() == INT8
    stats = await filled.stats()
    assert stats.indexed_vectors == stats.points == POINTS
    assert await filled.unquantized_segments() == 0


async def test_edge_store_has_no_quantization_when_turned_off(tmp_path: Path) -> None:
    async with await EdgeVectorStore.open(
        tmp_path / "qdrant", dimension=DIM, hnsw=SMALL_HNSW, quantization=OFF
    ) as store:
        await _fill(store)
        assert await store.quantization_config() is None
        assert await store.unquantized_segments() >= 1  # the graph segment, built without


async def test_edge_search_with_rescoring_equals_the_exact_search(
    filled: EdgeVectorStore,
) -> None:
    for query in QUERIES:
        hits = await filled.search(query, top_k=10)
        exact_ids, exact_scores = _exact_top(query)
        assert [hit.id for hit in hits] == exact_ids
        assert [hit.score for hit in hits] == pytest.approx(exact_scores, abs=1e-5)


async def test_edge_search_without_rescoring_would_score_on_the_int8_copy(
    filled: EdgeVectorStore,
) -> None:
    # What the previous test guards against: the quantized scores are not the exact ones.
    worst = 0.0
    for query in QUERIES:
        request = edge.QueryRequest(
            limit=10,
            query=edge.Query.Nearest(query.tolist(), using=VECTOR_NAME),
            params=edge.SearchParams(
                hnsw_ef=256, quantization=edge.QuantizationSearchParams(rescore=False)
            ),
            with_payload=False,
            with_vector=False,
        )
        hits = await filled._call(lambda shard, request=request: shard.query(request))
        exact = {key: float(score) for key, score in zip(KEYS, DATA @ query, strict=True)}
        worst = max(worst, *(abs(hit.score - exact[uuid.UUID(str(hit.id))]) for hit in hits))
    assert worst > 1e-4


async def test_edge_store_built_without_quantization_gets_it_on_open_keeping_every_vector(
    tmp_path: Path,
) -> None:
    path = tmp_path / "qdrant"
    async with await EdgeVectorStore.open(
        path, dimension=DIM, hnsw=SMALL_HNSW, quantization=OFF
    ) as old:
        await _fill(old)
        before = await old.retrieve(KEYS, with_vectors=True)
        assert await old.unquantized_segments() >= 1
    async with await EdgeVectorStore.open(path, dimension=DIM, hnsw=SMALL_HNSW) as migrated:
        assert await migrated.quantization_config() == INT8
        assert await migrated.unquantized_segments() == 0
        stats = await migrated.stats()
        assert stats.points == stats.indexed_vectors == POINTS
        after = await migrated.retrieve(KEYS, with_vectors=True)
        assert after == before
        hits = await migrated.search(QUERIES[0], top_k=10)
        assert [hit.id for hit in hits] == _exact_top(QUERIES[0])[0]


async def test_edge_store_opened_with_quantization_off_searches_the_float_vectors(
    tmp_path: Path,
) -> None:
    # qdrant-edge keeps the quantized copy of a shard that has one; the setting still decides.
    path = tmp_path / "qdrant"
    async with await EdgeVectorStore.open(path, dimension=DIM, hnsw=SMALL_HNSW) as quantized:
        await _fill(quantized)
    async with await EdgeVectorStore.open(
        path, dimension=DIM, hnsw=SMALL_HNSW, quantization=OFF
    ) as store:
        assert store.quantization.enabled is False
        for query in QUERIES[:5]:
            hits = await store.search(query, top_k=10)
            exact_ids, exact_scores = _exact_top(query)
            assert [hit.id for hit in hits] == exact_ids
            assert [hit.score for hit in hits] == pytest.approx(exact_scores, abs=1e-5)


# --- The setting ---------------------------------------------------------------------------------


def test_vector_quantization_setting_is_on_by_default_and_off_from_the_environment() -> None:
    assert load_settings().vector_quantization is True
    off = load_settings(environ={"ALABEL_VECTOR_QUANTIZATION": "off"})
    assert off.vector_quantization is False
    assert load_settings({"vector_quantization": "false"}).vector_quantization is False


@pytest.mark.parametrize(("value", "expected"), [("on", INT8), ("off", None)])
async def test_registry_opens_its_vector_store_as_the_setting_says(
    tmp_path: Path, value: str, expected: dict[str, Any] | None
) -> None:
    settings = load_settings({"data_dir": str(tmp_path), "vector_quantization": value})
    store = await _open_vectors(settings, DIM)
    try:
        assert await store.quantization_config() == expected
    finally:
        await store.close()


# --- Server store (requests through qdrant-client) -----------------------------------------------


class RecordingClient(AsyncQdrantClient):
    """qdrant-client's local mode, recording the collection configs and search parameters it
    is sent (local mode accepts quantization and ignores it)."""

    def __init__(self) -> None:
        super().__init__(location=":memory:")
        self.created: list[dict[str, Any]] = []
        self.updated: list[dict[str, Any]] = []
        self.search_params: list[models.SearchParams | None] = []

    async def create_collection(self, collection_name: str, **kwargs: Any) -> bool:
        self.created.append(kwargs)
        return await super().create_collection(collection_name, **kwargs)

    async def update_collection(self, collection_name: str, **kwargs: Any) -> bool:
        self.updated.append(kwargs)
        return await super().update_collection(collection_name, **kwargs)

    async def query_points(self, collection_name: str, **kwargs: Any) -> Any:
        self.search_params.append(kwargs.get("search_params"))
        return await super().query_points(collection_name, **kwargs)


@pytest.fixture
async def client() -> AsyncIterator[RecordingClient]:
    recording = RecordingClient()
    yield recording
    await recording.close()


def _int8(config: Any) -> bool:
    return (
        isinstance(config, models.ScalarQuantization)
        and config.scalar.type == models.ScalarType.INT8
        and config.scalar.quantile == 0.99
    )


async def test_server_store_creates_its_collection_int8_quantized_and_searches_with_rescoring(
    client: RecordingClient,
) -> None:
    store = await QdrantServerVectorStore.open(client, dimension=DIM)
    assert _int8(client.created[0]["quantization_config"])
    await store.upsert([VectorPoint(KEYS[n], DATA[n], _payload(n)) for n in range(50)])
    await store.search(QUERIES[0], top_k=5)
    params = client.search_params[-1]
    assert params is not None
    assert params.quantization is not None
    assert params.quantization.ignore is False
    assert params.quantization.rescore is True
    assert params.quantization.oversampling == ScalarQuantization().oversampling


async def test_server_store_turned_off_creates_no_quantization_and_ignores_any(
    client: RecordingClient,
) -> None:
    store = await QdrantServerVectorStore.open(client, dimension=DIM, quantization=OFF)
    assert client.created[0]["quantization_config"] is None
    assert client.updated == []
    await store.search(QUERIES[0], top_k=5)
    params = client.search_params[-1]
    assert params is not None
    assert params.quantization is not None
    assert params.quantization.ignore is True


async def test_server_store_turns_quantization_on_for_a_collection_created_without(
    client: RecordingClient,
) -> None:
    await QdrantServerVectorStore.open(client, dimension=DIM, quantization=OFF)
    assert client.updated == []
    await QdrantServerVectorStore.open(client, dimension=DIM)
    assert len(client.created) == 1  # the existing collection, updated in place
    assert [_int8(update["quantization_config"]) for update in client.updated] == [True]
