"""Tracks: the objects of one source followed across frames. List (per source, in time
order), get (objects in frame order), create from objects, merge and split.

A track is created by naming a new track UUID on an object (BatchCreateObjects, UpdateObject;
the tracker chooses the IDs), or from existing objects at once (`create`), and belongs to
that object's source; the schema enforces that an object's track has the object's source. A
track left without objects by an update, a delete, a create or a merge is deleted. Its
category (by vote), frame range and times, object count and average confidence are derived
from its objects (the `track_summaries` view), never stored twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from psycopg.rows import dict_row

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.metadata.object_rows import (
    OBJECT_COLUMNS,
    OBJECT_FROM,
    object_from_row,
)
from agentic_labeling.registry.metadata.outbox import enqueue
from agentic_labeling.registry.query.keyset import Listing, ListQuery, SortField, list_page
from agentic_labeling.registry.query.listing import OrderKey
from agentic_labeling.registry.query.sql_filters import TRACK_FILTER_SQL
from agentic_labeling.registry.values.records import Page, SplitResult, Track
from agentic_labeling.registry.values.resource_names import format_name, not_found

__all__ = ["TRACK_LISTING", "TrackStore", "drop_empty_tracks"]

_TRACK_COLUMNS = sql.SQL(
    "t.id, t.source_id, t.create_time, t.object_count, t.first_frame_index, "
    "t.last_frame_index, t.category_id, coalesce(c.display_name, '') AS category_name, "
    "t.average_confidence, t.first_frame_time, t.last_frame_time"
)
_TRACK_FROM = sql.SQL("track_summaries t LEFT JOIN categories c ON c.id = t.category_id")

TRACK_LISTING = Listing(
    resource="tracks",
    filter_sql=TRACK_FILTER_SQL,
    sort_fields={
        "source": SortField(sql.SQL("t.source_id"), "uuid"),
        "object_count": SortField(sql.SQL("t.object_count"), "int8"),
        "first_frame_index": SortField(sql.SQL("coalesce(t.first_frame_index, -1)"), "int8"),
        "last_frame_index": SortField(sql.SQL("coalesce(t.last_frame_index, -1)"), "int8"),
        "average_confidence": SortField(sql.SQL("coalesce(t.average_confidence, 0)"), "float8"),
        "create_time": SortField(sql.SQL("t.create_time"), "timestamptz"),
    },
    tiebreak=SortField(sql.SQL("t.id"), "uuid"),
    # Time order: a video's tracks by the frame they start in, one source after another.
    default_order=(OrderKey("source"), OrderKey("first_frame_index")),
)


def _track_from_row(row: Mapping[str, Any]) -> Track:
    return Track(
        id=row["id"],
        source_id=row["source_id"],
        category_id=row["category_id"],
        category_name=row["category_name"],
        first_frame_index=row["first_frame_index"] if row["first_frame_index"] is not None else 0,
        last_frame_index=row["last_frame_index"] if row["last_frame_index"] is not None else 0,
        object_count=row["object_count"],
        create_time=row["create_time"],
        average_confidence=float(row["average_confidence"] or 0.0),
        first_frame_time=row["first_frame_time"] or timedelta(0),
        last_frame_time=row["last_frame_time"] or timedelta(0),
    )


_TRACK_QUERY = ListQuery(TRACK_LISTING, _TRACK_COLUMNS, _TRACK_FROM, _track_from_row)


async def drop_empty_tracks(conn: Connection, track_ids: Sequence[UUID | None]) -> None:
    """Delete those of `track_ids` that no object belongs to any more.

    The tracks are locked first and checked by a later statement: a writer adding an object to
    one of them holds it until commit, and the check then sees that object (a single DELETE
    would re-check with its old snapshot and orphan the object).
    """
    wanted = sorted({track_id for track_id in track_ids if track_id is not None})
    if wanted:
        await conn.execute(
            "SELECT id FROM tracks WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE", (wanted,)
        )
        await conn.execute(
            "DELETE FROM tracks t WHERE t.id = ANY(%s::uuid[]) "
            "AND NOT EXISTS (SELECT 1 FROM objects o WHERE o.track_id = t.id)",
            (wanted,),
        )


async def _load_track(
    conn: Connection, track_id: UUID, *, with_objects: bool, field: str = "name"
) -> Track:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            sql.SQL("SELECT {} FROM {} WHERE t.id = %s").format(_TRACK_COLUMNS, _TRACK_FROM),
            (track_id,),
        )
        row = await cursor.fetchone()
        if row is None:
            raise not_found("track", format_name("tracks", track_id), field)
        track = _track_from_row(row)
        if not with_objects:
            return track
        await cursor.execute(
            sql.SQL("SELECT {} FROM {} WHERE o.track_id = %s ORDER BY o.frame_index, o.id").format(
                OBJECT_COLUMNS, OBJECT_FROM
            ),
            (track_id,),
        )
        objects = tuple(object_from_row(r) for r in await cursor.fetchall())
    return dataclasses.replace(track, objects=objects)


async def _replay(
    conn: Connection, track_id: UUID, source_id: UUID, object_ids: Sequence[UUID]
) -> Track | None:
    """The track `track_id` when it exists with exactly `object_ids` of `source_id` (a retried
    create); None when there is no such track; AlreadyExists when it holds anything else."""
    cursor = await conn.execute("SELECT source_id FROM tracks WHERE id = %s FOR SHARE", (track_id,))
    row = await cursor.fetchone()
    if row is None:
        return None
    cursor = await conn.execute("SELECT id FROM objects WHERE track_id = %s", (track_id,))
    members = {r[0] for r in await cursor.fetchall()}
    if row[0] != source_id or members != set(object_ids):
        raise AlreadyExists(
            f"{format_name('tracks', track_id)} exists with other objects",
            metadata={"field": "track_id"},
        )
    return await _load_track(conn, track_id, with_objects=True)


async def _move_objects(conn: Connection, query: sql.SQL, params: Sequence[object]) -> None:
    """Run an UPDATE ... RETURNING id, has_embedding and enqueue the moved vectors' payloads."""
    cursor = await conn.execute(query, params)
    moved = [row[0] for row in await cursor.fetchall() if row[1]]
    await enqueue(conn, moved, "upsert")


class TrackStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, track_id: UUID) -> Track:
        """The track with its objects in frame order."""
        async with self._db.connection() as conn:
            return await _load_track(conn, track_id, with_objects=True)

    async def list(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Track]:
        """Tracks without their objects (filter: source, category, object_count)."""
        return await list_page(self._db, _TRACK_QUERY, filter, order_by, page_size, page_token)

    async def create(
        self, source_id: UUID, object_ids: Sequence[UUID], *, track_id: UUID | None = None
    ) -> Track:
        """A new track holding `object_ids`, all or nothing: untracked objects join it, tracked
        ones leave their track (deleted when left empty).

        The objects must exist (NotFound naming `objects[i]`), belong to `source_id`
        (InvalidArgument naming `objects[i]`) and lie in different frames (InvalidArgument).
        With `track_id`: when that track exists and holds exactly these objects, it is returned
        unchanged (a retry); otherwise AlreadyExists.
        """
        if not object_ids:
            raise InvalidArgument("name at least one object", field="objects")
        for i, object_id in enumerate(object_ids):
            if object_id in object_ids[:i]:
                raise InvalidArgument("names an object twice", field=f"objects[{i}]")
        new_id = track_id or uuid4()

        async def work(conn: Connection) -> Track:
            cursor = await conn.execute(
                "SELECT 1 FROM sources WHERE id = %s FOR KEY SHARE", (source_id,)
            )
            if await cursor.fetchone() is None:
                raise not_found("source", format_name("sources", source_id), "source")
            if track_id is not None:
                replayed = await _replay(conn, track_id, source_id, object_ids)
                if replayed is not None:
                    return replayed
            cursor = await conn.execute(
                "SELECT id, source_id, frame_index, track_id FROM objects "
                "WHERE id = ANY(%s::uuid[]) ORDER BY id FOR UPDATE",
                (sorted(object_ids),),
            )
            rows = {row[0]: row[1:] for row in await cursor.fetchall()}
            frames: dict[int, int] = {}
            for i, object_id in enumerate(object_ids):
                field = f"objects[{i}]"
                if object_id not in rows:
                    raise not_found("object", format_name("objects", object_id), field)
                object_source, frame_index, _ = rows[object_id]
                if object_source != source_id:
                    raise InvalidArgument(
                        f"{format_name('objects', object_id)} belongs to "
                        f"{format_name('sources', object_source)}, not to the track's source",
                        field=field,
                    )
                if frame_index in frames:
                    raise InvalidArgument(
                        f"is in frame {frame_index} like objects[{frames[frame_index]}]; "
                        "a track holds one object per frame",
                        field=field,
                    )
                frames[frame_index] = i
            cursor = await conn.execute(
                "INSERT INTO tracks (id, source_id) VALUES (%s, %s) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (new_id, source_id),
            )
            if await cursor.fetchone() is None:
                # A concurrent retry of this request committed the track since _replay looked
                # (this statement waited for it, and the next one sees it).
                replayed = await _replay(conn, new_id, source_id, object_ids)
                if replayed is not None:
                    return replayed
                raise AlreadyExists(
                    f"{format_name('tracks', new_id)} exists with other objects",
                    metadata={"field": "track_id"},
                )
            await _move_objects(
                conn,
                sql.SQL(
                    "UPDATE objects SET track_id = %s, update_time = now() "
                    "WHERE id = ANY(%s::uuid[]) RETURNING id, has_embedding"
                ),
                (new_id, list(object_ids)),
            )
            await drop_empty_tracks(conn, [row[2] for row in rows.values()])
            return await _load_track(conn, new_id, with_objects=True)

        return await self._db.transact(work)

    async def merge(self, track_ids: Sequence[UUID]) -> Track:
        """Move every object of the other tracks into the first one and delete the others.

        The tracks must exist (NotFound naming `names[i]`) and share one source
        (FailedPrecondition).
        """
        if len(track_ids) < 2:
            raise InvalidArgument("name at least two tracks to merge", field="names")
        for i, track_id in enumerate(track_ids):
            if track_id in track_ids[:i]:
                raise InvalidArgument("names a track twice", field=f"names[{i}]")

        async def work(conn: Connection) -> Track:
            cursor = await conn.execute(
                "SELECT id, source_id FROM tracks WHERE id = ANY(%s::uuid[]) "
                "ORDER BY id FOR UPDATE",
                (list(track_ids),),
            )
            sources: dict[UUID, UUID] = dict(await cursor.fetchall())
            for i, track_id in enumerate(track_ids):
                if track_id not in sources:
                    raise not_found("track", format_name("tracks", track_id), f"names[{i}]")
            if len(set(sources.values())) > 1:
                raise FailedPrecondition(
                    "tracks of different sources cannot be merged",
                    metadata={"sources": ",".join(sorted(str(s) for s in set(sources.values())))},
                )
            target, others = track_ids[0], list(track_ids[1:])
            await _move_objects(
                conn,
                sql.SQL(
                    "UPDATE objects SET track_id = %s, update_time = now() "
                    "WHERE track_id = ANY(%s::uuid[]) RETURNING id, has_embedding"
                ),
                (target, others),
            )
            await conn.execute("DELETE FROM tracks WHERE id = ANY(%s::uuid[])", (others,))
            return await _load_track(conn, target, with_objects=True)

        return await self._db.transact(work)

    async def split(self, track_id: UUID, frame_index: int) -> SplitResult:
        """Move the objects at `frame_index` and later to a new track of the same source.

        FailedPrecondition when either part would be empty.
        """
        if frame_index < 0:
            raise InvalidArgument("must not be negative", field="frame_index")

        async def work(conn: Connection) -> SplitResult:
            cursor = await conn.execute(
                "SELECT source_id FROM tracks WHERE id = %s FOR UPDATE", (track_id,)
            )
            row = await cursor.fetchone()
            if row is None:
                raise not_found("track", format_name("tracks", track_id), "name")
            source_id = row[0]
            cursor = await conn.execute(
                "SELECT count(*) FILTER (WHERE frame_index < %s), "
                "count(*) FILTER (WHERE frame_index >= %s) FROM objects WHERE track_id = %s",
                (frame_index, frame_index, track_id),
            )
            counts = await cursor.fetchone()
            assert counts is not None
            before, after = counts
            if before == 0 or after == 0:
                raise FailedPrecondition(
                    f"splitting at frame {frame_index} would leave a track empty "
                    f"({before} objects before it, {after} from it on)"
                )
            new_id = uuid4()
            await conn.execute(
                "INSERT INTO tracks (id, source_id) VALUES (%s, %s)", (new_id, source_id)
            )
            await _move_objects(
                conn,
                sql.SQL(
                    "UPDATE objects SET track_id = %s, update_time = now() "
                    "WHERE track_id = %s AND frame_index >= %s RETURNING id, has_embedding"
                ),
                (new_id, track_id, frame_index),
            )
            return SplitResult(
                before=await _load_track(conn, track_id, with_objects=True),
                after=await _load_track(conn, new_id, with_objects=True),
            )

        return await self._db.transact(work)
