"""Typed async client of RegistryService: the orchestrator's only way to reach the registry.

A few calls, the ones AutoLabel needs (create or get a source, add a frame, create a batch of
objects, list the objects of a source), each with a deadline. Failures come back as domain
errors, never as `grpc.RpcError`, keeping the registry's reason, metadata and field
violations: each code becomes the class that declares it in `errors.py` (INVALID_ARGUMENT is
InvalidArgument, NOT_FOUND NotFound, ABORTED Conflict, ...); UNAVAILABLE, and whatever else
says the registry itself failed (INTERNAL, UNKNOWN, DATA_LOSS, ...), is Unavailable: the
request was fine, retrying later may work.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc

from agentic_labeling.channel_options import channel_options
from agentic_labeling.errors import (
    DomainError,
    InvalidArgument,
    NotFound,
    Unavailable,
    Unimplemented,
)
from agentic_labeling.rpc_status import error_class_for, rpc_error_details
from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc

__all__ = ["LIST_PAGE_SIZE", "RegistryClient"]

_MiB = 1024 * 1024
LIST_PAGE_SIZE = 1000  # the registry's largest page
_SERVICE = "agentic_labeling.v1.RegistryService"

Reply = TypeVar("Reply")


def domain_error(err: grpc.RpcError, method: str, address: str) -> DomainError:
    """The domain error a failed registry call stands for (see the module docstring)."""
    details = rpc_error_details(err)
    metadata = {**details.metadata, "service": "registry"}
    reason = details.reason or None
    code = details.code
    error_class = error_class_for(code)
    if error_class is InvalidArgument:
        return InvalidArgument(
            details.message,
            violations=list(details.field_violations),
            reason=reason,
            metadata=metadata,
        )
    if error_class is NotFound:
        return NotFound(
            details.resource_type or "resource", details.resource_name or details.message
        )
    if error_class is Unimplemented:
        return Unimplemented(f"{_SERVICE}.{method}")
    if error_class is not None and error_class is not Unavailable:
        return error_class(f"registry: {details.message}", reason=reason, metadata=metadata)
    return Unavailable(
        f"registry at {address} failed {method}: {code.name}: {details.message}",
        reason="REGISTRY_UNAVAILABLE",
        metadata={**metadata, "code": code.name},
    )


class RegistryClient:
    """RegistryService over one gRPC channel, shared by every concurrent caller.

    Use as `async with RegistryClient(url) as registry: ...`. Every call takes `timeout_s`,
    the caller's remaining deadline; None uses `deadline_s` (the client's default).
    """

    def __init__(
        self, url: str, *, deadline_s: float = 60.0, max_message_bytes: int = 64 * _MiB
    ) -> None:
        self.url = url
        self.deadline_s = deadline_s
        self._channel = grpc.aio.insecure_channel(
            url, options=channel_options(url, max_message_bytes=max_message_bytes)
        )
        self._stub = registry_pb2_grpc.RegistryServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._channel.close()

    async def _call(
        self,
        method: str,
        request: Any,
        timeout_s: float | None,
    ) -> Any:
        call: Callable[..., Awaitable[Any]] = getattr(self._stub, method)
        try:
            return await call(request, timeout=self.deadline_s if timeout_s is None else timeout_s)
        except grpc.RpcError as err:
            raise domain_error(err, method, self.url) from None

    async def create_source(
        self,
        *,
        kind: common_pb2.SourceKind,
        width: int,
        height: int,
        content_sha256: str = "",
        display_name: str = "",
        image_data: bytes = b"",
        return_existing: bool = True,
        timeout_s: float | None = None,
    ) -> registry_pb2.Source:
        """Register a source (`kind`: a common_pb2.SourceKind); with `return_existing` a known
        content hash returns its source. `image_data` goes to the registry's image store."""
        request = registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=kind,
                width=width,
                height=height,
                content_sha256=content_sha256,
                display_name=display_name,
            ),
            return_existing=return_existing,
            image_data=image_data,
        )
        source: registry_pb2.Source = await self._call("CreateSource", request, timeout_s)
        return source

    async def get_source(self, name: str, *, timeout_s: float | None = None) -> registry_pb2.Source:
        request = registry_pb2.GetSourceRequest(name=name)
        source: registry_pb2.Source = await self._call("GetSource", request, timeout_s)
        return source

    async def create_frame(
        self,
        parent: str,
        frame: registry_pb2.Frame,
        *,
        image_data: bytes = b"",
        timeout_s: float | None = None,
    ) -> registry_pb2.Frame:
        """Add a frame to the video source `parent`; AlreadyExists when its index is taken.
        `image_data` goes to the registry's image store."""
        request = registry_pb2.CreateFrameRequest(parent=parent, frame=frame, image_data=image_data)
        created: registry_pb2.Frame = await self._call("CreateFrame", request, timeout_s)
        return created

    async def batch_create_objects(
        self,
        request_id: str,
        objects: Sequence[registry_pb2.CreateObjectRequest],
        *,
        create_missing_categories: bool = False,
        duplicate_iou_threshold: float | None = None,
        timeout_s: float | None = None,
    ) -> registry_pb2.BatchCreateObjectsResponse:
        """Create objects all or nothing, once per request_id (a retry replays the answer)."""
        request = registry_pb2.BatchCreateObjectsRequest(
            request_id=request_id,
            requests=objects,
            create_missing_categories=create_missing_categories,
        )
        if duplicate_iou_threshold is not None:
            request.duplicate_iou_threshold = duplicate_iou_threshold
        response: registry_pb2.BatchCreateObjectsResponse = await self._call(
            "BatchCreateObjects", request, timeout_s
        )
        return response

    async def list_objects(
        self,
        *,
        source: str,
        frame_index: int | None = None,
        page_size: int = LIST_PAGE_SIZE,
        timeout_s: float | None = None,
    ) -> list[registry_pb2.LabeledObject]:
        """Every object of a source (of one of its frames), oldest first: all pages, within
        `timeout_s` together."""
        conditions = [f'source = "{source}"']
        if frame_index is not None:
            conditions.append(f"frame_index = {frame_index}")
        request = registry_pb2.ListObjectsRequest(
            filter=" AND ".join(conditions), order_by="create_time", page_size=page_size
        )
        found: list[registry_pb2.LabeledObject] = []
        ends = time.monotonic() + (self.deadline_s if timeout_s is None else timeout_s)
        while True:
            left = max(ends - time.monotonic(), 0.001)
            page: registry_pb2.ListObjectsResponse = await self._call("ListObjects", request, left)
            found.extend(page.objects)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token
