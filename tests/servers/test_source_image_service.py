"""GetSourceImage on a real registry process: the bytes of a source's or a frame's image,
and a precise code for every request it cannot answer."""

from __future__ import annotations

import hashlib
import io
import uuid
from collections.abc import Iterator

import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image

from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc

WIDTH, HEIGHT = 40, 30
Stub = registry_pb2_grpc.RegistryServiceStub


@pytest.fixture(scope="module")
def stub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stub]:
    data_dirs = registry_data_dir()
    process: ManagedProcess = start_server_process(
        "registry",
        tmp_path_factory.mktemp("registry"),
        ["--data-dir", str(next(data_dirs)), "--embedding-dimension", "8"],
    )
    with grpc.insecure_channel(process.address) as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel)
    assert process.stop() == 0
    next(data_dirs, None)


def _jpeg(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def _source(stub: Stub, kind: int, data: bytes = b"", sha: str = "") -> registry_pb2.Source:
    source = registry_pb2.Source(kind=kind, width=WIDTH, height=HEIGHT, content_sha256=sha)
    created: registry_pb2.Source = stub.CreateSource(
        registry_pb2.CreateSourceRequest(source=source, image_data=data), timeout=30
    )
    return created


def _code(stub: Stub, request: registry_pb2.GetSourceImageRequest) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetSourceImage(request, timeout=30)
    return caught.value.code(), caught.value.details() or ""


def _bad_fields(stub: Stub, request: registry_pb2.GetSourceImageRequest) -> list[str]:
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetSourceImage(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    status = rpc_status.from_call(caught.value)  # type: ignore[arg-type]
    fields: list[str] = []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
    return fields


def test_a_source_image_comes_back_byte_for_byte(stub: Stub) -> None:
    data = _jpeg(1)
    source = _source(stub, common_pb2.SOURCE_KIND_IMAGE, data)

    image = stub.GetSourceImage(registry_pb2.GetSourceImageRequest(name=source.name), timeout=30)

    assert image.data == data
    assert image.name == source.name
    assert image.content_sha256 == hashlib.sha256(data).hexdigest()
    assert (image.mime_type, image.width, image.height) == ("image/jpeg", WIDTH, HEIGHT)


def test_a_video_frame_image_comes_back_by_its_frame_index(stub: Stub) -> None:
    video = _source(stub, common_pb2.SOURCE_KIND_VIDEO)
    frames = {i: _jpeg(20 + i) for i in range(2)}
    for i, data in frames.items():
        stub.CreateFrame(
            registry_pb2.CreateFrameRequest(
                parent=video.name, frame=registry_pb2.Frame(frame_index=i), image_data=data
            ),
            timeout=30,
        )

    image = stub.GetSourceImage(
        registry_pb2.GetSourceImageRequest(name=video.name, frame_index=1), timeout=30
    )

    assert image.data == frames[1]
    assert image.name == f"{video.name}/frames/1"


def test_an_unknown_source_is_not_found(stub: Stub) -> None:
    request = registry_pb2.GetSourceImageRequest(name=f"sources/{uuid.uuid4()}")
    assert _code(stub, request)[0] == grpc.StatusCode.NOT_FOUND


def test_an_unknown_frame_is_not_found(stub: Stub) -> None:
    source = _source(stub, common_pb2.SOURCE_KIND_IMAGE, _jpeg(2))
    request = registry_pb2.GetSourceImageRequest(name=source.name, frame_index=3)
    code, details = _code(stub, request)
    assert code == grpc.StatusCode.NOT_FOUND
    assert "frames/3" in details


def test_a_source_registered_without_bytes_is_a_failed_precondition(stub: Stub) -> None:
    sha = hashlib.sha256(b"kept elsewhere").hexdigest()
    source = _source(stub, common_pb2.SOURCE_KIND_IMAGE, sha=sha)
    code, details = _code(stub, registry_pb2.GetSourceImageRequest(name=source.name))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "without its image bytes" in details


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "objects/not-a-source"}, "name"),
        ({"name": f"sources/{uuid.UUID(int=1)}", "frame_index": -1}, "frame_index"),
    ],
)
def test_a_bad_request_is_invalid_argument_naming_the_field(
    stub: Stub, request_fields: dict[str, object], field: str
) -> None:
    assert _bad_fields(stub, registry_pb2.GetSourceImageRequest(**request_fields)) == [field]
