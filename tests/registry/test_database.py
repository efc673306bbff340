"""Migrations, the embedded server and the pool's transactions, on a real PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psycopg
import pytest
from psycopg import errors as pg_errors

from agentic_labeling.errors import Conflict, Unavailable
from agentic_labeling.registry import database
from agentic_labeling.registry.database import (
    Migration,
    MigrationError,
    apply_migrations,
    load_migrations,
    open_database,
)

FIRST = Migration(1, "first", "CREATE TABLE first_table (id integer PRIMARY KEY);")
SECOND = Migration(2, "second", "CREATE TABLE second_table (id integer PRIMARY KEY);")


def recorded(dsn: str) -> list[tuple[int, str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT version, name, checksum FROM schema_migrations ORDER BY version"
        ).fetchall()


def test_packaged_migrations_are_numbered_from_0001_in_order() -> None:
    migrations = load_migrations()
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert migrations[0].name == "initial_schema"


def test_migrations_apply_once_and_are_recorded_with_their_checksums(empty_dsn: str) -> None:
    assert apply_migrations(empty_dsn, [FIRST, SECOND]) == [1, 2]
    assert recorded(empty_dsn) == [
        (1, "first", FIRST.checksum),
        (2, "second", SECOND.checksum),
    ]


def test_rerunning_migrations_is_a_no_op(empty_dsn: str) -> None:
    apply_migrations(empty_dsn, [FIRST])
    assert apply_migrations(empty_dsn, [FIRST]) == []
    assert apply_migrations(empty_dsn, [FIRST, SECOND]) == [2]  # only the new one runs
    assert [row[0] for row in recorded(empty_dsn)] == [1, 2]


def test_an_edited_migration_is_refused(empty_dsn: str) -> None:
    apply_migrations(empty_dsn, [FIRST])
    edited = Migration(1, "first", FIRST.sql + "\n-- an innocent comment")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        apply_migrations(empty_dsn, [edited, SECOND])
    assert [row[0] for row in recorded(empty_dsn)] == [1]  # nothing else ran


def test_a_database_newer_than_the_code_is_refused(empty_dsn: str) -> None:
    apply_migrations(empty_dsn, [FIRST, SECOND])
    with pytest.raises(MigrationError, match="does not have"):
        apply_migrations(empty_dsn, [FIRST])


def test_a_failing_migration_leaves_nothing_behind(empty_dsn: str) -> None:
    broken = Migration(2, "broken", "CREATE TABLE half (id integer); SELECT 1/0;")
    with pytest.raises(pg_errors.DivisionByZero):
        apply_migrations(empty_dsn, [FIRST, broken])
    with psycopg.connect(empty_dsn) as conn:
        assert conn.execute("SELECT to_regclass('half')").fetchone() == (None,)
    assert [row[0] for row in recorded(empty_dsn)] == [1]


def test_concurrent_starters_apply_each_migration_once(empty_dsn: str) -> None:
    slow = Migration(1, "slow", "SELECT pg_sleep(0.2); CREATE TABLE once (id integer);")
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            results.append(apply_migrations(empty_dsn, [slow]))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert sorted(results) == [[], [], [], [1]]


def test_migration_files_are_read_in_number_order_and_others_ignored(tmp_path: Path) -> None:
    (tmp_path / "0002_b.sql").write_text("SELECT 2;")
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "README.md").write_text("not a migration")
    assert [(m.version, m.name) for m in load_migrations(tmp_path)] == [(1, "a"), (2, "b")]


def test_two_migration_files_with_one_number_are_refused(tmp_path: Path) -> None:
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0001_b.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="numbered 0001"):
        load_migrations(tmp_path)


async def test_open_database_migrates_an_external_database(empty_dsn: str, tmp_path: Path) -> None:
    db = await open_database(empty_dsn, tmp_path)
    try:
        async with db.connection() as conn:
            cursor = await conn.execute("SELECT count(*) FROM schema_migrations")
            assert await cursor.fetchone() == (len(load_migrations()),)
        assert db.embedded is None
    finally:
        await db.close()
        await db.close()  # closing twice is harmless


async def test_unreachable_postgres_is_unavailable(tmp_path: Path) -> None:
    dsn = f"postgresql://postgres@/postgres?host={tmp_path}&connect_timeout=1"
    with pytest.raises(Unavailable):
        await open_database(dsn, tmp_path)


async def test_transact_retries_a_transaction_that_lost_a_serialisation_conflict(db) -> None:
    attempts = []

    async def work(conn):
        attempts.append(1)
        if len(attempts) < 3:
            raise pg_errors.SerializationFailure("lost")
        cursor = await conn.execute("SELECT 42")
        return (await cursor.fetchone())[0]

    assert await db.transact(work) == 42
    assert len(attempts) == 3


async def test_transact_gives_up_with_conflict_after_repeated_deadlocks(db) -> None:
    async def work(conn):
        raise pg_errors.DeadlockDetected("again")

    with pytest.raises(Conflict):
        await db.transact(work)


async def test_transact_rolls_back_everything_when_work_fails(db) -> None:
    async def work(conn):
        await conn.execute(
            "INSERT INTO categories (id, display_name) VALUES (gen_random_uuid(), 'x')"
        )
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await db.transact(work)
    async with db.connection() as conn:
        cursor = await conn.execute("SELECT count(*) FROM categories")
        assert await cursor.fetchone() == (0,)


def test_dead_processes_are_dropped_from_pgservers_handle_list(tmp_path: Path) -> None:
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(dead.stdout)
    handles = tmp_path / ".handle_pids.json"
    handles.write_text(json.dumps([os.getpid(), dead_pid]))
    database._forget_dead_handles(handles)
    assert json.loads(handles.read_text()) == [os.getpid()]


async def test_embedded_postgres_starts_in_the_data_dir_and_stops_on_close(
    pg_server: database.EmbeddedPostgres,
) -> None:
    # A second data directory next to the session's (pytest's tmp root is no place for it:
    # see conftest). Starting a new cluster runs initdb: about 2 to 3 seconds.
    data_dir = pg_server.pgdata.parent / "second"
    db = await open_database("", data_dir)
    try:
        assert db.embedded is not None
        assert db.embedded.pgdata == (data_dir / "postgres").resolve()
        async with db.connection() as conn:
            cursor = await conn.execute(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            )
            assert (await cursor.fetchone()) is not None
    finally:
        await db.close()
    assert not (data_dir / "postgres" / "postmaster.pid").exists()


async def test_a_lost_connection_is_unavailable_and_the_pool_recovers(
    empty_dsn: str, tmp_path
) -> None:
    db = await open_database(empty_dsn, tmp_path, min_pool_size=1, max_pool_size=1)
    try:
        async with db.connection() as conn:
            cursor = await conn.execute("SELECT pg_backend_pid()")
            (pid,) = await cursor.fetchone()
        with psycopg.connect(empty_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(Unavailable):
            async with db.connection() as conn:
                await conn.execute("SELECT 1")
        async with db.connection() as conn:
            cursor = await conn.execute("SELECT current_setting('TimeZone')")
            assert await cursor.fetchone() == ("UTC",)
    finally:
        await db.close()
