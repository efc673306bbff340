"""The one way a server interceptor wraps every handler: hooks around each call, any shape.

grpc.aio dispatches on a handler function's kind: coroutine functions and async generator
functions run on the event loop; plain functions and generators run in a thread with a
synchronous context. A wrapper must keep that kind, and handle unary and streamed responses;
this module does that once. A concern (error mapping, metrics) says only what it does around
one call, as `CallHooks`, and subclasses `WrappingInterceptor`.

Interceptors nest in the order the server lists them, the first outermost: `bootstrap.py`
installs metrics, then errors, so metrics see the status code an error was mapped to.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = [
    "HANDLER_SHAPES",
    "Behavior",
    "CallHooks",
    "Deserializer",
    "HandlerShape",
    "WrappingInterceptor",
    "wrap_behavior",
    "wrap_handler",
]

Behavior = Callable[[Any, Any], Any]
Deserializer = Callable[[bytes], Any] | None


@dataclass(frozen=True)
class HandlerShape:
    """One of the four RPC shapes: which attribute of an RpcMethodHandler holds its function,
    and how to build a handler of that shape again."""

    attribute: str
    request_streaming: bool
    response_streaming: bool
    rpc_type: str  # as go-grpc-prometheus names it: unary, client_stream, ...
    make: Callable[..., Any]


HANDLER_SHAPES: tuple[HandlerShape, ...] = (
    HandlerShape("unary_unary", False, False, "unary", grpc.unary_unary_rpc_method_handler),
    HandlerShape(
        "unary_stream", False, True, "server_stream", grpc.unary_stream_rpc_method_handler
    ),
    HandlerShape(
        "stream_unary", True, False, "client_stream", grpc.stream_unary_rpc_method_handler
    ),
    HandlerShape("stream_stream", True, True, "bidi_stream", grpc.stream_stream_rpc_method_handler),
)


class CallHooks:
    """What one concern does around one call of a handler; a fresh instance per call.

    The defaults do nothing: the handler gets the request and context as they came, and every
    exception passes on.
    """

    def __init__(self, context: Any) -> None:
        self.context = context  # what the handler (or the next wrapper) gets as its context

    def begin(self, request: Any) -> Any:
        """What the handler gets as its request. May raise: that counts as the handler's error."""
        return request

    def streamed(self) -> None:
        """A streamed response is about to go to the client."""

    async def failed(self, error: BaseException) -> None:
        """The handler of an async kind raised `error` (cancellation included). Raise to pass
        it (or another exception) on; return to end the call quietly (a unary call answers
        None, a stream ends)."""
        raise error

    def failed_sync(self, error: BaseException) -> None:
        """As `failed`, for a handler that runs in a thread."""
        raise error

    def finish(self, error: BaseException | None, response: Any) -> None:
        """The call is over: `error` is what leaves the wrapper (None: it ended normally), and
        `response` the unary response returned (None for streams and failures)."""


def wrap_behavior(
    behavior: Behavior, response_streaming: bool, hooks: Callable[[Any], CallHooks]
) -> Behavior:
    """`behavior` with `hooks(context)` around each call, keeping its kind.

    Async kinds are told apart by the function; a sync handler streams when its shape does
    (it may return any iterator, not only be a generator function).
    """
    if inspect.isasyncgenfunction(behavior):

        async def hooked_stream(request: Any, context: Any) -> AsyncIterator[Any]:
            call = hooks(context)
            leaving: BaseException | None = None
            try:
                responses = behavior(call.begin(request), call.context)
                async with contextlib.aclosing(responses):
                    async for response in responses:
                        call.streamed()
                        yield response
            except BaseException as error:
                try:
                    await call.failed(error)
                except BaseException as raised:
                    leaving = raised
                    raise
            finally:
                call.finish(leaving, None)

        return hooked_stream

    if inspect.iscoroutinefunction(behavior):

        async def hooked_call(request: Any, context: Any) -> Any:
            call = hooks(context)
            leaving: BaseException | None = None
            response = None
            try:
                response = await behavior(call.begin(request), call.context)
            except BaseException as error:
                try:
                    await call.failed(error)
                except BaseException as raised:
                    leaving = raised
                    raise
            finally:
                call.finish(leaving, response)
            return response

        return hooked_call

    if response_streaming:

        def hooked_sync_stream(request: Any, context: Any) -> Iterator[Any]:
            call = hooks(context)
            leaving: BaseException | None = None
            try:
                responses = behavior(call.begin(request), call.context)
                try:
                    for response in responses:
                        call.streamed()
                        yield response
                finally:
                    # As `yield from` would: a closed stream closes the handler's generator.
                    close = getattr(responses, "close", None)
                    if close is not None:
                        close()
            except BaseException as error:
                try:
                    call.failed_sync(error)
                except BaseException as raised:
                    leaving = raised
                    raise
            finally:
                call.finish(leaving, None)

        return hooked_sync_stream

    def hooked_sync_call(request: Any, context: Any) -> Any:
        call = hooks(context)
        leaving: BaseException | None = None
        response = None
        try:
            response = behavior(call.begin(request), call.context)
        except BaseException as error:
            try:
                call.failed_sync(error)
            except BaseException as raised:
                leaving = raised
                raise
        finally:
            call.finish(leaving, response)
        return response

    return hooked_sync_call


def wrap_handler(handler: Any, method: str, interceptor: WrappingInterceptor) -> Any:
    """An RpcMethodHandler like `handler`, its function wrapped with `interceptor`'s hooks."""
    for shape in HANDLER_SHAPES:
        behavior = getattr(handler, shape.attribute)
        if behavior is None:
            continue
        deserializer = handler.request_deserializer
        if not shape.request_streaming:
            # Unary requests only: a streamed request's messages reach the handler's own loop.
            deserializer = interceptor.unary_request_deserializer(deserializer)
        return shape.make(
            wrap_behavior(behavior, shape.response_streaming, interceptor.hooks(method, shape)),
            request_deserializer=deserializer,
            response_serializer=handler.response_serializer,
        )
    return handler  # pragma: no cover - a handler always has exactly one behavior


class WrappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """A grpc.aio interceptor that wraps every known method's handler with `hooks`."""

    def hooks(self, method: str, shape: HandlerShape) -> Callable[[Any], CallHooks]:
        """What to put around each call of `method` (`/pkg.Service/Method`): a function of the
        call's context that returns that call's hooks."""
        raise NotImplementedError

    def unary_request_deserializer(self, deserializer: Deserializer) -> Deserializer:
        """The deserializer for a unary request; by default gRPC's own."""
        return deserializer

    async def intercept_service(
        self,
        continuation: Callable[[Any], Awaitable[Any]],
        handler_call_details: Any,
    ) -> Any:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # unknown method: gRPC answers UNIMPLEMENTED itself; nothing is wrapped
        return wrap_handler(handler, handler_call_details.method, self)
