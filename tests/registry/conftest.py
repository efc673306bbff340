"""Postgres for the registry tests: ONE embedded PostgreSQL (pgserver) per session, one
database, and a fresh schema per test (`search_path` in the DSN), migrated by the code under
test: about 70 ms a test, where a database cloned from a template costs 170 ms (each database
copies 7 MB of system catalogs).

The server starts only when a test asks for it, so the other registry tests (vectors, masks)
do not pay for it.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote
from uuid import uuid4

import psycopg
import pytest
from psycopg import sql

from agentic_labeling.registry.database import (
    Database,
    EmbeddedPostgres,
    open_database,
    start_embedded_postgres,
)
from agentic_labeling.registry.repository import Repository
from agentic_labeling.registry.values.records import (
    BatchCreateResult,
    BoundingBox,
    NewFrame,
    NewObject,
    NewSource,
    Source,
    SourceKind,
)

DATABASE = "registry_tests"
EMBEDDING_DIM = 8


@pytest.fixture(scope="session")
def pg_server() -> Iterator[EmbeddedPostgres]:
    # Not under pytest's tmp_path: every pytest session resets /tmp/pytest-of-<user> to 0700,
    # and the server runs as the `pgserver` user when the tests run as root (see database.py).
    workdir = Path(tempfile.mkdtemp(prefix="alabel-registry-pg-"))
    server = start_embedded_postgres(workdir / "postgres")
    try:
        with psycopg.connect(server.dsn(), autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE)))
        with psycopg.connect(server.dsn(DATABASE), autocommit=True) as conn:
            # Shared by every test schema; the migration's CREATE EXTENSION then finds it.
            conn.execute("CREATE EXTENSION vector SCHEMA public")
        yield server
    finally:
        server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture
def empty_dsn(pg_server: EmbeddedPostgres) -> Iterator[str]:
    """A DSN whose search_path is a new, empty schema."""
    schema = f"t_{uuid4().hex[:16]}"
    with psycopg.connect(pg_server.dsn(DATABASE), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    yield pg_server.dsn(DATABASE) + "&options=" + quote(f"-csearch_path={schema},public")
    with psycopg.connect(pg_server.dsn(DATABASE), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture
async def db(empty_dsn: str, tmp_path: Path) -> AsyncIterator[Database]:
    """The registry's Database on a fresh schema, migrated by open_database."""
    database = await open_database(empty_dsn, tmp_path, max_pool_size=20)
    yield database
    await database.close()


@pytest.fixture
def repo(db: Database) -> Repository:
    return Repository(db, embedding_dim=EMBEDDING_DIM)


class Builder:
    """Short ways to make sources and objects in tests."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo

    async def image(self, width: int = 640, height: int = 480, **fields: Any) -> Source:
        return await self.repo.sources.create(NewSource(SourceKind.IMAGE, width, height, **fields))

    async def video(self, frames: int = 3, width: int = 640, height: int = 480) -> Source:
        source = await self.repo.sources.create(NewSource(SourceKind.VIDEO, width, height))
        for index in range(frames):
            await self.repo.sources.create_frame(source.id, NewFrame(index))
        return source

    @staticmethod
    def obj(
        source: Source,
        category: str = "cat",
        bbox: tuple[float, float, float, float] = (10, 10, 50, 50),
        **fields: Any,
    ) -> NewObject:
        return NewObject(
            source_id=source.id, bbox=BoundingBox(*bbox), category_name=category, **fields
        )

    async def create(
        self, *objects: NewObject, create_missing_categories: bool = True, **options: Any
    ) -> BatchCreateResult:
        return await self.repo.objects.batch_create(
            uuid4(), objects, create_missing_categories=create_missing_categories, **options
        )


@pytest.fixture
def build(repo: Repository) -> Builder:
    return Builder(repo)
