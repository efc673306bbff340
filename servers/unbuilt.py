"""Honest UNIMPLEMENTED for RPCs that are in the contract but not built yet.

The generated servicer base classes answer unbuilt methods by raising NotImplementedError,
which a grpc.aio server reports as UNKNOWN (our interceptor would even call it INTERNAL).
`answer_unbuilt_methods` replaces every method a servicer class does not define itself with
one that raises `Unimplemented`, so clients get UNIMPLEMENTED with an ErrorInfo naming the
method.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from agentic_labeling.errors import Unimplemented

__all__ = ["answer_unbuilt_methods"]

ServicerClass = TypeVar("ServicerClass", bound=type)

_GENERATED_MODULE_PREFIXES = ("agentic_labeling.v1.", "google.longrunning.")


def _is_generated(function: object) -> bool:
    module = getattr(function, "__module__", "") or ""
    return module.startswith(_GENERATED_MODULE_PREFIXES)


def _unbuilt(method: MethodDescriptor) -> Callable[..., Any]:
    full_name = f"{method.containing_service.full_name}.{method.name}"
    if method.server_streaming:

        async def unbuilt_stream(
            self: object, request: object, context: object
        ) -> AsyncIterator[Any]:
            raise Unimplemented(full_name)
            yield  # unreachable; makes this an async generator, as streaming handlers are

        return unbuilt_stream

    async def unbuilt_unary(self: object, request: object, context: object) -> Any:
        raise Unimplemented(full_name)

    return unbuilt_unary


def answer_unbuilt_methods(
    service: ServiceDescriptor,
) -> Callable[[ServicerClass], ServicerClass]:
    """Class decorator: methods of `service` left to the generated base raise Unimplemented."""

    def decorate(cls: ServicerClass) -> ServicerClass:
        for method in service.methods:
            if _is_generated(getattr(cls, method.name, None)):
                setattr(cls, method.name, _unbuilt(method))
        return cls

    return decorate
