"""The one place where domain errors become gRPC statuses, and where clients read them back.

Server side:
- `to_rpc_status(exc)` maps a `DomainError` to a `google.rpc.Status`: the code that says what
  happened, the error's message, and details a client can act on (always an `ErrorInfo` with
  domain "agentic-labeling", the stable reason and the metadata; a `BadRequest` naming each bad
  field for `InvalidArgument`; a `ResourceInfo` for `NotFound`).
- `status_message(exc)` does the same for any exception without ending the RPC, for streams
  that report a failed item inside its response message; an unexpected exception is logged with
  its traceback and becomes a generic INTERNAL status that leaks nothing.
- `DomainErrorInterceptor` applies that mapping to every handler of a grpc.aio server, so
  handlers just raise.

Client side: `rpc_error_details(err)` / `describe_rpc_error(err)` turn a `grpc.RpcError` back
into code, message, reason and field violations (for the CLI and for logs).
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped,unused-ignore]
from grpc_status import rpc_status

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

__all__ = [
    "ERROR_DOMAIN",
    "INTERNAL_REASON",
    "DomainErrorInterceptor",
    "RpcErrorDetails",
    "describe_rpc_error",
    "rpc_error_details",
    "status_code_for",
    "status_details",
    "status_message",
    "to_rpc_status",
]

logger = logging.getLogger(__name__)

ERROR_DOMAIN = "agentic-labeling"
INTERNAL_REASON = "INTERNAL"

# Looked up along the exception's MRO, so a subclass (say `TooManyPixels(ResourceExhausted)`)
# gets its parent's code without being listed here.
_CODES: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    Conflict: grpc.StatusCode.ABORTED,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
    DeadlineExceeded: grpc.StatusCode.DEADLINE_EXCEEDED,
    Cancelled: grpc.StatusCode.CANCELLED,
    Unimplemented: grpc.StatusCode.UNIMPLEMENTED,
}

_DETAILS_KEY = "grpc-status-details-bin"

# A status travels in the trailers, and gRPC clients refuse trailers above 8 KiB by default
# (the call then fails with RESOURCE_EXHAUSTED instead of the real error). A batch with
# thousands of bad fields must still arrive as INVALID_ARGUMENT, so trailers are trimmed.
_TRAILER_STATUS_BUDGET = 4096
_TRAILER_MESSAGE_BYTES = 512
_TRAILER_TEXT_BYTES = 200


def status_code_for(exc: DomainError) -> grpc.StatusCode:
    """The gRPC code for a domain error; a bare `DomainError` (no category) is UNKNOWN."""
    for cls in type(exc).__mro__:
        code = _CODES.get(cls)
        if code is not None:
            return code
    return grpc.StatusCode.UNKNOWN


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


Behavior = Callable[[Any, Any], Any]


def _guard(behavior: Behavior, method: str, response_streaming: bool) -> Behavior:
    """Wrap one handler function, keeping its shape (grpc.aio dispatches on that shape).

    grpc.aio calls coroutine functions and async generator functions on the loop, and plain
    functions and generators in a thread with a synchronous context; each keeps its kind.
    `grpc.aio.AbortError` (an async handler called `context.abort` on purpose) passes
    through untouched, as does cancellation (a BaseException, never caught here).
    """
    if inspect.isasyncgenfunction(behavior):

        async def guarded_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            try:
                _refuse_undecodable(request)
                async with contextlib.aclosing(behavior(request, context)) as responses:
                    async for response in responses:
                        yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc, method)

        return guarded_stream

    if inspect.iscoroutinefunction(behavior):

        async def guarded_call(request: Any, context: Any) -> Any:
            try:
                _refuse_undecodable(request)
                return await behavior(request, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:
                await _abort(context, exc, method)

        return guarded_call

    if response_streaming:

        def guarded_sync_stream(request: Any, context: Any) -> Iterator[Any]:
            try:
                _refuse_undecodable(request)
                yield from behavior(request, context)
            except Exception as exc:
                _fail_sync(context, exc, method)

        return guarded_sync_stream

    def guarded_sync_call(request: Any, context: Any) -> Any:
        try:
            _refuse_undecodable(request)
            return behavior(request, context)
        except Exception as exc:
            _fail_sync(context, exc, method)
            return None

    return guarded_sync_call


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


def _guard_handler(handler: Any, method: str) -> Any:
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    # Unary requests only: a streamed request's messages reach the handler's own loop.
    unary_request = {**serializers, "request_deserializer": _tolerant(handler.request_deserializer)}
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(
            _guard(handler.unary_unary, method, False), **unary_request
        )
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(
            _guard(handler.unary_stream, method, True), **unary_request
        )
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(
            _guard(handler.stream_unary, method, False), **serializers
        )
    if handler.stream_stream is not None:
        return grpc.stream_stream_rpc_method_handler(
            _guard(handler.stream_stream, method, True), **serializers
        )
    return handler  # pragma: no cover - a handler always has exactly one behavior


class DomainErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Ends an RPC whose handler raised with the mapped status; the server stays up.

    `DomainError` → its code with google.rpc details (trimmed to fit the trailers);
    any other exception → logged with its traceback, INTERNAL with a generic message.
    """

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: gRPC answers UNIMPLEMENTED itself
        return _guard_handler(handler, handler_call_details.method)


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
        if key == _DETAILS_KEY and isinstance(value, bytes):
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
