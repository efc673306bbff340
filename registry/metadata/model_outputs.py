"""What a detection model itself said about the objects it produced, as opposed to what the
objects hold now, after review.

BatchCreateObjects writes an unvalidated object's box, category and confidence twice: into the
object's own columns, which UpdateObject and ValidateObjects corrections change, and into its
`model_*` columns (migration 0006), which nothing changes afterwards. An object created
validated (an import, a box a person drew) has no model output: it is ground truth only. So
scoring a model's auto-labels against the reviewed labels compares what the model said with
what the reviewer decided, never a corrected box with itself. DeleteObject moves the model
output of the object it deletes to `deleted_model_outputs` (`keep_deleted_model_output`), so
a wrong auto-label that a reviewer deleted still counts as the model's false positive.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from uuid import UUID

from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.values.records import BoundingBox

__all__ = ["ModelOutput", "keep_deleted_model_output", "model_outputs"]


@dataclass(frozen=True)
class ModelOutput:
    """One object as its detection model produced it."""

    object_id: UUID
    source_id: UUID
    frame_index: int
    category_id: UUID
    bbox: BoundingBox
    confidence: float


async def model_outputs(
    db: Database,
    frames: Sequence[tuple[UUID, int]],
    detection_model: str,
    category_ids: Collection[UUID],
) -> list[ModelOutput]:
    """The outputs of `detection_model` on `frames` ((source ID, frame index)) whose model
    category is one of `category_ids`, by frame then object ID: of the objects there now, and
    of those deleted since. Objects created validated have none and are never returned."""
    if not frames or not category_ids:
        return []
    async with db.connection() as conn:
        cursor = await conn.execute(
            "WITH f AS (SELECT * FROM unnest(%(sources)s::uuid[], %(frames)s::int8[]) "
            "AS f(source_id, frame_index)) "
            "SELECT o.id, o.source_id, o.frame_index, o.model_category_id, o.model_x, "
            "o.model_y, o.model_width, o.model_height, o.model_confidence "
            "FROM f JOIN objects o ON o.source_id = f.source_id AND o.frame_index = f.frame_index "
            "WHERE o.detection_model = %(model)s AND o.model_x IS NOT NULL "
            "AND o.model_category_id = ANY(%(classes)s::uuid[]) "
            "UNION ALL "
            "SELECT d.object_id, d.source_id, d.frame_index, d.model_category_id, d.model_x, "
            "d.model_y, d.model_width, d.model_height, d.model_confidence "
            "FROM f JOIN deleted_model_outputs d "
            "ON d.source_id = f.source_id AND d.frame_index = f.frame_index "
            "WHERE d.detection_model = %(model)s "
            "AND d.model_category_id = ANY(%(classes)s::uuid[]) "
            "ORDER BY 2, 3, 1",
            {
                "sources": [source_id for source_id, _ in frames],
                "frames": [frame_index for _, frame_index in frames],
                "model": detection_model,
                "classes": list(category_ids),
            },
        )
        rows = await cursor.fetchall()
    return [
        ModelOutput(
            object_id=row[0],
            source_id=row[1],
            frame_index=row[2],
            category_id=row[3],
            bbox=BoundingBox(row[4], row[5], row[6], row[7]),
            confidence=row[8],
        )
        for row in rows
    ]


async def keep_deleted_model_output(conn: Connection, object_id: UUID) -> None:
    """Keep the model output of an object about to be deleted (in the same transaction);
    nothing for an object without one, or no object."""
    await conn.execute(
        "INSERT INTO deleted_model_outputs (object_id, source_id, frame_index, detection_model, "
        "model_category_id, model_x, model_y, model_width, model_height, model_confidence) "
        "SELECT id, source_id, frame_index, detection_model, model_category_id, model_x, "
        "model_y, model_width, model_height, model_confidence FROM objects "
        "WHERE id = %s AND model_x IS NOT NULL ON CONFLICT (object_id) DO NOTHING",
        (object_id,),
    )
