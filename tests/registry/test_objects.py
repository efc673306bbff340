"""Objects after creation: get, list with paging, update with a field mask, validate, delete,
and stats."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest

from agentic_labeling.errors import FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.values.records import (
    BoundingBox,
    Correction,
    NewCategory,
    ObjectChanges,
)


async def one(build, **fields):
    image = await build.image()
    (record,) = (await build.create(build.obj(image, **fields))).objects
    return record


async def test_get_unknown_object_is_not_found_naming_name(repo) -> None:
    with pytest.raises(NotFound) as caught:
        await repo.objects.get(uuid4())
    assert caught.value.metadata["field"] == "name"


async def test_list_objects_orders_by_several_keys_across_pages(repo, build) -> None:
    image = await build.image(1000, 1000)
    confidences = [0.5, 0.9, 0.5, 0.1, 0.9, 0.5, 0.7]
    await build.create(
        *(
            build.obj(image, bbox=(i * 100, 0, 10 + i, 10), confidence=c)
            for i, c in enumerate(confidences)
        )
    )
    seen = []
    token = ""
    while True:
        page = await repo.objects.list(
            order_by="confidence desc, area", page_size=3, page_token=token
        )
        seen.extend(page.items)
        assert page.total_size == 7
        token = page.next_page_token
        if not token:
            break
    assert [(o.confidence, o.area) for o in seen] == sorted(
        ((o.confidence, o.area) for o in seen), key=lambda k: (-k[0], k[1])
    )
    assert len({o.id for o in seen}) == 7


async def test_paging_stays_correct_while_rows_are_inserted_between_pages(repo, build) -> None:
    image = await build.image(1000, 1000)
    await build.create(*(build.obj(image, bbox=(i * 10, 0, 5, 5)) for i in range(10)))
    first = await repo.objects.list(page_size=4)
    # Rows added after the first page, before and after its position in confidence order:
    await build.create(*(build.obj(image, bbox=(i * 10, 100, 5, 5)) for i in range(5)))
    seen = list(first.items)
    token = first.next_page_token
    while token:
        page = await repo.objects.list(page_size=4, page_token=token)
        seen.extend(page.items)
        token = page.next_page_token
    ids = [o.id for o in seen]
    assert len(ids) == len(set(ids)) == 15  # no row twice, none lost, new ones at the end


async def test_paging_by_confidence_skips_nothing_when_rows_arrive(repo, build) -> None:
    image = await build.image(1000, 1000)
    await build.create(
        *(build.obj(image, bbox=(i * 10, 0, 5, 5), confidence=i / 10) for i in range(10))
    )
    first = await repo.objects.list(order_by="confidence", page_size=5)
    late = await build.create(
        build.obj(image, bbox=(0, 200, 5, 5), confidence=0.05),  # before the cursor: not shown
        build.obj(image, bbox=(0, 300, 5, 5), confidence=0.95),  # after it: shown
    )
    rest = await repo.objects.list(
        order_by="confidence", page_size=50, page_token=first.next_page_token
    )
    assert [o.confidence for o in first.items] == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert [o.confidence for o in rest.items] == [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
    assert late.objects[1].id == rest.items[-1].id


@pytest.mark.parametrize("token", ["garbage", "eyJ2IjoxfQ", "eyJ2IjogMiwgInMiOiAiIiwgImsiOiBbXX0"])
async def test_a_bad_page_token_is_invalid_argument_naming_page_token(repo, token: str) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.list(page_token=token)
    assert caught.value.violations[0].field == "page_token"


async def test_a_page_token_reused_with_another_filter_or_order_is_invalid_argument(
    repo, build
) -> None:
    image = await build.image()
    await build.create(*(build.obj(image, bbox=(i * 60, 0, 5, 5)) for i in range(3)))
    page = await repo.objects.list(filter="confidence > 0.5", page_size=1)
    same = await repo.objects.list(
        filter="confidence>0.5", page_size=1, page_token=page.next_page_token
    )
    assert len(same.items) == 1  # the same filter, written differently, is fine
    for changed in (
        {"filter": "confidence > 0.6"},
        {"filter": "confidence > 0.5", "order_by": "area"},
    ):
        with pytest.raises(InvalidArgument) as caught:
            await repo.objects.list(page_size=1, page_token=page.next_page_token, **changed)
        assert caught.value.violations[0].field == "page_token"


@pytest.mark.parametrize(
    ("options", "field"),
    [
        ({"order_by": "colour"}, "order_by"),
        ({"page_size": -1}, "page_size"),
        ({"filter": "confidence >"}, "filter"),
    ],
)
async def test_bad_list_arguments_are_invalid_argument_naming_the_field(
    repo, options: dict, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.list(**options)
    assert caught.value.violations[0].field == field


async def test_update_changes_only_the_fields_in_the_mask(repo, build) -> None:
    record = await one(build, confidence=0.5, quality_score=0.25, embedding=[1.0] * 8)
    await repo.outbox.mark_applied([i for op in await repo.outbox.pending() for i in op.outbox_ids])
    await repo.categories.create(NewCategory("dog", synonyms=["hound"]))
    changes = ObjectChanges(
        category_name="Hound",
        bbox=BoundingBox(1, 2, 3, 4),
        confidence=0.9,
        quality_score=0.8,
        attributes={"a": "b"},
    )
    updated = await repo.objects.update(
        record.id, changes, ["category_name", "bbox", "confidence", "attributes"]
    )
    assert updated.category_name == "dog"
    assert updated.bbox == BoundingBox(1, 2, 3, 4)
    assert updated.area == 12.0
    assert (updated.confidence, updated.quality_score) == (0.9, 0.25)  # quality not in the mask
    assert updated.attributes == {"a": "b"}
    assert updated.update_time > record.update_time
    assert [op.op for op in await repo.outbox.pending()] == ["upsert"]  # payload changed


async def test_update_moves_an_object_between_tracks_and_drops_the_emptied_one(repo, build) -> None:
    video = await build.video(frames=1)
    old, new = uuid4(), uuid4()
    (record,) = (await build.create(build.obj(video, track_id=old))).objects
    updated = await repo.objects.update(record.id, ObjectChanges(track_id=new), ["track"])
    assert updated.track_id == new
    with pytest.raises(NotFound):
        await repo.tracks.get(old)
    untracked = await repo.objects.update(record.id, ObjectChanges(track_id=None), ["track"])
    assert untracked.track_id is None


async def test_update_to_a_track_of_another_source_is_failed_precondition(repo, build) -> None:
    video = await build.video(frames=1)
    track = uuid4()
    await build.create(build.obj(video, track_id=track))
    record = await one(build)
    with pytest.raises(FailedPrecondition) as caught:
        await repo.objects.update(record.id, ObjectChanges(track_id=track), ["track"])
    assert caught.value.metadata["field"] == "object.track"


async def test_update_category_by_id(repo, build) -> None:
    record = await one(build)
    dog = await repo.categories.create(NewCategory("dog"))
    updated = await repo.objects.update(record.id, ObjectChanges(category_id=dog.id), ["category"])
    assert updated.category_id == dog.id


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ([], "at least one"),
        (["source"], "cannot be changed"),
        (["frame_index"], "cannot be changed"),
        (["detection_model"], "cannot be changed"),
        (["is_validated"], "ValidateObjects"),
        (["area"], "output only"),
        (["create_time"], "output only"),
        (["colour"], "unknown field"),
        (["bbox.x"], "unknown field"),
        (["category", "category_name"], "not both"),
    ],
)
async def test_update_with_a_bad_mask_is_invalid_argument_naming_update_mask(
    repo, build, paths: list[str], message: str
) -> None:
    record = await one(build)
    with pytest.raises(InvalidArgument, match=message) as caught:
        await repo.objects.update(record.id, ObjectChanges(), paths)
    assert caught.value.violations[0].field == "update_mask"


@pytest.mark.parametrize(
    ("changes", "paths", "error", "field"),
    [
        (
            ObjectChanges(bbox=BoundingBox(600, 0, 100, 10)),
            ["bbox"],
            InvalidArgument,
            "object.bbox",
        ),
        (ObjectChanges(bbox=None), ["bbox"], InvalidArgument, "object.bbox"),
        (
            ObjectChanges(confidence=float("nan")),
            ["confidence"],
            InvalidArgument,
            "object.confidence",
        ),
        (ObjectChanges(category_name="zebra"), ["category_name"], NotFound, "object.category_name"),
        (ObjectChanges(category_id=uuid4()), ["category"], NotFound, "object.category"),
        (ObjectChanges(category_id=None), ["category"], InvalidArgument, "object.category"),
    ],
)
async def test_update_with_a_bad_value_names_the_field_and_changes_nothing(
    repo, build, changes, paths, error, field
) -> None:
    record = await one(build)
    with pytest.raises(error) as caught:
        await repo.objects.update(record.id, changes, paths)
    named = (
        caught.value.violations[0].field
        if isinstance(caught.value, InvalidArgument)
        else (caught.value.metadata["field"])
    )
    assert named == field
    assert await repo.objects.get(record.id) == record


async def test_update_unknown_object_is_not_found(repo) -> None:
    with pytest.raises(NotFound):
        await repo.objects.update(uuid4(), ObjectChanges(confidence=0.5), ["confidence"])


async def test_validate_marks_objects_reviewed_and_applies_corrections(repo, build) -> None:
    image = await build.image()
    first, second = (
        await build.create(
            build.obj(image, "cat", embedding=[1.0] * 8),
            build.obj(image, "cat", bbox=(300, 300, 10, 10)),
        )
    ).objects
    await repo.categories.create(NewCategory("dog"))
    validated = await repo.objects.validate(
        [first.id],
        [Correction(second.id, category_name="DOG", bbox=BoundingBox(0, 0, 8, 8), mask_area=30)],
        validated_by="alice",
    )
    assert [o.id for o in validated] == [first.id, second.id]
    assert all(o.is_validated and o.validated_by == "alice" for o in validated)
    assert validated[0].validate_time is not None
    corrected = validated[1]
    assert (corrected.category_name, corrected.bbox.width, corrected.area, corrected.has_mask) == (
        "dog",
        8.0,
        30.0,
        True,
    )
    unvalidated = await repo.objects.validate(
        [first.id], [], validated_by="bob", is_validated=False
    )
    assert (unvalidated[0].is_validated, unvalidated[0].validated_by) == (False, None)
    assert unvalidated[0].validate_time is None


async def test_validate_is_all_or_nothing(repo, build) -> None:
    record = await one(build)
    with pytest.raises(NotFound) as caught:
        await repo.objects.validate([record.id], [Correction(uuid4())], validated_by="alice")
    assert caught.value.metadata["field"] == "corrections[0].object"
    assert (await repo.objects.get(record.id)).is_validated is False
    with pytest.raises(NotFound) as caught:
        await repo.objects.validate(
            [], [Correction(record.id, category_name="zebra")], validated_by="a"
        )
    assert caught.value.metadata["field"] == "corrections[0].category_name"
    assert (await repo.objects.get(record.id)).is_validated is False


@pytest.mark.parametrize(
    ("names", "corrections", "validated_by", "field"),
    [
        ([], [], "alice", "names"),
        (["R", "R"], [], "alice", "names[1]"),
        (["R"], [], "", "validated_by"),
        ([], [Correction(uuid4(), bbox=BoundingBox(0, 0, -1, 1))], "a", "corrections[0].bbox"),
        ([], [Correction(uuid4(), category_name=" x")], "a", "corrections[0].category_name"),
    ],
)
async def test_bad_validate_requests_are_invalid_argument_naming_the_field(
    repo, build, names, corrections, validated_by, field
) -> None:
    record = await one(build)
    ids = [record.id if n == "R" else n for n in names]
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.validate(ids, corrections, validated_by=validated_by)
    assert caught.value.violations[0].field == field


async def test_a_correction_outside_the_image_is_invalid_argument(repo, build) -> None:
    record = await one(build)
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.validate(
            [], [Correction(record.id, bbox=BoundingBox(0, 0, 5000, 5))], validated_by="a"
        )
    assert caught.value.violations[0].field == "corrections[0].bbox"
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.validate([], [Correction(record.id, mask_area=1e9)], validated_by="a")
    assert caught.value.violations[0].field == "corrections[0].mask"


async def test_delete_returns_what_the_object_had_and_enqueues_the_vector_delete(
    repo, build
) -> None:
    record = await one(build, embedding=[1.0] * 8, mask_area=10.0)
    deleted = await repo.objects.delete(record.id)
    assert (deleted.id, deleted.had_embedding, deleted.had_mask) == (record.id, True, True)
    with pytest.raises(NotFound):
        await repo.objects.get(record.id)
    (op,) = await repo.outbox.pending()
    assert (op.object_id, op.op) == (record.id, "delete")  # the create's upsert collapsed into it
    with pytest.raises(NotFound):
        await repo.objects.delete(record.id)


async def test_stats_count_per_category_source_model_with_histogram(repo, build) -> None:
    images = [await build.image(1000, 1000) for _ in range(2)]
    await build.create(
        build.obj(images[0], "cat", bbox=(0, 0, 5, 5), confidence=0.05, detection_model="a"),
        build.obj(images[0], "cat", bbox=(100, 0, 5, 5), confidence=0.5, detection_model="a"),
        build.obj(images[1], "cat", bbox=(200, 0, 5, 5), confidence=1.0, detection_model="b"),
        build.obj(images[1], "dog", bbox=(300, 0, 5, 5), confidence=0.95, detection_model="a"),
    )
    page = await repo.objects.list(filter='category = "dog"')
    await repo.objects.validate([page.items[0].id], [], validated_by="alice")

    stats = await repo.objects.stats(histogram_bins=4)

    assert (stats.object_count, stats.source_count, stats.validated_fraction) == (4, 2, 0.25)
    assert [(e.display_name, e.count) for e in stats.per_category] == [("cat", 3), ("dog", 1)]
    assert stats.per_category[0].key.startswith("categories/")
    assert sorted(e.count for e in stats.per_source) == [2, 2]
    assert [(e.key, e.count) for e in stats.per_model] == [("a", 3), ("b", 1)]
    assert [(b.lower, b.upper, b.count) for b in stats.confidence_histogram] == [
        (0.0, 0.25, 1),
        (0.25, 0.5, 0),
        (0.5, 0.75, 1),
        (0.75, 1.0, 2),  # 1.0 in the last bin
    ]
    filtered = await repo.objects.stats(filter='category = "dog"')
    assert (filtered.object_count, filtered.validated_fraction) == (1, 1.0)
    assert len(filtered.confidence_histogram) == 10


async def test_stats_of_nothing_are_zero(repo) -> None:
    stats = await repo.objects.stats()
    assert (stats.object_count, stats.validated_fraction, stats.per_category) == (0, 0.0, ())


@pytest.mark.parametrize("bins", [-1, 101])
async def test_stats_with_a_bad_bin_count_is_invalid_argument(repo, bins: int) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.stats(histogram_bins=bins)
    assert caught.value.violations[0].field == "histogram_bins"


async def test_concurrent_validations_of_overlapping_objects_do_not_deadlock(repo, build) -> None:
    image = await build.image(1000, 1000)
    records = (
        await build.create(*(build.obj(image, bbox=(i * 20, 0, 5, 5)) for i in range(10)))
    ).objects
    ids = [r.id for r in records]
    await asyncio.gather(
        *(
            repo.objects.validate(
                ids[::step] if step > 0 else ids[::-1], [], validated_by=f"r{step}"
            )
            for step in (1, 2, -1, 3)
        )
    )
    assert (await repo.objects.stats()).validated_fraction == 1.0


async def test_get_many_returns_the_objects_that_exist(repo, build) -> None:
    record = await one(build)
    assert await repo.objects.get_many([record.id, uuid4()]) == {record.id: record}


async def test_forgotten_requests_are_created_again_on_retry(repo, build) -> None:
    image = await build.image()
    request_id = uuid4()
    objects = [build.obj(image)]
    await repo.objects.batch_create(request_id, objects, create_missing_categories=True)
    assert await repo.objects.forget_requests(timedelta(days=1)) == 0  # still recent
    assert await repo.objects.forget_requests(timedelta(0)) == 1
    again = await repo.objects.batch_create(
        request_id, objects, create_missing_categories=True, duplicate_iou_threshold=1.0
    )
    assert again.replayed is False
