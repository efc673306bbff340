"""16 concurrent writers x 50 batches on shared sources, frames, categories and tracks: every
object present exactly once, no deadlock, no foreign-key violation, retries created nothing.

How fast they go is a benchmark's question (bench/registry_ingest.py, 1 and 16 writers), not a
test's: a wall-clock bound fails whenever the machine is busy."""

from __future__ import annotations

import asyncio
import random
from uuid import UUID, uuid4

import pytest

from agentic_labeling.registry.values.records import BoundingBox, NewObject

WRITERS = 16
BATCHES = 50
PER_BATCH = 10
# Only a hang guard (a deadlock that Postgres did not break), never a speed check.
HANG_GUARD_S = 600
NAMES = ["cat", "dog", "bird", "car", "person", "Cat", "DOG", "bus"]


async def deadlock_count(repo) -> int:
    async with repo.db.connection() as conn:
        cursor = await conn.execute(
            "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        )
        row = await cursor.fetchone()
        return row[0]


@pytest.mark.slow
@pytest.mark.timeout(HANG_GUARD_S + 120)
async def test_16_concurrent_writers_store_every_object_once_without_deadlock(repo, build) -> None:
    images = [await build.image(4000, 4000) for _ in range(3)]
    videos = [await build.video(frames=4, width=4000, height=4000) for _ in range(2)]
    tracks = {video.id: [uuid4() for _ in range(3)] for video in videos}
    deadlocks_before = await deadlock_count(repo)
    expected: set[UUID] = set()

    async def writer(number: int) -> int:
        rng = random.Random(number)
        replays = 0
        previous = None
        for batch in range(BATCHES):
            objects = []
            for i in range(PER_BATCH):
                n = (number * BATCHES + batch) * PER_BATCH + i  # a unique spot per object
                source = rng.choice([*images, *videos])
                is_video = source in videos
                objects.append(
                    NewObject(
                        source_id=source.id,
                        frame_index=rng.randrange(4) if is_video else 0,
                        bbox=BoundingBox((n % 400) * 10, (n // 400) * 10, 5, 5),
                        category_name=rng.choice(NAMES),
                        confidence=rng.random(),
                        track_id=rng.choice(tracks[source.id]) if is_video else None,
                        embedding=[rng.random() + 0.1 for _ in range(8)] if i % 3 == 0 else None,
                        object_id=uuid4(),
                    )
                )
            expected.update(o.object_id for o in objects)  # type: ignore[misc]
            request_id = uuid4()
            result = await repo.objects.batch_create(
                request_id, objects, create_missing_categories=True
            )
            assert not result.replayed
            assert result.merged == ()
            if previous is not None and rng.random() < 0.2:  # a client retrying
                again = await repo.objects.batch_create(*previous, create_missing_categories=True)
                assert again.replayed
                replays += 1
            previous = (request_id, objects)
        return replays

    async def reader(stop: asyncio.Event) -> int:
        pages = 0
        while not stop.is_set():
            await repo.objects.list(filter='category = "cat" AND confidence > 0.5', page_size=20)
            pages += 1
        return pages

    stop = asyncio.Event()
    reading = asyncio.create_task(reader(stop))
    replays = await asyncio.wait_for(
        asyncio.gather(*(writer(n) for n in range(WRITERS))), HANG_GUARD_S
    )
    stop.set()
    assert await reading > 0

    async with repo.db.connection() as conn:
        cursor = await conn.execute("SELECT id FROM objects")
        stored = [row[0] for row in await cursor.fetchall()]
        cursor = await conn.execute("SELECT count(*) FROM batch_requests")
        (requests,) = await cursor.fetchone()
    assert len(stored) == len(set(stored)) == WRITERS * BATCHES * PER_BATCH
    assert set(stored) == expected
    assert requests == WRITERS * BATCHES
    assert sum(replays) > 0
    assert await deadlock_count(repo) == deadlocks_before
    # One category per case-insensitive name, whoever created it first.
    assert len((await repo.categories.list()).items) == len({n.casefold() for n in NAMES})
