"""Datasets in Postgres: definitions, builds (membership and splits), stats and reading back."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from uuid import uuid4

import pytest
from dataset_fixtures import (
    box,
    built,
    categories,
    definition,
    image,
    images_with_objects,
    objects,
    read_all,
    splits_by_frame,
    video,
)

from agentic_labeling.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from agentic_labeling.registry.values.dataset_records import (
    SPLITS,
    DatasetState,
    Split,
    SplitGrouping,
    SplitRatios,
)
from agentic_labeling.registry.values.records import BoundingBox, NewObject

# --- Definitions --------------------------------------------------------------------------------


async def test_create_stores_a_draft_with_the_classes_as_given_and_default_ratios(repo) -> None:
    await categories(repo, "cat", "dog")
    created = await repo.datasets.create(
        definition("Dog", "cat", filter="confidence >= 0.5", seed=-3)
    )
    assert created.state is DatasetState.DRAFT
    assert created.class_names == ("Dog", "cat")
    assert created.ratios == SplitRatios(0.8, 0.1, 0.1)
    assert (created.filter, created.seed, created.grouping) == (
        "confidence >= 0.5",
        -3,
        SplitGrouping.SOURCE,
    )
    assert created.build_time is None
    assert created.split_stats == ()
    assert await repo.datasets.get(created.id) == created


async def test_create_with_a_taken_id_is_already_exists(repo) -> None:
    await categories(repo, "cat")
    dataset_id = uuid4()
    await repo.datasets.create(definition("cat"), dataset_id=dataset_id)
    with pytest.raises(AlreadyExists) as caught:
        await repo.datasets.create(definition("cat"), dataset_id=dataset_id)
    assert caught.value.metadata["field"] == "dataset_id"


async def test_class_names_may_be_synonyms_in_any_case(repo, build) -> None:
    await categories(repo, "person", "car", synonyms=["human"])
    source = await image(repo, 1)
    await objects(repo, [build.obj(source, "person", box(0)), build.obj(source, "car", box(1))])
    dataset_id = await built(repo, definition("HUMAN", "Car"))
    dataset = await repo.datasets.get(dataset_id)
    totals = Counter()
    for stats in dataset.split_stats:
        totals.update(stats.objects_per_class)
    assert totals == {"HUMAN": 1, "Car": 1}
    [only] = await read_all(repo, dataset_id)
    assert sorted(o.class_id for o in only.objects) == [0, 1]


async def test_an_unknown_class_is_invalid_argument_naming_it(repo) -> None:
    await categories(repo, "cat")
    with pytest.raises(InvalidArgument) as caught:
        await repo.datasets.create(definition("cat", "unicorn"))
    assert caught.value.violations[0].field == "dataset.class_names[1]"
    assert "unicorn" in caught.value.message


async def test_two_names_of_one_category_are_invalid_argument(repo) -> None:
    await categories(repo, "person", synonyms=["human"])
    with pytest.raises(InvalidArgument) as caught:
        await repo.datasets.create(definition("person", "Human"))
    assert caught.value.violations[0].field == "dataset.class_names[1]"
    with pytest.raises(InvalidArgument):
        await repo.datasets.create(definition("person", "PERSON"))


@pytest.mark.parametrize(
    ("class_names", "fields", "field"),
    [
        (("cat",), {"display_name": ""}, "dataset.display_name"),
        (("cat",), {"display_name": "   "}, "dataset.display_name"),
        ((), {}, "dataset.class_names"),
        (("cat", ""), {}, "dataset.class_names[1]"),
        (("cat", " cat"), {}, "dataset.class_names[1]"),
        (("cat",), {"seed": 2**63}, "dataset.seed"),
        (("cat",), {"grouping": "VIDEO"}, "dataset.grouping"),
    ],
)
async def test_a_bad_definition_is_invalid_argument_naming_the_field(
    repo, class_names, fields, field
) -> None:
    await categories(repo, "cat")
    with pytest.raises(InvalidArgument) as caught:
        await repo.datasets.create(definition(*class_names, **fields))
    assert caught.value.violations[0].field == field


@pytest.mark.parametrize(
    "ratios",
    [
        SplitRatios(0.5, 0.5, 0.5),
        SplitRatios(1.2, -0.1, -0.1),
        SplitRatios(0.8, 0.1, 0.0999),
        SplitRatios(math.nan, 0.5, 0.5),
        SplitRatios(math.inf, 0, 0),
    ],
)
async def test_bad_ratios_are_invalid_argument(repo, ratios) -> None:
    await categories(repo, "cat")
    with pytest.raises(InvalidArgument) as caught:
        await repo.datasets.create(definition("cat", ratios=ratios))
    assert caught.value.violations[0].field == "dataset.split_ratios"


async def test_ratios_off_by_less_than_a_millionth_are_stored_normalised(repo) -> None:
    await categories(repo, "cat")
    created = await repo.datasets.create(definition("cat", ratios=SplitRatios(0.7, 0.2, 0.1000005)))
    assert math.isclose(sum(created.ratios.as_tuple()), 1.0, abs_tol=1e-12)
    assert created.ratios.test > 0.1
    zero_val = await repo.datasets.create(definition("cat", ratios=SplitRatios(0.9, 0, 0.1)))
    assert zero_val.ratios == SplitRatios(0.9, 0.0, 0.1)


@pytest.mark.parametrize(
    "text",
    ["confidence >>= 0.5", "colour = red", 'source = "not-a-name"', "is_validated = maybe"],
)
async def test_a_bad_filter_is_invalid_argument_on_dataset_filter(repo, text) -> None:
    await categories(repo, "cat")
    with pytest.raises(InvalidArgument) as caught:
        await repo.datasets.create(definition("cat", filter=text))
    assert caught.value.violations[0].field == "dataset.filter"


async def test_list_pages_newest_first_and_new_datasets_do_not_shift_pages(repo) -> None:
    await categories(repo, "cat")
    made = [
        (await repo.datasets.create(definition("cat", display_name=f"d{i}"))).id for i in range(5)
    ]
    first = await repo.datasets.list(page_size=2)
    assert [d.id for d in first.items] == made[::-1][:2]
    await repo.datasets.create(definition("cat", display_name="late"))
    second = await repo.datasets.list(page_size=2, page_token=first.next_page_token)
    third = await repo.datasets.list(page_size=2, page_token=second.next_page_token)
    assert [d.id for d in first.items + second.items + third.items] == made[::-1]
    assert third.next_page_token == ""
    everything = await repo.datasets.list()
    assert len(everything.items) == 6
    assert everything.items[0].display_name == "late"


async def test_list_refuses_a_token_that_was_altered(repo) -> None:
    await categories(repo, "cat")
    for _ in range(3):
        await repo.datasets.create(definition("cat"))
    page = await repo.datasets.list(page_size=1)
    with pytest.raises(InvalidArgument):
        await repo.datasets.list(page_size=1, page_token=page.next_page_token[:-3] + "xyz")


async def test_delete_removes_the_dataset_and_unknown_ids_are_not_found(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 3)
    dataset_id = await built(repo, definition("cat"))
    await repo.datasets.delete(dataset_id)
    with pytest.raises(NotFound):
        await repo.datasets.get(dataset_id)
    with pytest.raises(NotFound):
        await repo.datasets.delete(dataset_id)
    # The objects stay.
    assert (await repo.objects.list()).total_size == 3


# --- Building -----------------------------------------------------------------------------------


async def test_build_goes_through_building_to_ready(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 4)
    dataset = await repo.datasets.create(definition("cat"))
    with pytest.raises(FailedPrecondition):
        await repo.datasets.build(dataset.id)  # not begun
    building = await repo.datasets.begin_build(dataset.id)
    assert building.state is DatasetState.BUILDING
    with pytest.raises(FailedPrecondition) as caught:
        await repo.datasets.begin_build(dataset.id)
    assert caught.value.reason == "DATASET_BUILDING"
    ready = await repo.datasets.build(dataset.id)
    assert ready.state is DatasetState.READY
    assert ready.build_time is not None
    assert sum(s.object_count for s in ready.split_stats) == 4
    # A READY dataset can be built again.
    await repo.datasets.begin_build(dataset.id)
    again = await repo.datasets.build(dataset.id)
    assert again.build_time is not None
    assert again.build_time > ready.build_time


async def test_frames_of_a_video_never_cross_splits(repo, build) -> None:
    await categories(repo, "cat", "dog")
    videos = [await video(repo, n, frames=6) for n in range(12)]
    await objects(
        repo,
        [
            build.obj(v, "cat" if f % 2 else "dog", box(f), frame_index=f)
            for v in videos
            for f in range(6)
        ],
    )
    dataset_id = await built(repo, definition("cat", "dog", seed=11))
    images = await read_all(repo, dataset_id)
    assert len(images) == 72
    per_source: dict = {}
    for item in images:
        per_source.setdefault(item.source_id, set()).add(item.split)
    assert all(len(splits) == 1 for splits in per_source.values())
    # 12 sources at 0.8 / 0.1 / 0.1: 9.6, 1.2, 1.2 -> 10, 1, 1 (largest remainder).
    assert Counter(next(iter(s)) for s in per_source.values()) == {
        Split.TRAIN: 10,
        Split.VAL: 1,
        Split.TEST: 1,
    }


async def test_frame_grouping_places_frames_on_their_own(repo, build) -> None:
    await categories(repo, "cat")
    clip = await video(repo, 1, frames=40)
    await objects(repo, [build.obj(clip, "cat", box(f), frame_index=f) for f in range(40)])
    dataset_id = await built(repo, definition("cat", grouping=SplitGrouping.FRAME))
    images = await read_all(repo, dataset_id)
    assert Counter(i.split for i in images) == {Split.TRAIN: 32, Split.VAL: 4, Split.TEST: 4}


async def test_the_same_seed_gives_the_same_split_after_recreating(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 40)
    new = definition("cat", seed=1234)
    first_id = await built(repo, new)
    first = await read_all(repo, first_id)
    await repo.datasets.delete(first_id)
    second = await read_all(repo, await built(repo, new))
    assert splits_by_frame(first) == splits_by_frame(second)
    assert [i.image_number for i in first] == [i.image_number for i in second]


async def test_another_seed_gives_another_split(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 40)
    one = splits_by_frame(await read_all(repo, await built(repo, definition("cat", seed=1))))
    two = splits_by_frame(await read_all(repo, await built(repo, definition("cat", seed=2))))
    assert one.keys() == two.keys()
    assert one != two
    assert Counter(one.values()) == Counter(two.values())


async def test_only_objects_of_the_classes_that_match_the_filter_are_members(repo, build) -> None:
    await categories(repo, "cat", "dog", "bird")
    sources = [await image(repo, n) for n in range(6)]
    made = await objects(
        repo,
        [
            build.obj(s, category, box(i), confidence=confidence)
            for s in sources
            for i, (category, confidence) in enumerate(
                [("cat", 0.9), ("dog", 0.6), ("bird", 0.9), ("cat", 0.3), ("dog", 0.95)]
            )
        ],
    )
    # Validate all but the dog at 0.95 on each source.
    await repo.objects.validate(
        [o.id for i, o in enumerate(made) if i % 5 in (0, 1, 2, 3)], [], validated_by="tester"
    )
    dataset_id = await built(
        repo, definition("dog", "cat", filter="is_validated = true AND confidence >= 0.5")
    )
    images = await read_all(repo, dataset_id)
    members = {o.object_id: o.class_id for i in images for o in i.objects}
    expected = {
        o.id: {"dog": 0, "cat": 1}[o.category_name]
        for i, o in enumerate(made)
        if i % 5 in (0, 1)  # validated cat 0.9 and dog 0.6; not bird, not cat 0.3, not dog 0.95
    }
    assert members == expected


async def test_a_filter_on_category_and_source_applies(repo, build) -> None:
    await categories(repo, "cat", "dog")
    a, b = await image(repo, 1), await image(repo, 2)
    await objects(
        repo, [build.obj(s, c, box(i)) for s in (a, b) for i, c in enumerate(["cat", "dog"])]
    )
    dataset_id = await built(
        repo, definition("cat", "dog", filter=f'category = "cat" AND source = "sources/{a.id}"')
    )
    [only] = await read_all(repo, dataset_id)
    assert only.source_id == a.id
    assert [o.class_id for o in only.objects] == [0]


async def test_nothing_matching_is_failed_precondition_and_the_old_membership_stays(
    repo,
) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 10)
    made = (await repo.objects.list()).items
    await repo.objects.validate([o.id for o in made], [], validated_by="tester")
    dataset = await repo.datasets.create(definition("cat", filter="is_validated = true"))
    await repo.datasets.begin_build(dataset.id)
    before = await repo.datasets.build(dataset.id)
    images_before = await read_all(repo, dataset.id)

    # The objects stop matching between begin_build and build: build refuses, writes nothing.
    await repo.datasets.begin_build(dataset.id)
    await repo.objects.validate([o.id for o in made], [], validated_by="tester", is_validated=False)
    with pytest.raises(FailedPrecondition) as caught:
        await repo.datasets.build(dataset.id)
    assert caught.value.reason == "DATASET_EMPTY"
    assert "no objects match" in caught.value.message
    failed = await repo.datasets.fail_build(dataset.id)
    assert failed.state is DatasetState.FAILED
    assert failed.split_stats == before.split_stats
    assert failed.build_time == before.build_time
    with pytest.raises(FailedPrecondition):
        await read_all(repo, dataset.id)

    # begin_build sees it up front and leaves the state alone.
    with pytest.raises(FailedPrecondition):
        await repo.datasets.begin_build(dataset.id)
    assert (await repo.datasets.get(dataset.id)).state is DatasetState.FAILED

    # Matching again, a build restores the same membership.
    await repo.objects.validate([o.id for o in made], [], validated_by="tester")
    await repo.datasets.begin_build(dataset.id)
    await repo.datasets.build(dataset.id)
    assert splits_by_frame(await read_all(repo, dataset.id)) == splits_by_frame(images_before)


async def test_a_class_that_no_longer_resolves_fails_the_build_naming_it(repo) -> None:
    await categories(repo, "cat", "dog")
    await images_with_objects(repo, 2, "cat")
    dataset = await repo.datasets.create(definition("dog", "cat"))
    dog = await repo.categories.resolve("dog")
    await repo.categories.update(dog.id, paths=["display_name"], display_name="hound")
    with pytest.raises(FailedPrecondition) as caught:
        await repo.datasets.begin_build(dataset.id)
    assert caught.value.metadata["class_name"] == "dog"
    assert "'dog'" in caught.value.message
    assert (await repo.datasets.get(dataset.id)).state is DatasetState.DRAFT


async def test_a_category_renamed_with_its_old_name_as_synonym_still_builds(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 3, "cat")
    dataset = await repo.datasets.create(definition("cat"))
    cat = await repo.categories.resolve("cat")
    await repo.categories.update(
        cat.id, paths=["display_name", "synonyms"], display_name="feline", synonyms=["cat"]
    )
    await repo.datasets.begin_build(dataset.id)
    ready = await repo.datasets.build(dataset.id)
    assert sum(s.objects_per_class["cat"] for s in ready.split_stats) == 3


async def test_fail_stale_builds_fails_only_old_building_datasets(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 2)
    dataset = await repo.datasets.create(definition("cat"))
    await repo.datasets.begin_build(dataset.id)
    assert await repo.datasets.fail_stale_builds(timedelta(hours=1)) == 0
    assert await repo.datasets.fail_stale_builds(timedelta(0)) == 1
    assert (await repo.datasets.get(dataset.id)).state is DatasetState.FAILED
    with pytest.raises(FailedPrecondition):
        await repo.datasets.build(dataset.id)


# --- Stats and reading back ---------------------------------------------------------------------


async def test_split_stats_add_up_per_split_and_class(repo, build) -> None:
    await categories(repo, "cat", "dog")
    videos = [await video(repo, n, frames=3) for n in range(10)]
    await objects(
        repo,
        [
            build.obj(v, "cat" if (n + f) % 3 else "dog", box(f * 2 + k), frame_index=f)
            for n, v in enumerate(videos)
            for f in range(3)
            for k in range(1 + (n % 2))
        ],
    )
    dataset_id = await built(repo, definition("cat", "dog", seed=5))
    dataset = await repo.datasets.get(dataset_id)
    images = await read_all(repo, dataset_id)
    assert [s.split for s in dataset.split_stats] == list(SPLITS)
    for stats in dataset.split_stats:
        in_split = [i for i in images if i.split is stats.split]
        assert stats.image_count == len(in_split)
        assert stats.object_count == sum(len(i.objects) for i in in_split)
        assert sum(stats.objects_per_class.values()) == stats.object_count
        assert list(stats.objects_per_class) == ["cat", "dog"]
        assert stats.objects_per_class["dog"] == sum(
            o.class_id == 1 for i in in_split for o in i.objects
        )
    assert sum(s.object_count for s in dataset.split_stats) == 45
    assert sum(s.image_count for s in dataset.split_stats) == 30
    listed = (await repo.datasets.list()).items[0]
    assert listed.split_stats == dataset.split_stats


async def test_images_come_split_by_split_with_their_content(repo, build) -> None:
    await categories(repo, "cat", "dog")
    clip = await video(repo, 7, frames=2)
    still = await image(repo, 3)
    made = await objects(
        repo,
        [
            build.obj(clip, "dog", (1, 2, 30, 40), frame_index=1, mask_area=100.0),
            build.obj(clip, "cat", (50, 60, 10, 20), frame_index=1),
            build.obj(still, "cat", (5, 5, 5, 5)),
            *[build.obj(s, "cat") for s in [await image(repo, 10 + n) for n in range(20)]],
        ],
    )
    dataset_id = await built(repo, definition("cat", "dog", grouping=SplitGrouping.FRAME))
    images = await read_all(repo, dataset_id)
    order = [(SPLITS.index(i.split), i.image_number) for i in images]
    assert order == sorted(order)
    assert [i.image_number for i in images] == list(range(1, 23))

    [frame] = [i for i in images if i.source_id == clip.id]
    assert (frame.frame_index, frame.width, frame.height) == (1, 320, 240)
    assert (frame.source_uri, frame.source_display_name) == ("file:///videos/7.mp4", "v7")
    assert frame.frame_uri == "file:///videos/7/1.jpg"
    assert frame.frame_content_sha256 == f"{7001:064x}"
    assert frame.source_content_sha256 == ""
    by_id = {o.object_id: o for o in frame.objects}
    assert [o.object_id for o in frame.objects] == sorted(by_id)
    dog = by_id[made[0].id]
    assert (dog.class_id, dog.has_mask) == (1, True)
    assert (dog.bbox.x, dog.bbox.y, dog.bbox.width, dog.bbox.height) == (1, 2, 30, 40)
    assert (by_id[made[1].id].class_id, by_id[made[1].id].has_mask) == (0, False)

    [photo] = [i for i in images if i.source_id == still.id]
    assert (photo.frame_index, photo.width, photo.height) == (0, 640, 480)
    assert (photo.source_uri, photo.source_content_sha256) == ("file:///images/3.jpg", f"{3:064x}")
    assert (photo.frame_uri, photo.frame_content_sha256) == ("", "")


async def test_images_page_across_batch_boundaries_the_same_as_in_one_batch(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 23, per_image=2)
    dataset_id = await built(repo, definition("cat"))
    whole = await read_all(repo, dataset_id, batch_size=1000)
    for batch_size in (1, 3, 5, 22, 23):
        assert await read_all(repo, dataset_id, batch_size=batch_size) == whole
    assert len(whole) == 23
    assert all(len(i.objects) == 2 for i in whole)
    val = await read_all(repo, dataset_id, split=Split.VAL, batch_size=1)
    assert val == [i for i in whole if i.split is Split.VAL]
    with pytest.raises(InvalidArgument):
        await read_all(repo, dataset_id, batch_size=0)


async def test_images_of_a_dataset_that_is_not_ready_is_failed_precondition(repo) -> None:
    await categories(repo, "cat")
    dataset = await repo.datasets.create(definition("cat"))
    with pytest.raises(FailedPrecondition) as caught:
        await read_all(repo, dataset.id)
    assert caught.value.reason == "DATASET_NOT_READY"
    with pytest.raises(NotFound):
        await read_all(repo, uuid4())


async def test_a_rebuild_while_reading_is_a_conflict(repo) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 6)
    dataset_id = await built(repo, definition("cat"))
    reader = repo.datasets.images(dataset_id, batch_size=2)
    assert (await anext(reader)).image_number == 1
    await repo.datasets.begin_build(dataset_id)
    assert (await anext(reader)).image_number == 2  # same batch
    await repo.datasets.build(dataset_id)
    with pytest.raises(Conflict):
        await anext(reader)


async def test_deleting_an_object_removes_it_from_every_built_dataset(repo, build) -> None:
    await categories(repo, "cat")
    sources = await images_with_objects(repo, 5, per_image=2)
    dataset_id = await built(repo, definition("cat", ratios=SplitRatios(1, 0, 0)))
    other_id = await built(repo, definition("cat", seed=9))
    made = (await repo.objects.list()).items
    on_first = [o for o in made if o.source_id == sources[0].id]
    await repo.objects.delete(on_first[0].id)
    images = await read_all(repo, dataset_id)
    members = {o.object_id for i in images for o in i.objects}
    assert on_first[0].id not in members
    assert len(members) == 9
    stats = (await repo.datasets.get(dataset_id)).split_stats[0]
    assert (stats.image_count, stats.object_count) == (5, 9)
    # The image's last object goes: the image is no longer read or counted.
    await repo.objects.delete(on_first[1].id)
    images = await read_all(repo, dataset_id)
    assert sources[0].id not in {i.source_id for i in images}
    stats = (await repo.datasets.get(dataset_id)).split_stats[0]
    assert (stats.image_count, stats.object_count) == (4, 8)
    # A deleted source leaves too; the other dataset followed all along.
    await repo.sources.delete(sources[1].id)
    assert len(await read_all(repo, dataset_id)) == 3
    assert sum(s.object_count for s in (await repo.datasets.get(other_id)).split_stats) == 6


async def test_objects_created_after_a_build_join_only_at_the_next_build(repo, build) -> None:
    await categories(repo, "cat")
    await images_with_objects(repo, 3)
    dataset_id = await built(repo, definition("cat"))
    await images_with_objects(repo, 2, start=100)
    assert len(await read_all(repo, dataset_id)) == 3
    await repo.datasets.begin_build(dataset_id)
    await repo.datasets.build(dataset_id)
    assert len(await read_all(repo, dataset_id)) == 5


async def test_an_object_not_of_a_listed_class_is_left_out_of_its_image(repo, build) -> None:
    await categories(repo, "cat", "dog")
    source = await image(repo, 1)
    await objects(
        repo,
        [
            NewObject(source_id=source.id, bbox=BoundingBox(*box(0)), category_name="cat"),
            NewObject(source_id=source.id, bbox=BoundingBox(*box(1)), category_name="dog"),
        ],
    )
    [only] = await read_all(repo, await built(repo, definition("cat")))
    assert [o.class_id for o in only.objects] == [0]
