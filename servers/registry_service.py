"""RegistryService on the registry's stores, google.longrunning.Operations for the slow
methods of DatasetService (servers/dataset_service.py), and TrainingService declared, not built
yet (UNIMPLEMENTED).

Each handler converts the request (servers/registry_conversions.py), calls one method of the
registry's front door (`Registry`, registry/coordinator.py: it reads the stores, keeps them in
agreement and does the file work off the event loop), and converts the result. Errors are
domain errors raised below and mapped to status codes in one place (servers/error_status.py).
"""

from __future__ import annotations

from typing import Any

from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import empty_pb2

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.servers import registry_conversions as wire
from agentic_labeling.servers.operation_store import OperationStore
from agentic_labeling.storable_text import check_storable
from agentic_labeling.v1 import (
    registry_pb2,
    registry_pb2_grpc,
)

__all__ = ["OperationsServicer", "RegistryServicer"]

Empty = empty_pb2.Empty


class RegistryServicer(registry_pb2_grpc.RegistryServiceServicer):
    """Each handler: convert the request, call one `Registry` method, convert the result."""

    def __init__(self, registry: Registry) -> None:
        self._registry = registry

    # --- sources and frames -------------------------------------------------------------------

    async def CreateSource(
        self, request: registry_pb2.CreateSourceRequest, context: Any
    ) -> registry_pb2.Source:
        new, source_id = wire.new_source(request)
        created = await self._registry.create_source(
            new, request.image_data, source_id=source_id, return_existing=request.return_existing
        )
        return wire.source_message(created)

    async def GetSource(
        self, request: registry_pb2.GetSourceRequest, context: Any
    ) -> registry_pb2.Source:
        source_id = wire.uuid_from_name(request.name, "sources", "name")
        return wire.source_message(await self._registry.get_source(source_id))

    async def ListSources(
        self, request: registry_pb2.ListSourcesRequest, context: Any
    ) -> registry_pb2.ListSourcesResponse:
        page = await self._registry.list_sources(
            filter=request.filter,
            order_by=request.order_by,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return wire.list_sources_response(page)

    async def DeleteSource(self, request: registry_pb2.DeleteSourceRequest, context: Any) -> Empty:
        await self._registry.delete_source(wire.uuid_from_name(request.name, "sources", "name"))
        return Empty()

    async def CreateFrame(
        self, request: registry_pb2.CreateFrameRequest, context: Any
    ) -> registry_pb2.Frame:
        source_id, new = wire.new_frame(request)
        created = await self._registry.create_frame(source_id, new, request.image_data)
        return wire.frame_message(created)

    async def ListFrames(
        self, request: registry_pb2.ListFramesRequest, context: Any
    ) -> registry_pb2.ListFramesResponse:
        source_id = wire.uuid_from_name(request.parent, "sources", "parent")
        page = await self._registry.list_frames(
            source_id, page_size=request.page_size, page_token=request.page_token
        )
        return wire.list_frames_response(page)

    async def GetSourceImage(
        self, request: registry_pb2.GetSourceImageRequest, context: Any
    ) -> registry_pb2.SourceImage:
        source_id = wire.uuid_from_name(request.name, "sources", "name")
        frame_index = wire.source_image_frame_index(request)
        image = await self._registry.get_source_image(source_id, frame_index)
        return wire.source_image_message(image)

    # --- categories ---------------------------------------------------------------------------

    async def CreateCategory(
        self, request: registry_pb2.CreateCategoryRequest, context: Any
    ) -> registry_pb2.Category:
        created = await self._registry.create_category(wire.new_category(request))
        return wire.category_message(created)

    async def GetCategory(
        self, request: registry_pb2.GetCategoryRequest, context: Any
    ) -> registry_pb2.Category:
        category_id = wire.uuid_from_name(request.name, "categories", "name")
        return wire.category_message(await self._registry.get_category(category_id))

    async def ListCategories(
        self, request: registry_pb2.ListCategoriesRequest, context: Any
    ) -> registry_pb2.ListCategoriesResponse:
        page = await self._registry.list_categories(
            filter=request.filter,
            order_by=request.order_by,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return wire.list_categories_response(page)

    async def UpdateCategory(
        self, request: registry_pb2.UpdateCategoryRequest, context: Any
    ) -> registry_pb2.Category:
        update = wire.category_changes(request)
        updated = await self._registry.update_category(
            update.category_id,
            paths=update.paths,
            display_name=update.display_name,
            synonyms=update.synonyms,
        )
        return wire.category_message(updated)

    async def DeleteCategory(
        self, request: registry_pb2.DeleteCategoryRequest, context: Any
    ) -> Empty:
        category_id = wire.uuid_from_name(request.name, "categories", "name")
        await self._registry.delete_category(category_id, force=request.force)
        return Empty()

    # --- objects ------------------------------------------------------------------------------

    async def BatchCreateObjects(
        self, request: registry_pb2.BatchCreateObjectsRequest, context: Any
    ) -> registry_pb2.BatchCreateObjectsResponse:
        options = wire.batch_options(request)
        pairs = wire.new_objects(request)
        result = await self._registry.create_objects(
            options.request_id,
            [new for new, _ in pairs],
            [mask for _, mask in pairs],
            create_missing_categories=options.create_missing_categories,
            duplicate_iou_threshold=options.duplicate_iou_threshold,
        )
        return wire.batch_create_response(result)

    async def GetObject(
        self, request: registry_pb2.GetObjectRequest, context: Any
    ) -> registry_pb2.LabeledObject:
        object_id = wire.uuid_from_name(request.name, "objects", "name")
        return wire.object_message(await self._registry.get_object(object_id))

    async def ListObjects(
        self, request: registry_pb2.ListObjectsRequest, context: Any
    ) -> registry_pb2.ListObjectsResponse:
        page = await self._registry.list_objects(
            filter=request.filter,
            order_by=request.order_by,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return wire.list_objects_response(page)

    async def UpdateObject(
        self, request: registry_pb2.UpdateObjectRequest, context: Any
    ) -> registry_pb2.LabeledObject:
        update = wire.object_changes(request)
        updated = await self._registry.update_object(update.object_id, update.changes, update.paths)
        return wire.object_message(updated)

    async def DeleteObject(self, request: registry_pb2.DeleteObjectRequest, context: Any) -> Empty:
        await self._registry.delete_object(wire.uuid_from_name(request.name, "objects", "name"))
        return Empty()

    async def GetObjectMask(
        self, request: registry_pb2.GetObjectMaskRequest, context: Any
    ) -> registry_pb2.ObjectMask:
        object_id = wire.uuid_from_name(request.name, "objects", "name")
        mask = await self._registry.object_mask(object_id)
        return wire.object_mask_message(
            mask.object_id, mask.png, width=mask.width, height=mask.height
        )

    async def ValidateObjects(
        self, request: registry_pb2.ValidateObjectsRequest, context: Any
    ) -> registry_pb2.ValidateObjectsResponse:
        pairs = wire.corrections(request)
        object_ids = wire.uuids_from_names(request.names, "objects", "names")
        track_ids = wire.uuids_from_names(request.tracks, "tracks", "tracks")
        records = await self._registry.validate_objects(
            object_ids,
            [correction for correction, _ in pairs],
            [mask for _, mask in pairs],
            validated_by=request.validated_by,
            is_validated=request.is_validated,
            track_ids=track_ids,
        )
        return wire.validate_objects_response(records)

    async def SearchSimilar(
        self, request: registry_pb2.SearchSimilarRequest, context: Any
    ) -> registry_pb2.SearchSimilarResponse:
        query = wire.similarity_query(request)
        found = await self._registry.search_similar(
            object_id=query.object_id,
            vector=query.vector,
            filter_text=query.filter,
            top_k=query.top_k,
            hnsw_ef=query.hnsw_ef,
            exact=query.exact,
        )
        return wire.search_similar_response(found)

    async def GetStats(
        self, request: registry_pb2.GetStatsRequest, context: Any
    ) -> registry_pb2.Stats:
        stats = await self._registry.stats(
            filter=request.filter, histogram_bins=request.histogram_bins
        )
        return wire.stats_message(stats)

    # --- tracks -------------------------------------------------------------------------------

    async def ListTracks(
        self, request: registry_pb2.ListTracksRequest, context: Any
    ) -> registry_pb2.ListTracksResponse:
        page = await self._registry.list_tracks(
            filter=request.filter,
            order_by=request.order_by,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return wire.list_tracks_response(page)

    async def GetTrack(
        self, request: registry_pb2.GetTrackRequest, context: Any
    ) -> registry_pb2.Track:
        track_id = wire.uuid_from_name(request.name, "tracks", "name")
        return wire.track_message(await self._registry.get_track(track_id))

    async def CreateTrack(
        self, request: registry_pb2.CreateTrackRequest, context: Any
    ) -> registry_pb2.Track:
        new = wire.new_track(request)
        created = await self._registry.create_track(
            new.source_id, new.object_ids, track_id=new.track_id
        )
        return wire.track_message(created)

    async def MergeTracks(
        self, request: registry_pb2.MergeTracksRequest, context: Any
    ) -> registry_pb2.Track:
        track_ids = wire.uuids_from_names(request.names, "tracks", "names")
        return wire.track_message(await self._registry.merge_tracks(track_ids))

    async def SplitTrack(
        self, request: registry_pb2.SplitTrackRequest, context: Any
    ) -> registry_pb2.SplitTrackResponse:
        track_id = wire.uuid_from_name(request.name, "tracks", "name")
        result = await self._registry.split_track(track_id, request.frame_index)
        return wire.split_track_response(result)

    async def ReconcileStores(
        self, request: registry_pb2.ReconcileStoresRequest, context: Any
    ) -> registry_pb2.ReconcileStoresResponse:
        report = await self._registry.reconcile(dry_run=request.dry_run)
        return registry_pb2.ReconcileStoresResponse(
            outbox_applied=report.outbox_applied,
            vectors_restored=report.vectors_restored,
            vectors_removed=report.vectors_removed,
            masks_missing=report.masks_missing,
            masks_removed=report.masks_removed,
        )

    # --- facts clients must agree with ------------------------------------------------------

    async def GetRegistryInfo(
        self, request: registry_pb2.GetRegistryInfoRequest, context: Any
    ) -> registry_pb2.RegistryInfo:
        # The dimension the stores were opened with (recorded in Postgres): no query needed.
        return registry_pb2.RegistryInfo(embedding_dimension=self._registry.embedding_dimension)


class OperationsServicer(operations_pb2_grpc.OperationsServicer):  # type: ignore[misc]
    """google.longrunning.Operations for the slow dataset and training methods."""

    def __init__(self, operations: OperationStore) -> None:
        self._operations = operations

    async def GetOperation(
        self, request: operations_pb2.GetOperationRequest, context: Any
    ) -> operations_pb2.Operation:
        return await self._operations.get(_operation_name(request.name))

    async def ListOperations(
        self, request: operations_pb2.ListOperationsRequest, context: Any
    ) -> operations_pb2.ListOperationsResponse:
        if request.filter:
            raise InvalidArgument("ListOperations takes no filter here", field="filter")
        if request.page_size < 0:
            raise InvalidArgument("page_size must not be negative", field="page_size")
        check_storable(request.page_token, "page_token")  # operations may live in Postgres
        operations, token = await self._operations.list(
            page_size=request.page_size, page_token=request.page_token
        )
        return operations_pb2.ListOperationsResponse(operations=operations, next_page_token=token)

    async def WaitOperation(
        self, request: operations_pb2.WaitOperationRequest, context: Any
    ) -> operations_pb2.Operation:
        name = _operation_name(request.name)
        timeout_s: float | None = None
        if request.HasField("timeout"):
            timeout_s = request.timeout.ToTimedelta().total_seconds()
            if timeout_s < 0:
                raise InvalidArgument("timeout must not be negative", field="timeout")
        remaining = context.time_remaining()
        if remaining is not None:  # answer before the caller's deadline, not after it
            timeout_s = (
                max(0.0, remaining - 0.1)
                if timeout_s is None
                else min(timeout_s, max(0.0, remaining - 0.1))
            )
        return await self._operations.wait(name, timeout_s)

    async def CancelOperation(
        self, request: operations_pb2.CancelOperationRequest, context: Any
    ) -> Empty:
        await self._operations.cancel(_operation_name(request.name))
        return Empty()

    async def DeleteOperation(
        self, request: operations_pb2.DeleteOperationRequest, context: Any
    ) -> Empty:
        await self._operations.delete(_operation_name(request.name))
        return Empty()


def _operation_name(name: str) -> str:
    if not name.startswith("operations/") or len(name) == len("operations/"):
        raise InvalidArgument(f"name must look like operations/{{id}}, got {name!r}", field="name")
    return check_storable(name, "name")
