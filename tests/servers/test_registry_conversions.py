"""RegistryService messages <-> registry records: every field a client reads, every bad request
field named by the path the client wrote."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from uuid import UUID

import numpy as np
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.metadata import categories as category_store
from agentic_labeling.registry.metadata import objects as object_store
from agentic_labeling.registry.values.records import (
    BatchCreateResult,
    BoundingBox,
    Category,
    CountEntry,
    Frame,
    HistogramBin,
    MergedObject,
    ObjectRecord,
    Page,
    Source,
    SourceKind,
    SplitResult,
    Stats,
    Track,
)
from agentic_labeling.servers import registry_conversions as rc
from agentic_labeling.servers.conversions import mask_message
from agentic_labeling.v1 import common_pb2, registry_pb2

SOURCE_ID = UUID("11111111-1111-4111-8111-111111111111")
CATEGORY_ID = UUID("22222222-2222-4222-8222-222222222222")
OBJECT_ID = UUID("33333333-3333-4333-8333-333333333333")
TRACK_ID = UUID("44444444-4444-4444-8444-444444444444")
OTHER_ID = UUID("55555555-5555-4555-8555-555555555555")
CREATED = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
UPDATED = datetime(2024, 5, 7, 1, 2, 3, 999999, tzinfo=UTC)
VALIDATED = datetime(2024, 5, 8, 0, 0, 0, 1, tzinfo=UTC)
IMAGE = common_pb2.SOURCE_KIND_IMAGE


def make_source(**changes: object) -> Source:
    values: dict[str, object] = {
        "id": SOURCE_ID,
        "kind": SourceKind.VIDEO,
        "uri": "file:///data/clip.mp4",
        "display_name": "clip.mp4",
        "width": 640,
        "height": 480,
        "content_sha256": "ab" * 32,
        "attributes": {"camera": "north", "site": "dock"},
        "create_time": CREATED,
        "frame_count": 12,
        "object_count": 34,
    }
    values.update(changes)
    return Source(**values)  # type: ignore[arg-type]


def make_object(**changes: object) -> ObjectRecord:
    values: dict[str, object] = {
        "id": OBJECT_ID,
        "source_id": SOURCE_ID,
        "frame_index": 3,
        "category_id": CATEGORY_ID,
        "category_name": "person",
        "bbox": BoundingBox(1.25, 2.5, 30.125, 40.0625),
        "confidence": 0.75,
        "area": 1000.5,
        "has_mask": True,
        "has_embedding": True,
        "detection_model": "florence2",
        "is_validated": True,
        "validated_by": "ana",
        "validate_time": VALIDATED,
        "quality_score": 0.5,
        "track_id": TRACK_ID,
        "attributes": {"occluded": "yes"},
        "create_time": CREATED,
        "update_time": UPDATED,
    }
    values.update(changes)
    return ObjectRecord(**values)  # type: ignore[arg-type]


def make_track(**changes: object) -> Track:
    values: dict[str, object] = {
        "id": TRACK_ID,
        "source_id": SOURCE_ID,
        "category_id": CATEGORY_ID,
        "category_name": "person",
        "first_frame_index": 2,
        "last_frame_index": 9,
        "object_count": 2,
        "create_time": CREATED,
        "objects": (make_object(frame_index=2), make_object(id=OTHER_ID, frame_index=9)),
    }
    values.update(changes)
    return Track(**values)  # type: ignore[arg-type]


def make_category() -> Category:
    return Category(CATEGORY_ID, "person", ("human", "pedestrian"), 7, CREATED)


def refusal(call: object, *args: object) -> str:
    """The field path the InvalidArgument raised by `call(*args)` names."""
    with pytest.raises(InvalidArgument) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value.violations[0].field


def mask(*paths: str) -> field_mask_pb2.FieldMask:
    return field_mask_pb2.FieldMask(paths=paths)


# --- Records to messages ------------------------------------------------------------------------


def test_source_message_carries_every_field_a_client_reads() -> None:
    message = rc.source_message(make_source())

    assert message.name == f"sources/{SOURCE_ID}"
    assert message.kind == common_pb2.SOURCE_KIND_VIDEO
    assert (message.uri, message.display_name) == ("file:///data/clip.mp4", "clip.mp4")
    assert (message.width, message.height) == (640, 480)
    assert message.content_sha256 == "ab" * 32
    assert (message.frame_count, message.object_count) == (12, 34)
    assert dict(message.attributes) == {"camera": "north", "site": "dock"}
    assert message.create_time.ToDatetime(tzinfo=UTC) == CREATED


def test_source_message_round_trips_through_a_create_request() -> None:
    source = make_source()
    request = registry_pb2.CreateSourceRequest(source=rc.source_message(source))

    new, source_id = rc.new_source(request)

    assert source_id is None
    assert (new.kind, new.width, new.height) == (source.kind, source.width, source.height)
    assert (new.uri, new.display_name, new.content_sha256) == (
        source.uri,
        source.display_name,
        source.content_sha256,
    )
    assert new.attributes == source.attributes


def test_frame_message_names_the_frame_under_its_source() -> None:
    frame = Frame(SOURCE_ID, 7, timedelta(seconds=0, microseconds=233_567), "f/7.jpg", "cd" * 32, 4)

    message = rc.frame_message(frame)

    assert message.name == f"sources/{SOURCE_ID}/frames/7"
    assert message.frame_index == 7
    assert message.timestamp.ToTimedelta() == timedelta(microseconds=233_567)
    assert (message.uri, message.content_sha256, message.object_count) == ("f/7.jpg", "cd" * 32, 4)


def test_category_message_carries_name_synonyms_count_and_time() -> None:
    message = rc.category_message(make_category())

    assert message.name == f"categories/{CATEGORY_ID}"
    assert message.display_name == "person"
    assert list(message.synonyms) == ["human", "pedestrian"]
    assert message.object_count == 7
    assert message.create_time.ToDatetime(tzinfo=UTC) == CREATED


def test_object_message_carries_every_field_a_client_reads() -> None:
    message = rc.object_message(make_object())

    assert message.name == f"objects/{OBJECT_ID}"
    assert message.source == f"sources/{SOURCE_ID}"
    assert message.frame_index == 3
    assert message.category == f"categories/{CATEGORY_ID}"
    assert message.category_name == "person"
    assert (message.bbox.x, message.bbox.y, message.bbox.width, message.bbox.height) == (
        1.25,
        2.5,
        30.125,
        40.0625,
    )
    assert (message.confidence, message.quality_score, message.area) == (0.75, 0.5, 1000.5)
    assert (message.has_mask, message.has_embedding) == (True, True)
    assert message.detection_model == "florence2"
    assert (message.is_validated, message.validated_by) == (True, "ana")
    assert message.validate_time.ToDatetime(tzinfo=UTC) == VALIDATED
    assert message.track == f"tracks/{TRACK_ID}"
    assert dict(message.attributes) == {"occluded": "yes"}
    assert message.create_time.ToDatetime(tzinfo=UTC) == CREATED
    assert message.update_time.ToDatetime(tzinfo=UTC) == UPDATED


def test_object_message_of_an_unvalidated_untracked_object_leaves_those_fields_unset() -> None:
    record = make_object(is_validated=False, validated_by=None, validate_time=None, track_id=None)

    message = rc.object_message(record)

    assert not message.is_validated
    assert message.validated_by == ""
    assert not message.HasField("validate_time")
    assert message.track == ""


def test_track_message_holds_its_objects_in_frame_order() -> None:
    message = rc.track_message(make_track())

    assert message.name == f"tracks/{TRACK_ID}"
    assert message.source == f"sources/{SOURCE_ID}"
    assert message.category == f"categories/{CATEGORY_ID}"
    assert (message.first_frame_index, message.last_frame_index) == (2, 9)
    assert message.object_count == 2
    assert [o.name for o in message.objects] == [f"objects/{OBJECT_ID}", f"objects/{OTHER_ID}"]
    assert [o.frame_index for o in message.objects] == [2, 9]
    assert message.create_time.ToDatetime(tzinfo=UTC) == CREATED


def test_track_message_carries_average_confidence_and_frame_times() -> None:
    message = rc.track_message(
        make_track(
            average_confidence=0.625,
            first_frame_time=timedelta(seconds=0.2),
            last_frame_time=timedelta(seconds=3, microseconds=900_001),
        )
    )
    assert message.average_confidence == 0.625
    assert message.first_frame_time.ToTimedelta() == timedelta(seconds=0.2)
    assert message.last_frame_time.ToTimedelta() == timedelta(seconds=3, microseconds=900_001)


def test_create_track_request_becomes_ids_naming_a_bad_field() -> None:
    request = registry_pb2.CreateTrackRequest(
        source=f"sources/{SOURCE_ID}", objects=[f"objects/{OBJECT_ID}"], track_id=str(TRACK_ID)
    )
    assert rc.new_track(request) == rc.NewTrack(SOURCE_ID, [OBJECT_ID], TRACK_ID)
    request.objects.append("objects/nope")
    with pytest.raises(InvalidArgument) as caught:
        rc.new_track(request)
    assert caught.value.violations[0].field == "objects[1]"


def test_track_without_objects_has_no_category() -> None:
    message = rc.track_message(make_track(category_id=None, category_name="", objects=()))

    assert message.category == ""
    assert len(message.objects) == 0


def test_stats_message_carries_counts_fraction_and_histogram() -> None:
    stats = Stats(
        object_count=5,
        source_count=2,
        per_category=(CountEntry(f"categories/{CATEGORY_ID}", "person", 5),),
        per_source=(CountEntry(f"sources/{SOURCE_ID}", "clip.mp4", 3),),
        per_model=(CountEntry("florence2", "florence2", 4), CountEntry("import", "import", 1)),
        validated_fraction=0.4,
        confidence_histogram=(HistogramBin(0.0, 0.5, 1), HistogramBin(0.5, 1.0, 4)),
    )

    message = rc.stats_message(stats)

    assert (message.object_count, message.source_count) == (5, 2)
    assert [(e.key, e.display_name, e.count) for e in message.per_category] == [
        (f"categories/{CATEGORY_ID}", "person", 5)
    ]
    assert [(e.key, e.count) for e in message.per_source] == [(f"sources/{SOURCE_ID}", 3)]
    assert [(e.key, e.count) for e in message.per_model] == [("florence2", 4), ("import", 1)]
    assert message.validated_fraction == 0.4
    assert [(b.lower, b.upper, b.count) for b in message.confidence_histogram] == [
        (0.0, 0.5, 1),
        (0.5, 1.0, 4),
    ]


def test_list_sources_and_objects_responses_carry_items_token_and_total_size() -> None:
    sources = rc.list_sources_response(Page((make_source(),), "next", 41))
    objects = rc.list_objects_response(Page((make_object(),), "more", 42))

    assert ([s.name for s in sources.sources], sources.next_page_token, sources.total_size) == (
        [f"sources/{SOURCE_ID}"],
        "next",
        41,
    )
    assert ([o.name for o in objects.objects], objects.next_page_token, objects.total_size) == (
        [f"objects/{OBJECT_ID}"],
        "more",
        42,
    )


def test_list_response_without_a_total_size_reports_zero() -> None:
    assert rc.list_objects_response(Page((), "")).total_size == 0


def test_list_frames_categories_and_tracks_responses_carry_items_and_token() -> None:
    frame = Frame(SOURCE_ID, 0, timedelta(0), "", "", 1)
    frames = rc.list_frames_response(Page((frame,), "f"))
    categories = rc.list_categories_response(Page((make_category(),), "c"))
    tracks = rc.list_tracks_response(Page((make_track(objects=()),), ""))

    assert ([f.name for f in frames.frames], frames.next_page_token) == (
        [f"sources/{SOURCE_ID}/frames/0"],
        "f",
    )
    assert ([c.name for c in categories.categories], categories.next_page_token) == (
        [f"categories/{CATEGORY_ID}"],
        "c",
    )
    assert ([t.name for t in tracks.tracks], tracks.next_page_token) == (
        [f"tracks/{TRACK_ID}"],
        "",
    )


def test_batch_create_response_names_the_objects_merged_into() -> None:
    result = BatchCreateResult(
        objects=(make_object(id=OTHER_ID), make_object()),
        merged=(MergedObject(request_index=1, existing_object_id=OBJECT_ID, iou=0.93),),
        replayed=True,
    )

    message = rc.batch_create_response(result)

    assert [o.name for o in message.objects] == [f"objects/{OTHER_ID}", f"objects/{OBJECT_ID}"]
    assert [(m.request_index, m.existing_object, m.iou) for m in message.merged] == [
        (1, f"objects/{OBJECT_ID}", 0.93)
    ]
    assert message.replayed


def test_split_track_response_holds_both_parts() -> None:
    before = make_track(last_frame_index=4, objects=(make_object(frame_index=2),))
    after = make_track(id=OTHER_ID, first_frame_index=5, objects=(make_object(frame_index=9),))

    message = rc.split_track_response(SplitResult(before, after))

    assert (message.before.name, message.before.last_frame_index) == (f"tracks/{TRACK_ID}", 4)
    assert (message.after.name, message.after.first_frame_index) == (f"tracks/{OTHER_ID}", 5)
    assert [o.frame_index for o in message.after.objects] == [9]


def test_validate_objects_response_keeps_the_order_given() -> None:
    message = rc.validate_objects_response([make_object(id=OTHER_ID), make_object()])

    assert [o.name for o in message.objects] == [f"objects/{OTHER_ID}", f"objects/{OBJECT_ID}"]


def test_search_similar_response_pairs_each_object_with_its_score() -> None:
    @dataclass(frozen=True)
    class Hit:
        object: ObjectRecord
        score: float

    message = rc.search_similar_response([Hit(make_object(), 0.5), Hit(make_object(), -0.25)])

    assert [(r.object.name, r.score) for r in message.results] == [
        (f"objects/{OBJECT_ID}", 0.5),
        (f"objects/{OBJECT_ID}", -0.25),
    ]


def test_object_mask_message_names_the_object_and_its_size() -> None:
    message = rc.object_mask_message(OBJECT_ID, b"\x89PNG", width=64, height=48)

    assert (message.object, message.png, message.width, message.height) == (
        f"objects/{OBJECT_ID}",
        b"\x89PNG",
        64,
        48,
    )


# --- Times and enums ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "moment",
    [
        CREATED,
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(2024, 1, 1, 2, 0, 0, 1, tzinfo=timezone(timedelta(hours=2))),
    ],
)
def test_timestamp_keeps_the_instant_exact_to_the_microsecond(moment: datetime) -> None:
    message = rc.timestamp_message(moment)

    assert message.ToDatetime(tzinfo=UTC) == moment
    assert message.nanos == moment.microsecond * 1000


def test_timestamp_refuses_a_naive_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        rc.timestamp_message(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    "delta",
    [
        timedelta(0),
        timedelta(microseconds=1),
        timedelta(hours=5, microseconds=999_999),
        timedelta(microseconds=-1),
        timedelta(days=-3, microseconds=17),
    ],
)
def test_duration_round_trips_exactly_to_the_microsecond(delta: timedelta) -> None:
    assert rc.timedelta_from(rc.duration_message(delta), "frame.timestamp") == delta


def test_duration_drops_nanoseconds_below_a_microsecond() -> None:
    message = duration_pb2.Duration(seconds=2, nanos=33_333_999)

    assert rc.timedelta_from(message, "frame.timestamp") == timedelta(
        seconds=2, microseconds=33_333
    )


@pytest.mark.parametrize(
    ("seconds", "nanos"), [(0, 1_000_000_000), (0, -1_000_000_000), (1, -5), (-1, 5)]
)
def test_invalid_duration_is_refused_naming_the_field(seconds: int, nanos: int) -> None:
    message = duration_pb2.Duration(seconds=seconds, nanos=nanos)

    assert refusal(rc.timedelta_from, message, "frame.timestamp") == "frame.timestamp"


@pytest.mark.parametrize(
    ("kind", "number"),
    [
        (SourceKind.IMAGE, common_pb2.SOURCE_KIND_IMAGE),
        (SourceKind.VIDEO, common_pb2.SOURCE_KIND_VIDEO),
    ],
)
def test_source_kind_converts_both_ways(kind: SourceKind, number: int) -> None:
    assert rc.source_kind_message(kind) == number
    assert rc.source_kind(number, "source.kind") is kind


@pytest.mark.parametrize("number", [common_pb2.SOURCE_KIND_UNSPECIFIED, 7])
def test_source_kind_refuses_unspecified_and_unknown_numbers(number: int) -> None:
    assert refusal(rc.source_kind, number, "source.kind") == "source.kind"


def test_bbox_converts_both_ways_exactly() -> None:
    box = BoundingBox(0.1, 0.2, 1e-7, 12345.678901234)

    assert rc.bbox_record(rc.bbox_message(box)) == box


# --- Names --------------------------------------------------------------------------------------


def test_uuid_from_name_reads_the_uuid_of_its_collection() -> None:
    assert rc.uuid_from_name(f"tracks/{TRACK_ID}", "tracks", "name") == TRACK_ID


@pytest.mark.parametrize(
    "name", ["", f"sources/{TRACK_ID}", "tracks/not-a-uuid", f"tracks/{TRACK_ID.hex}"]
)
def test_uuid_from_name_refuses_empty_or_malformed_names_naming_the_field(name: str) -> None:
    assert refusal(rc.uuid_from_name, name, "tracks", "names[0]") == "names[0]"


def test_uuids_from_names_names_the_bad_entry_by_index() -> None:
    names = [f"objects/{OBJECT_ID}", "objects/x"]

    assert refusal(rc.uuids_from_names, names, "objects", "names") == "names[1]"
    assert rc.uuids_from_names(names[:1], "objects", "names") == [OBJECT_ID]


# --- Sources, frames, categories ----------------------------------------------------------------


def test_new_source_takes_a_bare_uuid_as_source_id() -> None:
    request = registry_pb2.CreateSourceRequest(
        source=registry_pb2.Source(kind=common_pb2.SOURCE_KIND_IMAGE, width=2, height=3),
        source_id=str(SOURCE_ID),
    )

    new, source_id = rc.new_source(request)

    assert source_id == SOURCE_ID
    assert (new.kind, new.width, new.height) == (SourceKind.IMAGE, 2, 3)


def test_new_source_accepts_a_name_that_agrees_with_source_id() -> None:
    request = registry_pb2.CreateSourceRequest(
        source=registry_pb2.Source(kind=IMAGE, name=f"sources/{SOURCE_ID}"),
        source_id=str(SOURCE_ID),
    )

    assert rc.new_source(request)[1] == SOURCE_ID


def test_new_source_ignores_the_name_without_source_id() -> None:
    request = registry_pb2.CreateSourceRequest(source=registry_pb2.Source(kind=IMAGE, name="junk"))

    assert rc.new_source(request)[1] is None


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (registry_pb2.CreateSourceRequest(), "source"),
        (registry_pb2.CreateSourceRequest(source=registry_pb2.Source()), "source.kind"),
        (
            registry_pb2.CreateSourceRequest(source=registry_pb2.Source(kind=IMAGE), source_id="x"),
            "source_id",
        ),
        (
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(kind=IMAGE, name=f"sources/{OTHER_ID}"),
                source_id=str(SOURCE_ID),
            ),
            "source.name",
        ),
        (
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(kind=IMAGE, name="objects/1"), source_id=str(SOURCE_ID)
            ),
            "source.name",
        ),
    ],
)
def test_new_source_refuses_bad_fields_naming_them(
    request_: registry_pb2.CreateSourceRequest, field: str
) -> None:
    assert refusal(rc.new_source, request_) == field


def test_new_frame_reads_the_parent_and_the_frame() -> None:
    request = registry_pb2.CreateFrameRequest(
        parent=f"sources/{SOURCE_ID}",
        frame=registry_pb2.Frame(
            frame_index=4,
            timestamp=duration_pb2.Duration(seconds=1, nanos=500_000_000),
            uri="f/4.jpg",
            content_sha256="ef" * 32,
        ),
    )

    source_id, new = rc.new_frame(request)

    assert source_id == SOURCE_ID
    assert new.frame_index == 4
    assert new.timestamp == timedelta(seconds=1.5)
    assert (new.uri, new.content_sha256) == ("f/4.jpg", "ef" * 32)


def test_new_frame_without_a_timestamp_starts_at_zero() -> None:
    request = registry_pb2.CreateFrameRequest(
        parent=f"sources/{SOURCE_ID}", frame=registry_pb2.Frame(frame_index=1)
    )

    assert rc.new_frame(request)[1].timestamp == timedelta(0)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (registry_pb2.CreateFrameRequest(frame=registry_pb2.Frame()), "parent"),
        (registry_pb2.CreateFrameRequest(parent=f"objects/{SOURCE_ID}"), "parent"),
        (registry_pb2.CreateFrameRequest(parent=f"sources/{SOURCE_ID}"), "frame"),
        (
            registry_pb2.CreateFrameRequest(
                parent=f"sources/{SOURCE_ID}",
                frame=registry_pb2.Frame(timestamp=duration_pb2.Duration(seconds=1, nanos=-1)),
            ),
            "frame.timestamp",
        ),
    ],
)
def test_new_frame_refuses_bad_fields_naming_them(
    request_: registry_pb2.CreateFrameRequest, field: str
) -> None:
    assert refusal(rc.new_frame, request_) == field


def test_new_category_reads_display_name_and_synonyms() -> None:
    request = registry_pb2.CreateCategoryRequest(
        category=registry_pb2.Category(display_name="person", synonyms=["human", "pedestrian"])
    )

    new = rc.new_category(request)

    assert (new.display_name, tuple(new.synonyms)) == ("person", ("human", "pedestrian"))


def test_new_category_refuses_a_request_without_a_category() -> None:
    assert refusal(rc.new_category, registry_pb2.CreateCategoryRequest()) == "category"


# --- Batch create -------------------------------------------------------------------------------


def create_item(**changes: object) -> registry_pb2.CreateObjectRequest:
    """A complete CreateObjectRequest; `changes` replace its parts."""
    parts: dict[str, object] = {
        "object": registry_pb2.LabeledObject(
            source=f"sources/{SOURCE_ID}",
            frame_index=2,
            category=f"categories/{CATEGORY_ID}",
            category_name="human",
            bbox=common_pb2.BoundingBox(x=1.5, y=2.5, width=3.25, height=4.125),
            confidence=0.5,
            detection_model="florence2",
            quality_score=0.25,
            track=f"tracks/{TRACK_ID}",
            attributes={"occluded": "no"},
        ),
        "object_id": str(OBJECT_ID),
        "mask": mask_message(np.eye(4, dtype=bool)),
        "embedding": common_pb2.Embedding(values=[0.5, -0.25, 1.0]),
    }
    parts.update(changes)
    return registry_pb2.CreateObjectRequest(**parts)  # type: ignore[arg-type]


def batch(*items: registry_pb2.CreateObjectRequest) -> registry_pb2.BatchCreateObjectsRequest:
    return registry_pb2.BatchCreateObjectsRequest(request_id=str(OTHER_ID), requests=items)


def test_new_objects_converts_every_field_of_each_request() -> None:
    [(new, mask_input)] = rc.new_objects(batch(create_item()))

    assert (new.source_id, new.frame_index) == (SOURCE_ID, 2)
    assert (new.category_id, new.category_name) == (CATEGORY_ID, "human")
    assert new.bbox == BoundingBox(1.5, 2.5, 3.25, 4.125)
    assert (new.confidence, new.quality_score) == (0.5, 0.25)
    assert new.detection_model == "florence2"
    assert new.track_id == TRACK_ID
    assert new.attributes == {"occluded": "no"}
    assert new.object_id == OBJECT_ID
    assert new.embedding == (0.5, -0.25, 1.0)
    assert (new.mask_area, new.validated_by) == (None, None)
    assert mask_input is not None
    assert mask_input.field == "requests[0].mask"


def test_new_objects_leaves_absent_references_mask_and_embedding_unset() -> None:
    bare = registry_pb2.LabeledObject(
        source=f"sources/{SOURCE_ID}",
        category_name="person",
        bbox=common_pb2.BoundingBox(width=1, height=1),
    )

    [(new, mask_input)] = rc.new_objects(batch(registry_pb2.CreateObjectRequest(object=bare)))

    assert (new.category_id, new.track_id, new.object_id, new.embedding) == (None,) * 4
    assert mask_input is None


def test_mask_input_decodes_against_the_source_size() -> None:
    [(_, mask_input)] = rc.new_objects(batch(create_item()))
    assert mask_input is not None

    assert np.array_equal(mask_input.array(height=4, width=4), np.eye(4, dtype=bool))


def test_mask_input_of_the_wrong_size_is_refused_naming_its_request() -> None:
    [_, (_, mask_input)] = rc.new_objects(batch(create_item(), create_item()))
    assert mask_input is not None

    assert refusal(lambda: mask_input.array(height=5, width=4)) == "requests[1].mask"


def with_object(**fields: object) -> registry_pb2.CreateObjectRequest:
    """create_item() whose object has `fields` replaced (None clears one)."""
    item = create_item()
    for name, value in fields.items():
        if value is None:
            item.object.ClearField(name)
        else:
            setattr(item.object, name, value)
    return item


@pytest.mark.parametrize(
    ("item", "field"),
    [
        (registry_pb2.CreateObjectRequest(), "requests[1].object"),
        (with_object(bbox=None), "requests[1].object.bbox"),
        (with_object(source=""), "requests[1].object.source"),
        (with_object(source=f"categories/{SOURCE_ID}"), "requests[1].object.source"),
        (with_object(category="person"), "requests[1].object.category"),
        (with_object(track="tracks/7"), "requests[1].object.track"),
        (create_item(object_id="objects/7"), "requests[1].object_id"),
        (with_object(name=f"objects/{OTHER_ID}"), "requests[1].object.name"),
        (
            create_item(embedding=common_pb2.Embedding(values=[1.0, math.nan])),
            "requests[1].embedding",
        ),
        (
            create_item(embedding=common_pb2.Embedding(values=[math.inf])),
            "requests[1].embedding",
        ),
    ],
)
def test_new_objects_refuses_bad_fields_naming_their_request(
    item: registry_pb2.CreateObjectRequest, field: str
) -> None:
    assert refusal(rc.new_objects, batch(create_item(), item)) == field


def test_batch_options_read_request_id_and_threshold() -> None:
    request = batch()
    request.create_missing_categories = True
    request.duplicate_iou_threshold = 0.0

    options = rc.batch_options(request)

    assert options == rc.BatchOptions(OTHER_ID, True, 0.0)


def test_batch_options_leave_an_unset_threshold_to_the_registry() -> None:
    assert rc.batch_options(batch()).duplicate_iou_threshold is None


@pytest.mark.parametrize("request_id", ["", "not-a-uuid", f"objects/{OTHER_ID}"])
def test_batch_options_refuse_a_missing_or_malformed_request_id(request_id: str) -> None:
    request = registry_pb2.BatchCreateObjectsRequest(request_id=request_id)

    assert refusal(rc.batch_options, request) == "request_id"


# --- Updates ------------------------------------------------------------------------------------


def update_request(*paths: str, **fields: object) -> registry_pb2.UpdateObjectRequest:
    obj = registry_pb2.LabeledObject(name=f"objects/{OBJECT_ID}")
    for name, value in fields.items():
        if isinstance(value, common_pb2.BoundingBox):
            obj.bbox.CopyFrom(value)
        elif name == "attributes":
            obj.attributes.update(value)  # type: ignore[call-overload]
        else:
            setattr(obj, name, value)
    return registry_pb2.UpdateObjectRequest(object=obj, update_mask=mask(*paths))


def test_object_changes_carry_the_id_values_and_paths() -> None:
    request = update_request(
        "category",
        "bbox",
        "confidence",
        "quality_score",
        "track",
        "attributes",
        category=f"categories/{CATEGORY_ID}",
        bbox=common_pb2.BoundingBox(x=1, y=2, width=3, height=4),
        confidence=0.25,
        quality_score=0.75,
        track=f"tracks/{TRACK_ID}",
        attributes={"k": "v"},
    )

    update = rc.object_changes(request)

    assert update.object_id == OBJECT_ID
    assert update.paths == {
        "category",
        "bbox",
        "confidence",
        "quality_score",
        "track",
        "attributes",
    }
    changes = update.changes
    assert changes.category_id == CATEGORY_ID
    assert changes.bbox == BoundingBox(1, 2, 3, 4)
    assert (changes.confidence, changes.quality_score) == (0.25, 0.75)
    assert changes.track_id == TRACK_ID
    assert changes.attributes == {"k": "v"}


def test_object_changes_with_an_empty_track_detach_the_object() -> None:
    update = rc.object_changes(update_request("track"))

    assert update.changes.track_id is None
    assert update.paths == {"track"}


def test_object_changes_read_only_the_references_the_mask_names() -> None:
    update = rc.object_changes(
        update_request("category_name", category_name="human", category="garbage", track="junk")
    )

    assert (update.changes.category_id, update.changes.category_name) == (None, "human")
    assert update.changes.track_id is None


def test_object_changes_leave_an_unset_bbox_as_none() -> None:
    assert rc.object_changes(update_request("bbox")).changes.bbox is None


@pytest.mark.parametrize(
    ("request_", "field", "words"),
    [
        (registry_pb2.UpdateObjectRequest(update_mask=mask("bbox")), "object", "required"),
        (
            registry_pb2.UpdateObjectRequest(
                object=registry_pb2.LabeledObject(), update_mask=mask("bbox")
            ),
            "object.name",
            "required",
        ),
        (update_request(), "update_mask", "at least one"),
        (update_request("bbox", "*"), "update_mask.paths[1]", "'*'"),
        (update_request("confidence", "colour"), "update_mask.paths[1]", "unknown"),
        (update_request("area"), "update_mask.paths[0]", "cannot be changed"),
        (update_request("source"), "update_mask.paths[0]", "cannot be changed"),
        (update_request("is_validated"), "update_mask.paths[0]", "ValidateObjects"),
        (update_request("bbox.x"), "update_mask.paths[0]", "unknown"),
        (update_request("category", category="person"), "object.category", "resource name"),
        (update_request("track", track=f"objects/{TRACK_ID}"), "object.track", "resource name"),
    ],
)
def test_object_changes_refuse_bad_fields_naming_them(
    request_: registry_pb2.UpdateObjectRequest, field: str, words: str
) -> None:
    with pytest.raises(InvalidArgument, match=words.replace("*", r"\*")) as caught:
        rc.object_changes(request_)

    assert caught.value.violations[0].field == field


@pytest.mark.parametrize("path", sorted(rc.OBJECT_UPDATE_PATHS))
def test_every_object_path_accepted_here_is_accepted_by_the_repository(path: str) -> None:
    assert object_store._check_paths([path]) == {path}


@pytest.mark.parametrize(
    "path",
    sorted(set(registry_pb2.LabeledObject.DESCRIPTOR.fields_by_name) - rc.OBJECT_UPDATE_PATHS),
)
def test_every_object_field_refused_here_is_refused_by_the_repository(path: str) -> None:
    assert refusal(rc.object_changes, update_request(path)) == "update_mask.paths[0]"
    assert refusal(object_store._check_paths, [path]) == "update_mask"


def test_category_paths_are_the_ones_the_repository_accepts() -> None:
    assert category_store._UPDATABLE == rc.CATEGORY_UPDATE_PATHS


def test_category_changes_carry_the_id_paths_and_values() -> None:
    request = registry_pb2.UpdateCategoryRequest(
        category=registry_pb2.Category(
            name=f"categories/{CATEGORY_ID}", display_name="person", synonyms=["human"]
        ),
        update_mask=mask("display_name", "synonyms"),
    )

    update = rc.category_changes(request)

    assert update == rc.CategoryUpdate(
        CATEGORY_ID, frozenset({"display_name", "synonyms"}), "person", ("human",)
    )


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (registry_pb2.UpdateCategoryRequest(update_mask=mask("synonyms")), "category"),
        (
            registry_pb2.UpdateCategoryRequest(
                category=registry_pb2.Category(name="categories/x"), update_mask=mask("synonyms")
            ),
            "category.name",
        ),
        (
            registry_pb2.UpdateCategoryRequest(
                category=registry_pb2.Category(name=f"categories/{CATEGORY_ID}")
            ),
            "update_mask",
        ),
        (
            registry_pb2.UpdateCategoryRequest(
                category=registry_pb2.Category(name=f"categories/{CATEGORY_ID}"),
                update_mask=mask("synonyms", "object_count"),
            ),
            "update_mask.paths[1]",
        ),
    ],
)
def test_category_changes_refuse_bad_fields_naming_them(
    request_: registry_pb2.UpdateCategoryRequest, field: str
) -> None:
    assert refusal(rc.category_changes, request_) == field


# --- Validation and search ----------------------------------------------------------------------


def test_corrections_convert_each_correction_with_its_mask_undecoded() -> None:
    request = registry_pb2.ValidateObjectsRequest(
        corrections=[
            registry_pb2.ObjectCorrection(object=f"objects/{OBJECT_ID}", category_name="human"),
            registry_pb2.ObjectCorrection(
                object=f"objects/{OTHER_ID}",
                bbox=common_pb2.BoundingBox(x=1, y=2, width=3, height=4),
                mask=mask_message(np.ones((2, 2), dtype=bool)),
            ),
        ]
    )

    [(first, first_mask), (second, second_mask)] = rc.corrections(request)

    assert (first.object_id, first.category_name, first.bbox, first_mask) == (
        OBJECT_ID,
        "human",
        None,
        None,
    )
    assert (second.object_id, second.bbox, second.mask_area) == (
        OTHER_ID,
        BoundingBox(1, 2, 3, 4),
        None,
    )
    assert second_mask is not None
    assert second_mask.field == "corrections[1].mask"


def test_corrections_refuse_a_bad_object_name_naming_its_correction() -> None:
    request = registry_pb2.ValidateObjectsRequest(
        corrections=[
            registry_pb2.ObjectCorrection(object=f"objects/{OBJECT_ID}"),
            registry_pb2.ObjectCorrection(object=f"tracks/{OBJECT_ID}"),
        ]
    )

    assert refusal(rc.corrections, request) == "corrections[1].object"


def test_similarity_query_by_object_applies_the_defaults() -> None:
    request = registry_pb2.SearchSimilarRequest(object=f"objects/{OBJECT_ID}", filter="x = 1")

    query = rc.similarity_query(request)

    assert query == rc.SimilarityQuery(OBJECT_ID, None, "x = 1", rc.DEFAULT_TOP_K, None, False)


def test_similarity_query_by_vector_keeps_the_vector_and_settings() -> None:
    request = registry_pb2.SearchSimilarRequest(
        vector=common_pb2.Embedding(values=[0.5, 0.25]), top_k=1000, hnsw_ef=64, exact=True
    )

    query = rc.similarity_query(request)

    assert query == rc.SimilarityQuery(None, (0.5, 0.25), "", 1000, 64, True)


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (registry_pb2.SearchSimilarRequest(), "query"),
        (registry_pb2.SearchSimilarRequest(object="objects/1"), "object"),
        (registry_pb2.SearchSimilarRequest(vector=common_pb2.Embedding()), "vector"),
        (
            registry_pb2.SearchSimilarRequest(vector=common_pb2.Embedding(values=[math.nan])),
            "vector",
        ),
        (registry_pb2.SearchSimilarRequest(object=f"objects/{OBJECT_ID}", top_k=1001), "top_k"),
        (registry_pb2.SearchSimilarRequest(object=f"objects/{OBJECT_ID}", top_k=-1), "top_k"),
        (registry_pb2.SearchSimilarRequest(object=f"objects/{OBJECT_ID}", hnsw_ef=-1), "hnsw_ef"),
    ],
)
def test_similarity_query_refuses_bad_fields_naming_them(
    request_: registry_pb2.SearchSimilarRequest, field: str
) -> None:
    assert refusal(rc.similarity_query, request_) == field
