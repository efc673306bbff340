"""Domain errors map to the gRPC code that says what happened, with google.rpc details."""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2

from agentic_labeling.errors import (
    AlreadyExists,
    Cancelled,
    Conflict,
    DeadlineExceeded,
    DomainError,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    Unavailable,
    Unimplemented,
)
from agentic_labeling.rpc_status import (
    ERROR_DOMAIN,
    describe_rpc_error,
    rpc_error_details,
    status_code_for,
)
from agentic_labeling.servers.error_status import INTERNAL_REASON, status_message, to_rpc_status

MAPPING = [
    (InvalidArgument("bad", field="name"), grpc.StatusCode.INVALID_ARGUMENT),
    (NotFound("object", "objects/1"), grpc.StatusCode.NOT_FOUND),
    (AlreadyExists("exists", reason="SOURCE_EXISTS"), grpc.StatusCode.ALREADY_EXISTS),
    (Conflict("lost a race"), grpc.StatusCode.ABORTED),
    (FailedPrecondition("category in use"), grpc.StatusCode.FAILED_PRECONDITION),
    (ResourceExhausted("too many pixels"), grpc.StatusCode.RESOURCE_EXHAUSTED),
    (Unavailable("triton is down"), grpc.StatusCode.UNAVAILABLE),
    (DeadlineExceeded("too slow"), grpc.StatusCode.DEADLINE_EXCEEDED),
    (Cancelled("client went away"), grpc.StatusCode.CANCELLED),
    (Unimplemented("RegistryService.MergeTracks"), grpc.StatusCode.UNIMPLEMENTED),
]


def unpack(status: Any, message_type: Any) -> Any:
    """The one detail of `message_type` in a google.rpc.Status, or None."""
    found = [d for d in status.details if d.Is(message_type.DESCRIPTOR)]
    assert len(found) <= 1
    if not found:
        return None
    message = message_type()
    found[0].Unpack(message)
    return message


@pytest.mark.parametrize(("exc", "code"), MAPPING, ids=[type(exc).__name__ for exc, _ in MAPPING])
def test_each_domain_error_maps_to_its_code_and_message(
    exc: DomainError, code: grpc.StatusCode
) -> None:
    status = to_rpc_status(exc)

    assert status_code_for(exc) == code
    assert status.code == code.value[0]
    assert status.message == exc.message


@pytest.mark.parametrize(("exc", "code"), MAPPING, ids=[type(exc).__name__ for exc, _ in MAPPING])
def test_each_domain_error_carries_error_info_with_reason_and_metadata(
    exc: DomainError, code: grpc.StatusCode
) -> None:
    info = unpack(to_rpc_status(exc), error_details_pb2.ErrorInfo)

    assert info.domain == ERROR_DOMAIN == "agentic-labeling"
    assert info.reason == exc.reason
    assert dict(info.metadata) == exc.metadata


def test_custom_reason_and_metadata_reach_error_info() -> None:
    exc = ResourceExhausted(
        "image too large", reason="TOO_MANY_PIXELS", metadata={"limit": "40000000"}
    )

    info = unpack(to_rpc_status(exc), error_details_pb2.ErrorInfo)

    assert (info.reason, dict(info.metadata)) == ("TOO_MANY_PIXELS", {"limit": "40000000"})


def test_invalid_argument_lists_every_field_violation_in_bad_request() -> None:
    exc = InvalidArgument(
        "two bad fields",
        violations=[
            FieldViolation("objects[0].bbox.width", "must be positive"),
            FieldViolation("objects[3].category", "unknown category 'zebra'"),
        ],
    )

    bad_request = unpack(to_rpc_status(exc), error_details_pb2.BadRequest)

    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("objects[0].bbox.width", "must be positive"),
        ("objects[3].category", "unknown category 'zebra'"),
    ]


def test_invalid_argument_without_fields_has_no_bad_request() -> None:
    status = to_rpc_status(InvalidArgument("the request makes no sense"))

    assert unpack(status, error_details_pb2.BadRequest) is None


def test_not_found_names_the_resource_in_resource_info() -> None:
    resource = unpack(
        to_rpc_status(NotFound("object", "objects/7")), error_details_pb2.ResourceInfo
    )

    assert (resource.resource_type, resource.resource_name) == ("object", "objects/7")
    assert resource.description == "object 'objects/7' not found"


def test_only_not_found_carries_resource_info() -> None:
    status = to_rpc_status(FailedPrecondition("in use"))

    assert unpack(status, error_details_pb2.ResourceInfo) is None
    assert unpack(status, error_details_pb2.BadRequest) is None


def test_subclass_of_a_domain_error_gets_its_parents_code() -> None:
    class TooManyPixels(ResourceExhausted):
        default_reason = "TOO_MANY_PIXELS"

    status = to_rpc_status(TooManyPixels("image has 50 Mpx, limit 40 Mpx"))

    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert unpack(status, error_details_pb2.ErrorInfo).reason == "TOO_MANY_PIXELS"


