"""gRPC statuses read and named the same way by servers, clients and the CLI.

Neutral ground: `servers/`, `clients/` and `cli/` all import it, and it imports none of them.

- `status_code_for(exc)` is the gRPC code a domain error travels as; `error_class_for(code)`
  is the reverse. Both read the one declaration in `errors.py` (each class's `grpc_code`).
- `rpc_error_details(err)` / `status_details(status)` read a failed RPC (or a google.rpc.Status
  carried in a message, such as an operation's error) back into code, message, reason and
  field violations; `describe_rpc_error(err)` says it in a few lines, for the CLI and for logs.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped,unused-ignore]

from agentic_labeling.errors import DomainError, FieldViolation, error_class_for_code

__all__ = [
    "DETAILS_KEY",
    "ERROR_DOMAIN",
    "RpcErrorDetails",
    "describe_rpc_error",
    "error_class_for",
    "rpc_error_details",
    "status_code_for",
    "status_details",
]

ERROR_DOMAIN = "agentic-labeling"
# The trailer that carries the whole google.rpc.Status, details included.
DETAILS_KEY = "grpc-status-details-bin"


def status_code_for(exc: DomainError) -> grpc.StatusCode:
    """The gRPC code a domain error travels as; a bare `DomainError` (no category) is UNKNOWN.

    A subclass (say `TooManyPixels(ResourceExhausted)`) inherits its parent's `grpc_code`.
    """
    return grpc.StatusCode[type(exc).grpc_code]


def error_class_for(code: grpc.StatusCode) -> type[DomainError] | None:
    """The domain error class a status code stands for; None for a code no class declares
    (OK, UNKNOWN, INTERNAL, DATA_LOSS, ...: the server itself failed)."""
    return error_class_for_code(code.name)


@dataclass(frozen=True)
class RpcErrorDetails:
    """What a failed RPC said, read back from its status and google.rpc details."""

    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: tuple[FieldViolation, ...] = ()
    resource_type: str = ""
    resource_name: str = ""


def _rich_status(err: grpc.RpcError) -> status_pb2.Status | None:
    trailing = getattr(err, "trailing_metadata", None)
    pairs = trailing() if callable(trailing) else None
    for key, value in pairs or ():
        if key == DETAILS_KEY and isinstance(value, bytes):
            with contextlib.suppress(Exception):
                return status_pb2.Status.FromString(value)
    return None


def rpc_error_details(err: grpc.RpcError) -> RpcErrorDetails:
    """Code, message, reason, metadata, field violations and resource of a failed RPC.

    Works for sync and grpc.aio errors; details the server did not send are left empty.
    """
    code_of = getattr(err, "code", None)
    details_of = getattr(err, "details", None)
    code = code_of() if callable(code_of) else None
    message = details_of() if callable(details_of) else None
    rich = _rich_status(err)
    return _details(
        code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN,
        message if isinstance(message, str) else str(err),
        rich.details if rich is not None else (),
    )


def status_details(status: status_pb2.Status) -> RpcErrorDetails:
    """The same reading of a google.rpc.Status carried in a message (an operation's error)."""
    code = next((c for c in grpc.StatusCode if c.value[0] == status.code), grpc.StatusCode.UNKNOWN)
    return _details(code, status.message, status.details)


def _details(
    code: grpc.StatusCode, message: str, details: Iterable[any_pb2.Any]
) -> RpcErrorDetails:
    found: dict[str, Any] = {}
    violations: list[FieldViolation] = []
    for detail in details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            found.update(reason=info.reason, domain=info.domain, metadata=dict(info.metadata))
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(
                FieldViolation(field=v.field, description=v.description)
                for v in bad_request.field_violations
            )
        elif detail.Is(error_details_pb2.ResourceInfo.DESCRIPTOR):
            resource = error_details_pb2.ResourceInfo()
            detail.Unpack(resource)
            found.update(resource_type=resource.resource_type, resource_name=resource.resource_name)
    return RpcErrorDetails(code=code, message=message, field_violations=tuple(violations), **found)


def describe_rpc_error(err: grpc.RpcError) -> str:
    """A few human lines for a failed RPC, for the CLI; for example (two lines)
    `INVALID_ARGUMENT: bbox must lie inside the image (reason: BAD_BBOX)` followed by
    `  objects[3].bbox.width: must be positive`.
    """
    info = rpc_error_details(err)
    line = f"{info.code.name}: {info.message}"
    facts = [f"reason: {info.reason}"] if info.reason else []
    facts += [f"{key}: {value}" for key, value in sorted(info.metadata.items())]
    if facts:
        line = f"{line} ({', '.join(facts)})"
    lines = [line]
    # A violation that only repeats the message adds just its field name.
    lines += [
        f"  field: {v.field}" if v.description == info.message else f"  {v.field}: {v.description}"
        for v in info.field_violations
    ]
    return "\n".join(lines)
