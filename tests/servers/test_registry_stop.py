"""A registry stopped with SIGTERM leaves nothing for the next start to repair: the vector
outbox of batches whose RPC was cancelled after commit (their client went away) is applied to
Qdrant before the stores close."""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from pathlib import Path

import grpc
import psycopg
import pytest
from conftest import registry_data_dir
from psycopg import sql

from agentic_labeling.local_mesh import start_server_process
from agentic_labeling.registry.database import start_embedded_postgres
from agentic_labeling.registry.vectors.edge_vectors import EdgeVectorStore
from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc

DIM = 8
BATCHES = 40


def _source(stub: registry_pb2_grpc.RegistryServiceStub, key: str) -> registry_pb2.Source:
    return stub.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=64,
                height=48,
                display_name=key,
                content_sha256=hashlib.sha256(key.encode()).hexdigest(),
            ),
            return_existing=True,
        ),
        timeout=30,
    )


def _batch(source: registry_pb2.Source) -> registry_pb2.BatchCreateObjectsRequest:
    """Four boxes with embeddings (no masks: the outbox is what this is about)."""
    return registry_pb2.BatchCreateObjectsRequest(
        request_id=str(uuid.uuid4()),
        create_missing_categories=True,
        requests=[
            registry_pb2.CreateObjectRequest(
                object=registry_pb2.LabeledObject(
                    source=source.name,
                    category_name="cat",
                    bbox=common_pb2.BoundingBox(x=x, y=5, width=10, height=10),
                    confidence=0.9,
                    detection_model="test",
                ),
                embedding=common_pb2.Embedding(values=[1.0, float(x)] + [0.0] * (DIM - 2)),
            )
            for x in (0, 15, 30, 45)
        ],
    )


def _commit_without_applying(dsn: str, count: int) -> list[uuid.UUID]:
    """Do in Postgres what a batch cancelled between its commit and its outbox does: new
    object rows (copies of stored ones under new ids) and their outbox entries, in one
    transaction, with nothing sent to Qdrant."""
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TEMP TABLE copied ON COMMIT DROP AS "
            "SELECT * FROM objects WHERE has_embedding LIMIT %s",
            (count,),
        )
        conn.execute("UPDATE copied SET id = gen_random_uuid()")
        columns = sql.SQL(", ").join(
            sql.Identifier(row[0])
            for row in conn.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'objects' AND is_generated = 'NEVER' "
                "AND table_schema = current_schema() ORDER BY ordinal_position"
            )
        )
        conn.execute(sql.SQL("INSERT INTO objects ({0}) SELECT {0} FROM copied").format(columns))
        conn.execute("INSERT INTO vector_outbox (object_id, op) SELECT id, 'upsert' FROM copied")
        return [row[0] for row in conn.execute("SELECT id FROM copied")]


def _stored_state(dsn: str) -> tuple[list[uuid.UUID], int]:
    """The object ids with an embedding and the pending outbox entries."""
    with psycopg.connect(dsn) as conn:
        ids = [row[0] for row in conn.execute("SELECT id FROM objects WHERE has_embedding")]
        row = conn.execute("SELECT count(*) FROM vector_outbox").fetchone()
    return ids, int(row[0]) if row else 0


async def _vectors_present(data_dir: Path, ids: list[uuid.UUID]) -> set[uuid.UUID]:
    store = await EdgeVectorStore.open(data_dir / "qdrant", dimension=DIM)
    try:
        return set(await store.retrieve(ids))
    finally:
        await store.close()


@pytest.mark.slow
def test_sigterm_after_a_burst_of_batches_applies_the_pending_outbox_to_qdrant(
    tmp_path: Path,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    process = start_server_process(
        "registry",
        tmp_path,
        ["--data-dir", str(data_dir), "--embedding-dimension", str(DIM)],
    )
    postgres = None
    try:
        with grpc.insecure_channel(process.address) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            sources = [_source(stub, f"burst-{i}") for i in range(BATCHES)]
            # The whole burst in flight at once; the clients then give up on their calls one
            # after the other, as an orchestrator being stopped does: the registry cancels
            # the handlers, some of them between their commit and their outbox.
            calls = [stub.BatchCreateObjects.future(_batch(s), timeout=30) for s in sources]
            for call in calls:
                time.sleep(0.025)
                call.cancel()
        # Whether the cancels above hit that window is timing; these rows always are in it.
        postgres = start_embedded_postgres(data_dir / "postgres")  # attaches to the registry's
        unapplied = _commit_without_applying(postgres.dsn(), 10)
        assert len(unapplied) == 10
        assert process.stop() == 0  # SIGTERM: a graceful stop
        ids, pending = _stored_state(postgres.dsn())
        assert set(unapplied) <= set(ids)
        assert pending == 0
        assert asyncio.run(_vectors_present(data_dir, ids)) == set(ids)
    finally:
        if process.process.poll() is None:
            process.process.kill()
        if postgres is not None:
            postgres.stop()
        next(data_dirs, None)