def test_bare_domain_error_is_unknown() -> None:
    assert status_code_for(DomainError("unclassified")) == grpc.StatusCode.UNKNOWN


def test_status_message_for_a_domain_error_equals_the_rpc_status() -> None:
    exc = NotFound("source", "sources/9")

    assert status_message(exc) == to_rpc_status(exc)


def test_status_message_for_a_bug_is_internal_and_hides_the_exception_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        status = status_message(RuntimeError("password=hunter2"), method="/svc/Method")

    info = unpack(status, error_details_pb2.ErrorInfo)
    assert status.code == grpc.StatusCode.INTERNAL.value[0]
    assert "hunter2" not in status.SerializeToString().decode(errors="replace")
    assert info.reason == INTERNAL_REASON
    assert info.metadata["incident_id"] in status.message


def test_status_message_for_a_bug_logs_the_traceback_under_the_incident_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR):
        status = status_message(RuntimeError("password=hunter2"), method="/svc/Method")

    incident = unpack(status, error_details_pb2.ErrorInfo).metadata["incident_id"]
    [record] = [r for r in caplog.records if getattr(r, "incident_id", None) == incident]
    assert record.exc_info is not None
    assert "hunter2" in str(record.exc_info[1])
    assert record.__dict__["method"] == "/svc/Method"


def test_status_message_unwraps_a_group_of_domain_errors() -> None:
    group = ExceptionGroup("task group", [NotFound("object", "objects/1")])

    assert status_message(group).code == grpc.StatusCode.NOT_FOUND.value[0]


def test_status_message_treats_a_group_with_a_bug_as_internal() -> None:
    group = ExceptionGroup("task group", [NotFound("object", "objects/1"), KeyError("x")])

    assert status_message(group).code == grpc.StatusCode.INTERNAL.value[0]


class FakeRpcError(grpc.RpcError):
    """Shaped like the errors grpc raises: code(), details(), trailing_metadata()."""

    def __init__(self, code: grpc.StatusCode, details: str, trailing: Any) -> None:
        super().__init__(details)
        self._code, self._details, self._trailing = code, details, trailing

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def trailing_metadata(self) -> Any:
        return self._trailing


def rpc_error_for(exc: DomainError) -> FakeRpcError:
    status = to_rpc_status(exc)
    trailing = (("grpc-status-details-bin", status.SerializeToString()),)
    return FakeRpcError(status_code_for(exc), status.message, trailing)


def test_rpc_error_details_reads_back_reason_and_field_violations() -> None:
    err = rpc_error_for(
        InvalidArgument("bad box", field="objects[3].bbox.width", reason="BAD_BBOX")
    )

    details = rpc_error_details(err)

    assert details.code == grpc.StatusCode.INVALID_ARGUMENT
    assert (details.reason, details.domain) == ("BAD_BBOX", ERROR_DOMAIN)
    assert details.field_violations == (FieldViolation("objects[3].bbox.width", "bad box"),)


def test_rpc_error_details_reads_back_the_missing_resource() -> None:
    details = rpc_error_details(rpc_error_for(NotFound("dataset", "datasets/cats")))

    assert (details.resource_type, details.resource_name) == ("dataset", "datasets/cats")


def test_describe_rpc_error_shows_code_message_reason_and_fields() -> None:
    err = rpc_error_for(
        InvalidArgument(
            "bbox must lie inside the image",
            violations=[FieldViolation("objects[3].bbox.width", "must be positive")],
            reason="BAD_BBOX",
            metadata={"image": "a.jpg"},
        )
    )

    assert describe_rpc_error(err) == (
        "INVALID_ARGUMENT: bbox must lie inside the image (reason: BAD_BBOX, image: a.jpg)\n"
        "  objects[3].bbox.width: must be positive"
    )


def test_describe_rpc_error_without_details_shows_code_and_message() -> None:
    err = FakeRpcError(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses", None)

    assert describe_rpc_error(err) == "UNAVAILABLE: failed to connect to all addresses"


def test_describe_rpc_error_ignores_undecodable_details() -> None:
    trailing = (("grpc-status-details-bin", b"\xff\xff not a status"),)
    err = FakeRpcError(grpc.StatusCode.INTERNAL, "boom", trailing)

    assert describe_rpc_error(err) == "INTERNAL: boom"


def test_describe_rpc_error_copes_with_a_bare_rpc_error() -> None:
    assert describe_rpc_error(grpc.RpcError("no call attached")) == "UNKNOWN: no call attached"


def test_describe_rpc_error_names_the_field_without_repeating_the_message() -> None:
    err = rpc_error_for(InvalidArgument("must be between 0 and 1", field="min_confidence"))

    assert describe_rpc_error(err) == (
        "INVALID_ARGUMENT: must be between 0 and 1 (reason: INVALID_ARGUMENT)\n"
        "  field: min_confidence"
    )
