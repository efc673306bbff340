"""Tracks in Postgres: list, get in frame order, merge within one source, split at a frame."""

from __future__ import annotations

from uuid import uuid4

import pytest

from agentic_labeling.errors import FailedPrecondition, InvalidArgument, NotFound


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
