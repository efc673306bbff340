"""How an object row is selected and turned into an ObjectRecord, for every module that
returns objects (objects, batch creation, tracks, the outbox).

The select joins the category for its display name; `o` is the objects alias every filter and
order expression uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row

from agentic_labeling.registry.database import Connection
from agentic_labeling.registry.values.records import BoundingBox, ObjectRecord
from agentic_labeling.registry.values.resource_names import format_name, not_found

__all__ = [
    "OBJECT_COLUMNS",
    "OBJECT_FROM",
    "fetch_objects",
    "fetch_objects_in_order",
    "object_from_row",
]

OBJECT_COLUMNS = sql.SQL(
    "o.id, o.source_id, o.frame_index, o.category_id, c.display_name AS category_name, "
    "o.x, o.y, o.width, o.height, o.confidence, o.area, o.has_mask, o.has_embedding, "
    "o.detection_model, o.is_validated, o.validated_by, o.validate_time, o.quality_score, "
    "o.track_id, o.attributes, o.create_time, o.update_time"
)
OBJECT_FROM = sql.SQL("objects o JOIN categories c ON c.id = o.category_id")


def object_from_row(row: Mapping[str, Any]) -> ObjectRecord:
    return ObjectRecord(
        id=row["id"],
        source_id=row["source_id"],
        frame_index=row["frame_index"],
        category_id=row["category_id"],
        category_name=row["category_name"],
        bbox=BoundingBox(row["x"], row["y"], row["width"], row["height"]),
        confidence=row["confidence"],
        area=row["area"],
        has_mask=row["has_mask"],
        has_embedding=row["has_embedding"],
        detection_model=row["detection_model"],
        is_validated=row["is_validated"],
        validated_by=row["validated_by"],
        validate_time=row["validate_time"],
        quality_score=row["quality_score"],
        track_id=row["track_id"],
        attributes=row["attributes"],
        create_time=row["create_time"],
        update_time=row["update_time"],
    )


async def fetch_objects(conn: Connection, object_ids: Iterable[UUID]) -> dict[UUID, ObjectRecord]:
    """The objects that exist among `object_ids`, by ID."""
    query = sql.SQL("SELECT {} FROM {} WHERE o.id = ANY(%s::uuid[])").format(
        OBJECT_COLUMNS, OBJECT_FROM
    )
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, (list(object_ids),))
        return {row["id"]: object_from_row(row) for row in await cursor.fetchall()}


async def fetch_objects_in_order(
    conn: Connection, object_ids: Sequence[UUID], fields: Sequence[str]
) -> list[ObjectRecord]:
    """The objects `object_ids` in that order; NotFound naming `fields[i]` for a missing one."""
    found = await fetch_objects(conn, object_ids)
    missing = [i for i, object_id in enumerate(object_ids) if object_id not in found]
    if missing:
        i = missing[0]
        raise not_found("object", format_name("objects", object_ids[i]), fields[i])
    return [found[object_id] for object_id in object_ids]
