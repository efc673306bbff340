"""The whole contract served by real `alabel serve` processes, called with generated stubs.

Every method of every service answers with a precise status (never UNKNOWN or INTERNAL);
built request checks name the bad field; unbuilt methods say UNIMPLEMENTED honestly.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import grpc
import pytest
from google.longrunning import operations_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image
from real_parts import Mesh

from agentic_labeling.v1 import (
    common_pb2,
    dataset_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    training_pb2,
    training_pb2_grpc,
)

REGISTRY_SERVICES = [
    registry_pb2.DESCRIPTOR.services_by_name["RegistryService"],
    dataset_pb2.DESCRIPTOR.services_by_name["DatasetService"],
    training_pb2.DESCRIPTOR.services_by_name["TrainingService"],
    operations_pb2.DESCRIPTOR.services_by_name["Operations"],
]
ORCHESTRATOR_SERVICES = [labeling_pb2.DESCRIPTOR.services_by_name["LabelingService"]]
PRECISE_CODES = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.UNIMPLEMENTED,
    grpc.StatusCode.UNAVAILABLE,  # Triton is down in this fixture
    grpc.StatusCode.NOT_FOUND,
}


@pytest.fixture(scope="module")
def registry_channel(mesh: Mesh) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mesh.registry.address) as channel:
        yield channel


@pytest.fixture(scope="module")
def orchestrator_channel(mesh: Mesh) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mesh.orchestrator.address) as channel:
        yield channel


def _call_with_empty_request(channel: grpc.Channel, method: MethodDescriptor) -> grpc.StatusCode:
    path = f"/{method.containing_service.full_name}/{method.name}"
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    kind = {
        (False, False): channel.unary_unary,
        (False, True): channel.unary_stream,
        (True, False): channel.stream_unary,
        (True, True): channel.stream_stream,
    }[(method.client_streaming, method.server_streaming)]
    call = kind(
        path,
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    request = iter([request_class()]) if method.client_streaming else request_class()
    try:
        result = call(request, timeout=10)
        if method.server_streaming:
            list(result)
    except grpc.RpcError as err:
        return err.code()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    "method",
    [m for s in REGISTRY_SERVICES for m in s.methods],
    ids=lambda m: m.full_name,
)
def test_every_registry_server_method_answers_a_precise_status(
    registry_channel: grpc.Channel, method: MethodDescriptor
) -> None:
    assert _call_with_empty_request(registry_channel, method) in PRECISE_CODES


@pytest.mark.parametrize(
    "method",
    [m for s in ORCHESTRATOR_SERVICES for m in s.methods],
    ids=lambda m: m.full_name,
)
def test_every_orchestrator_method_answers_a_precise_status(
    orchestrator_channel: grpc.Channel, method: MethodDescriptor
) -> None:
    assert _call_with_empty_request(orchestrator_channel, method) in PRECISE_CODES


def _bad_request_fields(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None, "the error carries google.rpc.Status details"
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return [v.field for v in bad_request.field_violations]
    raise AssertionError("no google.rpc.BadRequest in the error details")


def _error_info(err: grpc.RpcError) -> error_details_pb2.ErrorInfo:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    assert status is not None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    raise AssertionError("no google.rpc.ErrorInfo in the error details")


@pytest.mark.parametrize(
    ("request_fields", "bad_field"),
    [
        ({"filter": 'categroy = "cat"'}, "filter"),
        ({"filter": "confidence >= high"}, "filter"),
        ({"page_size": -1}, "page_size"),
        ({"order_by": "colour desc"}, "order_by"),
    ],
)
def test_list_objects_bad_request_is_invalid_argument_naming_the_field(
    registry_channel: grpc.Channel, request_fields: dict[str, object], bad_field: str
) -> None:
    stub = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListObjects(registry_pb2.ListObjectsRequest(**request_fields), timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_fields(caught.value) == [bad_field]
    assert _error_info(caught.value).domain == "agentic-labeling"


def test_valid_list_objects_on_an_empty_registry_is_an_empty_page(
    registry_channel: grpc.Channel,
) -> None:
    stub = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    response = stub.ListObjects(
        registry_pb2.ListObjectsRequest(filter='category = "cat" AND confidence >= 0.5'),
        timeout=10,
    )
    assert list(response.objects) == []
    assert response.next_page_token == ""


def test_list_runs_on_a_registry_without_training_runs_is_an_empty_page(
    registry_channel: grpc.Channel,
) -> None:
    stub = training_pb2_grpc.TrainingServiceStub(registry_channel)
    response = stub.ListRuns(training_pb2.ListRunsRequest(), timeout=10)
    assert list(response.runs) == []
    assert response.next_page_token == ""


def _png(width: int = 64, height: int = 48) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (120, 130, 140)).save(buffer, format="PNG")
    return buffer.getvalue()


def _detect(**fields: object) -> labeling_pb2.DetectRequest:
    base: dict[str, object] = {
        "image": common_pb2.Image(data=_png()),
        "class_names": ["cat"],
    }
    base.update(fields)
    return labeling_pb2.DetectRequest(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_message", "bad_fields"),
    [
        (_detect(image=common_pb2.Image(data=b"not an image")), ["image.data"]),
        (_detect(image=common_pb2.Image()), ["image"]),
        (_detect(class_names=[]), ["class_names"]),
        (_detect(class_names=["cat", " ", "Cat"]), ["class_names[1]", "class_names[2]"]),
        (_detect(min_confidence=1.5), ["min_confidence"]),
        (_detect(max_detections=-3), ["max_detections"]),
    ],
    ids=["corrupt-image", "no-image", "no-classes", "blank-and-duplicate", "confidence", "max"],
)
def test_detect_bad_request_is_invalid_argument_naming_the_fields(
    orchestrator_channel: grpc.Channel,
    request_message: labeling_pb2.DetectRequest,
    bad_fields: list[str],
) -> None:
    stub = labeling_pb2_grpc.LabelingServiceStub(orchestrator_channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Detect(request_message, timeout=10)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_fields(caught.value) == bad_fields


def test_segment_box_outside_the_image_names_that_box(
    orchestrator_channel: grpc.Channel,
) -> None:
    stub = labeling_pb2_grpc.LabelingServiceStub(orchestrator_channel)
    boxes = [
        common_pb2.BoundingBox(x=0, y=0, width=10, height=10),
        common_pb2.BoundingBox(x=60, y=0, width=10, height=10),  # past the 64 px right edge
        common_pb2.BoundingBox(x=1, y=1, width=0, height=5),
    ]
    with pytest.raises(grpc.RpcError) as caught:
        stub.Segment(
            labeling_pb2.SegmentRequest(image=common_pb2.Image(data=_png()), boxes=boxes),
            timeout=10,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_request_fields(caught.value) == ["boxes[1]", "boxes[2]"]


def test_embed_with_a_mask_count_unlike_the_box_count_names_masks(
    orchestrator_channel: grpc.Channel,
) -> None:
    stub = labeling_pb2_grpc.LabelingServiceStub(orchestrator_channel)
    request = labeling_pb2.EmbedRequest(
        image=common_pb2.Image(data=_png()),
        boxes=[common_pb2.BoundingBox(x=0, y=0, width=5, height=5)],
        masks=[common_pb2.Mask(), common_pb2.Mask()],
    )
    with pytest.raises(grpc.RpcError) as caught:
        stub.Embed(request, timeout=10)
    assert _bad_request_fields(caught.value) == ["masks"]


def test_server_side_image_uri_is_a_failed_precondition(
    orchestrator_channel: grpc.Channel,
) -> None:
    stub = labeling_pb2_grpc.LabelingServiceStub(orchestrator_channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Detect(_detect(image=common_pb2.Image(uri="/etc/passwd")), timeout=10)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_info(caught.value).reason == "IMAGE_URI_NOT_ENABLED"


def test_valid_detect_with_triton_down_is_unavailable_naming_the_model(
    orchestrator_channel: grpc.Channel,
) -> None:
    stub = labeling_pb2_grpc.LabelingServiceStub(orchestrator_channel)
    with pytest.raises(grpc.RpcError) as caught:
        stub.Detect(_detect(), timeout=10)
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    assert _error_info(caught.value).metadata["model"] == "florence2"


def test_mesh_status_reports_the_registry_up_and_triton_down(
    orchestrator_channel: grpc.Channel, mesh: Mesh
) -> None:
    stub = labeling_pb2_grpc.LabelingServiceStub(orchestrator_channel)
    status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=15)
    assert status.version
    assert status.registry.address == mesh.registry.address
    assert status.registry.reachable
    assert status.triton.address == mesh.triton_url
    assert not status.triton.reachable
    assert status.triton.message  # says why
    assert list(status.models) == []


def test_servers_survive_a_burst_of_bad_requests(
    registry_channel: grpc.Channel, orchestrator_channel: grpc.Channel
) -> None:
    registry = registry_pb2_grpc.RegistryServiceStub(registry_channel)
    labeling = labeling_pb2_grpc.LabelingServiceStub(orchestrator_channel)
    for attempt in range(50):
        with pytest.raises(grpc.RpcError):
            registry.ListObjects(
                registry_pb2.ListObjectsRequest(filter="(" * (attempt + 1)), timeout=10
            )
        with pytest.raises(grpc.RpcError):
            labeling.Detect(_detect(image=common_pb2.Image(data=bytes([attempt]) * 99)), timeout=10)
    # Still serving afterwards.
    status = labeling.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=15)
    assert status.registry.reachable
