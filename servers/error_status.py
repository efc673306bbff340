"""The one place where domain errors become gRPC statuses, on the server.

- `to_rpc_status(exc)` maps a `DomainError` to a `google.rpc.Status`: the code its class
  declares (`errors.py`, read through `rpc_status.status_code_for`), the error's message, and
  details a client can act on (always an `ErrorInfo` with domain "agentic-labeling", the stable
  reason and the metadata; a `BadRequest` naming each bad field for `InvalidArgument`; a
  `ResourceInfo` for `NotFound`).
- `status_message(exc)` does the same for any exception without ending the RPC, for streams
  that report a failed item inside its response message; an unexpected exception is logged with
  its traceback and becomes a generic INTERNAL status that leaks nothing.
- `DomainErrorInterceptor` applies that mapping to every handler of a grpc.aio server, so
  handlers just raise.

Reading a status back (clients, the CLI) lives in `agentic_labeling.rpc_status`.
"""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped,unused-ignore]
from grpc_status import rpc_status

from agentic_labeling.errors import DomainError, InvalidArgument, NotFound
from agentic_labeling.rpc_status import ERROR_DOMAIN, status_code_for
from agentic_labeling.servers.handler_wrapping import (
    CallHooks,
    Deserializer,
    HandlerShape,
    WrappingInterceptor,
)

__all__ = [
    "INTERNAL_REASON",
    "DomainErrorInterceptor",
    "status_message",
    "to_rpc_status",
]

logger = logging.getLogger(__name__)

INTERNAL_REASON = "INTERNAL"

# A status travels in the trailers, and gRPC clients refuse trailers above 8 KiB by default
# (the call then fails with RESOURCE_EXHAUSTED instead of the real error). A batch with
# thousands of bad fields must still arrive as INVALID_ARGUMENT, so trailers are trimmed.
_TRAILER_STATUS_BUDGET = 4096
_TRAILER_MESSAGE_BYTES = 512
_TRAILER_TEXT_BYTES = 200


