"""The vector outbox and the reconcile scans: what Qdrant and the mask files are repaired from."""

from __future__ import annotations

from uuid import uuid4

from agentic_labeling.registry.values.records import NewCategory, ObjectChanges


async def test_objects_with_embeddings_are_enqueued_for_upsert_with_their_state(
    repo, build
) -> None:
    image = await build.image()
    with_vector, without = (
        await build.create(
            build.obj(image, embedding=[0.5] * 8), build.obj(image, bbox=(200, 200, 5, 5))
        )
    ).objects
    (op,) = await repo.outbox.pending()
    assert (op.object_id, op.op, op.object, op.embedding) == (
        with_vector.id,
        "upsert",
        with_vector,
        (0.5,) * 8,
    )
    assert await repo.outbox.pending_count() == 1
    assert without.has_embedding is False


async def test_several_entries_of_one_object_collapse_into_its_current_state(repo, build) -> None:
    image = await build.image()
    (record,) = (await build.create(build.obj(image, embedding=[1.0] * 8))).objects
    await repo.categories.create(NewCategory("dog"))
    updated = await repo.objects.update(
        record.id, ObjectChanges(category_name="dog"), ["category_name"]
    )
    (op,) = await repo.outbox.pending()
    assert len(op.outbox_ids) == 2
    assert (op.op, op.object) == ("upsert", updated)


async def test_mark_applied_removes_only_the_entries_that_were_read(repo, build) -> None:
    image = await build.image()
    await build.create(build.obj(image, embedding=[1.0] * 8))
    read = await repo.outbox.pending()
    await build.create(build.obj(image, embedding=[1.0] * 8, bbox=(300, 300, 5, 5)))
    assert await repo.outbox.mark_applied([i for op in read for i in op.outbox_ids]) == 1
    assert await repo.outbox.pending_count() == 1


async def test_pending_respects_the_limit_oldest_first(repo, build) -> None:
    image = await build.image(1000, 1000)
    created = await build.create(
        *(build.obj(image, embedding=[1.0] * 8, bbox=(i * 50, 0, 5, 5)) for i in range(5))
    )
    ops = await repo.outbox.pending(limit=3)
    assert [op.object_id for op in ops] == [o.id for o in created.objects[:3]]


async def test_scans_page_through_objects_and_report_storage_state(repo, build) -> None:
    image = await build.image(1000, 1000)
    created = await build.create(
        *(
            build.obj(
                image,
                bbox=(i * 50, 0, 5, 5),
                mask_area=5.0 if i % 2 else None,
                embedding=[1.0] * 8 if i % 3 == 0 else None,
            )
            for i in range(7)
        )
    )
    seen = []
    after = None
    while batch := await repo.scans.scan_objects(after=after, limit=3):
        seen.extend(batch)
        after = batch[-1].id
    assert sorted(s.id for s in seen) == [s.id for s in seen]
    by_id = {o.id: o for o in created.objects}
    assert {(s.id, s.has_embedding, s.has_mask) for s in seen} == {
        (o.id, o.has_embedding, o.has_mask) for o in by_id.values()
    }
    unknown = uuid4()
    assert await repo.scans.existing_object_ids([seen[0].id, unknown]) == {seen[0].id}


async def test_clear_masks_records_lost_mask_files(repo, build) -> None:
    image = await build.image()
    (record,) = (await build.create(build.obj(image, bbox=(0, 0, 10, 10), mask_area=42.0))).objects
    assert await repo.scans.clear_masks([record.id]) == 1
    cleared = await repo.objects.get(record.id)
    assert (cleared.has_mask, cleared.area) == (False, 100.0)
    assert await repo.scans.clear_masks([record.id]) == 0
