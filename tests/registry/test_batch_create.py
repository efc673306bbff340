"""BatchCreateObjects in Postgres: all or nothing, exactly once, duplicates merged."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import numpy as np
import pytest

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.values.records import NewCategory


async def count_rows(repo, table: str) -> int:
    async with repo.db.connection() as conn:
        cursor = await conn.execute(f"SELECT count(*) FROM {table}")
        row = await cursor.fetchone()
        return row[0]


async def test_batch_create_stores_every_field(repo, build) -> None:
    image = await build.image(200, 100)
    track = None
    result = await build.create(
        build.obj(
            image,
            "cat",
            bbox=(1.5, 2.5, 30, 40),
            confidence=0.75,
            quality_score=0.5,
            detection_model="florence2",
            attributes={"k": "v"},
            mask_area=321.0,
            embedding=[0.5] * 8,
            track_id=track,
        )
    )
    (record,) = result.objects
    assert result.replayed is False
    assert result.merged == ()
    assert result.embedded_object_ids == (record.id,)
    assert record == await repo.objects.get(record.id)
    assert (record.source_id, record.frame_index, record.category_name) == (image.id, 0, "cat")
    assert (record.bbox.x, record.bbox.y, record.bbox.width, record.bbox.height) == (
        1.5,
        2.5,
        30,
        40,
    )
    assert (record.confidence, record.quality_score, record.area) == (0.75, 0.5, 321.0)
    assert (record.has_mask, record.has_embedding, record.is_validated) == (True, True, False)
    assert (record.detection_model, record.attributes) == ("florence2", {"k": "v"})
    assert record.validated_by is None
    assert record.validate_time is None
    assert record.create_time == record.update_time


async def test_returned_records_equal_the_stored_rows_for_every_kind_of_object(repo, build) -> None:
    """The batch builds its records from what it wrote instead of reading them back."""
    await repo.categories.create(NewCategory("person", synonyms=["human"]))
    video = await build.video(frames=2, width=300, height=200)
    track = uuid4()
    result = await build.create(
        build.obj(video, "HUMAN", frame_index=1, track_id=track, mask_area=77.0),
        build.obj(video, "heron", bbox=(0.25, 0.5, 9.75, 3.125), validated_by="import"),
        build.obj(video, "person", bbox=(100, 100, 50, 50), attributes={"b": "2", "a": "1"}),
        build.obj(video, "heron", bbox=(200, 20, 5, 5), embedding=[0.25] * 8, quality_score=1.0),
        build.obj(video, "heron", bbox=(200, 21, 5, 5)),  # IoU 0.67: a new object
        build.obj(video, "heron", bbox=(200, 20, 5, 5.1)),  # merges into the fourth
    )
    stored = await repo.objects.get_many([record.id for record in result.objects])
    assert [stored[record.id] for record in result.objects] == list(result.objects)
    assert [m.request_index for m in result.merged] == [5]
    assert result.objects[0].category_name == "person"


async def test_a_replay_rebuilds_every_record_including_merge_targets(repo, build) -> None:
    image = await build.image()
    (existing,) = (await build.create(build.obj(image, "cat", bbox=(10, 10, 100, 100)))).objects
    request_id = uuid4()
    objects = [
        build.obj(image, "cat", bbox=(10, 10, 100, 95)),  # merges into the existing object
        build.obj(image, "Dog", bbox=(300, 10, 40, 40), embedding=[1.0] * 8),
        build.obj(image, "dog", bbox=(300, 10, 40, 39), validated_by="me"),  # into request 1
        build.obj(image, "dog", bbox=(400, 10, 40, 40), attributes={"k": "v"}, mask_area=5.0),
    ]
    first = await repo.objects.batch_create(request_id, objects, create_missing_categories=True)
    await repo.categories.create(NewCategory("unrelated"))
    retry = await repo.objects.batch_create(request_id, objects, create_missing_categories=True)
    assert retry.replayed is True
    assert retry.objects == first.objects
    assert retry.merged == first.merged
    assert retry.objects[0] == existing
    assert retry.objects[2] == retry.objects[1]
    assert await count_rows(repo, "objects") == 3


async def test_objects_without_a_mask_have_the_area_of_their_box(build) -> None:
    image = await build.image()
    (record,) = (await build.create(build.obj(image, bbox=(0, 0, 20, 30)))).objects
    assert (record.area, record.has_mask) == (600.0, False)


async def test_imported_ground_truth_is_validated_on_creation(build) -> None:
    image = await build.image()
    (record,) = (await build.create(build.obj(image, validated_by="import"))).objects
    assert (record.is_validated, record.validated_by) == (True, "import")
    assert record.validate_time == record.create_time


async def test_embeddings_are_stored_exactly_as_float32(repo, build) -> None:
    image = await build.image()
    vector = [0.1, -0.2, 0.3, 1e-30, 3.0e38, -1.0, 0.0, 0.123456789]
    (record,) = (await build.create(build.obj(image, embedding=vector))).objects
    stored = (await repo.scans.embeddings_for([record.id]))[record.id]
    assert stored == tuple(float(v) for v in np.asarray(vector, dtype=np.float32))


async def test_a_category_id_and_a_name_of_it_may_both_be_given(repo, build) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    image = await build.image()
    obj = build.obj(image, "HUMAN", category_id=person.id)
    (record,) = (await build.create(obj, create_missing_categories=False)).objects
    assert record.category_id == person.id


async def test_a_synonym_resolves_to_its_category_on_write(repo, build) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    image = await build.image()
    (record,) = (await build.create(build.obj(image, "Human"))).objects
    assert (record.category_id, record.category_name) == (person.id, "person")


async def test_missing_categories_are_created_when_asked(repo, build) -> None:
    image = await build.image()
    result = await build.create(
        build.obj(image, "Heron"), build.obj(image, "heron", bbox=(200, 200, 9, 9))
    )
    assert result.objects[0].category_id == result.objects[1].category_id
    assert [c.display_name for c in (await repo.categories.list()).items] == ["Heron"]


async def test_batch_create_is_all_or_nothing(repo, build) -> None:
    image = await build.image(100, 100)
    good = [build.obj(image, "cat", bbox=(i, i, 5, 5), embedding=[1.0] * 8) for i in range(5)]
    bad = build.obj(image, "cat", bbox=(90, 90, 20, 20))  # reaches outside the image
    with pytest.raises(InvalidArgument) as caught:
        await build.create(*good, bad, build.obj(image, "newcat", bbox=(50, 50, 5, 5)))
    assert caught.value.violations[0].field == "requests[5].object.bbox"
    for table in ("objects", "categories", "vector_outbox", "batch_requests"):
        assert await count_rows(repo, table) == 0, table


async def test_a_late_database_failure_rolls_back_the_whole_batch(repo, build) -> None:
    image = await build.image()
    video = await build.video(frames=1)
    track = uuid4()
    # The track is made for the video by the first object; the second names it for the
    # image: refused after categories, frames and the track were written.
    with pytest.raises(FailedPrecondition) as caught:
        await build.create(
            build.obj(video, "cat", track_id=track), build.obj(image, "dog", track_id=track)
        )
    assert caught.value.metadata["field"] == "requests[1].object.track"
    for table in ("objects", "categories", "tracks", "batch_requests"):
        assert await count_rows(repo, table) == 0, table


async def test_a_retry_with_the_same_request_id_returns_the_stored_result_and_creates_nothing(
    repo, build
) -> None:
    image = await build.image()
    request_id = uuid4()
    objects = [
        build.obj(image, "cat", bbox=(i * 20, 0, 10, 10), embedding=[1.0] * 8) for i in range(3)
    ]
    first = await repo.objects.batch_create(request_id, objects, create_missing_categories=True)
    retry = await repo.objects.batch_create(request_id, objects, create_missing_categories=True)
    assert retry.replayed is True
    assert retry.objects == first.objects
    assert retry.merged == first.merged
    assert retry.embedded_object_ids == ()
    assert await count_rows(repo, "objects") == 3
    assert await count_rows(repo, "vector_outbox") == 3


async def test_racing_retries_with_one_request_id_create_once(repo, build) -> None:
    image = await build.image()
    request_id = uuid4()
    objects = [build.obj(image, "cat", bbox=(i * 20, 0, 10, 10)) for i in range(20)]
    results = await asyncio.gather(
        *(
            repo.objects.batch_create(request_id, objects, create_missing_categories=True)
            for _ in range(8)
        )
    )
    assert sum(not r.replayed for r in results) == 1
    assert len({tuple(o.id for o in r.objects) for r in results}) == 1
    assert await count_rows(repo, "objects") == 20


async def test_a_request_id_reused_for_other_content_is_invalid_argument(repo, build) -> None:
    image = await build.image()
    request_id = uuid4()
    await repo.objects.batch_create(request_id, [build.obj(image)], create_missing_categories=True)
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.batch_create(
            request_id, [build.obj(image, bbox=(1, 1, 5, 5))], create_missing_categories=True
        )
    assert caught.value.violations[0].field == "request_id"


async def test_a_failed_batch_can_be_retried_with_the_same_request_id(repo, build) -> None:
    image = await build.image()
    request_id = uuid4()
    with pytest.raises(NotFound):
        await repo.objects.batch_create(request_id, [build.obj(image, "cat")])
    await repo.categories.create(NewCategory("cat"))
    result = await repo.objects.batch_create(request_id, [build.obj(image, "cat")])
    assert result.replayed is False
    assert len(result.objects) == 1


async def test_a_duplicate_within_one_batch_merges_into_the_earlier_object(build) -> None:
    image = await build.image()
    result = await build.create(
        build.obj(image, "cat", bbox=(10, 10, 100, 100)),
        build.obj(image, "cat", bbox=(11, 10, 100, 100)),  # IoU 99/101
        build.obj(image, "dog", bbox=(11, 10, 100, 100)),  # other category: kept
    )
    first, merged, dog = result.objects
    assert merged == first
    assert dog.id != first.id
    (report,) = result.merged
    assert (report.request_index, report.existing_object_id) == (1, first.id)
    assert report.iou == pytest.approx(99 / 101)


async def test_a_duplicate_of_an_existing_object_merges_into_it_with_its_iou(repo, build) -> None:
    image = await build.image()
    (existing,) = (await build.create(build.obj(image, "cat", bbox=(10, 10, 100, 100)))).objects
    result = await build.create(
        build.obj(image, "cat", bbox=(10, 10, 100, 95)),  # IoU 0.95
        build.obj(image, "cat", bbox=(10, 10, 100, 85)),  # IoU 0.85: a new object
    )
    assert result.objects[0] == existing
    assert result.objects[1].id != existing.id
    assert [(m.request_index, m.existing_object_id) for m in result.merged] == [(0, existing.id)]
    assert result.merged[0].iou == pytest.approx(0.95)
    assert (await repo.objects.list()).total_size == 2


async def test_the_duplicate_threshold_is_per_request_and_1_never_merges(repo, build) -> None:
    image = await build.image()
    await build.create(build.obj(image, "cat", bbox=(10, 10, 100, 100)))
    same = build.obj(image, "cat", bbox=(10, 10, 100, 100))
    assert (await build.create(same, duplicate_iou_threshold=1.0)).merged == ()
    loose = build.obj(image, "cat", bbox=(10, 10, 100, 60))
    assert len((await build.create(loose, duplicate_iou_threshold=0.5)).merged) == 1
    assert (await repo.objects.list()).total_size == 2


async def test_concurrent_batches_do_not_both_add_one_box(repo, build) -> None:
    image = await build.image()
    results = await asyncio.gather(
        *(build.create(build.obj(image, "cat", bbox=(10, 10, 50, 50))) for _ in range(6))
    )
    assert len({r.objects[0].id for r in results}) == 1
    assert sum(len(r.merged) for r in results) == 5


async def test_frame_0_of_an_image_is_restored_when_missing(repo, build) -> None:
    image = await build.image()
    async with repo.db.connection() as conn:
        await conn.execute("DELETE FROM frames WHERE source_id = %s", (image.id,))
    (record,) = (await build.create(build.obj(image))).objects
    assert record.frame_index == 0


async def test_a_frame_index_one_video_has_does_not_stand_for_another_videos(build) -> None:
    longer, shorter = await build.video(frames=3), await build.video(frames=2)
    with pytest.raises(NotFound) as caught:
        await build.create(
            build.obj(longer, frame_index=2), build.obj(shorter, frame_index=2, bbox=(9, 9, 9, 9))
        )
    assert caught.value.metadata["field"] == "requests[1].object.frame_index"
    result = await build.create(
        build.obj(longer, frame_index=2), build.obj(shorter, frame_index=1, bbox=(9, 9, 9, 9))
    )
    assert [o.frame_index for o in result.objects] == [2, 1]


async def test_objects_may_name_a_new_track_that_is_made_for_their_source(repo, build) -> None:
    video = await build.video(frames=2)
    track = uuid4()
    await build.create(*(build.obj(video, frame_index=i, track_id=track) for i in range(2)))
    found = await repo.tracks.get(track)
    assert (found.source_id, found.object_count) == (video.id, 2)


async def test_a_client_chosen_object_id_that_exists_is_already_exists(repo, build) -> None:
    image = await build.image()
    object_id = uuid4()
    await build.create(build.obj(image, object_id=object_id))
    with pytest.raises(AlreadyExists) as caught:
        await build.create(build.obj(image, "dog", object_id=object_id))
    assert caught.value.metadata["field"] == "requests[0].object_id"
