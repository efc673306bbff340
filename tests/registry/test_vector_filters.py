"""AIP-160 filters as Qdrant payload filters: the same answers as `filtering.evaluate`.

The property tests run random filters over random payloads on the real qdrant-edge engine
(before and after the HNSW / payload-index build, whose code paths differ) and on
qdrant-client's local mode (a Python re-implementation of Qdrant, the only Qdrant the
qdrant-client store can be tested against here: there is no Qdrant server in this environment).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from dataclasses import fields
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import qdrant_edge as edge
from qdrant_client import AsyncQdrantClient, models

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.query.filtering import (
    And,
    Comparison,
    Expr,
    Not,
    Op,
    Or,
    Value,
    evaluate,
    format_filter,
    parse_filter,
)
from agentic_labeling.registry.query.queryable_fields import OBJECT_FILTER
from agentic_labeling.registry.vectors.edge_vectors import EdgeVectorStore
from agentic_labeling.registry.vectors.qdrant_server_vectors import QdrantServerVectorStore
from agentic_labeling.registry.vectors.vector_filters import (
    OBJECT_PAYLOAD,
    PayloadKind,
    from_timestamp_us,
    map_comparisons,
    to_client_filter,
    to_edge_filter,
    to_timestamp_us,
)
from agentic_labeling.registry.vectors.vector_store import (
    HnswSettings,
    ObjectPayload,
    VectorPoint,
    VectorStore,
)

# Local mode says that it searches by brute force whatever the search parameters; known.
pytestmark = pytest.mark.filterwarnings("ignore:Local mode performs exact:UserWarning")

DIMENSION = 8
RECORDS = 240
FILTERS_PER_STORE = 150

# --- Random payloads and filters over small value pools, so equalities hit -----------------

_T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TIMES = [_T0 + timedelta(microseconds=n) for n in (0, 1, 2)] + [
    _T0 - timedelta(days=400),
    _T0 + timedelta(days=30, seconds=1),
    datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
]
POOLS: dict[str, list[Value]] = {
    "category": ["c1", "c2", "c3", ""],
    "source": ["s1", "s2", "S1"],
    "frame_index": [-1, 0, 1, 2, 7],
    "confidence": [0.0, 0.25, 0.5, 0.75, 1.0, 0.1 + 0.2],
    "quality_score": [None, 0.0, 0.5, 1.5],
    "area": [0.0, 12.5, 1e6, 3.0],
    "is_validated": [True, False],
    "validated_by": [None, "alice", "bob", ""],
    "detection_model": ["florence2", "yolo"],
    "track": [None, "t1", "t2"],
    "create_time": list(TIMES),
    "update_time": list(TIMES),
}
NULLABLE = {"quality_score", "validated_by", "track"}
ORDERED = {name for name, kind in OBJECT_PAYLOAD.items() if kind is not PayloadKind.KEYWORD} - {
    "is_validated"
}
FILTER_VALUES: dict[str, list[Value]] = {
    **{name: [v for v in pool if v is not None] for name, pool in POOLS.items()},
    "frame_index": [-1, 0, 1, 3, 7, 100],
    "confidence": [0.0, 0.25, 0.3, 0.1 + 0.2, 0.74999, 1.0],
    "create_time": [*TIMES, _T0 + timedelta(microseconds=3)],
}


def random_payload(rng: random.Random) -> ObjectPayload:
    return ObjectPayload(**{name: rng.choice(pool) for name, pool in POOLS.items()})  # type: ignore[arg-type]


def record_of(payload: ObjectPayload) -> dict[str, object]:
    return {item.name: getattr(payload, item.name) for item in fields(payload)}


def random_comparison(rng: random.Random) -> Comparison:
    name = rng.choice(list(POOLS))
    if name in NULLABLE and rng.random() < 0.25:
        return Comparison(name, rng.choice([Op.EQ, Op.NE]), None)
    ops = list(Op) if name in ORDERED else [Op.EQ, Op.NE]
    return Comparison(name, rng.choice(ops), rng.choice(FILTER_VALUES[name]))


def random_filter(rng: random.Random, depth: int = 0) -> Expr:
    roll = rng.random()
    if depth >= 3 or roll < 0.35:
        return random_comparison(rng)
    if roll < 0.5:
        return Not(random_filter(rng, depth + 1))
    terms = tuple(random_filter(rng, depth + 1) for _ in range(rng.randint(2, 3)))
    return And(terms) if roll < 0.75 else Or(terms)


# --- Stores holding the random payloads ---------------------------------------------------------


def unit_vector(rng: random.Random) -> list[float]:
    return [rng.uniform(0.1, 1.0) for _ in range(DIMENSION)]


async def fill(store: VectorStore, seed: int) -> dict[uuid.UUID, dict[str, object]]:
    rng = random.Random(seed)
    payloads = {uuid.UUID(int=rng.getrandbits(128)): random_payload(rng) for _ in range(RECORDS)}
    await store.upsert(
        [VectorPoint(key, unit_vector(rng), payload) for key, payload in payloads.items()]
    )
    return {key: record_of(payload) for key, payload in payloads.items()}


async def matching_ids(store: VectorStore, expr: Expr | None) -> set[uuid.UUID]:
    hits = await store.search([1.0] * DIMENSION, filter=expr, top_k=RECORDS + 10, exact=True)
    return {hit.id for hit in hits}


async def assert_agrees_with_evaluate(
    store: VectorStore, records: dict[uuid.UUID, dict[str, object]], seed: int
) -> None:
    rng = random.Random(seed)
    matched_something = 0
    for _ in range(FILTERS_PER_STORE):
        expr = random_filter(rng)
        expected = {key for key, record in records.items() if evaluate(expr, record)}
        found = await matching_ids(store, expr)
        assert found == expected, format_filter(expr)
        assert await store.count(expr) == len(expected), format_filter(expr)
        matched_something += 0 < len(expected) < len(records)
    # The generator must produce selective filters, or the test proves little.
    assert matched_something > FILTERS_PER_STORE // 2


@pytest.fixture
async def edge_store(tmp_path: Path) -> AsyncIterator[EdgeVectorStore]:
    # Tiny thresholds: optimize() builds the graph and the indexed segments even for 240 points.
    hnsw = HnswSettings(full_scan_threshold_kb=1, indexing_threshold_kb=1)
    store = await EdgeVectorStore.open(tmp_path / "qdrant", dimension=DIMENSION, hnsw=hnsw)
    yield store
    await store.close()


@pytest.fixture
async def local_store() -> AsyncIterator[QdrantServerVectorStore]:
    store = await QdrantServerVectorStore.open(
        AsyncQdrantClient(location=":memory:"), dimension=DIMENSION, owns_client=True
    )
    yield store
    await store.close()


async def test_random_filters_agree_with_evaluate_on_qdrant_edge_before_and_after_indexing(
    edge_store: EdgeVectorStore,
) -> None:
    records = await fill(edge_store, seed=1)
    await assert_agrees_with_evaluate(edge_store, records, seed=2)
    assert await edge_store.optimize()
    stats = await edge_store.stats()
    assert stats.indexed_vectors == RECORDS  # now the indexed segment's code paths answer
    await assert_agrees_with_evaluate(edge_store, records, seed=3)


async def test_random_filters_agree_with_evaluate_on_qdrant_client_local_mode(
    local_store: QdrantServerVectorStore,
) -> None:
    records = await fill(local_store, seed=4)
    await assert_agrees_with_evaluate(local_store, records, seed=5)


@pytest.mark.parametrize("engine", ["edge", "local"])
async def test_not_matches_missing_fields_while_not_equal_does_not(
    engine: str, edge_store: EdgeVectorStore, local_store: QdrantServerVectorStore
) -> None:
    store: VectorStore = edge_store if engine == "edge" else local_store
    base = ObjectPayload(
        category="c1",
        source="s1",
        frame_index=0,
        confidence=0.5,
        area=1.0,
        is_validated=False,
        detection_model="m",
        create_time=_T0,
        update_time=_T0,
    )
    alice, bob, nobody = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    await store.upsert(
        [
            VectorPoint(alice, [1.0] * DIMENSION, _replace(base, validated_by="alice")),
            VectorPoint(bob, [1.0] * DIMENSION, _replace(base, validated_by="bob")),
            VectorPoint(nobody, [1.0] * DIMENSION, base),
        ]
    )

    async def ids(text: str) -> set[uuid.UUID]:
        return await matching_ids(store, parse_filter(text, OBJECT_FILTER))

    assert await ids('NOT validated_by = "alice"') == {bob, nobody}
    assert await ids('validated_by != "alice"') == {bob}
    assert await ids("validated_by = null") == {nobody}
    assert await ids("validated_by != null") == {alice, bob}
    assert await ids('NOT validated_by != "alice"') == {alice, nobody}
    assert await ids("NOT validated_by = null") == {alice, bob}


@pytest.mark.parametrize("engine", ["edge", "local"])
async def test_empty_or_matches_nothing_and_empty_and_matches_everything(
    engine: str, edge_store: EdgeVectorStore, local_store: QdrantServerVectorStore
) -> None:
    store: VectorStore = edge_store if engine == "edge" else local_store
    records = await fill(store, seed=6)
    assert await matching_ids(store, Or(())) == set()
    assert await matching_ids(store, And(())) == set(records)
    assert await matching_ids(store, Not(Or(()))) == set(records)


def _replace(payload: ObjectPayload, **changes: object) -> ObjectPayload:
    values = record_of(payload)
    values.update(changes)
    return ObjectPayload(**values)  # type: ignore[arg-type]


# --- The translation itself ---------------------------------------------------------------------


def test_no_filter_translates_to_none() -> None:
    assert to_edge_filter(None) is None
    assert to_client_filter(None) is None


def test_not_equal_requires_the_field_to_be_present() -> None:
    translated = to_client_filter(Comparison("source", Op.NE, "s1"))
    assert translated == models.Filter(
        must_not=[
            models.IsEmptyCondition(is_empty=models.PayloadField(key="source")),
            models.FieldCondition(key="source", match=models.MatchValue(value="s1")),
        ]
    )


def test_float_equality_is_an_exact_range() -> None:
    translated = to_client_filter(Comparison("confidence", Op.EQ, 0.5))
    assert translated == models.Filter(
        must=[models.FieldCondition(key="confidence", range=models.Range(gte=0.5, lte=0.5))]
    )


def test_timestamps_compare_as_epoch_microseconds() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    translated = to_client_filter(Comparison("create_time", Op.GE, moment))
    expected = float(to_timestamp_us(moment))
    assert translated == models.Filter(
        must=[models.FieldCondition(key="create_time", range=models.Range(gte=expected))]
    )


def test_edge_translation_builds_edge_filter_objects() -> None:
    translated = to_edge_filter(
        And((Comparison("is_validated", Op.EQ, True), Not(Comparison("track", Op.EQ, None))))
    )
    assert isinstance(translated, edge.Filter)
    assert translated.must is not None
    assert len(translated.must) == 2


def test_timestamp_conversion_is_exact_to_the_microsecond() -> None:
    for moment in [
        *TIMES,
        datetime(2026, 5, 5, 1, 2, 3, 456_789, tzinfo=timezone(timedelta(hours=2))),
    ]:
        micros = to_timestamp_us(moment)
        assert from_timestamp_us(micros) == moment
    assert to_timestamp_us(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert to_timestamp_us(datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC)) == -1
    with pytest.raises(ValueError, match="UTC offset"):
        to_timestamp_us(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("expr", "message"),
    [
        (Comparison("area_px", Op.EQ, 1.0), "cannot be used in a similarity search filter"),
        (Comparison("category", Op.LT, "c1"), "cannot be ordered"),
        (Comparison("is_validated", Op.GT, True), "cannot be ordered"),
        (Comparison("category", Op.EQ, 3), "holds keyword values"),
        (Comparison("frame_index", Op.EQ, 1.5), "holds integer values"),
        (Comparison("frame_index", Op.EQ, True), "holds integer values"),
        (Comparison("confidence", Op.EQ, "high"), "holds float values"),
        (Comparison("create_time", Op.GE, datetime(2026, 1, 1)), "holds timestamp values"),
        (Comparison("track", Op.LT, None), "null can only be compared"),
        (Not(And((Comparison("nope", Op.EQ, "x"),))), "cannot be used"),
    ],
    ids=lambda item: item if isinstance(item, str) else None,
)
def test_unsupported_filters_are_invalid_arguments_naming_the_filter(
    expr: Expr, message: str
) -> None:
    for translate in (to_edge_filter, to_client_filter):
        with pytest.raises(InvalidArgument, match=message) as caught:
            translate(expr)
        assert caught.value.violations[0].field == "filter"
        assert caught.value.reason == "INVALID_FILTER"


def test_something_that_is_not_an_expression_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="not a filter expression"):
        to_edge_filter("category = 'c1'")  # type: ignore[arg-type]


def test_every_object_filter_field_is_in_the_payload() -> None:
    assert set(OBJECT_FILTER) == set(OBJECT_PAYLOAD)
    assert {item.name for item in fields(ObjectPayload)} == set(OBJECT_PAYLOAD)


def test_map_comparisons_rewrites_values_and_keeps_the_structure() -> None:
    expr = parse_filter(
        'NOT (category = "Dog" OR category = "puppy") AND confidence > 0.5', OBJECT_FILTER
    )
    assert expr is not None
    ids = {"dog": "categories/7", "puppy": "categories/7"}

    def resolve(comparison: Comparison) -> Comparison:
        if comparison.field != "category" or not isinstance(comparison.value, str):
            return comparison
        return Comparison("category", comparison.op, ids.get(comparison.value.lower(), ""))

    assert map_comparisons(expr, resolve) == And(
        (
            Not(
                Or(
                    (
                        Comparison("category", Op.EQ, "categories/7"),
                        Comparison("category", Op.EQ, "categories/7"),
                    )
                )
            ),
            Comparison("confidence", Op.GT, 0.5),
        )
    )
