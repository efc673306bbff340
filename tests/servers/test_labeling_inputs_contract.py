"""Class names, thresholds and error texts at the mesh's door: a real registry and orchestrator
process on loopback (Triton's address has nothing listening: every check here answers before
any model would run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from real_parts import Mesh

from agentic_labeling.labeling_defaults import RANDOM_WEIGHTS_MARKER
from agentic_labeling.local_mesh import start_server_process
from agentic_labeling.rpc_status import rpc_error_details
from agentic_labeling.v1 import (
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

_IMAGE = b"\x89PNG\r\n\x1a\n" + b"not really a png, never stored" * 3


def _labeling(mesh: Mesh) -> Iterator[labeling_pb2_grpc.LabelingServiceStub]:
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        yield labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]


def _source_count(mesh: Mesh, sha256: str) -> int:
    with grpc.insecure_channel(mesh.registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        page = stub.ListSources(
            registry_pb2.ListSourcesRequest(page_size=1000, filter=f'content_sha256 = "{sha256}"'),
            timeout=30,
        )
    return len(page.sources)


@pytest.mark.parametrize("token", ["<loc_5>", "<od>", "</s>", "<CAPTION_TO_PHRASE_GROUNDING>"])
def test_a_class_name_with_a_special_token_fails_the_stream_before_any_image_is_stored(
    mesh: Mesh, token: str
) -> None:
    image = _IMAGE + token.encode()
    requests = [
        labeling_pb2.AutoLabelRequest(
            config=labeling_pb2.AutoLabelConfig(class_names=["cat", f"big {token}"])
        ),
        labeling_pb2.AutoLabelRequest(
            item=labeling_pb2.AutoLabelItem(client_id="a", image=common_pb2.Image(data=image))
        ),
    ]
    for stub in _labeling(mesh):
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.AutoLabel(iter(requests), timeout=30))
    info = rpc_error_details(caught.value)
    assert info.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in info.field_violations] == ["config.class_names[1]"]
    assert token in info.message
    assert _source_count(mesh, hashlib.sha256(image).hexdigest()) == 0


def test_detect_refuses_a_class_name_with_a_special_token(mesh: Mesh) -> None:
    request = labeling_pb2.DetectRequest(
        image=common_pb2.Image(data=_IMAGE), class_names=["<loc_5>"]
    )
    for stub in _labeling(mesh):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Detect(request, timeout=30)
    info = rpc_error_details(caught.value)
    assert info.code is grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in info.field_violations] == ["class_names[0]"]


def test_too_many_class_names_says_the_limit_and_what_to_do(mesh: Mesh) -> None:
    config = labeling_pb2.AutoLabelConfig(class_names=[f"thing {i}" for i in range(301)])
    for stub in _labeling(mesh):
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.AutoLabel(iter([labeling_pb2.AutoLabelRequest(config=config)]), timeout=30))
    info = rpc_error_details(caught.value)
    assert info.code is grpc.StatusCode.INVALID_ARGUMENT
    assert "301 class names given, at most 256 allowed" in info.message


def test_a_confidence_threshold_out_of_range_names_its_field(mesh: Mesh) -> None:
    config = labeling_pb2.AutoLabelConfig(class_names=["cat"], confidence_threshold=1.5)
    for stub in _labeling(mesh):
        with pytest.raises(grpc.RpcError) as caught:
            list(stub.AutoLabel(iter([labeling_pb2.AutoLabelRequest(config=config)]), timeout=30))
    info = rpc_error_details(caught.value)
    assert [v.field for v in info.field_violations] == ["config.confidence_threshold"]


def test_an_unidentifiable_image_is_refused_without_a_python_repr_in_the_message(
    mesh: Mesh,
) -> None:
    with grpc.insecure_channel(mesh.registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        with pytest.raises(grpc.RpcError) as caught:
            stub.CreateSource(
                registry_pb2.CreateSourceRequest(
                    source=registry_pb2.Source(
                        kind=common_pb2.SOURCE_KIND_IMAGE, width=4, height=4, display_name="x"
                    ),
                    image_data=b"plain text, not an image",
                ),
                timeout=30,
            )
    info = rpc_error_details(caught.value)
    assert info.code is grpc.StatusCode.INVALID_ARGUMENT
    assert " at 0x" not in info.message
    assert "BytesIO" not in info.message


@pytest.mark.parametrize(
    "data",
    [b"junk", _IMAGE, b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 40, b"GIF89a" + b"\x00" * 9],
)
def test_an_undecodable_image_message_has_no_python_repr(mesh: Mesh, data: bytes) -> None:
    for stub in _labeling(mesh):
        with pytest.raises(grpc.RpcError) as caught:
            stub.Detect(
                labeling_pb2.DetectRequest(image=common_pb2.Image(data=data), class_names=["cat"]),
                timeout=30,
            )
    info = rpc_error_details(caught.value)
    assert info.code is grpc.StatusCode.INVALID_ARGUMENT
    assert " at 0x" not in info.message


def _random_weights(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=30)
    return bool(status.random_weights)


def test_mesh_status_says_random_weights_when_the_models_dir_holds_tiny_models(
    mesh: Mesh, tiny_models_dir: Path, tmp_path: Path
) -> None:
    assert (tiny_models_dir / RANDOM_WEIGHTS_MARKER).is_file()  # make_tiny_models wrote it
    flags = ["--registry-url", mesh.registry.address, "--triton-url", mesh.triton_url]
    tiny = start_server_process(
        "orchestrator", tmp_path, [*flags, "--models-dir", str(tiny_models_dir)]
    )
    try:
        assert _random_weights(tiny.address)
    finally:
        tiny.stop()
    assert not _random_weights(mesh.orchestrator.address)  # no models dir: real checkpoints


def test_an_unreadable_mask_png_is_refused_without_a_python_repr_in_the_message(
    mesh: Mesh,
) -> None:
    with grpc.insecure_channel(mesh.registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        source = stub.CreateSource(
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(
                    kind=common_pb2.SOURCE_KIND_IMAGE,
                    width=16,
                    height=16,
                    display_name="mask-repr.png",
                    content_sha256=hashlib.sha256(b"mask-repr").hexdigest(),
                ),
                return_existing=True,
            ),
            timeout=30,
        )
        with pytest.raises(grpc.RpcError) as caught:
            stub.BatchCreateObjects(
                registry_pb2.BatchCreateObjectsRequest(
                    request_id="8d0c3d0e-8d6f-4a53-9a53-1d7c1f3f2c11",
                    create_missing_categories=True,
                    requests=[
                        registry_pb2.CreateObjectRequest(
                            object=registry_pb2.LabeledObject(
                                source=source.name,
                                category_name="mask repr",
                                bbox=common_pb2.BoundingBox(x=1, y=1, width=4, height=4),
                                confidence=0.5,
                                detection_model="test",
                            ),
                            mask=common_pb2.Mask(png=_IMAGE),
                        )
                    ],
                ),
                timeout=30,
            )
    info = rpc_error_details(caught.value)
    assert info.code is grpc.StatusCode.INVALID_ARGUMENT
    assert " at 0x" not in info.message
    assert "BytesIO" not in info.message
