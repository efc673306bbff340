"""AIP-160 filters translated to SQL mean exactly what `filtering.evaluate` means.

The property tests generate many random filters over rows with every kind of value (NULLs
included), run them in Postgres, and compare the matching IDs with `evaluate` on the same rows
read back.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from uuid import UUID, uuid4

import pytest
from psycopg import sql

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.metadata.categories import CATEGORY_LISTING
from agentic_labeling.registry.metadata.objects import OBJECT_LISTING
from agentic_labeling.registry.metadata.sources import SOURCE_LISTING
from agentic_labeling.registry.metadata.tracks import TRACK_LISTING
from agentic_labeling.registry.query import queryable_fields
from agentic_labeling.registry.query.filtering import (
    And,
    Comparison,
    Expr,
    FieldType,
    FilterSchema,
    Not,
    Op,
    Or,
    Value,
    evaluate,
    format_filter,
    parse_filter,
)
from agentic_labeling.registry.query.queryable_fields import OBJECT_FILTER, SOURCE_FILTER
from agentic_labeling.registry.query.sql_filters import (
    OBJECT_FILTER_SQL,
    SOURCE_FILTER_SQL,
    FilterSql,
    QueryParams,
    where_clause,
)
from agentic_labeling.registry.values.records import (
    BoundingBox,
    Correction,
    NewCategory,
    NewObject,
    NewSource,
    ObjectRecord,
    Source,
    SourceKind,
)

CONFIDENCES = [0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
TIMES = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=d, microseconds=d) for d in range(4)]


def object_fields(record: ObjectRecord) -> dict[str, object]:
    """The object as `evaluate` sees it: category by display name, references as names."""
    return {
        "category": record.category_name,
        "source": f"sources/{record.source_id}",
        "frame_index": record.frame_index,
        "confidence": record.confidence,
        "quality_score": record.quality_score,
        "area": record.area,
        "is_validated": record.is_validated,
        "validated_by": record.validated_by,
        "detection_model": record.detection_model,
        "track": f"tracks/{record.track_id}" if record.track_id else None,
        "create_time": record.create_time,
        "update_time": record.update_time,
    }


def source_fields(source: Source) -> dict[str, object]:
    return {
        "kind": str(source.kind),
        "display_name": source.display_name,
        "content_sha256": source.content_sha256,
        "create_time": source.create_time,
    }


def random_filter(rng: random.Random, schema: FilterSchema, pools: dict[str, list[Value]]) -> str:
    def comparison() -> Expr:
        name = rng.choice(sorted(pools))
        field = schema[name]
        value = rng.choice(pools[name])
        if value is None:
            op = rng.choice([Op.EQ, Op.NE])
        elif field.type in (FieldType.INTEGER, FieldType.NUMBER, FieldType.TIMESTAMP):
            op = rng.choice(list(Op))
        else:
            op = rng.choice([Op.EQ, Op.NE])
        return Comparison(name, op, value)

    def expression(depth: int) -> Expr:
        roll = rng.random()
        if depth == 0 or roll < 0.4:
            return comparison()
        if roll < 0.55:
            return Not(expression(depth - 1))
        kind = And if roll < 0.8 else Or
        return kind(tuple(expression(depth - 1) for _ in range(rng.randint(2, 3))))

    return format_filter(expression(3))


async def matching_ids(db, table: str, alias: str, target: FilterSql, text: str) -> set[UUID]:
    params = QueryParams()
    condition = where_clause(parse_filter(text, target.schema), target, params)
    query = sql.SQL("SELECT {alias}.id FROM {table} {alias} WHERE {condition}").format(
        alias=sql.Identifier(alias), table=sql.Identifier(table), condition=condition
    )
    async with db.connection() as conn:
        cursor = await conn.execute(query, params.values)
        return {row[0] for row in await cursor.fetchall()}


async def make_objects(repo, build) -> list[ObjectRecord]:
    """About 60 objects with every kind of value, read back as stored."""
    rng = random.Random(7)
    images = [await build.image(1000, 1000) for _ in range(2)]
    video = await build.video(frames=4, width=1000, height=1000)
    tracks = [uuid4(), uuid4()]
    new_objects = []
    for _ in range(60):
        source = rng.choice([*images, video])
        frame = rng.randrange(4) if source is video else 0
        side = rng.choice([10.0, 20.0, 40.0])
        new_objects.append(
            NewObject(
                source_id=source.id,
                frame_index=frame,
                bbox=BoundingBox(rng.uniform(0, 900), rng.uniform(0, 900), side, side),
                category_name=rng.choice(["cat", "dog", "bird"]),
                confidence=rng.choice(CONFIDENCES),
                quality_score=rng.choice(CONFIDENCES),
                detection_model=rng.choice(["florence2", "import", ""]),
                track_id=rng.choice([None, *tracks]) if source is video else None,
                mask_area=rng.choice([None, 100.0]),
            )
        )
    created = await build.create(*new_objects, duplicate_iou_threshold=1.0)
    ids = [record.id for record in created.objects]
    for reviewer in ("alice", "bob"):
        chosen = rng.sample(ids, 12)
        ids = [i for i in ids if i not in chosen]
        await repo.objects.validate(chosen, [], validated_by=reviewer)
    async with repo.db.connection() as conn:
        for record in created.objects:
            await conn.execute(
                "UPDATE objects SET create_time = %s, update_time = %s WHERE id = %s",
                (rng.choice(TIMES), rng.choice(TIMES), record.id),
            )
    page = await repo.objects.list(page_size=1000)
    assert len(page.items) == 60
    return list(page.items)


async def test_object_filters_in_sql_match_evaluate_on_random_filters(db, repo, build) -> None:
    records = await make_objects(repo, build)
    rows = {record.id: object_fields(record) for record in records}
    pools: dict[str, list[Value]] = {name: [] for name in OBJECT_FILTER}
    for fields in rows.values():
        for name, value in fields.items():
            if value not in pools[name]:
                pools[name].append(value)  # type: ignore[arg-type]
    pools["category"].append("zebra")  # a name no category has
    pools["source"].append(f"sources/{uuid4()}")
    pools["track"].append(f"tracks/{uuid4()}")
    pools["frame_index"] += [-1, 7]
    pools["confidence"] += [0.0, 0.3, 1.5]
    pools["area"] += [0.0, 399.99]
    pools["validated_by"].append("carol")
    pools["detection_model"].append("other")
    pools["create_time"].append(TIMES[1] + timedelta(microseconds=1))
    for name, field in ((n, OBJECT_FILTER[n]) for n in OBJECT_FILTER):
        if not field.nullable:
            pools[name] = [v for v in pools[name] if v is not None]

    rng = random.Random(2026)
    checked = 0
    for _ in range(300):
        text = random_filter(rng, OBJECT_FILTER, pools)
        expr = parse_filter(text, OBJECT_FILTER)
        expected = {i for i, fields in rows.items() if evaluate(expr, fields)}
        assert await matching_ids(db, "objects", "o", OBJECT_FILTER_SQL, text) == expected, text
        checked += bool(expected) and len(expected) < len(rows)
    assert checked > 100  # most filters were selective, not all-or-nothing


async def test_source_filters_in_sql_match_evaluate_on_random_filters(db, repo) -> None:
    rng = random.Random(11)
    for i in range(25):
        await repo.sources.create(
            NewSource(
                rng.choice([SourceKind.IMAGE, SourceKind.VIDEO]),
                100,
                100,
                display_name=rng.choice(["a.jpg", "b.jpg", ""]),
                content_sha256=rng.choice(["", f"{i:064x}"]),
            )
        )
    async with db.connection() as conn:
        await conn.execute(
            "UPDATE sources SET create_time = (%s::timestamptz[])[1 + (random() * 3)::int]",
            (TIMES,),
        )
    sources = (await repo.sources.list(page_size=100)).items
    rows = {source.id: source_fields(source) for source in sources}
    pools: dict[str, list[Value]] = {
        "kind": ["IMAGE", "VIDEO"],
        "display_name": ["a.jpg", "b.jpg", "", "c.jpg"],
        "content_sha256": ["", f"{3:064x}", f"{99:064x}"],
        "create_time": list(TIMES),
    }
    for _ in range(150):
        text = random_filter(rng, SOURCE_FILTER, pools)
        expected = {i for i, f in rows.items() if evaluate(parse_filter(text, SOURCE_FILTER), f)}
        assert await matching_ids(db, "sources", "s", SOURCE_FILTER_SQL, text) == expected, text


async def test_category_filter_matches_names_and_synonyms_in_any_case(repo, build) -> None:
    await repo.categories.create(NewCategory("person", synonyms=["human", "Pedestrian"]))
    image = await build.image()
    created = await build.create(
        build.obj(image, "person"), build.obj(image, "dog", bbox=(100, 100, 20, 20))
    )
    person, dog = created.objects
    for text in (
        'category = "person"',
        'category = "PERSON"',
        'category = "pedestrian"',
        f'category = "categories/{person.category_id}"',
        'category != "dog"',
    ):
        page = await repo.objects.list(filter=text)
        assert [o.id for o in page.items] == [person.id], text
    page = await repo.objects.list(filter='category != "unknown"')
    assert {o.id for o in page.items} == {person.id, dog.id}
    page = await repo.objects.list(filter='category = "unknown"')
    assert page.items == ()


async def test_not_on_a_null_field_matches_rows_where_the_comparison_is_false(repo, build) -> None:
    video = await build.video(frames=1)
    track = uuid4()
    created = await build.create(
        build.obj(video, track_id=track), build.obj(video, bbox=(200, 200, 10, 10))
    )
    tracked, untracked = created.objects
    name = f"tracks/{track}"
    assert [o.id for o in (await repo.objects.list(filter=f'track = "{name}"')).items] == [
        tracked.id
    ]
    assert (await repo.objects.list(filter=f'track != "{name}"')).items == ()
    assert [o.id for o in (await repo.objects.list(filter=f'NOT track = "{name}"')).items] == [
        untracked.id
    ]
    assert [o.id for o in (await repo.objects.list(filter="track = null")).items] == [untracked.id]


async def test_validated_by_filter_finds_the_reviewers_objects(repo, build) -> None:
    image = await build.image()
    first, second = (
        await build.create(build.obj(image), build.obj(image, bbox=(300, 300, 20, 20)))
    ).objects
    await repo.objects.validate([first.id], [], validated_by="alice")
    page = await repo.objects.list(filter='validated_by = "alice" AND is_validated = true')
    assert [o.id for o in page.items] == [first.id]
    page = await repo.objects.list(filter="validated_by = null")
    assert [o.id for o in page.items] == [second.id]


@pytest.mark.parametrize(
    "text",
    [
        'source = "sources/not-a-uuid"',
        f'source = "{uuid4()}"',  # a bare UUID is not a resource name
        f'track = "sources/{uuid4()}"',
        'category = "categories/12"',
    ],
)
async def test_malformed_resource_names_in_a_filter_are_invalid_argument_naming_filter(
    repo, text: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.list(filter=text)
    assert caught.value.violations[0].field == "filter"


async def test_a_filter_on_an_unknown_field_is_invalid_argument_naming_filter(repo) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.list(filter='colour = "red"')
    assert caught.value.violations[0].field == "filter"


async def test_category_list_filter_matches_synonyms(repo) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    await repo.categories.create(NewCategory("dog"))
    page = await repo.categories.list(filter='display_name = "Human"')
    assert [c.id for c in page.items] == [person.id]


async def test_track_filters_use_the_tracks_majority_category_and_count(repo, build) -> None:
    video = await build.video(frames=3)
    track = uuid4()
    await build.create(
        *(build.obj(video, "cat", frame_index=i, track_id=track) for i in range(3)),
        build.obj(video, "dog", frame_index=0, bbox=(300, 300, 10, 10), track_id=uuid4()),
    )
    page = await repo.tracks.list(filter='category = "cat" AND object_count >= 3')
    assert [t.id for t in page.items] == [track]
    page = await repo.tracks.list(filter=f'source = "sources/{video.id}"', order_by="object_count")
    assert [t.object_count for t in page.items] == [1, 3]


async def test_corrections_are_visible_to_filters(repo, build) -> None:
    image = await build.image()
    (record,) = (await build.create(build.obj(image, "cat"))).objects
    await repo.categories.create(NewCategory("dog"))
    await repo.objects.validate([], [Correction(record.id, category_name="dog")], validated_by="r")
    assert [o.id for o in (await repo.objects.list(filter='category = "dog"')).items] == [record.id]


def test_a_filter_sql_without_a_field_of_its_schema_is_refused() -> None:
    with pytest.raises(ValueError, match="no SQL for filter fields"):
        FilterSql(OBJECT_FILTER, {})


@pytest.mark.parametrize(
    ("listing", "orderable"),
    [
        (OBJECT_LISTING, queryable_fields.OBJECT_ORDER),
        (SOURCE_LISTING, queryable_fields.SOURCE_ORDER),
        (CATEGORY_LISTING, queryable_fields.CATEGORY_ORDER),
        (TRACK_LISTING, queryable_fields.TRACK_ORDER),
    ],
)
def test_every_documented_order_by_field_has_a_sort_expression(listing, orderable) -> None:
    assert set(listing.sort_fields) == orderable
