"""Long-running operations as rows in Postgres, so they outlive the process that ran them.

The gRPC layer (servers/operation_store.py) owns the messages; this store keeps them as opaque
bytes with the few plain columns it must query: the name, the target, the owner, whether the
operation is done, and when it was created (ListOperations pages newest first).

Ownership: every operation is marked with the registry instance that runs it. An instance is
named by its host and data directory (`instance_owner`): one registry runs on one data
directory at a time (its embedded Postgres, its Qdrant and its mask files say so), so at
start-up the operations still running under this instance's own name were left by a
predecessor that died, and may be ended; those of other owners are left alone, since they may
be running elsewhere on a shared Postgres.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from agentic_labeling.registry.database import Database

__all__ = ["OperationRecords", "StoredOperation", "instance_owner"]


def instance_owner(data_dir: Path) -> str:
    """The name this registry instance marks its operations with: `host:/data/dir`."""
    return f"{socket.gethostname()}:{data_dir.expanduser().resolve()}"


@dataclass(frozen=True)
class StoredOperation:
    name: str
    target: str
    owner: str
    done: bool
    metadata: bytes
    outcome: bytes | None
    create_time: datetime


_COLUMNS = "name, target, owner, done, metadata, outcome, create_time"


def _stored(row: tuple[Any, ...]) -> StoredOperation:
    name, target, owner, done, metadata, outcome, create_time = row
    return StoredOperation(
        name=str(name),
        target=str(target),
        owner=str(owner),
        done=bool(done),
        metadata=bytes(metadata),
        outcome=None if outcome is None else bytes(outcome),
        create_time=create_time,
    )


class OperationRecords:
    """Reads and writes the `operations` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def insert(self, name: str, target: str, owner: str, metadata: bytes) -> None:
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO operations (name, target, owner, metadata) VALUES (%s, %s, %s, %s)",
                (name, target, owner, metadata),
            )

    async def finish(self, name: str, metadata: bytes, outcome: bytes) -> bool:
        """Record the end of a running operation; False when it is gone or already done."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "UPDATE operations SET done = true, metadata = %s, outcome = %s, "
                "update_time = clock_timestamp() WHERE name = %s AND NOT done",
                (metadata, outcome, name),
            )
            return cursor.rowcount == 1

    async def get(self, name: str) -> StoredOperation | None:
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM operations WHERE name = %s",
                (name,),
            )
            row = await cursor.fetchone()
        return None if row is None else _stored(row)

    async def page(self, *, size: int, after: str = "") -> tuple[list[StoredOperation], bool]:
        """Newest first, after the operation named `after` (none: from the newest); whether
        more follow. An `after` that names no operation gives LookupError."""
        async with self._db.connection() as conn:
            if after:
                cursor = await conn.execute(
                    "SELECT create_time FROM operations WHERE name = %s", (after,)
                )
                anchor = await cursor.fetchone()
                if anchor is None:
                    raise LookupError(after)
                cursor = await conn.execute(
                    f"SELECT {_COLUMNS} FROM operations "
                    "WHERE (create_time, name) < (%s, %s) "
                    "ORDER BY create_time DESC, name DESC LIMIT %s",
                    (anchor[0], after, size + 1),
                )
            else:
                cursor = await conn.execute(
                    f"SELECT {_COLUMNS} FROM operations "
                    "ORDER BY create_time DESC, name DESC LIMIT %s",
                    (size + 1,),
                )
            rows = await cursor.fetchall()
        return [_stored(r) for r in rows[:size]], len(rows) > size

    async def delete(self, name: str) -> bool:
        async with self._db.connection() as conn:
            cursor = await conn.execute("DELETE FROM operations WHERE name = %s", (name,))
            return cursor.rowcount == 1

    async def running(self, *, owner: str | None = None) -> list[StoredOperation]:
        """Operations not done, of `owner` (None: of every owner), oldest first."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                f"SELECT {_COLUMNS} FROM operations "
                "WHERE NOT done AND (%s::text IS NULL OR owner = %s) ORDER BY create_time, name",
                (owner, owner),
            )
            return [_stored(r) for r in await cursor.fetchall()]

    async def forget_oldest_finished(self, keep: int) -> int:
        """Delete finished operations beyond the newest `keep`; how many were deleted."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM operations WHERE name IN (SELECT name FROM operations WHERE done "
                "ORDER BY create_time DESC, name DESC OFFSET %s)",
                (keep,),
            )
            return cursor.rowcount
