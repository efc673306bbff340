"""The vector stores: qdrant-edge (the real engine, in-process) and qdrant-client.

There is no Qdrant server here (no Docker, no network), so `QdrantServerVectorStore` runs
against qdrant-client's local mode, a Python re-implementation of Qdrant (brute-force search,
no payload indexes): these tests check the requests it builds and the store's behaviour, not
the server engine. HNSW recall is measured on qdrant-edge, which is the real engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import numpy as np
import numpy.typing as npt
import pytest
import qdrant_edge as edge
from qdrant_client import AsyncQdrantClient, models
from qdrant_client.http.exceptions import UnexpectedResponse

from agentic_labeling.errors import FailedPrecondition, InvalidArgument, Unavailable
from agentic_labeling.local_mesh import unused_port
from agentic_labeling.registry.query.filtering import Comparison, Expr, Op, evaluate, parse_filter
from agentic_labeling.registry.query.queryable_fields import OBJECT_FILTER
from agentic_labeling.registry.vectors.edge_vectors import EdgeVectorStore
from agentic_labeling.registry.vectors.qdrant_server_vectors import QdrantServerVectorStore
from agentic_labeling.registry.vectors.vector_store import (
    HnswSettings,
    ObjectPayload,
    VectorPoint,
    VectorStore,
)

# Local mode says that it searches by brute force whatever the search parameters; known.
pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")

DIM = 16
T0 = datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
# Tiny thresholds, so that optimize() really builds the graph for a few thousand points.
SMALL_HNSW = HnswSettings(full_scan_threshold_kb=1, indexing_threshold_kb=1)

StoreFactory = Callable[[int], Awaitable[VectorStore]]


def payload(**changes: object) -> ObjectPayload:
    values: dict[str, object] = {
        "category": "c1",
        "source": "s1",
        "frame_index": 0,
        "confidence": 0.9,
        "area": 100.0,
        "is_validated": False,
        "detection_model": "florence2",
        "create_time": T0,
        "update_time": T0,
    }
    values.update(changes)
    return ObjectPayload(**values)  # type: ignore[arg-type]


def vector(seed: int, dim: int = DIM) -> list[float]:
    return [float(x) for x in np.random.default_rng(seed).normal(size=dim)]


def parse(text: str) -> Expr:
    expr = parse_filter(text, OBJECT_FILTER)
    assert expr is not None
    return expr


@pytest.fixture(params=["edge", "client-local"])
async def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StoreFactory]:
    """Opens stores of one kind (any dimension); closes them all at the end."""
    opened: list[VectorStore] = []
    client = AsyncQdrantClient(location=":memory:")

    async def factory(dimension: int) -> VectorStore:
        store: VectorStore
        if request.param == "edge":
            store = await EdgeVectorStore.open(
                tmp_path / "qdrant", dimension=dimension, hnsw=SMALL_HNSW
            )
        else:
            store = await QdrantServerVectorStore.open(client, dimension=dimension, hnsw=SMALL_HNSW)
        opened.append(store)
        return store

    yield factory
    for store in opened:
        await store.close()
    await client.close()


@pytest.fixture
async def store(open_store: StoreFactory) -> VectorStore:
    return await open_store(DIM)


# --- Round trips --------------------------------------------------------------------------------


async def test_upserted_point_is_found_by_search_and_gone_after_delete(store: VectorStore) -> None:
    key, other = uuid.uuid4(), uuid.uuid4()
    await store.upsert(
        [VectorPoint(key, vector(1), payload()), VectorPoint(other, vector(2), payload())]
    )
    hits = await store.search(vector(1), top_k=2)
    assert hits[0].id == key
    assert hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert hits[1].id == other
    assert hits[1].score < hits[0].score
    await store.delete([key])
    assert [hit.id for hit in await store.search(vector(1), top_k=2)] == [other]
    assert await store.count() == 1


async def test_upsert_is_idempotent_by_id_and_replaces_vector_and_payload(
    store: VectorStore,
) -> None:
    key = uuid.uuid4()
    point = VectorPoint(key, vector(1), payload())
    await store.upsert([point])
    await store.upsert([point])
    assert await store.count() == 1
    await store.upsert([VectorPoint(key, vector(2), payload(category="c2"))])
    assert await store.count() == 1
    record = (await store.retrieve([key], with_vectors=True))[key]
    assert record.payload.category == "c2"
    assert record.vector is not None
    expected = np.asarray(vector(2)) / np.linalg.norm(vector(2))
    assert np.allclose(record.vector, expected, atol=1e-6)


async def test_later_point_with_the_same_id_in_one_batch_wins(store: VectorStore) -> None:
    key = uuid.uuid4()
    await store.upsert(
        [
            VectorPoint(key, vector(1), payload(category="first")),
            VectorPoint(key, vector(2), payload(category="last")),
        ]
    )
    assert await store.count() == 1
    assert (await store.retrieve([key]))[key].payload.category == "last"


async def test_retrieve_returns_the_payload_as_written_and_skips_missing_ids(
    store: VectorStore,
) -> None:
    key = uuid.uuid4()
    written = payload(
        frame_index=12,
        confidence=0.125,
        quality_score=0.75,
        is_validated=True,
        validated_by="alice",
        track="t9",
        create_time=T0 + timedelta(microseconds=7),
        update_time=T0 + timedelta(days=1),
    )
    await store.upsert([VectorPoint(key, vector(1), written)])
    found = await store.retrieve([key, uuid.uuid4(), key])
    assert list(found) == [key]
    assert found[key].payload == written
    assert found[key].vector is None
    assert await store.retrieve([]) == {}


async def test_set_payload_replaces_the_payload_keeps_the_vector_and_skips_missing(
    store: VectorStore,
) -> None:
    key = uuid.uuid4()
    await store.upsert([VectorPoint(key, vector(1), payload(validated_by="bob"))])
    reviewed = payload(is_validated=True, validated_by=None, category="c7")
    await store.set_payload([(key, reviewed), (uuid.uuid4(), reviewed)])
    await store.set_payload([])
    assert await store.count() == 1
    record = (await store.retrieve([key], with_vectors=True))[key]
    assert record.payload == reviewed
    assert (await store.search(vector(1), top_k=1))[0].id == key
    assert await store.count(parse('category = "c7" AND validated_by = null')) == 1


async def test_ids_lists_every_point_across_pages(store: VectorStore) -> None:
    keys = {uuid.uuid4() for _ in range(23)}
    await store.upsert([VectorPoint(key, vector(n), payload()) for n, key in enumerate(keys)])
    seen = [key async for key in store.ids(page_size=5)]
    assert sorted(seen) == sorted(keys)


async def test_delete_of_missing_or_no_ids_is_fine(store: VectorStore) -> None:
    await store.delete([uuid.uuid4()])
    await store.delete([])
    assert await store.count() == 0


async def test_count_and_search_push_the_filter_down(store: VectorStore) -> None:
    points = [
        VectorPoint(uuid.uuid4(), vector(n), payload(category=f"c{n % 3}", confidence=n / 30))
        for n in range(30)
    ]
    await store.upsert(points)
    expr = parse('category = "c1" AND confidence >= 0.5')
    matching = {p.id for p in points if evaluate(expr, _record(p.payload))}
    assert len(matching) == 5
    assert await store.count(expr) == len(matching)
    # More hits asked for than match: a post-filter over the top k would return fewer or more.
    hits = await store.search(vector(99), filter=expr, top_k=20)
    assert {hit.id for hit in hits} == matching


# --- Bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make_point", "field"),
    [
        (lambda: VectorPoint(uuid.uuid4(), vector(1, DIM + 1), payload()), "points[2].vector"),
        (lambda: VectorPoint(uuid.uuid4(), [0.0] * DIM, payload()), "points[2].vector"),
        (lambda: VectorPoint(uuid.uuid4(), [float("nan")] * DIM, payload()), "points[2].vector"),
        (lambda: VectorPoint("not-a-uuid", vector(1), payload()), "points[2].id"),  # type: ignore[arg-type]
        (
            lambda: VectorPoint(uuid.uuid4(), vector(1), payload(confidence=float("inf"))),
            "points[2].payload",
        ),
        (
            lambda: VectorPoint(uuid.uuid4(), vector(1), payload(create_time=datetime(2026, 1, 1))),
            "points[2].payload",
        ),
        (
            lambda: VectorPoint(uuid.uuid4(), vector(1), payload(frame_index=2**60)),
            "points[2].payload",
        ),
        (
            lambda: VectorPoint(
                uuid.uuid4(), vector(1), payload(update_time=datetime(1, 1, 1, tzinfo=UTC))
            ),
            "points[2].payload",
        ),
    ],
    ids=[
        "dimension",
        "zero",
        "nan",
        "id",
        "infinite-confidence",
        "naive-time",
        "huge-frame-index",
        "ancient-time",
    ],
)
async def test_a_bad_point_refuses_the_whole_batch(
    store: VectorStore, make_point: Callable[[], VectorPoint], field: str
) -> None:
    good = [VectorPoint(uuid.uuid4(), vector(n), payload()) for n in range(2)]
    with pytest.raises(InvalidArgument) as caught:
        await store.upsert([*good, make_point()])
    assert caught.value.violations[0].field == field
    assert await store.count() == 0


async def test_search_refuses_bad_arguments(store: VectorStore) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await store.search(vector(1, DIM - 1))
    assert caught.value.reason == "WRONG_EMBEDDING_DIMENSION"
    for kwargs, field in [
        ({"top_k": 0}, "top_k"),
        ({"top_k": 10_001}, "top_k"),
        ({"hnsw_ef": 0}, "hnsw_ef"),
    ]:
        with pytest.raises(InvalidArgument) as caught:
            await store.search(vector(1), **kwargs)  # type: ignore[arg-type]
        assert caught.value.violations[0].field == field
    with pytest.raises(InvalidArgument) as caught:
        await store.search(vector(1), filter=Comparison("no_such_field", Op.EQ, "x"))
    assert caught.value.violations[0].field == "filter"


async def test_reopening_with_another_dimension_is_failed_precondition(
    open_store: StoreFactory,
) -> None:
    first = await open_store(DIM)
    await first.upsert([VectorPoint(uuid.uuid4(), vector(1), payload())])
    await first.close()
    with pytest.raises(FailedPrecondition) as caught:
        await open_store(DIM * 2)
    assert caught.value.reason == "EMBEDDING_DIMENSION_MISMATCH"
    assert caught.value.metadata == {"stored": str(DIM), "model": str(DIM * 2)}


async def test_closed_store_refuses_calls_and_close_is_idempotent(store: VectorStore) -> None:
    await store.close()
    await store.close()
    with pytest.raises(FailedPrecondition):
        await store.upsert([VectorPoint(uuid.uuid4(), vector(1), payload())])
    with pytest.raises(FailedPrecondition):
        await store.search(vector(1))
    with pytest.raises(FailedPrecondition):
        await store.flush()


# --- Concurrency --------------------------------------------------------------------------------


async def test_concurrent_upserts_and_searches_from_many_tasks_lose_nothing(
    store: VectorStore,
) -> None:
    batches = [
        [VectorPoint(uuid.uuid4(), vector(100 * b + n), payload(frame_index=b)) for n in range(40)]
        for b in range(12)
    ]

    async def search_meanwhile() -> int:
        found = 0
        for n in range(10):
            found += len(await store.search(vector(n), top_k=5))
            await asyncio.sleep(0)
        return found

    results = await asyncio.gather(
        *(store.upsert(batch) for batch in batches), *(search_meanwhile() for _ in range(3))
    )
    assert all(isinstance(found, int) for found in results[len(batches) :])
    assert await store.count() == 12 * 40
    all_ids = {point.id for batch in batches for point in batch}
    assert {key async for key in store.ids()} == all_ids
    assert await store.count(parse("frame_index = 5")) == 40
    await store.flush()


# --- Recall against an exact scan ---------------------------------------------------------------

RECALL_N = 4000
RECALL_DIM = 768  # DINOv2's
RECALL_QUERIES = 60


@pytest.fixture(scope="module")
def clustered() -> tuple[npt.NDArray[np.float64], list[ObjectPayload], npt.NDArray[np.float64]]:
    """Seeded clustered unit vectors, payloads and queries. The clusters are wide and overlap
    (noise 4x the spread of the centers): on this data Qdrant's default search breadth
    (hnsw_ef = ef_construct = 100) finds about 0.85-0.95 of the true top 10, ours 0.98+."""
    rng = np.random.default_rng(7)
    centers = rng.normal(size=(40, RECALL_DIM))
    noise = 4.0
    data = centers[rng.integers(0, 40, RECALL_N)] + noise * rng.normal(size=(RECALL_N, RECALL_DIM))
    data /= np.linalg.norm(data, axis=1, keepdims=True)
    queries = centers[rng.integers(0, 40, RECALL_QUERIES)] + noise * rng.normal(
        size=(RECALL_QUERIES, RECALL_DIM)
    )
    payloads = [
        payload(
            category=f"c{rng.integers(0, 5)}",
            confidence=float(rng.random()),
            is_validated=bool(rng.random() < 0.5),
        )
        for _ in range(RECALL_N)
    ]
    return data, payloads, queries


@pytest.mark.parametrize(
    "filter_text", [None, 'category = "c3" AND confidence >= 0.3', "is_validated = true"]
)
@pytest.mark.parametrize("kind", ["edge", "client-local"])
async def test_recall_at_10_against_an_exact_scan_is_at_least_095(
    clustered: tuple[npt.NDArray[np.float64], list[ObjectPayload], npt.NDArray[np.float64]],
    recall_stores: dict[str, tuple[VectorStore, list[uuid.UUID]]],
    kind: str,
    filter_text: str | None,
) -> None:
    data, payloads, queries = clustered
    store, keys = recall_stores[kind]
    expr = parse(filter_text) if filter_text else None
    allowed = np.array([evaluate(expr, _record(p)) for p in payloads])
    assert 0.1 < allowed.mean() <= 1.0
    position = {key: n for n, key in enumerate(keys)}
    # Also Qdrant's default breadth, for comparison (local mode is brute force: no point).
    recalls: dict[int | None, list[float]] = {None: [], 100: []} if kind == "edge" else {None: []}
    latencies = []
    for query in queries:
        scores = np.where(allowed, data @ (query / np.linalg.norm(query)), -np.inf)
        truth = {keys[i] for i in np.argsort(-scores)[:10]}
        for hnsw_ef in recalls:
            started = time.perf_counter()
            hits = await store.search(query, filter=expr, top_k=10, hnsw_ef=hnsw_ef)
            if hnsw_ef is None:
                latencies.append(time.perf_counter() - started)
            assert all(allowed[position[hit.id]] for hit in hits)  # only matching objects
            recalls[hnsw_ef].append(len(truth & {hit.id for hit in hits}) / 10)
    recall = float(np.mean(recalls[None]))
    p95_ms = float(np.percentile(latencies, 95) * 1000)
    at_100 = f" (Qdrant's default 100: {np.mean(recalls[100]):.3f})" if 100 in recalls else ""
    print(
        f"\n{kind} filter={filter_text!r}: recall@10 {recall:.3f} at the default hnsw_ef"
        f"{at_100}, p95 {p95_ms:.2f} ms"
    )
    assert recall >= 0.95


@pytest.fixture(scope="module")
async def recall_stores(
    clustered: tuple[npt.NDArray[np.float64], list[ObjectPayload], npt.NDArray[np.float64]],
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[dict[str, tuple[VectorStore, list[uuid.UUID]]]]:
    data, payloads, _ = clustered
    keys = [uuid.UUID(int=random.Random(n).getrandbits(128)) for n in range(RECALL_N)]
    points = [VectorPoint(k, v, p) for k, v, p in zip(keys, data, payloads, strict=True)]
    edge_store = await EdgeVectorStore.open(
        tmp_path_factory.mktemp("recall") / "qdrant", dimension=RECALL_DIM, hnsw=SMALL_HNSW
    )
    local_store = await QdrantServerVectorStore.open(
        AsyncQdrantClient(location=":memory:"), dimension=RECALL_DIM, owns_client=True
    )
    for store in (edge_store, local_store):
        await store.upsert(points)
    assert await edge_store.optimize()
    stats = await edge_store.stats()
    # The graph answers, not an exact scan of an unindexed segment.
    assert stats.indexed_vectors == RECALL_N
    yield {"edge": (edge_store, keys), "client-local": (local_store, keys)}
    await edge_store.close()
    await local_store.close()


def _record(item: ObjectPayload) -> dict[str, object]:
    return {
        "category": item.category,
        "confidence": item.confidence,
        "is_validated": item.is_validated,
    }


# --- qdrant-edge specifics ----------------------------------------------------------------------


async def test_edge_store_keeps_its_points_across_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    keys = [uuid.uuid4() for _ in range(50)]
    async with await EdgeVectorStore.open(path, dimension=DIM) as store:
        await store.upsert(
            [VectorPoint(key, vector(n), payload(frame_index=n)) for n, key in enumerate(keys)]
        )
        await store.delete(keys[:10])
    async with await EdgeVectorStore.open(path, dimension=DIM) as store:
        assert await store.count() == 40
        assert (await store.search(vector(20), top_k=1))[0].id == keys[20]
        assert await store.count(parse("frame_index < 20")) == 10
        stats = await store.stats()
        assert stats.points == 40


_KILLED_WRITER = """
import asyncio, os, signal, sys, uuid
from datetime import UTC, datetime
from pathlib import Path
from agentic_labeling.registry.vectors.edge_vectors import EdgeVectorStore
from agentic_labeling.registry.vectors.vector_store import ObjectPayload, VectorPoint

