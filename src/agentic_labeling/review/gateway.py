"""The review app's only way to the registry: RegistryService over one async gRPC channel.

Each reviewer decision is exactly one RPC: accept or relabel any number of objects is one
`ValidateObjects`, reject is one `DeleteObject`, a box edit is one `UpdateObject`. Failures
come back as the same domain errors as the orchestrator's client (`clients.registry_client`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from agentic_labeling.channel_options import channel_options
from agentic_labeling.clients.registry_client import domain_error
from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc

__all__ = ["Correction", "RegistryGateway"]

_MiB = 1024 * 1024
_DECISIONS = frozenset({"ValidateObjects", "UpdateObject", "DeleteObject"})


@dataclass(frozen=True)
class Correction:
    """A reviewer's change of one object, saved with its validation."""

    name: str
    category_name: str = ""
    bbox: tuple[float, float, float, float] | None = None


class RegistryGateway:
    """The RegistryService calls the review app makes, each with a deadline."""

    def __init__(self, url: str, *, deadline_s: float = 10.0, max_message_bytes: int = 64 * _MiB):
        self.url = url
        self.deadline_s = deadline_s
        # Decision RPCs sent (validate, update, delete): "decisions per round trip" divides
        # the decisions the app took by this.
        self.decision_round_trips = 0
        self._channel = grpc.aio.insecure_channel(
            url, options=channel_options(url, max_message_bytes=max_message_bytes)
        )
        self._stub = registry_pb2_grpc.RegistryServiceStub(self._channel)  # type: ignore[no-untyped-call]

    async def close(self) -> None:
        await self._channel.close()

    async def _call(self, method: str, request: Any) -> Any:
        if method in _DECISIONS:
            self.decision_round_trips += 1
        try:
            return await getattr(self._stub, method)(request, timeout=self.deadline_s)
        except grpc.RpcError as err:
            raise domain_error(err, method, self.url) from None

    async def list_objects(
        self, *, filter: str, order_by: str, page_size: int, page_token: str = ""
    ) -> registry_pb2.ListObjectsResponse:
        request = registry_pb2.ListObjectsRequest(
            filter=filter, order_by=order_by, page_size=page_size, page_token=page_token
        )
        page: registry_pb2.ListObjectsResponse = await self._call("ListObjects", request)
        return page

    async def get_object(self, name: str) -> registry_pb2.LabeledObject:
        found: registry_pb2.LabeledObject = await self._call(
            "GetObject", registry_pb2.GetObjectRequest(name=name)
        )
        return found

    async def get_source(self, name: str) -> registry_pb2.Source:
        source: registry_pb2.Source = await self._call(
            "GetSource", registry_pb2.GetSourceRequest(name=name)
        )
        return source

    async def get_source_image(
        self, name: str, frame_index: int | None = None
    ) -> registry_pb2.SourceImage:
        """The encoded image of source `name`, or of its frame `frame_index`."""
        request = registry_pb2.GetSourceImageRequest(name=name)
        if frame_index is not None:
            request.frame_index = frame_index
        image: registry_pb2.SourceImage = await self._call("GetSourceImage", request)
        return image

    async def get_mask(self, name: str) -> registry_pb2.ObjectMask:
        mask: registry_pb2.ObjectMask = await self._call(
            "GetObjectMask", registry_pb2.GetObjectMaskRequest(name=name)
        )
        return mask

    async def categories(self) -> list[registry_pb2.Category]:
        """Every category (all pages)."""
        found: list[registry_pb2.Category] = []
        request = registry_pb2.ListCategoriesRequest(page_size=1000, order_by="display_name")
        while True:
            page: registry_pb2.ListCategoriesResponse = await self._call("ListCategories", request)
            found.extend(page.categories)
            if not page.next_page_token:
                return found
            request.page_token = page.next_page_token

    async def validate(
        self,
        names: Sequence[str],
        corrections: Sequence[Correction],
        *,
        validated_by: str,
        is_validated: bool = True,
    ) -> list[registry_pb2.LabeledObject]:
        """Accept `names` and correct-and-accept `corrections`: one RPC however many."""
        request = registry_pb2.ValidateObjectsRequest(
            names=list(names), validated_by=validated_by, is_validated=is_validated
        )
        for c in corrections:
            correction = request.corrections.add(object=c.name, category_name=c.category_name)
            if c.bbox is not None:
                x, y, w, h = c.bbox
                correction.bbox.CopyFrom(common_pb2.BoundingBox(x=x, y=y, width=w, height=h))
        reply: registry_pb2.ValidateObjectsResponse = await self._call("ValidateObjects", request)
        return list(reply.objects)

    async def update_bbox(
        self, name: str, bbox: tuple[float, float, float, float]
    ) -> registry_pb2.LabeledObject:
        x, y, w, h = bbox
        request = registry_pb2.UpdateObjectRequest(
            object=registry_pb2.LabeledObject(
                name=name, bbox=common_pb2.BoundingBox(x=x, y=y, width=w, height=h)
            ),
            update_mask=field_mask_pb2.FieldMask(paths=["bbox"]),
        )
        updated: registry_pb2.LabeledObject = await self._call("UpdateObject", request)
        return updated

    async def delete(self, name: str) -> None:
        await self._call("DeleteObject", registry_pb2.DeleteObjectRequest(name=name))

    async def similar(
        self, name: str, *, top_k: int, filter: str = ""
    ) -> list[registry_pb2.SimilarObject]:
        request = registry_pb2.SearchSimilarRequest(object=name, top_k=top_k, filter=filter)
        reply: registry_pb2.SearchSimilarResponse = await self._call("SearchSimilar", request)
        return list(reply.results)

    async def stats(self, *, filter: str = "", bins: int = 10) -> registry_pb2.Stats:
        request = registry_pb2.GetStatsRequest(filter=filter, histogram_bins=bins)
        stats: registry_pb2.Stats = await self._call("GetStats", request)
        return stats

    async def reachable(self) -> bool:
        """Whether the registry answers at all (the health route's question)."""
        try:
            await self._stub.ListCategories(
                registry_pb2.ListCategoriesRequest(page_size=1), timeout=self.deadline_s
            )
        except grpc.RpcError:  # any failure means the page should say "registry down"
            return False
        return True
