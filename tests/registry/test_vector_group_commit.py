"""The vector store's group commit: BatchCreateObjects makes its vectors searchable at once,
and leaves flushing them and removing their outbox rows to a flush shared by every batch of
`vector_flush_interval_s`. A registry killed before that flush loses nothing: the rows are
still in the outbox and the next start applies them again, once.

Real embedded Postgres (a fresh schema per test), real qdrant-edge and real files; the killed
registry is a real child process that SIGKILLs itself.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest

from agentic_labeling.registry.coordinator import ReconcileReport, Registry
from agentic_labeling.registry.values.records import BoundingBox, NewObject, NewSource, SourceKind
from agentic_labeling.settings import Settings

DIM = 8


def _settings(dsn: str, data_dir: Path, interval_s: float) -> Settings:
    return Settings(
        postgres_dsn=dsn,
        data_dir=data_dir,
        embedding_dimension=DIM,
        vector_flush_interval_s=interval_s,
    )


@pytest.fixture
async def registry(empty_dsn: str, tmp_path: Path) -> AsyncIterator[Registry]:
    opened = await Registry.open(_settings(empty_dsn, tmp_path, 3600.0))  # never on its own
    yield opened
    await opened.close()


async def _create(registry: Registry, count: int) -> list[NewObject]:
    source = await registry.repository.sources.create(NewSource(SourceKind.IMAGE, 64, 48))
    objects = [
        NewObject(
            source_id=source.id,
            bbox=BoundingBox(10 * i, 5, 10, 10),
            category_name="cat",
            confidence=0.5,
            embedding=[float(i + 1)] + [0.0] * (DIM - 1),
        )
        for i in range(count)
    ]
    masks = []
    for i in range(count):
        mask = np.zeros((48, 64), bool)
        mask[5:15, 10 * i : 10 * i + 10] = True
        masks.append(mask)
    await registry.batch_create(uuid4(), objects, masks, create_missing_categories=True)
    return objects


async def test_a_batch_is_searchable_at_once_and_its_outbox_rows_wait_for_the_flush(
    registry: Registry,
) -> None:
    await _create(registry, 3)
    rows = await registry.repository.scans.scan_objects()
    assert {i async for i in registry.vectors.ids()} == {r.id for r in rows}
    assert await registry.repository.outbox.pending_count() == 3
    await registry.flush_vectors()
    assert await registry.repository.outbox.pending_count() == 0
    assert await registry.reconcile(dry_run=True) == ReconcileReport()


async def test_the_group_commit_flushes_on_its_own_after_the_interval(
    empty_dsn: str, tmp_path: Path
) -> None:
    opened = await Registry.open(_settings(empty_dsn, tmp_path, 0.05))
    try:
        await _create(registry=opened, count=2)
        deadline = time.monotonic() + 60  # a hang guard, not a timing assertion
        while await opened.repository.outbox.pending_count():
            assert time.monotonic() < deadline, "the group commit never ran"
            await asyncio.sleep(0.05)
    finally:
        await opened.close()


_KILLED_REGISTRY = """
import asyncio, os, signal, sys
from pathlib import Path
sys.path.insert(0, sys.argv[3])
from test_vector_group_commit import _create, _settings
from agentic_labeling.registry.coordinator import Registry

async def main() -> None:
    registry = await Registry.open(_settings(sys.argv[1], Path(sys.argv[2]), 3600.0))
    for _ in range(4):
        await _create(registry, 5)
    print(await registry.repository.outbox.pending_count(), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # before any flush, without a close

asyncio.run(main())
"""


async def test_a_registry_killed_before_the_flush_applies_the_outbox_again_at_start(
    empty_dsn: str, tmp_path: Path
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _KILLED_REGISTRY,
        empty_dsn,
        str(tmp_path),
        str(Path(__file__).parent),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await child.communicate()
    assert child.returncode == -signal.SIGKILL
    assert int(out) == 20  # every vector was still waiting for its flush

    reopened = await Registry.open(_settings(empty_dsn, tmp_path, 3600.0))
    try:
        rows = await reopened.repository.scans.scan_objects()
        assert len(rows) == 20
        assert await reopened.repository.outbox.pending_count() == 0
        # Each object's vector once (ids are unique keys), and its mask file whole.
        assert sorted([i async for i in reopened.vectors.ids()]) == sorted(r.id for r in rows)
        assert await reopened.vectors.count() == 20
        assert all(reopened.masks.read(r.id).sum() == 100 for r in rows)
        assert await reopened.reconcile(dry_run=True) == ReconcileReport()
    finally:
        await reopened.close()
