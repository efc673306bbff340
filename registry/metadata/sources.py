"""Sources (images and videos) and their frames: create (deduplicated by content hash), get,
list, delete (with their frames, tracks and objects), add and list frames.

An image source gets its one frame (index 0) in the same transaction; frames of a video are
added with `create_frame`. A known content hash is unique: creating the same file again is
ALREADY_EXISTS, or returns the stored source with `return_existing` (retries and re-runs are
idempotent). Concurrent creators of one hash wait for each other on the unique index, so
exactly one source is made.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from agentic_labeling.errors import AlreadyExists, Conflict, FailedPrecondition, InvalidArgument
from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.metadata.outbox import enqueue
from agentic_labeling.registry.query.keyset import (
    Listing,
    ListQuery,
    SortField,
    fetch_page,
    list_page,
    plan_page,
)
from agentic_labeling.registry.query.listing import OrderKey
from agentic_labeling.registry.query.sql_filters import SOURCE_FILTER_SQL, QueryParams
from agentic_labeling.registry.values.input_checks import (
    check_attributes,
    check_sha256,
    check_text,
)
from agentic_labeling.registry.values.records import (
    DeletedObject,
    Frame,
    NewFrame,
    NewSource,
    Page,
    Source,
    SourceKind,
)
from agentic_labeling.registry.values.resource_names import format_name, not_found

__all__ = ["FRAME_LISTING", "SOURCE_LISTING", "SourceStore", "check_new_frame", "check_new_source"]

_INT32_MAX = 2**31 - 1

_SOURCE_COLUMNS = sql.SQL(
    "s.id, s.kind, s.uri, s.display_name, s.width, s.height, s.content_sha256, s.attributes, "
    "s.create_time, "
    "(SELECT count(*) FROM frames f WHERE f.source_id = s.id) AS frame_count, "
    "(SELECT count(*) FROM objects o WHERE o.source_id = s.id) AS object_count"
)
_FRAME_COLUMNS = sql.SQL(
    "f.source_id, f.frame_index, f.time_offset, f.uri, f.content_sha256, "
    "(SELECT count(*) FROM objects o WHERE o.source_id = f.source_id "
    "AND o.frame_index = f.frame_index) AS object_count"
)

SOURCE_LISTING = Listing(
    resource="sources",
    filter_sql=SOURCE_FILTER_SQL,
    sort_fields={
        "display_name": SortField(sql.SQL("s.display_name"), "text"),
        "create_time": SortField(sql.SQL("s.create_time"), "timestamptz"),
    },
    tiebreak=SortField(sql.SQL("s.id"), "uuid"),
    default_order=(OrderKey("create_time"),),
)
FRAME_LISTING = Listing(
    resource="frames",
    filter_sql=None,
    sort_fields={},
    tiebreak=SortField(sql.SQL("f.frame_index"), "int8"),
)


def _source_from_row(row: Mapping[str, Any]) -> Source:
    return Source(
        id=row["id"],
        kind=SourceKind(row["kind"]),
        uri=row["uri"],
        display_name=row["display_name"],
        width=row["width"],
        height=row["height"],
        content_sha256=row["content_sha256"],
        attributes=row["attributes"],
        create_time=row["create_time"],
        frame_count=row["frame_count"],
        object_count=row["object_count"],
    )


_SOURCE_QUERY = ListQuery(
    SOURCE_LISTING,
    _SOURCE_COLUMNS,
    sql.SQL("sources s"),
    _source_from_row,
    count_table=sql.SQL("sources s"),
)


def _frame_from_row(row: Mapping[str, Any]) -> Frame:
    return Frame(
        source_id=row["source_id"],
        frame_index=row["frame_index"],
        timestamp=row["time_offset"],
        uri=row["uri"],
        content_sha256=row["content_sha256"],
        object_count=row["object_count"],
    )


async def _find_source(conn: Connection, where: sql.Composable, value: object) -> Source | None:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            sql.SQL("SELECT {} FROM sources s WHERE {} = %s").format(_SOURCE_COLUMNS, where),
            (value,),
        )
        row = await cursor.fetchone()
    return _source_from_row(row) if row is not None else None


def check_new_source(new: NewSource) -> dict[str, str]:
    """Every field of `new`, checked before anything is written; its checked attributes."""
    try:
        SourceKind(new.kind)
    except ValueError:
        raise InvalidArgument("must be IMAGE or VIDEO", field="source.kind") from None
    for name, value in (("width", new.width), ("height", new.height)):
        if not 0 < value <= _INT32_MAX:
            raise InvalidArgument(
                f"must be a positive pixel count, got {value}", field=f"source.{name}"
            )
    check_text(new.uri, "source.uri")
    check_text(new.display_name, "source.display_name")
    check_sha256(new.content_sha256, "source.content_sha256")
    return check_attributes(new.attributes, "source.attributes")


def check_new_frame(new: NewFrame) -> None:
    """Every field of `new`, checked before anything is written."""
    if new.frame_index < 0:
        raise InvalidArgument("must not be negative", field="frame.frame_index")
    if new.timestamp.total_seconds() < 0:
        raise InvalidArgument("must not be negative", field="frame.timestamp")
    check_text(new.uri, "frame.uri")
    check_sha256(new.content_sha256, "frame.content_sha256")


class SourceStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, new: NewSource, *, source_id: UUID | None = None, return_existing: bool = False
    ) -> Source:
        """Register a source (and frame 0 of an image).

        A known content hash that is already registered is AlreadyExists naming
        `source.content_sha256`, or with `return_existing` that source is returned as it is.
        """
        attributes = check_new_source(new)
        new_id = source_id or uuid4()

        async def work(conn: Connection) -> Source:
            cursor = await conn.execute(
                "INSERT INTO sources (id, kind, uri, display_name, width, height, "
                "content_sha256, attributes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT DO NOTHING RETURNING id",
                (
                    new_id,
                    str(new.kind),
                    new.uri,
                    new.display_name,
                    new.width,
                    new.height,
                    new.content_sha256,
                    Jsonb(attributes),
                ),
            )
            if await cursor.fetchone() is None:
                return await self._existing(conn, new, new_id, return_existing)
            if new.kind == SourceKind.IMAGE:
                await conn.execute(
                    "INSERT INTO frames (source_id, frame_index) VALUES (%s, 0)", (new_id,)
                )
            found = await _find_source(conn, sql.SQL("s.id"), new_id)
            assert found is not None
            return found

        return await self._db.transact(work)

    async def _existing(
        self, conn: Connection, new: NewSource, new_id: UUID, return_existing: bool
    ) -> Source:
        """The source an insert collided with, or the AlreadyExists that says which."""
        if new.content_sha256:
            existing = await _find_source(conn, sql.SQL("s.content_sha256"), new.content_sha256)
            if existing is not None:
                if return_existing:
                    return existing
                name = format_name("sources", existing.id)
                raise AlreadyExists(
                    f"a source with this content_sha256 exists: {name}",
                    metadata={"field": "source.content_sha256", "existing": name},
                )
        if await _find_source(conn, sql.SQL("s.id"), new_id) is not None:
            name = format_name("sources", new_id)
            raise AlreadyExists(f"{name} exists", metadata={"field": "source_id", "existing": name})
        # The row we collided with was deleted between the insert and the look-up.
        raise Conflict("the source changed concurrently; retry")  # pragma: no cover

    async def get(self, source_id: UUID) -> Source:
        async with self._db.connection() as conn:
            found = await _find_source(conn, sql.SQL("s.id"), source_id)
        if found is None:
            raise not_found("source", format_name("sources", source_id), "name")
        return found

    async def get_many(self, source_ids: Collection[UUID]) -> dict[UUID, Source]:
        """The sources that exist among `source_ids`, by ID, in one query."""
        async with self._db.connection() as conn, conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(
                sql.SQL("SELECT {} FROM sources s WHERE s.id = ANY(%s::uuid[])").format(
                    _SOURCE_COLUMNS
                ),
                (list(source_ids),),
            )
            rows = await cursor.fetchall()
        return {source.id: source for source in map(_source_from_row, rows)}

    async def list(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Source]:
        """Sources (filter: kind, display_name, content_sha256, create_time) with total_size."""
        return await list_page(self._db, _SOURCE_QUERY, filter, order_by, page_size, page_token)

    async def delete(self, source_id: UUID) -> tuple[DeletedObject, ...]:
        """Delete the source with its frames, tracks and objects; the deleted objects are
        returned so the caller can remove their mask files (vector deletes are in the outbox)."""

        async def work(conn: Connection) -> tuple[DeletedObject, ...]:
            cursor = await conn.execute(
                "SELECT id FROM sources WHERE id = %s FOR UPDATE", (source_id,)
            )
            if await cursor.fetchone() is None:
                raise not_found("source", format_name("sources", source_id), "name")
            cursor = await conn.execute(
                "DELETE FROM objects WHERE source_id = %s RETURNING id, has_embedding, has_mask",
                (source_id,),
            )
            rows = await cursor.fetchall()
            await enqueue(conn, [row[0] for row in rows if row[1]], "delete")
            await conn.execute("DELETE FROM sources WHERE id = %s", (source_id,))
            return tuple(DeletedObject(*row) for row in rows)

        return await self._db.transact(work)

    async def create_frame(self, source_id: UUID, new: NewFrame) -> Frame:
        """Add a frame to a video source; AlreadyExists naming `frame.frame_index` if taken."""
        check_new_frame(new)

        async def work(conn: Connection) -> Frame:
            cursor = await conn.execute(
                "SELECT kind FROM sources WHERE id = %s FOR KEY SHARE", (source_id,)
            )
            row = await cursor.fetchone()
            if row is None:
                raise not_found("source", format_name("sources", source_id), "parent")
            if row[0] != SourceKind.VIDEO:
                raise FailedPrecondition(
                    "an image source has exactly one frame, made with it; frames are added to "
                    "video sources only"
                )
            cursor = await conn.execute(
                "INSERT INTO frames (source_id, frame_index, time_offset, uri, content_sha256) "
                "VALUES (%s, %s, %s, %s, %s) ON CONFLICT DO NOTHING RETURNING frame_index",
                (source_id, new.frame_index, new.timestamp, new.uri, new.content_sha256),
            )
            if await cursor.fetchone() is None:
                raise AlreadyExists(
                    f"frame {new.frame_index} of {format_name('sources', source_id)} exists",
                    metadata={"field": "frame.frame_index"},
                )
            async with conn.cursor(row_factory=dict_row) as rows:
                await rows.execute(
                    sql.SQL(
                        "SELECT {} FROM frames f WHERE f.source_id = %s AND f.frame_index = %s"
                    ).format(_FRAME_COLUMNS),
                    (source_id, new.frame_index),
                )
                created = await rows.fetchone()
            assert created is not None
            return _frame_from_row(created)

        return await self._db.transact(work)

    async def get_frame(self, source_id: UUID, frame_index: int) -> Frame:
        """One frame of a source; NotFound naming the source or the frame."""
        async with self._db.connection() as conn:
            cursor = await conn.execute("SELECT 1 FROM sources WHERE id = %s", (source_id,))
            if await cursor.fetchone() is None:
                raise not_found("source", format_name("sources", source_id), "name")
            async with conn.cursor(row_factory=dict_row) as rows:
                await rows.execute(
                    sql.SQL(
                        "SELECT {} FROM frames f WHERE f.source_id = %s AND f.frame_index = %s"
                    ).format(_FRAME_COLUMNS),
                    (source_id, frame_index),
                )
                row = await rows.fetchone()
        if row is None:
            name = f"{format_name('sources', source_id)}/frames/{frame_index}"
            raise not_found("frame", name, "frame_index")
        return _frame_from_row(row)

    async def list_frames(
        self, source_id: UUID, *, page_size: int = 0, page_token: str = ""
    ) -> Page[Frame]:
        """The source's frames in frame order."""
        params = QueryParams()
        plan = plan_page(
            FRAME_LISTING,
            params,
            page_size=page_size,
            page_token=page_token,
            parent=str(source_id),
        )
        of_source = sql.SQL("f.source_id = {}").format(params.add(source_id, "uuid"))
        async with self._db.connection() as conn:
            cursor = await conn.execute("SELECT 1 FROM sources WHERE id = %s", (source_id,))
            if await cursor.fetchone() is None:
                raise not_found("source", format_name("sources", source_id), "parent")
            rows, token = await fetch_page(
                conn,
                plan,
                params,
                columns=_FRAME_COLUMNS,
                table=sql.SQL("frames f"),
                where=of_source,
            )
        return Page(tuple(_frame_from_row(row) for row in rows), token)
