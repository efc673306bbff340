"""The vector outbox: what Qdrant must still be told, written in the same transaction as the
object rows that need it, read and applied after commit by the caller.

Writers call `enqueue(conn, ids, op)` inside their transaction: `upsert` when an object with
an embedding is created or changes a field the vector payload carries, `delete` when it goes.
`VectorOutbox.pending()` collapses the entries of each object into one op with the object's
current state (an upsert of an object that is gone becomes a delete), so applying is
idempotent by object UUID and the order of entries across objects does not matter. Apply from
one process at a time; `mark_applied` then removes exactly the entries that were read, so an
entry enqueued meanwhile stays for the next round. The registry marks entries applied only once
the vector store has flushed them (a group commit, `Registry.apply_outbox`): until then they
stay here, and a crash re-applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row

from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.metadata.object_rows import (
    OBJECT_COLUMNS,
    OBJECT_FROM,
    object_from_row,
)
from agentic_labeling.registry.values.records import ObjectStorageState, VectorOp

__all__ = ["StoreScans", "VectorOutbox", "enqueue", "read_embeddings"]

OutboxOp = Literal["upsert", "delete"]


async def enqueue(conn: Connection, object_ids: Sequence[UUID], op: OutboxOp) -> None:
    """Record that the vector store must `op` these objects (inside the writer's transaction)."""
    if not object_ids:
        return
    await conn.execute(
        "INSERT INTO vector_outbox (object_id, op) SELECT unnest(%s::uuid[]), %s",
        (list(object_ids), op),
    )


async def read_embeddings(
    conn: Connection, object_ids: Sequence[UUID]
) -> dict[UUID, tuple[float, ...]]:
    """The stored embeddings of those objects that have one, exactly as float32 values."""
    # Binary transfer of real[] gives the stored float32 values without a text round trip.
    async with conn.cursor(binary=True) as cursor:
        await cursor.execute(
            "SELECT id, embedding::real[] FROM objects "
            "WHERE id = ANY(%s::uuid[]) AND embedding IS NOT NULL",
            (list(object_ids),),
        )
        return {row[0]: tuple(row[1]) for row in await cursor.fetchall()}


class VectorOutbox:
    """Reads and clears the outbox."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def pending(self, limit: int = 500, *, skip: Sequence[int] = ()) -> list[VectorOp]:
        """Up to `limit` outbox entries, collapsed per object, oldest first; entries whose id
        is in `skip` (applied already, not yet marked: see `Registry.apply_outbox`) are left
        out."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, object_id, op FROM vector_outbox "
                "WHERE NOT (id = ANY(%s::bigint[])) ORDER BY id LIMIT %s",
                (list(skip), limit),
            )
            entries = await cursor.fetchall()
            latest: dict[UUID, tuple[list[int], str]] = {}
            for entry_id, object_id, op in entries:
                ids, _ = latest.pop(object_id, ([], op))
                ids.append(entry_id)
                latest[object_id] = (ids, op)  # re-inserted: ordered by the last entry
            upserts = [object_id for object_id, (_, op) in latest.items() if op == "upsert"]
            async with conn.cursor(row_factory=dict_row) as rows:
                await rows.execute(
                    sql.SQL("SELECT {} FROM {} WHERE o.id = ANY(%s::uuid[])").format(
                        OBJECT_COLUMNS, OBJECT_FROM
                    ),
                    (upserts,),
                )
                objects = {row["id"]: object_from_row(row) for row in await rows.fetchall()}
            embeddings = await read_embeddings(conn, upserts)
        ops: list[VectorOp] = []
        for object_id, (ids, op) in latest.items():
            record = objects.get(object_id)
            embedding = embeddings.get(object_id)
            if op == "upsert" and record is not None and embedding is not None:
                ops.append(VectorOp(tuple(ids), object_id, "upsert", record, embedding))
            else:
                ops.append(VectorOp(tuple(ids), object_id, "delete"))
        return ops

    async def mark_applied(self, outbox_ids: Sequence[int]) -> int:
        """Remove applied entries; returns how many were removed."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM vector_outbox WHERE id = ANY(%s::bigint[])", (list(outbox_ids),)
            )
            return cursor.rowcount

    async def pending_count(self) -> int:
        async with self._db.connection() as conn:
            cursor = await conn.execute("SELECT count(*) FROM vector_outbox")
            row = await cursor.fetchone()
            return int(row[0]) if row else 0


class StoreScans:
    """What reconcile reads from Postgres to repair Qdrant and the mask files."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def embeddings_for(self, object_ids: Sequence[UUID]) -> dict[UUID, tuple[float, ...]]:
        """The stored embeddings of those objects that have one."""
        async with self._db.connection() as conn:
            return await read_embeddings(conn, object_ids)

    async def scan_objects(
        self, *, after: UUID | None = None, limit: int = 1000
    ) -> list[ObjectStorageState]:
        """Objects in ID order after `after`: page through all of them by passing the last ID."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id, has_embedding, has_mask FROM objects "
                "WHERE %s::uuid IS NULL OR id > %s::uuid ORDER BY id LIMIT %s",
                (after, after, limit),
            )
            return [ObjectStorageState(*row) for row in await cursor.fetchall()]

    async def existing_object_ids(self, object_ids: Sequence[UUID]) -> set[UUID]:
        """Which of `object_ids` are objects in Postgres."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "SELECT id FROM objects WHERE id = ANY(%s::uuid[])", (list(object_ids),)
            )
            return {row[0] for row in await cursor.fetchall()}

    async def clear_masks(self, object_ids: Sequence[UUID]) -> int:
        """Record that these objects' mask files are gone: has_mask false, area of the box."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "UPDATE objects SET has_mask = false, area = width * height, "
                "update_time = now() WHERE id = ANY(%s::uuid[]) AND has_mask",
                (list(object_ids),),
            )
            return cursor.rowcount