async def main() -> None:
    store = await EdgeVectorStore.open(Path(sys.argv[1]), dimension=8)
    t = datetime(2026, 1, 1, tzinfo=UTC)
    payload = ObjectPayload("c", "s", 0, 0.5, 1.0, True, "m", t, t)
    await store.upsert([VectorPoint(uuid.uuid4(), [1.0] * 8, payload) for _ in range(700)])
    os.kill(os.getpid(), signal.SIGKILL)  # no flush, no close

asyncio.run(main())
"""


async def test_edge_store_keeps_acknowledged_writes_after_the_process_is_killed(
    tmp_path: Path,
) -> None:
    path = tmp_path / "qdrant"
    writer = await asyncio.create_subprocess_exec(sys.executable, "-c", _KILLED_WRITER, str(path))
    assert await writer.wait() == -signal.SIGKILL
    async with await EdgeVectorStore.open(path, dimension=8) as store:
        assert await store.count() == 700
        assert await store.count(parse("is_validated = true")) == 700


async def test_edge_store_refuses_a_shard_without_its_vector(tmp_path: Path) -> None:
    path = tmp_path / "qdrant"
    shard = edge.EdgeShard.create(
        str(path),
        edge.EdgeConfig(vectors={"other": edge.EdgeVectorParams(DIM, edge.Distance.Cosine)}),
    )
    shard.close()
    with pytest.raises(FailedPrecondition) as caught:
        await EdgeVectorStore.open(path, dimension=DIM)
    assert caught.value.reason == "VECTOR_STORE_INCOMPATIBLE"
    config = json.loads((path / "edge_config.json").read_text())
    assert "other" in config["vectors"]


async def test_edge_store_refuses_a_non_positive_dimension(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dimension"):
        await EdgeVectorStore.open(tmp_path / "qdrant", dimension=0)


async def test_edge_optimize_builds_the_graph_only_when_needed(tmp_path: Path) -> None:
    async with await EdgeVectorStore.open(
        tmp_path / "qdrant", dimension=DIM, hnsw=SMALL_HNSW
    ) as store:
        await store.upsert([VectorPoint(uuid.uuid4(), vector(n), payload()) for n in range(300)])
        assert (await store.stats()).indexed_vectors == 0
        assert await store.optimize_if_needed(min_unindexed=301) is False
        assert await store.optimize_if_needed(min_unindexed=300) is True
        stats = await store.stats()
        assert stats.indexed_vectors == stats.points == 300
        assert await store.optimize_if_needed(min_unindexed=1) is False


async def test_edge_optimize_starts_in_the_background_after_n_upserts(tmp_path: Path) -> None:
    async with await EdgeVectorStore.open(
        tmp_path / "qdrant", dimension=DIM, hnsw=SMALL_HNSW, optimize_after=200
    ) as store:
        await store.upsert([VectorPoint(uuid.uuid4(), vector(n), payload()) for n in range(150)])
        await store.wait_for_background_optimize()
        assert (await store.stats()).indexed_vectors == 0
        await store.upsert(
            [VectorPoint(uuid.uuid4(), vector(n), payload()) for n in range(150, 300)]
        )
        await store.wait_for_background_optimize()
        assert (await store.stats()).indexed_vectors == 300


async def test_edge_close_during_an_upsert_keeps_whole_chunks_and_refuses_the_rest(
    tmp_path: Path,
) -> None:
    store = await EdgeVectorStore.open(tmp_path / "qdrant", dimension=DIM)
    points = [VectorPoint(uuid.uuid4(), vector(n), payload()) for n in range(2000)]
    upsert = asyncio.create_task(store.upsert(points))
    await asyncio.sleep(0)
    await store.close()
    # The upsert either finished before the close or was refused from one chunk on.
    with contextlib.suppress(FailedPrecondition):
        await upsert
    async with await EdgeVectorStore.open(tmp_path / "qdrant", dimension=DIM) as reopened:
        assert await reopened.count() % 512 in (0, 2000 % 512)


# --- qdrant-client specifics --------------------------------------------------------------------


async def test_server_store_reports_an_unreachable_server_as_unavailable() -> None:
    with pytest.raises(Unavailable):
        await QdrantServerVectorStore.connect(
            f"http://127.0.0.1:{unused_port()}",
            dimension=DIM,
            timeout_s=2,
            check_compatibility=False,  # its thread would only warn about the same thing
        )


@pytest.fixture
async def local_store() -> AsyncIterator[QdrantServerVectorStore]:
    store = await QdrantServerVectorStore.open(
        AsyncQdrantClient(location=":memory:"), dimension=DIM, owns_client=True
    )
    yield store
    await store.close()


async def test_server_store_maps_server_errors_to_unavailable_and_keeps_client_errors(
    local_store: QdrantServerVectorStore,
) -> None:
    async def fail(status: int) -> None:
        raise UnexpectedResponse(status, "reason", b"", httpx.Headers())

    with pytest.raises(Unavailable, match="503"):
        await local_store._rpc(fail(503))
    with pytest.raises(Unavailable, match="429"):
        await local_store._rpc(fail(429))
    with pytest.raises(UnexpectedResponse):
        await local_store._rpc(fail(400))


async def test_server_store_has_nothing_to_optimize_or_flush(
    local_store: QdrantServerVectorStore,
) -> None:
    assert await local_store.optimize() is False
    await local_store.flush()
    assert (await local_store.stats()).points == 0


async def test_server_store_refuses_a_collection_without_its_vector() -> None:
    client = AsyncQdrantClient(location=":memory:")
    await client.create_collection(
        "objects",
        vectors_config={"other": models.VectorParams(size=DIM, distance=models.Distance.COSINE)},
    )
    with pytest.raises(FailedPrecondition) as caught:
        await QdrantServerVectorStore.open(client, dimension=DIM)
    assert caught.value.reason == "VECTOR_STORE_INCOMPATIBLE"
    with pytest.raises(ValueError, match="dimension"):
        await QdrantServerVectorStore.open(client, dimension=-1)
    await client.close()
