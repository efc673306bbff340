"""DatasetService: datasets defined, built, exported and imported on the registry's stores.

The quick methods answer directly. BuildDataset, ExportDataset and ImportLabels check their
request first (a bad name, format, path or state is refused before anything starts, and
nothing is written), then run as a long-running operation that clients poll through
google.longrunning.Operations on the same server.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from uuid import UUID

from google.longrunning import operations_pb2
from google.protobuf import empty_pb2

from agentic_labeling.errors import FailedPrecondition, InvalidArgument
from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.registry.values.input_checks import check_text
from agentic_labeling.registry.values.resource_names import format_name, parse_uuid
from agentic_labeling.servers import dataset_conversions as wire
from agentic_labeling.servers.operation_store import OperationStore, Progress
from agentic_labeling.v1 import dataset_pb2, dataset_pb2_grpc

__all__ = ["DatasetServicer", "staging_token"]

Empty = empty_pb2.Empty


def staging_token(operation_id: UUID) -> str:
    """The token of an export's staging directory: its operation's id, so a start-up sweep
    leaves the staging directories of running exports alone (`export_target.sweep_staging`)."""
    return operation_id.hex


class DatasetServicer(dataset_pb2_grpc.DatasetServiceServicer):
    def __init__(self, registry: Registry, operations: OperationStore) -> None:
        self._registry = registry
        self._operations = operations
        # Targets being written: a second export to one of them would race for the rename.
        self._exporting: set[Path] = set()

    async def CreateDataset(
        self, request: dataset_pb2.CreateDatasetRequest, context: Any
    ) -> dataset_pb2.Dataset:
        new, dataset_id = wire.new_dataset(request)
        created = await self._registry.create_dataset(new, dataset_id=dataset_id)
        return wire.dataset_message(created)

    async def GetDataset(
        self, request: dataset_pb2.GetDatasetRequest, context: Any
    ) -> dataset_pb2.Dataset:
        return wire.dataset_message(await self._registry.get_dataset(wire.dataset_id(request.name)))

    async def ListDatasets(
        self, request: dataset_pb2.ListDatasetsRequest, context: Any
    ) -> dataset_pb2.ListDatasetsResponse:
        page = await self._registry.list_datasets(
            page_size=request.page_size, page_token=request.page_token
        )
        return wire.list_datasets_response(page)

    async def DeleteDataset(self, request: dataset_pb2.DeleteDatasetRequest, context: Any) -> Empty:
        await self._registry.delete_dataset(wire.dataset_id(request.name))
        return Empty()

    async def BuildDataset(
        self, request: dataset_pb2.BuildDatasetRequest, context: Any
    ) -> operations_pb2.Operation:
        dataset_id = wire.dataset_id(request.name)
        await self._registry.begin_build(dataset_id)

        async def build(progress: Progress) -> dataset_pb2.Dataset:
            progress.update(stage="snapshotting the membership and splitting")
            built = await self._registry.build_dataset(dataset_id)  # FAILED when it fails
            objects = sum(s.object_count for s in built.split_stats)
            progress.update(stage="built", done=objects, total=objects, unit="objects")
            return wire.dataset_message(built)

        try:
            return await self._operations.start(format_name("datasets", dataset_id), build)
        except BaseException:
            await asyncio.shield(self._registry.fail_build(dataset_id))
            raise

    async def ExportDataset(
        self, request: dataset_pb2.ExportDatasetRequest, context: Any
    ) -> operations_pb2.Operation:
        dataset_id = wire.dataset_id(request.name)
        export_format = wire.export_format(request.format)
        transfer = wire.image_transfer(request.image_transfer)
        dataset, target = await self._registry.export_target(
            dataset_id, request.output_dir, overwrite=request.overwrite
        )
        self._claim(target)

        async def run(progress: Progress) -> dataset_pb2.ExportDatasetResponse:
            try:
                summary = await self._registry.export_dataset(
                    dataset,
                    export_format,
                    target,
                    transfer,
                    overwrite=request.overwrite,
                    staging_token=staging_token(progress.operation_id),
                    progress=progress,
                )
            finally:
                self._exporting.discard(target)
            return wire.export_response(summary, target)

        try:
            return await self._operations.start(format_name("datasets", dataset_id), run)
        except BaseException:
            self._exporting.discard(target)
            raise

    async def ImportLabels(
        self, request: dataset_pb2.ImportLabelsRequest, context: Any
    ) -> operations_pb2.Operation:
        label_format = wire.label_set_format(request.format)
        if not request.validated_by.strip():
            raise InvalidArgument("validated_by is required", field="validated_by")
        # Refused here, not inside the operation: a bad request never starts one.
        check_text(request.validated_by, "validated_by")
        if not request.request_id:
            raise InvalidArgument("request_id is required (a UUID)", field="request_id")
        request_id: UUID = parse_uuid(request.request_id, field="request_id")
        if not request.path:
            raise InvalidArgument("path is required", field="path")
        label_sets = await self._registry.open_label_sets(label_format, Path(request.path))

        async def run(progress: Progress) -> dataset_pb2.ImportLabelsResponse:
            counts = await self._registry.import_labels(
                label_sets,
                validated_by=request.validated_by,
                request_id=request_id,
                progress=progress,
            )
            return wire.import_response(counts)

        return await self._operations.start(request.path, run)

    def _claim(self, target: Path) -> None:
        if target in self._exporting:
            raise FailedPrecondition(
                f"an export to {target} is running; wait for it or pick another output_dir",
                reason="EXPORT_RUNNING",
                metadata={"field": "output_dir"},
            )
        self._exporting.add(target)
