"""The registry's embedding dimension: decided once, recorded in Postgres, agreed on at every start.

Postgres is the source of truth (`registry_settings`, migration 0003). At start-up:

- recorded, and the setting not given: the recorded value;
- recorded, and the setting equal: fine; different: FailedPrecondition (reason
  EMBEDDING_DIMENSION_MISMATCH), one line naming both numbers and the fix;
- nothing recorded: objects already stored with embeddings (a registry from before the record
  existed) count as recorded; otherwise the setting, else the served DINOv2's
  (`embedding_dimension(models_dir)`: its config's hidden_size, 768 for the default
  facebook/dinov2-base). The value is recorded once the vector store has opened with it.

Two registries starting on one new database race to record: the first wins, and the second sees
a mismatch if it chose differently.
"""

from __future__ import annotations

from agentic_labeling.errors import FailedPrecondition
from agentic_labeling.models.loading import embedding_dimension as served_dimension
from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.settings import Settings

__all__ = ["KEY", "choose_dimension", "dimension_mismatch", "record_dimension", "where_stored"]

KEY = "embedding_dimension"


def where_stored(settings: Settings) -> str:
    """The store a user can point at: the data directory, or the external database."""
    if settings.postgres_dsn:
        return "the registry's database (--postgres-dsn)"
    return f"the data directory {settings.data_dir}"


def dimension_mismatch(settings: Settings, recorded: int, asked: int) -> FailedPrecondition:
    other = "--postgres-dsn" if settings.postgres_dsn else "--data-dir"
    return FailedPrecondition(
        f"{where_stored(settings)} holds {recorded}-dimensional embeddings;"
        f" --embedding-dimension {asked} contradicts it: leave the flag out, or use another"
        f" {other}",
        reason="EMBEDDING_DIMENSION_MISMATCH",
        metadata={"recorded": str(recorded), "asked": str(asked)},
    )


async def _recorded(conn: Connection) -> int | None:
    cursor = await conn.execute("SELECT value FROM registry_settings WHERE key = %s", (KEY,))
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def _stored(conn: Connection) -> int | None:
    """The length of the embeddings stored by a registry from before the record existed."""
    cursor = await conn.execute(
        "SELECT vector_dims(embedding) FROM objects WHERE embedding IS NOT NULL LIMIT 1"
    )
    row = await cursor.fetchone()
    return None if row is None else int(row[0])


async def choose_dimension(database: Database, settings: Settings) -> tuple[int, bool]:
    """(the dimension to open the stores with, whether it is recorded already)."""
    async with database.connection() as conn:
        recorded = await _recorded(conn)
        known = recorded if recorded is not None else await _stored(conn)
    asked = settings.embedding_dimension
    if known is not None:
        if asked is not None and asked != known:
            raise dimension_mismatch(settings, known, asked)
        return known, recorded is not None
    if asked is not None:
        return asked, False
    return served_dimension(settings.models_dir), False


async def record_dimension(database: Database, settings: Settings, dimension: int) -> None:
    """Record `dimension` unless one is recorded; a different one recorded meanwhile (another
    registry starting on the same new database) is the usual mismatch error."""
    async with database.connection() as conn:
        await conn.execute(
            "INSERT INTO registry_settings (key, value) VALUES (%s, %s)"
            " ON CONFLICT (key) DO NOTHING",
            (KEY, str(dimension)),
        )
        recorded = await _recorded(conn)
    if recorded is not None and recorded != dimension:
        raise dimension_mismatch(settings, recorded, dimension)
