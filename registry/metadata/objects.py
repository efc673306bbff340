"""Objects: batch create (see `object_batches`), get, list, update with a field mask,
validate, delete, and stats within a filter.

Every write that changes what the vector store's payload carries (category, confidence,
validation, track) or removes an object with an embedding enqueues a vector outbox entry in
the same transaction; a delete returns whether the object had a mask, for the caller to remove
the file after commit.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from agentic_labeling.errors import FailedPrecondition, InvalidArgument
from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.metadata.categories import lock_categories, resolve_category_names
from agentic_labeling.registry.metadata.model_outputs import keep_deleted_model_output
from agentic_labeling.registry.metadata.object_batches import BatchLimits, create_batch
from agentic_labeling.registry.metadata.object_rows import (
    OBJECT_COLUMNS,
    OBJECT_FROM,
    fetch_objects,
    fetch_objects_in_order,
    object_from_row,
)
from agentic_labeling.registry.metadata.outbox import enqueue
from agentic_labeling.registry.metadata.tracks import drop_empty_tracks
from agentic_labeling.registry.query.filtering import parse_filter
from agentic_labeling.registry.query.keyset import Listing, ListQuery, SortField, list_page
from agentic_labeling.registry.query.listing import OrderKey
from agentic_labeling.registry.query.sql_filters import OBJECT_FILTER_SQL, QueryParams, where_clause
from agentic_labeling.registry.values.input_checks import (
    MAX_NAME_LENGTH,
    check_attributes,
    check_bbox,
    check_bbox_inside,
    check_fraction,
    check_mask_area,
    check_name,
    check_text,
)
from agentic_labeling.registry.values.records import (
    BatchCreateResult,
    BoundingBox,
    Correction,
    CountEntry,
    DeletedObject,
    HistogramBin,
    NewObject,
    ObjectChanges,
    ObjectRecord,
    Page,
    Stats,
    category_name_key,
)
from agentic_labeling.registry.values.resource_names import format_name, not_found

__all__ = ["DEFAULT_HISTOGRAM_BINS", "MAX_HISTOGRAM_BINS", "OBJECT_LISTING", "ObjectStore"]

DEFAULT_HISTOGRAM_BINS = 10
MAX_HISTOGRAM_BINS = 100
_MAX_SOURCES_IN_STATS = 100

OBJECT_LISTING = Listing(
    resource="objects",
    filter_sql=OBJECT_FILTER_SQL,
    sort_fields={
        "confidence": SortField(sql.SQL("o.confidence"), "float8"),
        "quality_score": SortField(sql.SQL("o.quality_score"), "float8"),
        "area": SortField(sql.SQL("o.area"), "float8"),
        "create_time": SortField(sql.SQL("o.create_time"), "timestamptz"),
        "update_time": SortField(sql.SQL("o.update_time"), "timestamptz"),
        "frame_index": SortField(sql.SQL("o.frame_index"), "int8"),
    },
    tiebreak=SortField(sql.SQL("o.id"), "uuid"),
    default_order=(OrderKey("create_time"),),
)

_OBJECT_QUERY = ListQuery(
    OBJECT_LISTING,
    OBJECT_COLUMNS,
    OBJECT_FROM,
    object_from_row,
    # The filter reads only `objects o` (OBJECT_FILTER_SQL): counted without the join.
    count_table=sql.SQL("objects o"),
)

_UPDATABLE = frozenset(
    {"category", "category_name", "bbox", "confidence", "quality_score", "track", "attributes"}
)
_IMMUTABLE = frozenset({"name", "source", "frame_index", "detection_model"})
_OUTPUT_ONLY = frozenset(
    {
        "area",
        "has_mask",
        "has_embedding",
        "is_validated",
        "validated_by",
        "validate_time",
        "create_time",
        "update_time",
    }
)


def _check_paths(paths: Collection[str]) -> set[str]:
    if not paths:
        raise InvalidArgument("name at least one field to update", field="update_mask")
    for path in paths:
        if path in _IMMUTABLE:
            raise InvalidArgument(f"{path!r} cannot be changed", field="update_mask")
        if path in _OUTPUT_ONLY:
            hint = (
                "; use ValidateObjects"
                if path.startswith("valid") or path == "is_validated"
                else ""
            )
            raise InvalidArgument(f"{path!r} is output only{hint}", field="update_mask")
        if path not in _UPDATABLE:
            raise InvalidArgument(
                f"unknown field {path!r}; updatable: {', '.join(sorted(_UPDATABLE))}",
                field="update_mask",
            )
    if {"category", "category_name"} <= set(paths):
        raise InvalidArgument("name category or category_name, not both", field="update_mask")
    return set(paths)


class ObjectStore:
    def __init__(self, db: Database, limits: BatchLimits) -> None:
        self._db = db
        self._limits = limits

    async def batch_create(
        self,
        request_id: UUID,
        objects: Sequence[NewObject],
        *,
        create_missing_categories: bool = False,
        duplicate_iou_threshold: float | None = None,
    ) -> BatchCreateResult:
        """Create `objects` all or nothing, once per request_id; see `object_batches`."""
        return await create_batch(
            self._db,
            self._limits,
            request_id,
            objects,
            create_missing_categories=create_missing_categories,
            duplicate_iou_threshold=duplicate_iou_threshold,
        )

    async def get(self, object_id: UUID) -> ObjectRecord:
        async with self._db.connection() as conn:
            return (await fetch_objects_in_order(conn, [object_id], ["name"]))[0]

    async def get_many(self, object_ids: Collection[UUID]) -> dict[UUID, ObjectRecord]:
        """The objects that exist among `object_ids` (e.g. similarity search hits), by ID."""
        async with self._db.connection() as conn:
            return await fetch_objects(conn, object_ids)

    async def forget_requests(self, older_than: timedelta) -> int:
        """Drop stored BatchCreateObjects results older than `older_than`; a retry after that
        creates its objects again. Returns how many were dropped."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM batch_requests WHERE create_time < now() - %s", (older_than,)
            )
            return cursor.rowcount

    async def list(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[ObjectRecord]:
        """Objects matching `filter` in `order_by` order, with total_size."""
        return await list_page(self._db, _OBJECT_QUERY, filter, order_by, page_size, page_token)

    async def update(
        self, object_id: UUID, changes: ObjectChanges, paths: Collection[str]
    ) -> ObjectRecord:
        """Change the fields named in `paths` (category or category_name, bbox, confidence,
        quality_score, track, attributes); InvalidArgument naming `update_mask` for others."""
        wanted = _check_paths(paths)
        bbox = None
        if "bbox" in wanted:
            if changes.bbox is None:
                raise InvalidArgument("bbox is in update_mask but not set", field="object.bbox")
            bbox = check_bbox(changes.bbox, "object.bbox")
        if "confidence" in wanted:
            check_fraction(changes.confidence, "object.confidence")
        if "quality_score" in wanted:
            check_fraction(changes.quality_score, "object.quality_score")
        attributes = (
            check_attributes(changes.attributes, "object.attributes")
            if "attributes" in wanted
            else None
        )
        if "category_name" in wanted:
            check_name(changes.category_name, "object.category_name")
        if "category" in wanted and changes.category_id is None:
            raise InvalidArgument("category is in update_mask but not set", field="object.category")

        async def work(conn: Connection) -> ObjectRecord:
            cursor = await conn.execute(
                "SELECT o.source_id, o.track_id, o.has_mask, o.has_embedding, s.width, s.height "
                "FROM objects o JOIN sources s ON s.id = o.source_id "
                "WHERE o.id = %s FOR UPDATE OF o",
                (object_id,),
            )
            row = await cursor.fetchone()
            if row is None:
                raise not_found("object", format_name("objects", object_id), "object.name")
            source_id, old_track, has_mask, has_embedding, width, height = row
            params = QueryParams()
            assignments: list[sql.Composable] = [sql.SQL("update_time = now()")]

            def assign(column: str, value: sql.Composable) -> None:
                assignments.append(sql.SQL("{} = {}").format(sql.Identifier(column), value))

            category_id = await _new_category(conn, changes, wanted)
            if category_id is not None:
                assign("category_id", params.add(category_id, "uuid"))
            if bbox is not None:
                check_bbox_inside(bbox, width, height, "object.bbox")
                for column, value in (
                    ("x", bbox.x),
                    ("y", bbox.y),
                    ("width", bbox.width),
                    ("height", bbox.height),
                ):
                    assign(column, params.add(value, "float8"))
                if not has_mask:
                    assign("area", params.add(bbox.area, "float8"))
            if "confidence" in wanted:
                assign("confidence", params.add(float(changes.confidence), "float8"))
            if "quality_score" in wanted:
                assign("quality_score", params.add(float(changes.quality_score), "float8"))
            if attributes is not None:
                assign("attributes", params.add(Jsonb(attributes)))
            if "track" in wanted:
                if changes.track_id is not None:
                    await _ensure_track(conn, changes.track_id, source_id, "object.track")
                assign("track_id", params.add(changes.track_id, "uuid"))
            await conn.execute(
                sql.SQL("UPDATE objects SET {} WHERE id = {}").format(
                    sql.SQL(", ").join(assignments), params.add(object_id, "uuid")
                ),
                params.values,
            )
            if "track" in wanted and old_track != changes.track_id:
                await drop_empty_tracks(conn, [old_track])
            if has_embedding:
                await enqueue(conn, [object_id], "upsert")
            return (await fetch_objects_in_order(conn, [object_id], ["object.name"]))[0]

        return await self._db.transact(work)

    async def validate(
        self,
        object_ids: Sequence[UUID],
        corrections: Sequence[Correction],
        *,
        validated_by: str,
        is_validated: bool = True,
        track_ids: Sequence[UUID] = (),
    ) -> tuple[ObjectRecord, ...]:
        """Mark objects reviewed (or not, with `is_validated=False`), applying corrections, all
        or nothing; every object of the tracks `track_ids` too. Objects come back in request
        order: `names`, then `corrections`, then the tracks' other objects in frame order."""
        if not validated_by:
            raise InvalidArgument("say who reviewed the objects", field="validated_by")
        check_text(validated_by, "validated_by", max_length=MAX_NAME_LENGTH)
        if not object_ids and not corrections and not track_ids:
            raise InvalidArgument("name at least one object or track", field="names")
        for i, track_id in enumerate(track_ids):
            if track_id in track_ids[:i]:
                raise InvalidArgument("names a track twice", field=f"tracks[{i}]")
        fields = [f"names[{i}]" for i in range(len(object_ids))]
        fields += [f"corrections[{i}].object" for i in range(len(corrections))]
        ordered = [*object_ids, *(c.object_id for c in corrections)]
        for i, object_id in enumerate(ordered):
            if object_id in ordered[:i]:
                raise InvalidArgument("names an object twice", field=fields[i])
        boxes: list[BoundingBox | None] = []
        for i, correction in enumerate(corrections):
            if correction.category_name:
                check_name(correction.category_name, f"corrections[{i}].category_name")
            box = correction.bbox
            boxes.append(check_bbox(box, f"corrections[{i}].bbox") if box is not None else None)

        async def work(conn: Connection) -> tuple[ObjectRecord, ...]:
            wanted, wanted_fields = await _with_track_objects(conn, ordered, fields, track_ids)
            cursor = await conn.execute(
                "SELECT o.id, o.has_mask, o.has_embedding, s.width, s.height "
                "FROM objects o JOIN sources s ON s.id = o.source_id "
                "WHERE o.id = ANY(%s::uuid[]) ORDER BY o.id FOR UPDATE OF o",
                (sorted(wanted),),
            )
            rows = {row[0]: row[1:] for row in await cursor.fetchall()}
            # A track's object deleted since the tracks were read is no longer in the track.
            kept = [
                (o, f)
                for o, f in zip(wanted, wanted_fields, strict=True)
                if o in rows or not f.startswith("tracks[")
            ]
            wanted, wanted_fields = [o for o, _ in kept], [f for _, f in kept]
            for object_id, field in zip(wanted, wanted_fields, strict=True):
                if object_id not in rows:
                    raise not_found("object", format_name("objects", object_id), field)
            keys = {category_name_key(c.category_name) for c in corrections if c.category_name}
            categories = await resolve_category_names(conn, keys)
            await lock_categories(conn, set(categories.values()))
            await conn.execute(
                "UPDATE objects SET is_validated = %s, validated_by = %s, "
                "validate_time = CASE WHEN %s THEN now() END, update_time = now() "
                "WHERE id = ANY(%s::uuid[])",
                (is_validated, validated_by if is_validated else None, is_validated, wanted),
            )
            for i, correction in enumerate(corrections):
                await _apply_correction(
                    conn, i, correction, boxes[i], rows[correction.object_id], categories
                )
            await enqueue(conn, [oid for oid in wanted if rows[oid][1]], "upsert")
            return tuple(await fetch_objects_in_order(conn, wanted, wanted_fields))

        return await self._db.transact(work)

    async def delete(self, object_id: UUID) -> DeletedObject:
        """Delete the object; its vector delete is in the outbox, its mask file is the
        caller's to remove (`had_mask`). Its model output, if it has one, is kept
        (`model_outputs`): a reviewer deleting a wrong auto-label still counts against the
        model."""

        async def work(conn: Connection) -> DeletedObject:
            await keep_deleted_model_output(conn, object_id)  # nothing when there is no object
            cursor = await conn.execute(
                "DELETE FROM objects WHERE id = %s RETURNING has_embedding, has_mask, track_id",
                (object_id,),
            )
            row = await cursor.fetchone()
            if row is None:
                raise not_found("object", format_name("objects", object_id), "name")
            had_embedding, had_mask, track_id = row
            if had_embedding:
                await enqueue(conn, [object_id], "delete")
            await drop_empty_tracks(conn, [track_id])
            return DeletedObject(object_id, had_embedding, had_mask)

        return await self._db.transact(work)

    async def stats(self, *, filter: str = "", histogram_bins: int = 0) -> Stats:
        """Counts over the objects matching `filter` (see the Stats record)."""
        bins = histogram_bins or DEFAULT_HISTOGRAM_BINS
        if not 1 <= bins <= MAX_HISTOGRAM_BINS:
            raise InvalidArgument(
                f"must be between 1 and {MAX_HISTOGRAM_BINS}, got {histogram_bins}",
                field="histogram_bins",
            )
        params = QueryParams()
        condition = where_clause(
            parse_filter(filter, OBJECT_FILTER_SQL.schema), OBJECT_FILTER_SQL, params
        )
        bin_count = params.add(bins, "int4")

        def query(text: str) -> sql.Composed:
            return sql.SQL(text).format(condition=condition, bins=bin_count)

        async def work(conn: Connection) -> Stats:
            async def rows(text: str) -> list[tuple[Any, ...]]:
                cursor = await conn.execute(query(text), params.values)
                return list(await cursor.fetchall())

            totals = (
                await rows(
                    "SELECT count(*), count(DISTINCT o.source_id), "
                    "coalesce(avg(o.is_validated::int), 0)::float8 FROM objects o WHERE {condition}"
                )
            )[0]
            per_category = await rows(
                "SELECT o.category_id, c.display_name, count(*) FROM objects o "
                "JOIN categories c ON c.id = o.category_id WHERE {condition} "
                "GROUP BY o.category_id, c.display_name ORDER BY 3 DESC, 2, 1"
            )
            per_source = await rows(
                "SELECT o.source_id, s.display_name, count(*) FROM objects o "
                "JOIN sources s ON s.id = o.source_id WHERE {condition} "
                f"GROUP BY o.source_id, s.display_name ORDER BY 3 DESC, 1 "
                f"LIMIT {_MAX_SOURCES_IN_STATS}"
            )
            per_model = await rows(
                "SELECT o.detection_model, count(*) FROM objects o WHERE {condition} "
                "GROUP BY 1 ORDER BY 2 DESC, 1"
            )
            histogram = dict(
                (int(b), int(n))
                for b, n in await rows(
                    "SELECT least(width_bucket(o.confidence, 0.0, 1.0, {bins}), {bins}), count(*) "
                    "FROM objects o WHERE {condition} GROUP BY 1"
                )
            )
            return Stats(
                object_count=int(totals[0]),
                source_count=int(totals[1]),
                per_category=tuple(
                    CountEntry(format_name("categories", cid), str(name), int(n))
                    for cid, name, n in per_category
                ),
                per_source=tuple(
                    CountEntry(format_name("sources", sid), str(name), int(n))
                    for sid, name, n in per_source
                ),
                per_model=tuple(CountEntry(str(m), str(m), int(n)) for m, n in per_model),
                validated_fraction=float(totals[2]),
                confidence_histogram=tuple(
                    HistogramBin(i / bins, (i + 1) / bins, histogram.get(i + 1, 0))
                    for i in range(bins)
                ),
            )

        return await self._db.transact(work, snapshot=True)


async def _new_category(conn: Connection, changes: ObjectChanges, wanted: set[str]) -> UUID | None:
    """The category an update moves the object to, locked; None when it keeps its own."""
    if "category" in wanted:
        assert changes.category_id is not None
        if not await lock_categories(conn, {changes.category_id}):
            raise not_found(
                "category", format_name("categories", changes.category_id), "object.category"
            )
        return changes.category_id
    if "category_name" in wanted:
        found = await resolve_category_names(conn, [category_name_key(changes.category_name)])
        if not found or not await lock_categories(conn, set(found.values())):
            raise not_found("category", changes.category_name, "object.category_name")
        return next(iter(found.values()))
    return None


async def _with_track_objects(
    conn: Connection, ordered: Sequence[UUID], fields: Sequence[str], track_ids: Sequence[UUID]
) -> tuple[list[UUID], list[str]]:
    """`ordered` followed by the objects of `track_ids` it does not name (in track, then frame
    order), with the request field of each; NotFound naming `tracks[i]` for an unknown track."""
    wanted, wanted_fields = list(ordered), list(fields)
    if not track_ids:
        return wanted, wanted_fields
    cursor = await conn.execute(
        "SELECT id FROM tracks WHERE id = ANY(%s::uuid[])", (list(track_ids),)
    )
    known = {row[0] for row in await cursor.fetchall()}
    for i, track_id in enumerate(track_ids):
        if track_id not in known:
            raise not_found("track", format_name("tracks", track_id), f"tracks[{i}]")
    cursor = await conn.execute(
        "SELECT track_id, id FROM objects WHERE track_id = ANY(%s::uuid[]) "
        "ORDER BY frame_index, id",
        (list(track_ids),),
    )
    members: dict[UUID, list[UUID]] = {}
    for track_id, object_id in await cursor.fetchall():
        members.setdefault(track_id, []).append(object_id)
    seen = set(wanted)
    for i, track_id in enumerate(track_ids):
        for object_id in members.get(track_id, []):
            if object_id not in seen:
                seen.add(object_id)
                wanted.append(object_id)
                wanted_fields.append(f"tracks[{i}]")
    return wanted, wanted_fields


async def _ensure_track(conn: Connection, track_id: UUID, source_id: UUID, field: str) -> None:
    """The track exists (made for `source_id` when new) and belongs to `source_id`."""
    await conn.execute(
        "INSERT INTO tracks (id, source_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
        (track_id, source_id),
    )
    cursor = await conn.execute(
        "SELECT source_id FROM tracks WHERE id = %s FOR KEY SHARE", (track_id,)
    )
    row = await cursor.fetchone()
    if row is None or row[0] != source_id:
        raise FailedPrecondition(
            f"{format_name('tracks', track_id)} belongs to another source",
            metadata={"field": field},
        )


async def _apply_correction(
    conn: Connection,
    index: int,
    correction: Correction,
    bbox: BoundingBox | None,
    row: tuple[Any, ...],
    categories: dict[str, UUID],
) -> None:
    has_mask, _, width, height = row
    params = QueryParams()
    assignments: list[sql.Composable] = []
    if correction.category_name:
        category_id = categories.get(category_name_key(correction.category_name))
        if category_id is None:
            raise not_found(
                "category", correction.category_name, f"corrections[{index}].category_name"
            )
        assignments.append(sql.SQL("category_id = {}").format(params.add(category_id, "uuid")))
    if bbox is not None:
        check_bbox_inside(bbox, width, height, f"corrections[{index}].bbox")
        assignments.append(
            sql.SQL("x = {}, y = {}, width = {}, height = {}").format(
                params.add(bbox.x, "float8"),
                params.add(bbox.y, "float8"),
                params.add(bbox.width, "float8"),
                params.add(bbox.height, "float8"),
            )
        )
        if not has_mask and correction.mask_area is None:
            assignments.append(sql.SQL("area = {}").format(params.add(bbox.area, "float8")))
    if correction.mask_area is not None:
        area = check_mask_area(correction.mask_area, width, height, f"corrections[{index}].mask")
        assignments.append(sql.SQL("has_mask = true, area = {}").format(params.add(area, "float8")))
    if assignments:
        await conn.execute(
            sql.SQL("UPDATE objects SET {} WHERE id = {}").format(
                sql.SQL(", ").join(assignments), params.add(correction.object_id, "uuid")
            ),
            params.values,
        )
