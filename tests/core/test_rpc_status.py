"""One error table: each domain error declares its gRPC code once, and the server's mapping,
the registry client's and the Triton client's reverse mappings all read that declaration."""

from __future__ import annotations

import grpc
import pytest
from tritonclient.utils import InferenceServerException

from agentic_labeling import errors
from agentic_labeling.clients.triton_models import _domain_error
from agentic_labeling.errors import (
    DeadlineExceeded,
    DomainError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
    error_class_for_code,
)
from agentic_labeling.rpc_status import error_class_for, status_code_for

DECLARED = [
    cls
    for name in errors.__all__
    if isinstance(cls := getattr(errors, name), type)
    and issubclass(cls, DomainError)
    and cls is not DomainError
]


@pytest.mark.parametrize("cls", DECLARED, ids=lambda cls: cls.__name__)
def test_every_domain_error_declares_a_real_grpc_code_of_its_own(cls: type[DomainError]) -> None:
    assert "grpc_code" in cls.__dict__
    assert grpc.StatusCode[cls.grpc_code] is not grpc.StatusCode.OK


@pytest.mark.parametrize("cls", DECLARED, ids=lambda cls: cls.__name__)
def test_each_declared_code_reads_back_as_the_class_that_declared_it(
    cls: type[DomainError],
) -> None:
    assert error_class_for(grpc.StatusCode[cls.grpc_code]) is cls


def test_no_two_domain_errors_declare_the_same_code() -> None:
    codes = [cls.grpc_code for cls in DECLARED]
    assert len(codes) == len(set(codes))


def test_a_bare_domain_error_travels_as_unknown() -> None:
    assert status_code_for(DomainError("no category")) is grpc.StatusCode.UNKNOWN


def test_a_subclass_travels_as_its_parents_code_and_does_not_replace_it_when_read_back() -> None:
    class TooManyPixels(ResourceExhausted):
        pass

    class TooManyObjects(ResourceExhausted):
        grpc_code = "RESOURCE_EXHAUSTED"

    assert status_code_for(TooManyPixels("big")) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_code_for(TooManyObjects("many")) is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert error_class_for(grpc.StatusCode.RESOURCE_EXHAUSTED) is ResourceExhausted


@pytest.mark.parametrize("code", ["OK", "UNKNOWN", "INTERNAL", "DATA_LOSS", "NO_SUCH_CODE"])
def test_a_code_no_class_declares_reads_back_as_none(code: str) -> None:
    assert error_class_for_code(code) is None


# --- the Triton client ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "expected", "reason"),
    [
        ("StatusCode.INVALID_ARGUMENT", InvalidArgument, "MODEL_REFUSED_INPUT"),
        ("StatusCode.DEADLINE_EXCEEDED", DeadlineExceeded, "DEADLINE_EXCEEDED"),
        ("StatusCode.RESOURCE_EXHAUSTED", ResourceExhausted, "RESOURCE_EXHAUSTED"),
        ("StatusCode.UNAVAILABLE", Unavailable, "MODEL_UNAVAILABLE"),
        ("StatusCode.NOT_FOUND", Unavailable, "MODEL_UNAVAILABLE"),
        ("StatusCode.INTERNAL", Unavailable, "MODEL_UNAVAILABLE"),
        ("StatusCode.CANCELLED", Unavailable, "MODEL_UNAVAILABLE"),
        ("StatusCode.FAILED_PRECONDITION", Unavailable, "MODEL_UNAVAILABLE"),
    ],
)
def test_a_triton_error_maps_by_its_status_code(
    status: str, expected: type[DomainError], reason: str
) -> None:
    error = _domain_error(InferenceServerException("it went wrong", status=status), "sam2")

    assert type(error) is expected
    assert error.reason == reason
    assert error.message == "sam2: it went wrong"
    assert error.metadata == {"model": "sam2"}


def test_a_triton_message_naming_a_code_does_not_decide_the_error() -> None:
    refused = InferenceServerException(
        "[StatusCode.INVALID_ARGUMENT] upstream said INVALID_ARGUMENT", status="StatusCode.INTERNAL"
    )

    assert type(_domain_error(refused, "florence2")) is Unavailable


def test_a_triton_error_without_a_code_is_unavailable() -> None:
    raised_by_the_client = InferenceServerException("model version must be a string")

    error = _domain_error(raised_by_the_client, "dinov2")

    assert type(error) is Unavailable
    assert error.reason == "MODEL_UNAVAILABLE"