def _packed(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def to_rpc_status(exc: DomainError) -> status_pb2.Status:
    """The full `google.rpc.Status` for a domain error: code, message and details."""
    details = [
        _packed(
            error_details_pb2.ErrorInfo(
                reason=exc.reason, domain=ERROR_DOMAIN, metadata=dict(exc.metadata)
            )
        )
    ]
    if isinstance(exc, InvalidArgument) and exc.violations:
        details.append(
            _packed(
                error_details_pb2.BadRequest(
                    field_violations=[
                        error_details_pb2.BadRequest.FieldViolation(
                            field=v.field, description=v.description
                        )
                        for v in exc.violations
                    ]
                )
            )
        )
    if isinstance(exc, NotFound):
        details.append(
            _packed(
                error_details_pb2.ResourceInfo(
                    resource_type=exc.resource_type,
                    resource_name=exc.name,
                    description=exc.message,
                )
            )
        )
    return status_pb2.Status(
        code=status_code_for(exc).value[0], message=exc.message, details=details
    )


def _single_domain_error(exc: BaseException) -> DomainError | None:
    """The domain error an exception stands for, looking inside exception groups.

    A handler using `asyncio.TaskGroup` gets its subtask's `NotFound` wrapped in a group; that
    is still a NotFound for the caller. A group holding anything else is a bug.
    """
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        leaves = [_single_domain_error(inner) for inner in exc.exceptions]
        if leaves and all(leaf is not None for leaf in leaves):
            return leaves[0]
    return None


def _internal_status(exc: BaseException, method: str) -> status_pb2.Status:
    # The client learns only an incident id; the traceback stays in the server log under it.
    incident = uuid.uuid4().hex[:16]
    logger.error(
        "unhandled exception",
        exc_info=exc,
        extra={"method": method, "incident_id": incident},
    )
    info = error_details_pb2.ErrorInfo(
        reason=INTERNAL_REASON, domain=ERROR_DOMAIN, metadata={"incident_id": incident}
    )
    return status_pb2.Status(
        code=grpc.StatusCode.INTERNAL.value[0],
        message=f"internal error (incident {incident}); the server log has the details",
        details=[_packed(info)],
    )


def status_message(exc: Exception, *, method: str = "") -> status_pb2.Status:
    """A `google.rpc.Status` for one failed item of a stream; the RPC itself goes on.

    Domain errors map as in `to_rpc_status`. Anything else is a bug: it is logged with its
    traceback (and `method`, when given) and reported as INTERNAL with an incident id only.
    """
    domain_error = _single_domain_error(exc)
    if domain_error is not None:
        return to_rpc_status(domain_error)
    return _internal_status(exc, method)


def _clip(text: str, max_bytes: int) -> str:
    encoded = text.encode()
    if len(encoded) <= max_bytes:
        return text
    return encoded[: max_bytes - 3].decode(errors="ignore") + "..."


def _fit_for_trailers(status: status_pb2.Status) -> status_pb2.Status:
    """`status` small enough for trailers: long texts clipped, surplus field violations cut.

    The ErrorInfo then says how many violations were left out, so the client knows the list
    it sees is partial.
    """
    if status.ByteSize() <= _TRAILER_STATUS_BUDGET:
        return status
    info = error_details_pb2.ErrorInfo()
    violations: list[error_details_pb2.BadRequest.FieldViolation] = []
    others: list[any_pb2.Any] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            violations.extend(bad_request.field_violations)
        else:
            others.append(detail)
    message = _clip(status.message, _TRAILER_MESSAGE_BYTES)
    if violations:
        # Reserve room for the "left out" count before deciding how many violations fit.
        info.metadata["omitted_field_violations"] = str(len(violations))
    base = status_pb2.Status(code=status.code, message=message, details=[_packed(info), *others])
    if base.ByteSize() > _TRAILER_STATUS_BUDGET:
        # Oversized metadata or resource details: keep only what the client switches on.
        slim = error_details_pb2.ErrorInfo(reason=info.reason, domain=info.domain)
        return status_pb2.Status(code=status.code, message=message, details=[_packed(slim)])
    kept = error_details_pb2.BadRequest()
    room = _TRAILER_STATUS_BUDGET - base.ByteSize() - 8  # 8: Any and field framing
    for violation in violations:
        clipped = error_details_pb2.BadRequest.FieldViolation(
            field=_clip(violation.field, _TRAILER_TEXT_BYTES),
            description=_clip(violation.description, _TRAILER_TEXT_BYTES),
        )
        cost = clipped.ByteSize() + 4  # tag and length of the repeated field
        if cost > room:
            break
        kept.field_violations.append(clipped)
        room -= cost
    omitted = len(violations) - len(kept.field_violations)
    if omitted:
        info.metadata["omitted_field_violations"] = str(omitted)
    else:
        info.metadata.pop("omitted_field_violations", None)
    details = [_packed(info), *others]
    if kept.field_violations:
        details.append(_packed(kept))
    return status_pb2.Status(code=status.code, message=message, details=details)


def _status_for(exc: Exception, method: str) -> status_pb2.Status:
    domain_error = _single_domain_error(exc)
    if domain_error is None:
        return _internal_status(exc, method)
    status = to_rpc_status(domain_error)
    logger.info(
        "rpc failed",
        extra={
            "method": method,
            "code": status_code_for(domain_error).name,
            "reason": domain_error.reason,
        },
    )
    return _fit_for_trailers(status)


async def _abort(context: Any, exc: Exception, method: str) -> NoReturn:
    status = rpc_status.to_status(_status_for(exc, method))
    await context.abort(status.code, status.details, status.trailing_metadata)
    raise AssertionError("context.abort returned")  # pragma: no cover - abort always raises


def _fail_sync(context: Any, exc: Exception, method: str) -> None:
    # grpc.aio runs sync handlers in a thread with a context whose abort() does not raise
    # and, for streaming handlers, never sends the status (the client waits for its
    # deadline). Setting the status and ending the handler works for every sync shape.
    status = rpc_status.to_status(_status_for(exc, method))
    context.set_code(status.code)
    context.set_details(status.details)
    context.set_trailing_metadata(tuple(status.trailing_metadata))


class _GuardedCall(CallHooks):
    """One call of a handler: an exception it raises ends the RPC with the mapped status.

    `grpc.aio.AbortError` (an async handler called `context.abort` on purpose) passes
    through untouched, as does cancellation (a BaseException, never caught here).
    """

    def __init__(self, context: Any, method: str) -> None:
        super().__init__(context)
        self._method = method

    def begin(self, request: Any) -> Any:
        _refuse_undecodable(request)
        return request

    async def failed(self, error: BaseException) -> None:
        if isinstance(error, Exception) and not isinstance(error, grpc.aio.AbortError):
            await _abort(self.context, error, self._method)
        raise error

    def failed_sync(self, error: BaseException) -> None:
        if not isinstance(error, Exception):
            raise error
        _fail_sync(self.context, error, self._method)


@dataclass(frozen=True)
class _Undecodable:
    """A request whose bytes are no valid message, handed to the guard instead of failing in
    gRPC's deserializer (which answers UNKNOWN): e.g. a string field that is not UTF-8, such
    as an encoded lone surrogate, which no protobuf runtime accepts."""

    error: str


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except DecodeError as error:
            return _Undecodable(str(error))

    return deserialize


def _refuse_undecodable(request: Any) -> None:
    if isinstance(request, _Undecodable):
        raise InvalidArgument(
            f"the request is not a valid message ({request.error}); string fields must be "
            "UTF-8 text",
            field="request",
            reason="UNDECODABLE_REQUEST",
        )


class DomainErrorInterceptor(WrappingInterceptor):
    """Ends an RPC whose handler raised with the mapped status; the server stays up.

    `DomainError` → its code with google.rpc details (trimmed to fit the trailers);
    any other exception → logged with its traceback, INTERNAL with a generic message.
    """

    def hooks(self, method: str, shape: HandlerShape) -> Callable[[Any], CallHooks]:
        return functools.partial(_GuardedCall, method=method)

    def unary_request_deserializer(self, deserializer: Deserializer) -> Deserializer:
        return _tolerant(deserializer)
