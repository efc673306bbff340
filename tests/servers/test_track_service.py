"""The track RPCs of RegistryService on a real registry process: statistics and time order in
ListTracks, CreateTrack (all or nothing, idempotent with its track_id), validating whole
tracks, and deleting a track's objects; every bad input answered with a precise code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import grpc
import pytest
from conftest import registry_data_dir
from dataset_mesh import Mesh, running_registry
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from track_fixtures import Box, frame_time, register_video

from agentic_labeling.v1 import registry_pb2


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    data_dirs = registry_data_dir()
    with running_registry(tmp_path_factory.mktemp("registry"), next(data_dirs)) as mesh:
        yield mesh
    next(data_dirs, None)


def _fields(error: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(error)
    assert status is not None
    found = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            request = error_details_pb2.BadRequest()
            detail.Unpack(request)
            found += [v.field for v in request.field_violations]
    return found


def _key() -> str:
    return uuid.uuid4().hex


def test_list_tracks_gives_statistics_in_time_order(mesh: Mesh) -> None:
    video = register_video(
        mesh.registry,
        _key(),
        {
            "late": [Box(3, 10, confidence=0.5), Box(5, 12, confidence=0.7)],
            "early": [Box(1, 100, confidence=0.9, category="bus"), Box(2, 102, confidence=0.9)],
        },
        frames=6,
    )
    listed = mesh.registry.ListTracks(
        registry_pb2.ListTracksRequest(filter=f'source = "{video.source.name}"'), timeout=30
    ).tracks
    assert [t.name for t in listed] == [video.tracks["early"], video.tracks["late"]]
    late = listed[1]
    assert (late.first_frame_index, late.last_frame_index, late.object_count) == (3, 5, 2)
    assert late.average_confidence == pytest.approx(0.6)
    assert (late.first_frame_time, late.last_frame_time) == (frame_time(3), frame_time(5))
    assert late.objects == []


def test_create_track_joins_objects_into_one_new_track(mesh: Mesh) -> None:
    video = register_video(
        mesh.registry,
        _key(),
        {"old": [Box(0, 10), Box(1, 11)]},
        frames=3,
        untracked=[Box(2, 200, confidence=0.4)],
    )
    moved, loose = video.objects["old"][1], video.objects[""][0]
    created = mesh.registry.CreateTrack(
        registry_pb2.CreateTrackRequest(source=video.source.name, objects=[loose.name, moved.name]),
        timeout=30,
    )
    assert [o.name for o in created.objects] == [moved.name, loose.name]
    assert {o.track for o in created.objects} == {created.name}
    assert (created.first_frame_index, created.last_frame_index) == (1, 2)
    assert created.average_confidence == pytest.approx((0.8 + 0.4) / 2)
    old = mesh.registry.GetTrack(registry_pb2.GetTrackRequest(name=video.tracks["old"]), timeout=30)
    assert [o.frame_index for o in old.objects] == [0]


def test_create_track_retried_with_its_track_id_returns_the_same_track(mesh: Mesh) -> None:
    video = register_video(mesh.registry, _key(), {}, frames=2, untracked=[Box(0, 10), Box(1, 12)])
    request = registry_pb2.CreateTrackRequest(
        source=video.source.name,
        objects=[o.name for o in video.objects[""]],
        track_id=str(uuid.uuid4()),
    )
    first = mesh.registry.CreateTrack(request, timeout=30)
    again = mesh.registry.CreateTrack(request, timeout=30)
    assert first.name == again.name == f"tracks/{request.track_id}"
    assert again.object_count == 2


def test_create_track_moving_another_tracks_objects_to_a_taken_track_id_already_exists(
    mesh: Mesh,
) -> None:
    video = register_video(
        mesh.registry, _key(), {"taken": [Box(0, 10)]}, frames=2, untracked=[Box(1, 50)]
    )
    with pytest.raises(grpc.RpcError) as caught:
        mesh.registry.CreateTrack(
            registry_pb2.CreateTrackRequest(
                source=video.source.name,
                objects=[video.objects[""][0].name],
                track_id=video.tracks["taken"].removeprefix("tracks/"),
            ),
            timeout=30,
        )
    assert caught.value.code() is grpc.StatusCode.ALREADY_EXISTS
    loose = mesh.registry.GetObject(
        registry_pb2.GetObjectRequest(name=video.objects[""][0].name), timeout=30
    )
    assert loose.track == ""


def _bad_create_requests(mesh: Mesh) -> list[tuple[str, registry_pb2.CreateTrackRequest, str]]:
    video = register_video(
        mesh.registry,
        _key(),
        {},
        frames=2,
        untracked=[Box(0, 10), Box(0, 100), Box(1, 10)],
    )
    other = register_video(mesh.registry, _key(), {}, frames=1, untracked=[Box(0, 10)])
    a, same_frame, b = (o.name for o in video.objects[""])
    source = video.source.name
    return [
        ("INVALID_ARGUMENT", registry_pb2.CreateTrackRequest(objects=[a]), "source"),
        ("INVALID_ARGUMENT", registry_pb2.CreateTrackRequest(source=source), "objects"),
        (
            "INVALID_ARGUMENT",
            registry_pb2.CreateTrackRequest(source=source, objects=[a, "objects/x"]),
            "objects[1]",
        ),
        (
            "INVALID_ARGUMENT",
            registry_pb2.CreateTrackRequest(source=source, objects=[a, a]),
            "objects[1]",
        ),
        (
            "INVALID_ARGUMENT",
            registry_pb2.CreateTrackRequest(source=source, objects=[a, same_frame]),
            "objects[1]",
        ),
        (
            "INVALID_ARGUMENT",
            registry_pb2.CreateTrackRequest(source=source, objects=[b, other.objects[""][0].name]),
            "objects[1]",
        ),
        (
            "INVALID_ARGUMENT",
            registry_pb2.CreateTrackRequest(source=source, objects=[a], track_id="not-a-uuid"),
            "track_id",
        ),
        (
            "NOT_FOUND",
            registry_pb2.CreateTrackRequest(source=source, objects=[a, f"objects/{uuid.uuid4()}"]),
            "",
        ),
        (
            "NOT_FOUND",
            registry_pb2.CreateTrackRequest(source=f"sources/{uuid.uuid4()}", objects=[a]),
            "",
        ),
    ]


def test_every_bad_create_track_gets_a_precise_status_and_changes_nothing(mesh: Mesh) -> None:
    cases = _bad_create_requests(mesh)
    for code, request, field in cases:
        with pytest.raises(grpc.RpcError) as caught:
            mesh.registry.CreateTrack(request, timeout=30)
        assert caught.value.code().name == code, (request, caught.value.details())
        if field:
            assert _fields(caught.value) == [field], request
    for name in {n for _, request, _ in cases for n in request.objects if len(n) > 20}:
        try:
            found = mesh.registry.GetObject(registry_pb2.GetObjectRequest(name=name), timeout=30)
        except grpc.RpcError:
            continue  # the made-up names
        assert found.track == "", name


def test_validate_objects_with_a_track_validates_all_its_objects(mesh: Mesh) -> None:
    video = register_video(
        mesh.registry,
        _key(),
        {"car": [Box(0, 10), Box(1, 12), Box(2, 14)]},
        frames=3,
        untracked=[Box(0, 200)],
    )
    response = mesh.registry.ValidateObjects(
        registry_pb2.ValidateObjectsRequest(
            tracks=[video.tracks["car"]], validated_by="ann", is_validated=True
        ),
        timeout=30,
    )
    assert [o.name for o in response.objects] == [o.name for o in video.objects["car"]]
    assert all(o.is_validated and o.validated_by == "ann" for o in response.objects)
    untracked = mesh.registry.GetObject(
        registry_pb2.GetObjectRequest(name=video.objects[""][0].name), timeout=30
    )
    assert not untracked.is_validated


@pytest.mark.parametrize(
    ("tracks", "code", "field"),
    [
        (["objects/1"], "INVALID_ARGUMENT", "tracks[0]"),
        ([f"tracks/{uuid.UUID(int=7)}"], "NOT_FOUND", ""),
    ],
    ids=["malformed", "unknown"],
)
def test_validating_a_bad_track_is_refused(mesh: Mesh, tracks, code, field) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        mesh.registry.ValidateObjects(
            registry_pb2.ValidateObjectsRequest(tracks=tracks, validated_by="ann"), timeout=30
        )
    assert caught.value.code().name == code
    if field:
        assert _fields(caught.value) == [field]


def test_deleting_a_tracks_objects_updates_then_removes_the_track(mesh: Mesh) -> None:
    video = register_video(
        mesh.registry,
        _key(),
        {"car": [Box(0, 10, confidence=0.2), Box(1, 12, confidence=1.0)]},
        frames=2,
    )
    first, last = video.objects["car"]
    mesh.registry.DeleteObject(registry_pb2.DeleteObjectRequest(name=last.name), timeout=30)
    track = mesh.registry.GetTrack(
        registry_pb2.GetTrackRequest(name=video.tracks["car"]), timeout=30
    )
    assert (track.object_count, track.last_frame_index) == (1, 0)
    assert track.average_confidence == pytest.approx(0.2)
    mesh.registry.DeleteObject(registry_pb2.DeleteObjectRequest(name=first.name), timeout=30)
    with pytest.raises(grpc.RpcError) as caught:
        mesh.registry.GetTrack(registry_pb2.GetTrackRequest(name=video.tracks["car"]), timeout=30)
    assert caught.value.code() is grpc.StatusCode.NOT_FOUND
