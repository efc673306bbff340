"""Tracks in Postgres: statistics, list in time order, get in frame order, create from objects,
merge within one source, split at a frame; validating a track and deleting its objects."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.values.records import NewFrame, NewSource, SourceKind


async def tracked(build, video, track, frames, category="cat", x=10):
    objects = [
        build.obj(video, category, frame_index=f, track_id=track, bbox=(x, 10, 5, 5))
        for f in frames
    ]
    return (await build.create(*objects)).objects


async def test_get_track_returns_its_objects_in_frame_order_with_derived_facts(repo, build) -> None:
    video = await build.video(frames=4)
    track = uuid4()
    await tracked(build, video, track, [3, 1], "cat")
    await tracked(build, video, track, [2], "dog")
    found = await repo.tracks.get(track)
    assert [o.frame_index for o in found.objects] == [1, 2, 3]
    assert (found.first_frame_index, found.last_frame_index, found.object_count) == (1, 3, 3)
    assert (found.category_name, found.source_id) == ("cat", video.id)


async def test_get_unknown_track_is_not_found(repo) -> None:
    with pytest.raises(NotFound):
        await repo.tracks.get(uuid4())


async def test_list_tracks_orders_and_pages_without_objects(repo, build) -> None:
    video = await build.video(frames=4)
    tracks = [uuid4() for _ in range(3)]
    for i, track in enumerate(tracks):
        await tracked(build, video, track, range(i + 1), x=10 + 50 * i)
    first = await repo.tracks.list(order_by="object_count desc", page_size=2)
    rest = await repo.tracks.list(
        order_by="object_count desc", page_size=2, page_token=first.next_page_token
    )
    assert [t.id for t in first.items + rest.items] == tracks[::-1]
    assert all(t.objects == () for t in first.items)
    by_start = await repo.tracks.list(order_by="first_frame_index, create_time")
    assert {t.first_frame_index for t in by_start.items} == {0}


async def test_merge_moves_every_object_into_the_first_track(repo, build) -> None:
    video = await build.video(frames=4)
    a, b, c = uuid4(), uuid4(), uuid4()
    await tracked(build, video, a, [0])
    await tracked(build, video, b, [1, 2], x=100)
    await tracked(build, video, c, [3], x=200)
    merged = await repo.tracks.merge([a, b, c])
    assert merged.id == a
    assert [o.frame_index for o in merged.objects] == [0, 1, 2, 3]
    for gone in (b, c):
        with pytest.raises(NotFound):
            await repo.tracks.get(gone)


async def test_merge_of_tracks_of_different_sources_is_failed_precondition(repo, build) -> None:
    one, two = await build.video(frames=1), await build.video(frames=1)
    a, b = uuid4(), uuid4()
    await tracked(build, one, a, [0])
    await tracked(build, two, b, [0])
    with pytest.raises(FailedPrecondition):
        await repo.tracks.merge([a, b])
    assert (await repo.tracks.get(b)).object_count == 1


@pytest.mark.parametrize(("names", "field"), [(["A"], "names"), (["A", "A"], "names[1]")])
async def test_merge_needs_two_distinct_tracks(repo, names, field) -> None:
    track = uuid4()
    with pytest.raises(InvalidArgument) as caught:
        await repo.tracks.merge([track for _ in names])
    assert caught.value.violations[0].field == field


async def test_merge_with_an_unknown_track_is_not_found_naming_it(repo, build) -> None:
    video = await build.video(frames=1)
    track = uuid4()
    await tracked(build, video, track, [0])
    with pytest.raises(NotFound) as caught:
        await repo.tracks.merge([track, uuid4()])
    assert caught.value.metadata["field"] == "names[1]"


async def test_split_moves_objects_from_the_frame_on_to_a_new_track(repo, build) -> None:
    video = await build.video(frames=4)
    track = uuid4()
    await tracked(build, video, track, range(4))
    result = await repo.tracks.split(track, 2)
    assert result.before.id == track
    assert [o.frame_index for o in result.before.objects] == [0, 1]
    assert [o.frame_index for o in result.after.objects] == [2, 3]
    assert result.after.source_id == video.id
    assert result.after.id != track


@pytest.mark.parametrize("frame", [0, 9])
async def test_a_split_that_would_leave_a_track_empty_is_failed_precondition(
    repo, build, frame: int
) -> None:
    video = await build.video(frames=2)
    track = uuid4()
    await tracked(build, video, track, range(2))
    with pytest.raises(FailedPrecondition):
        await repo.tracks.split(track, frame)


async def test_split_arguments_are_checked(repo) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.tracks.split(uuid4(), -1)
    assert caught.value.violations[0].field == "frame_index"
    with pytest.raises(NotFound):
        await repo.tracks.split(uuid4(), 1)


async def test_moving_objects_between_tracks_enqueues_their_vectors(repo, build) -> None:
    video = await build.video(frames=2)
    a, b = uuid4(), uuid4()
    objects = [
        build.obj(video, frame_index=0, track_id=a, embedding=[1.0] * 8),
        build.obj(video, frame_index=1, track_id=b, embedding=[1.0] * 8, bbox=(100, 100, 5, 5)),
    ]
    created = await build.create(*objects)
    await repo.outbox.mark_applied([i for op in await repo.outbox.pending() for i in op.outbox_ids])
    await repo.tracks.merge([a, b])
    assert [op.object_id for op in await repo.outbox.pending()] == [created.objects[1].id]


# --- statistics and time order (issue 16.3) ------------------------------------------------


async def timed_video(repo, frames: int, fps: float = 10.0):
    source = await repo.sources.create(NewSource(SourceKind.VIDEO, 640, 480))
    for index in range(frames):
        await repo.sources.create_frame(
            source.id, NewFrame(index, timestamp=timedelta(seconds=index / fps))
        )
    return source


async def test_a_track_reports_average_confidence_and_its_first_and_last_frame_times(
    repo, build
) -> None:
    video = await timed_video(repo, frames=6)
    track = uuid4()
    await build.create(
        *(
            build.obj(video, frame_index=f, track_id=track, confidence=c, bbox=(10, 10, 5, 5))
            for f, c in [(4, 0.5), (1, 0.7), (2, 0.9)]
        )
    )
    found = await repo.tracks.get(track)
    assert found.average_confidence == pytest.approx(0.7)
    assert (found.first_frame_time, found.last_frame_time) == (
        timedelta(seconds=0.1),
        timedelta(seconds=0.4),
    )
    listed = (await repo.tracks.list()).items
    assert [(t.average_confidence, t.last_frame_time) for t in listed] == [
        (pytest.approx(0.7), timedelta(seconds=0.4))
    ]


async def test_the_category_of_a_track_is_the_one_most_of_its_objects_have(repo, build) -> None:
    video = await build.video(frames=3)
    track = uuid4()
    await tracked(build, video, track, [0], "dog")
    await tracked(build, video, track, [1, 2], "cat")
    assert (await repo.tracks.get(track)).category_name == "cat"


async def test_tracks_are_listed_per_source_by_their_first_frame(repo, build) -> None:
    one, two = await build.video(frames=5), await build.video(frames=5)
    late, early, middle, other = uuid4(), uuid4(), uuid4(), uuid4()
    # Created out of time order: the listing must not follow creation.
    await tracked(build, one, late, [3, 4], x=10)
    await tracked(build, one, early, [0, 1], x=100)
    await tracked(build, two, other, [2], x=10)
    await tracked(build, one, middle, [2], x=200)
    first = await repo.tracks.list(page_size=2)
    rest = await repo.tracks.list(page_size=2, page_token=first.next_page_token)
    listed = [t.id for t in first.items + rest.items]
    by_source = {one.id: [early, middle, late], two.id: [other]}
    expected = [t for source in sorted(by_source) for t in by_source[source]]
    assert listed == expected
    assert rest.next_page_token == ""


async def test_tracks_order_by_average_confidence_and_last_frame(repo, build) -> None:
    video = await build.video(frames=3)
    low, high = uuid4(), uuid4()
    await build.create(build.obj(video, frame_index=2, track_id=low, confidence=0.2))
    await build.create(
        build.obj(video, frame_index=0, track_id=high, confidence=0.9, bbox=(300, 300, 5, 5))
    )
    by_confidence = await repo.tracks.list(order_by="average_confidence desc")
    assert [t.id for t in by_confidence.items] == [high, low]
    by_end = await repo.tracks.list(order_by="last_frame_index")
    assert [t.id for t in by_end.items] == [high, low]


# --- CreateTrack ----------------------------------------------------------------------------


async def test_create_track_gathers_untracked_and_tracked_objects_in_one_track(repo, build) -> None:
    video = await build.video(frames=3)
    old = uuid4()
    loose = (await build.create(build.obj(video, frame_index=0))).objects[0]
    moved = (await tracked(build, video, old, [1], x=100))[0]
    created = await repo.tracks.create(video.id, [moved.id, loose.id])
    assert [o.id for o in created.objects] == [loose.id, moved.id]
    assert (created.source_id, created.first_frame_index, created.last_frame_index) == (
        video.id,
        0,
        1,
    )
    assert all(o.track_id == created.id for o in created.objects)
    with pytest.raises(NotFound):  # emptied by the move
        await repo.tracks.get(old)


async def test_create_track_leaves_the_objects_old_track_when_it_keeps_others(repo, build) -> None:
    video = await build.video(frames=3)
    old = uuid4()
    objects = await tracked(build, video, old, [0, 1, 2])
    created = await repo.tracks.create(video.id, [objects[2].id])
    assert created.object_count == 1
    remaining = await repo.tracks.get(old)
    assert [o.frame_index for o in remaining.objects] == [0, 1]


async def test_create_track_with_an_unknown_object_changes_nothing(repo, build) -> None:
    video = await build.video(frames=2)
    known = (await build.create(build.obj(video, frame_index=0))).objects[0]
    with pytest.raises(NotFound) as caught:
        await repo.tracks.create(video.id, [known.id, uuid4()])
    assert caught.value.metadata["field"] == "objects[1]"
    assert (await repo.objects.get(known.id)).track_id is None
    assert (await repo.tracks.list()).items == ()


async def test_create_track_refuses_an_object_of_another_source(repo, build) -> None:
    video, other = await build.video(frames=1), await build.video(frames=1)
    mine = (await build.create(build.obj(video, frame_index=0))).objects[0]
    theirs = (await build.create(build.obj(other, frame_index=0))).objects[0]
    with pytest.raises(InvalidArgument) as caught:
        await repo.tracks.create(video.id, [mine.id, theirs.id])
    assert caught.value.violations[0].field == "objects[1]"
    assert (await repo.objects.get(mine.id)).track_id is None


async def test_create_track_refuses_two_objects_in_one_frame(repo, build) -> None:
    video = await build.video(frames=1)
    created = await build.create(
        build.obj(video, frame_index=0), build.obj(video, frame_index=0, bbox=(300, 300, 9, 9))
    )
    with pytest.raises(InvalidArgument) as caught:
        await repo.tracks.create(video.id, [o.id for o in created.objects])
    assert caught.value.violations[0].field == "objects[1]"
    assert "frame 0" in caught.value.message


@pytest.mark.parametrize(
    ("objects", "field"), [([], "objects"), (["A", "A"], "objects[1]")], ids=["none", "twice"]
)
async def test_create_track_needs_distinct_objects(repo, build, objects, field) -> None:
    video = await build.video(frames=1)
    one = uuid4()
    with pytest.raises(InvalidArgument) as caught:
        await repo.tracks.create(video.id, [one for _ in objects])
    assert caught.value.violations[0].field == field


async def test_create_track_in_an_unknown_source_is_not_found(repo) -> None:
    with pytest.raises(NotFound) as caught:
        await repo.tracks.create(uuid4(), [uuid4()])
    assert caught.value.metadata["field"] == "source"


async def test_create_track_retried_with_its_track_id_returns_the_same_track(repo, build) -> None:
    video = await build.video(frames=2)
    objects = await tracked(build, video, None, [0, 1])
    track_id = uuid4()
    first = await repo.tracks.create(video.id, [o.id for o in objects], track_id=track_id)
    again = await repo.tracks.create(video.id, [o.id for o in objects][::-1], track_id=track_id)
    assert first.id == again.id == track_id
    assert again.object_count == 2


async def test_concurrent_retries_of_one_create_track_all_return_the_one_track(repo, build) -> None:
    video = await build.video(frames=3)
    objects = await tracked(build, video, None, [0, 1, 2])
    track_id = uuid4()
    results = await asyncio.gather(
        *(
            repo.tracks.create(video.id, [o.id for o in objects], track_id=track_id)
            for _ in range(8)
        )
    )
    assert {(t.id, t.object_count) for t in results} == {(track_id, 3)}


async def test_create_track_with_a_track_id_holding_other_objects_already_exists(
    repo, build
) -> None:
    video = await build.video(frames=2)
    taken = uuid4()
    await tracked(build, video, taken, [0])
    loose = (await build.create(build.obj(video, frame_index=1, bbox=(200, 200, 5, 5)))).objects
    with pytest.raises(AlreadyExists):
        await repo.tracks.create(video.id, [loose[0].id], track_id=taken)
    assert (await repo.objects.get(loose[0].id)).track_id is None


# --- validation and deletes keep tracks consistent -----------------------------------------


async def test_validating_a_track_validates_every_object_of_it(repo, build) -> None:
    video = await build.video(frames=3)
    track = uuid4()
    objects = await tracked(build, video, track, [0, 1, 2])
    outside = (await build.create(build.obj(video, frame_index=0, bbox=(300, 300, 9, 9)))).objects
    validated = await repo.objects.validate(
        [objects[1].id], [], validated_by="ann", track_ids=[track]
    )
    assert [o.id for o in validated] == [objects[1].id, objects[0].id, objects[2].id]
    assert all(o.is_validated and o.validated_by == "ann" for o in validated)
    assert not (await repo.objects.get(outside[0].id)).is_validated


async def test_validating_an_unknown_track_is_not_found_and_validates_nothing(repo, build) -> None:
    video = await build.video(frames=1)
    track = uuid4()
    objects = await tracked(build, video, track, [0])
    with pytest.raises(NotFound) as caught:
        await repo.objects.validate([], [], validated_by="ann", track_ids=[track, uuid4()])
    assert caught.value.metadata["field"] == "tracks[1]"
    assert not (await repo.objects.get(objects[0].id)).is_validated


async def test_validating_a_track_twice_in_one_request_is_invalid(repo) -> None:
    track = uuid4()
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.validate([], [], validated_by="ann", track_ids=[track, track])
    assert caught.value.violations[0].field == "tracks[1]"


async def test_deleting_a_tracks_object_updates_its_statistics(repo, build) -> None:
    video = await build.video(frames=3)
    track = uuid4()
    created = await build.create(
        *(
            build.obj(video, frame_index=f, track_id=track, confidence=c)
            for f, c in [(0, 0.2), (1, 0.6), (2, 1.0)]
        )
    )
    await repo.objects.delete(created.objects[2].id)
    found = await repo.tracks.get(track)
    assert (found.object_count, found.last_frame_index) == (2, 1)
    assert found.average_confidence == pytest.approx(0.4)


async def test_deleting_the_last_object_of_a_track_deletes_the_track(repo, build) -> None:
    video = await build.video(frames=1)
    track = uuid4()
    objects = await tracked(build, video, track, [0])
    await repo.objects.delete(objects[0].id)
    with pytest.raises(NotFound):
        await repo.tracks.get(track)
