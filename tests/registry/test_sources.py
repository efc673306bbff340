"""Sources and frames in Postgres: create (deduplicated by content hash), get, list, delete."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from uuid import uuid4

import pytest

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.values.records import NewFrame, NewSource, SourceKind

SHA = "ab" * 32


async def test_create_source_stores_every_field_and_makes_frame_0_of_an_image(repo) -> None:
    source = await repo.sources.create(
        NewSource(
            SourceKind.IMAGE,
            640,
            480,
            uri="/data/a.jpg",
            display_name="a.jpg",
            content_sha256=SHA,
            attributes={"camera": "front"},
        )
    )
    assert await repo.sources.get(source.id) == source
    assert (source.kind, source.width, source.height) == (SourceKind.IMAGE, 640, 480)
    assert (source.uri, source.display_name, source.content_sha256) == ("/data/a.jpg", "a.jpg", SHA)
    assert source.attributes == {"camera": "front"}
    assert (source.frame_count, source.object_count) == (1, 0)
    frames = await repo.sources.list_frames(source.id)
    assert [(f.frame_index, f.timestamp) for f in frames.items] == [(0, timedelta(0))]


async def test_create_source_with_a_known_hash_is_already_exists(repo) -> None:
    first = await repo.sources.create(NewSource(SourceKind.IMAGE, 10, 10, content_sha256=SHA))
    with pytest.raises(AlreadyExists) as caught:
        await repo.sources.create(NewSource(SourceKind.IMAGE, 10, 10, content_sha256=SHA))
    assert caught.value.metadata == {
        "field": "source.content_sha256",
        "existing": f"sources/{first.id}",
    }


async def test_create_source_with_return_existing_returns_the_stored_source(repo) -> None:
    first = await repo.sources.create(NewSource(SourceKind.IMAGE, 10, 10, content_sha256=SHA))
    again = await repo.sources.create(
        NewSource(SourceKind.IMAGE, 10, 10, content_sha256=SHA, display_name="other"),
        return_existing=True,
    )
    assert again == first
    assert (await repo.sources.list()).total_size == 1


async def test_concurrent_creators_of_one_hash_make_one_source(repo) -> None:
    results = await asyncio.gather(
        *(
            repo.sources.create(
                NewSource(SourceKind.IMAGE, 10, 10, content_sha256=SHA), return_existing=True
            )
            for _ in range(8)
        )
    )
    assert len({source.id for source in results}) == 1
    assert (await repo.sources.list()).total_size == 1


async def test_sources_without_a_hash_are_never_deduplicated(repo) -> None:
    await repo.sources.create(NewSource(SourceKind.IMAGE, 10, 10))
    await repo.sources.create(NewSource(SourceKind.IMAGE, 10, 10))
    assert (await repo.sources.list()).total_size == 2


async def test_create_source_with_a_taken_source_id_is_already_exists(repo) -> None:
    source_id = uuid4()
    await repo.sources.create(NewSource(SourceKind.VIDEO, 10, 10), source_id=source_id)
    with pytest.raises(AlreadyExists) as caught:
        await repo.sources.create(NewSource(SourceKind.VIDEO, 10, 10), source_id=source_id)
    assert caught.value.metadata["field"] == "source_id"


async def test_get_unknown_source_is_not_found(repo) -> None:
    with pytest.raises(NotFound):
        await repo.sources.get(uuid4())


async def test_list_sources_filters_orders_and_counts(repo) -> None:
    for name, kind in (("b", SourceKind.IMAGE), ("a", SourceKind.VIDEO), ("c", SourceKind.IMAGE)):
        await repo.sources.create(NewSource(kind, 10, 10, display_name=name))
    page = await repo.sources.list(filter="kind = IMAGE", order_by="display_name desc")
    assert [s.display_name for s in page.items] == ["c", "b"]
    assert page.total_size == 2
    page = await repo.sources.list(order_by="display_name", page_size=2)
    assert [s.display_name for s in page.items] == ["a", "b"]
    rest = await repo.sources.list(
        order_by="display_name", page_size=2, page_token=page.next_page_token
    )
    assert [s.display_name for s in rest.items] == ["c"]
    assert rest.next_page_token == ""


async def test_video_frames_are_added_and_listed_in_frame_order_with_paging(repo) -> None:
    video = await repo.sources.create(NewSource(SourceKind.VIDEO, 10, 10))
    for index in (2, 0, 1):
        frame = await repo.sources.create_frame(
            video.id, NewFrame(index, timestamp=timedelta(seconds=index / 25), uri=f"f{index}")
        )
        assert (frame.frame_index, frame.uri, frame.object_count) == (index, f"f{index}", 0)
    first = await repo.sources.list_frames(video.id, page_size=2)
    rest = await repo.sources.list_frames(video.id, page_size=2, page_token=first.next_page_token)
    assert [f.frame_index for f in first.items + rest.items] == [0, 1, 2]
    assert rest.items[0].timestamp == timedelta(seconds=2 / 25)
    assert (await repo.sources.get(video.id)).frame_count == 3


async def test_a_frame_page_token_is_refused_for_another_source(repo) -> None:
    videos = [await repo.sources.create(NewSource(SourceKind.VIDEO, 10, 10)) for _ in range(2)]
    for video in videos:
        for index in range(2):
            await repo.sources.create_frame(video.id, NewFrame(index))
    page = await repo.sources.list_frames(videos[0].id, page_size=1)
    with pytest.raises(InvalidArgument) as caught:
        await repo.sources.list_frames(videos[1].id, page_token=page.next_page_token)
    assert caught.value.violations[0].field == "page_token"


async def test_an_existing_frame_index_is_already_exists(repo) -> None:
    video = await repo.sources.create(NewSource(SourceKind.VIDEO, 10, 10))
    await repo.sources.create_frame(video.id, NewFrame(0))
    with pytest.raises(AlreadyExists) as caught:
        await repo.sources.create_frame(video.id, NewFrame(0))
    assert caught.value.metadata["field"] == "frame.frame_index"


async def test_frames_cannot_be_added_to_an_image(repo) -> None:
    image = await repo.sources.create(NewSource(SourceKind.IMAGE, 10, 10))
    with pytest.raises(FailedPrecondition):
        await repo.sources.create_frame(image.id, NewFrame(1))


async def test_frames_of_an_unknown_source_are_not_found_naming_parent(repo) -> None:
    with pytest.raises(NotFound) as caught:
        await repo.sources.create_frame(uuid4(), NewFrame(0))
    assert caught.value.metadata["field"] == "parent"
    with pytest.raises(NotFound):
        await repo.sources.list_frames(uuid4())


async def test_delete_source_removes_frames_tracks_and_objects_and_reports_them(
    repo, build
) -> None:
    video = await build.video(frames=2)
    track = uuid4()
    created = await build.create(
        build.obj(video, frame_index=0, track_id=track, embedding=[1.0] * 8),
        build.obj(video, frame_index=1, track_id=track, mask_area=40.0),
    )
    other = await build.image()
    await build.create(build.obj(other))
    await repo.outbox.mark_applied([i for op in await repo.outbox.pending() for i in op.outbox_ids])

    deleted = await repo.sources.delete(video.id)

    by_id = {d.id: d for d in deleted}
    first, second = created.objects
    assert (by_id[first.id].had_embedding, by_id[first.id].had_mask) == (True, False)
    assert (by_id[second.id].had_embedding, by_id[second.id].had_mask) == (False, True)
    with pytest.raises(NotFound):
        await repo.sources.get(video.id)
    with pytest.raises(NotFound):
        await repo.tracks.get(track)
    assert (await repo.objects.list()).total_size == 1  # the other source's object stays
    ops = await repo.outbox.pending()
    assert [(op.object_id, op.op) for op in ops] == [(first.id, "delete")]


async def test_delete_unknown_source_is_not_found(repo) -> None:
    with pytest.raises(NotFound):
        await repo.sources.delete(uuid4())


@pytest.mark.parametrize(
    ("source", "field"),
    [
        (NewSource(SourceKind.IMAGE, 0, 10), "source.width"),
        (NewSource(SourceKind.IMAGE, 10, -1), "source.height"),
        (NewSource(SourceKind.IMAGE, 10, 10, content_sha256="ABC"), "source.content_sha256"),
        (NewSource(SourceKind.IMAGE, 10, 10, uri="a\x00b"), "source.uri"),
        (NewSource(SourceKind.IMAGE, 10, 10, display_name="x" * 5000), "source.display_name"),
        (NewSource(SourceKind.IMAGE, 10, 10, attributes={"": "x"}), "source.attributes"),
        (NewSource("PICTURE", 10, 10), "source.kind"),  # type: ignore[arg-type]
    ],
)
async def test_bad_source_fields_are_invalid_argument_naming_the_field(
    repo, source: NewSource, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.sources.create(source)
    assert caught.value.violations[0].field == field
    assert (await repo.sources.list()).total_size == 0


@pytest.mark.parametrize(
    ("frame", "field"),
    [
        (NewFrame(-1), "frame.frame_index"),
        (NewFrame(0, timestamp=timedelta(seconds=-1)), "frame.timestamp"),
        (NewFrame(0, content_sha256="xyz"), "frame.content_sha256"),
    ],
)
async def test_bad_frame_fields_are_invalid_argument_naming_the_field(
    repo, frame: NewFrame, field: str
) -> None:
    video = await repo.sources.create(NewSource(SourceKind.VIDEO, 10, 10))
    with pytest.raises(InvalidArgument) as caught:
        await repo.sources.create_frame(video.id, frame)
    assert caught.value.violations[0].field == field
