"""The orchestrator's RegistryClient against a real registry process: what AutoLabel calls,
and every failure arriving as the domain error that says what happened."""

from __future__ import annotations

import hashlib
import socket
import uuid
from collections.abc import AsyncIterator, Iterator

import grpc
import pytest
from conftest import registry_data_dir
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from agentic_labeling.clients.registry_client import RegistryClient, domain_error
from agentic_labeling.errors import (
    AlreadyExists,
    Cancelled,
    Conflict,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)
from agentic_labeling.local_mesh import ManagedProcess, start_server_process, unused_port
from agentic_labeling.v1 import common_pb2, registry_pb2

pytestmark = pytest.mark.slow

DIM = 8


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    data_dirs = registry_data_dir()
    process = start_server_process(
        "registry",
        tmp_path_factory.mktemp("registry-client"),
        ["--data-dir", str(next(data_dirs)), "--embedding-dimension", str(DIM)],
    )
    yield process
    assert process.stop() == 0
    next(data_dirs, None)


@pytest.fixture
async def client(registry: ManagedProcess) -> AsyncIterator[RegistryClient]:
    async with RegistryClient(registry.address, deadline_s=30) as opened:
        yield opened


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


async def test_an_image_source_is_created_once_per_content_hash(client: RegistryClient) -> None:
    first = await client.create_source(
        kind=common_pb2.SOURCE_KIND_IMAGE,
        width=40,
        height=30,
        content_sha256=_sha("once"),
        display_name="once.png",
    )
    again = await client.create_source(
        kind=common_pb2.SOURCE_KIND_IMAGE, width=40, height=30, content_sha256=_sha("once")
    )
    assert again.name == first.name
    assert (await client.get_source(first.name)).display_name == "once.png"


async def test_objects_are_created_once_per_request_id_and_listed_across_pages(
    client: RegistryClient,
) -> None:
    source = await client.create_source(
        kind=common_pb2.SOURCE_KIND_IMAGE, width=100, height=50, content_sha256=_sha("objects")
    )
    objects = [
        registry_pb2.CreateObjectRequest(
            object=registry_pb2.LabeledObject(
                source=source.name,
                category_name="client cat",
                bbox=common_pb2.BoundingBox(x=10 * i, y=5, width=8, height=8),
                confidence=0.5,
                detection_model="test",
            ),
            embedding=common_pb2.Embedding(values=[1.0] + [0.0] * (DIM - 1)),
        )
        for i in range(5)
    ]
    request_id = str(uuid.uuid4())
    created = await client.batch_create_objects(
        request_id, objects, create_missing_categories=True, duplicate_iou_threshold=0.5
    )
    replayed = await client.batch_create_objects(
        request_id, objects, create_missing_categories=True, duplicate_iou_threshold=0.5
    )
    assert not created.replayed
    assert replayed.replayed
    assert [o.name for o in replayed.objects] == [o.name for o in created.objects]
    listed = await client.list_objects(source=source.name, frame_index=0, page_size=2)
    assert sorted(o.name for o in listed) == sorted(o.name for o in created.objects)
    assert all(o.has_embedding for o in listed)


async def test_a_taken_frame_index_is_already_exists(client: RegistryClient) -> None:
    video = await client.create_source(
        kind=common_pb2.SOURCE_KIND_VIDEO, width=32, height=24, return_existing=False
    )
    frame = registry_pb2.Frame(frame_index=3)
    assert (await client.create_frame(video.name, frame)).frame_index == 3
    with pytest.raises(AlreadyExists):
        await client.create_frame(video.name, frame)


async def test_a_bad_field_is_invalid_argument_naming_it(client: RegistryClient) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await client.create_source(
            kind=common_pb2.SOURCE_KIND_IMAGE, width=4, height=4, content_sha256="not-a-hash"
        )
    assert [v.field for v in caught.value.violations] == ["source.content_sha256"]
    assert caught.value.metadata["service"] == "registry"


async def test_an_unknown_source_is_not_found(client: RegistryClient) -> None:
    name = f"sources/{uuid.uuid4()}"
    with pytest.raises(NotFound) as caught:
        await client.get_source(name)
    assert caught.value.name == name


async def test_a_passed_deadline_is_deadline_exceeded() -> None:
    # A socket that takes connections and never answers: the call waits for its deadline.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        async with RegistryClient(address) as stuck:
            with pytest.raises(DeadlineExceeded):
                await stuck.get_source(f"sources/{uuid.uuid4()}", timeout_s=0.3)


async def test_a_registry_that_is_not_there_is_unavailable() -> None:
    async with RegistryClient(f"127.0.0.1:{unused_port()}") as nowhere:
        with pytest.raises(Unavailable) as caught:
            await nowhere.get_source(f"sources/{uuid.uuid4()}", timeout_s=5)
    assert caught.value.reason == "REGISTRY_UNAVAILABLE"
    assert caught.value.metadata["code"] == "UNAVAILABLE"


def _rpc_error(code: grpc.StatusCode, reason: str = "") -> grpc.aio.AioRpcError:
    details = []
    if reason:
        packed = any_pb2.Any()
        packed.Pack(error_details_pb2.ErrorInfo(reason=reason, domain="agentic-labeling"))
        details.append(packed)
    status = rpc_status.to_status(
        status_pb2.Status(code=code.value[0], message="it went wrong", details=details)
    )
    return grpc.aio.AioRpcError(
        code,
        grpc.aio.Metadata(),
        grpc.aio.Metadata(*status.trailing_metadata),
        details="it went wrong",
    )


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (grpc.StatusCode.ABORTED, Conflict),
        (grpc.StatusCode.FAILED_PRECONDITION, FailedPrecondition),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, ResourceExhausted),
        (grpc.StatusCode.CANCELLED, Cancelled),
        (grpc.StatusCode.UNIMPLEMENTED, Unimplemented),
        (grpc.StatusCode.INTERNAL, Unavailable),
        (grpc.StatusCode.UNKNOWN, Unavailable),
    ],
)
def test_every_status_code_maps_to_a_domain_error(
    code: grpc.StatusCode, expected: type[Exception]
) -> None:
    error = domain_error(_rpc_error(code, reason="SOME_REASON"), "GetSource", "registry:1")
    assert type(error) is expected
    if expected is Unavailable:
        assert error.reason == "REGISTRY_UNAVAILABLE"
        assert code.name in error.message
    elif expected is not Unimplemented:
        assert error.reason == "SOME_REASON"
