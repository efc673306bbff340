"""DatasetService's wire types to the registry's dataset records and back, in one place.

Requests are checked here for what the wire alone can get wrong (a missing message, an enum
left unspecified, a malformed name); the dataset store checks the rest (class names,
filters, ratios) and names the same request fields.
"""

from __future__ import annotations

from pathlib import Path
from uuid import UUID

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.coordinator import (
    ExportFormat,
    ExportSummary,
    ImageTransfer,
    ImportCounts,
    LabelSetFormat,
)
from agentic_labeling.registry.values.dataset_records import (
    DatasetRecord,
    DatasetState,
    NewDataset,
    SplitGrouping,
    SplitRatios,
)
from agentic_labeling.registry.values.records import Page
from agentic_labeling.registry.values.resource_names import format_name, parse_name, parse_uuid
from agentic_labeling.servers.registry_conversions import timestamp_message
from agentic_labeling.v1 import dataset_pb2

__all__ = [
    "dataset_id",
    "dataset_message",
    "export_format",
    "export_response",
    "image_transfer",
    "import_response",
    "label_set_format",
    "list_datasets_response",
    "new_dataset",
]

_GROUPING: dict[int, SplitGrouping] = {
    dataset_pb2.SPLIT_GROUPING_UNSPECIFIED: SplitGrouping.SOURCE,
    dataset_pb2.SPLIT_GROUPING_SOURCE: SplitGrouping.SOURCE,
    dataset_pb2.SPLIT_GROUPING_FRAME: SplitGrouping.FRAME,
}
_GROUPING_MESSAGE = {
    SplitGrouping.SOURCE: dataset_pb2.SPLIT_GROUPING_SOURCE,
    SplitGrouping.FRAME: dataset_pb2.SPLIT_GROUPING_FRAME,
}
_STATE_MESSAGE = {
    DatasetState.DRAFT: dataset_pb2.DATASET_STATE_DRAFT,
    DatasetState.BUILDING: dataset_pb2.DATASET_STATE_BUILDING,
    DatasetState.READY: dataset_pb2.DATASET_STATE_READY,
    DatasetState.FAILED: dataset_pb2.DATASET_STATE_FAILED,
}
_EXPORT_FORMAT: dict[int, ExportFormat] = {
    dataset_pb2.EXPORT_FORMAT_YOLO_DETECT: ExportFormat.YOLO_DETECT,
    dataset_pb2.EXPORT_FORMAT_YOLO_SEGMENT: ExportFormat.YOLO_SEGMENT,
    dataset_pb2.EXPORT_FORMAT_COCO: ExportFormat.COCO,
}
_TRANSFER: dict[int, ImageTransfer] = {
    dataset_pb2.IMAGE_TRANSFER_UNSPECIFIED: ImageTransfer.COPY,
    dataset_pb2.IMAGE_TRANSFER_COPY: ImageTransfer.COPY,
    dataset_pb2.IMAGE_TRANSFER_SYMLINK: ImageTransfer.SYMLINK,
    dataset_pb2.IMAGE_TRANSFER_HARDLINK: ImageTransfer.HARDLINK,
}
_LABEL_FORMAT: dict[int, LabelSetFormat] = {
    dataset_pb2.LABEL_FORMAT_COCO: LabelSetFormat.COCO,
    dataset_pb2.LABEL_FORMAT_YOLO: LabelSetFormat.YOLO,
}


def dataset_id(name: str, field: str = "name") -> UUID:
    return parse_name(name, "datasets", field=field)


def new_dataset(request: dataset_pb2.CreateDatasetRequest) -> tuple[NewDataset, UUID | None]:
    if not request.HasField("dataset"):
        raise InvalidArgument("dataset is required", field="dataset")
    dataset = request.dataset
    if dataset.grouping not in _GROUPING:
        raise InvalidArgument(f"unknown grouping {dataset.grouping}", field="dataset.grouping")
    ratios = dataset.split_ratios
    new = NewDataset(
        display_name=dataset.display_name,
        class_names=tuple(dataset.class_names),
        filter=dataset.filter,
        ratios=SplitRatios(ratios.train, ratios.val, ratios.test),
        seed=dataset.seed,
        grouping=_GROUPING[dataset.grouping],
    )
    new_id = parse_uuid(request.dataset_id, field="dataset_id") if request.dataset_id else None
    return new, new_id


def dataset_message(record: DatasetRecord) -> dataset_pb2.Dataset:
    message = dataset_pb2.Dataset(
        name=format_name("datasets", record.id),
        display_name=record.display_name,
        filter=record.filter,
        class_names=record.class_names,
        split_ratios=dataset_pb2.SplitRatios(
            train=record.ratios.train, val=record.ratios.val, test=record.ratios.test
        ),
        seed=record.seed,
        grouping=_GROUPING_MESSAGE[record.grouping],
        state=_STATE_MESSAGE[record.state],
        split_stats=[
            dataset_pb2.SplitStats(
                split=str(stats.split),
                image_count=stats.image_count,
                object_count=stats.object_count,
                objects_per_class=dict(stats.objects_per_class),
            )
            for stats in record.split_stats
        ],
        create_time=timestamp_message(record.create_time),
    )
    if record.build_time is not None:
        message.build_time.CopyFrom(timestamp_message(record.build_time))
    return message


def list_datasets_response(page: Page[DatasetRecord]) -> dataset_pb2.ListDatasetsResponse:
    return dataset_pb2.ListDatasetsResponse(
        datasets=[dataset_message(record) for record in page.items],
        next_page_token=page.next_page_token,
    )


def export_format(value: int) -> ExportFormat:
    if value not in _EXPORT_FORMAT:
        raise InvalidArgument(
            "format is required: EXPORT_FORMAT_YOLO_DETECT, EXPORT_FORMAT_YOLO_SEGMENT or "
            "EXPORT_FORMAT_COCO",
            field="format",
        )
    return _EXPORT_FORMAT[value]


def image_transfer(value: int) -> ImageTransfer:
    if value not in _TRANSFER:
        raise InvalidArgument(f"unknown image_transfer {value}", field="image_transfer")
    return _TRANSFER[value]


def label_set_format(value: int) -> LabelSetFormat:
    if value not in _LABEL_FORMAT:
        raise InvalidArgument(
            "format is required: LABEL_FORMAT_COCO or LABEL_FORMAT_YOLO", field="format"
        )
    return _LABEL_FORMAT[value]


def export_response(summary: ExportSummary, target: Path) -> dataset_pb2.ExportDatasetResponse:
    return dataset_pb2.ExportDatasetResponse(
        path=str(target),
        image_count=summary.image_count,
        object_count=summary.object_count,
        entry_point=str(summary.entry_point),
    )


def import_response(counts: ImportCounts) -> dataset_pb2.ImportLabelsResponse:
    return dataset_pb2.ImportLabelsResponse(
        sources_created=counts.sources_created,
        objects_created=counts.objects_created,
        categories_created=counts.categories_created,
    )
