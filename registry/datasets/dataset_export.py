"""Exporting a built dataset: its membership read from Postgres image by image, each image's
file from the image store, each object's mask from the mask store, written by the YOLO or COCO
writer into a staged directory that is renamed into place at the end.

The writers are synchronous (files, PNG decoding, RLE) and run in a worker thread; they pull
images one at a time from the dataset's async reader on the event loop, so at most one batch of
the membership and one image's masks are in memory whatever the dataset's size. A job that is
cancelled or fails leaves no trace in the export root (`export_target.staged_directory`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePath

from agentic_labeling.errors import FailedPrecondition
from agentic_labeling.registry.datasets.coco_export import write_coco
from agentic_labeling.registry.datasets.export_target import staged_directory
from agentic_labeling.registry.datasets.job_progress import JobProgress
from agentic_labeling.registry.datasets.label_sets import (
    ExportFormat,
    ExportSummary,
    ImageTransfer,
    LabelImage,
    LabelObject,
    safe_file_stem,
)
from agentic_labeling.registry.datasets.yolo_export import write_yolo
from agentic_labeling.registry.files.image_store import ImageStore
from agentic_labeling.registry.files.masks import MaskStore
from agentic_labeling.registry.values.dataset_records import (
    DatasetImage,
    DatasetRecord,
    DatasetState,
)
from agentic_labeling.registry.values.resource_names import format_name

__all__ = ["ExportRequest", "check_exportable", "export_dataset", "image_file", "label_image"]


@dataclass(frozen=True)
class ExportRequest:
    """A checked export: `target` is resolved and confined to the export root already."""

    dataset: DatasetRecord
    export_format: ExportFormat
    target: Path
    transfer: ImageTransfer
    overwrite: bool
    # Names the staging directory after the job (its operation's id, in hex), so that a
    # start-up sweep can tell a crash's leftover from a running export; random when empty.
    staging_token: str = ""
    # YOLO-seg leaves out mask parts smaller than this (pixels).
    min_fragment_area: int = 0


def check_exportable(dataset: DatasetRecord) -> None:
    """Only a built dataset has a membership to export."""
    if dataset.state != DatasetState.READY:
        raise FailedPrecondition(
            f"{format_name('datasets', dataset.id)} is {dataset.state}; build it first "
            "(alabel datasets build)",
            reason="DATASET_NOT_BUILT",
        )


def image_file(image: DatasetImage, images: ImageStore) -> Path:
    """The file holding the pixels of `image`: a frame's own stored bytes, else its source's,
    else a file the source or frame was registered with (URI); its upright copy when it has an
    EXIF orientation (`ImageStore.upright`)."""
    for sha256 in (image.frame_content_sha256, image.source_content_sha256):
        stored = images.find(sha256) if sha256 else None
        if stored is not None:
            return images.upright(stored)
    for uri in (image.frame_uri, image.source_uri):
        path = Path(uri.removeprefix("file://")) if uri else None
        if path is not None and path.is_absolute() and path.is_file():
            return images.upright(path)
    source = format_name("sources", image.source_id)
    raise FailedPrecondition(
        f"the image of {source} frame {image.frame_index} is not in the registry's image store "
        "and has no readable file URI; register it with its bytes (CreateSource.image_data)",
        reason="IMAGE_NOT_STORED",
        metadata={"source": source},
    )


def label_image(image: DatasetImage, images: ImageStore, masks: MaskStore) -> LabelImage:
    """One dataset image as the writers take it, with its masks read from the mask store."""
    # "coins.png" -> "coins-7.png": the display name without its extension, the image
    # number (unique in the dataset), then the real format's extension from the writer.
    readable = PurePath(image.source_display_name).stem or str(image.source_id)
    stem = safe_file_stem(readable, str(image.image_number))
    return LabelImage(
        split=str(image.split),
        file_stem=stem,
        image_path=image_file(image, images),
        width=image.width,
        height=image.height,
        objects=tuple(
            LabelObject(
                class_id=o.class_id,
                bbox=(o.bbox.x, o.bbox.y, o.bbox.width, o.bbox.height),
                mask=masks.read(o.object_id) if o.has_mask else None,
                object_id=str(o.object_id),
            )
            for o in image.objects
        ),
    )


async def export_dataset(
    request: ExportRequest,
    dataset_images: AsyncIterator[DatasetImage],
    images: ImageStore,
    masks: MaskStore,
    progress: JobProgress,
) -> ExportSummary:
    """Write the dataset; the summary's entry_point is inside `request.target`."""
    check_exportable(request.dataset)
    total = sum(s.image_count for s in request.dataset.split_stats)
    progress.update(stage="writing images and labels", done=0, total=total, unit="images")
    loop = asyncio.get_running_loop()

    def pulled() -> Iterator[LabelImage]:
        # Runs in the writer's thread; each image is fetched on the event loop when needed.
        while True:
            progress.check_cancelled()
            future = asyncio.run_coroutine_threadsafe(_next(dataset_images), loop)
            image = future.result()
            if image is None:
                return
            yield label_image(image, images, masks)

    def write() -> ExportSummary:
        with staged_directory(
            request.target, overwrite=request.overwrite, token=request.staging_token
        ) as staged:
            summary = _write(request, pulled(), staged, progress)
            progress.update(stage="moving the export into place")
            progress.check_cancelled()
        return ExportSummary(
            image_count=summary.image_count,
            object_count=summary.object_count,
            entry_point=request.target / summary.entry_point,  # relative to the export
        )

    return await asyncio.to_thread(write)


def _write(
    request: ExportRequest, pulled: Iterator[LabelImage], staged: Path, progress: JobProgress
) -> ExportSummary:
    class_names = request.dataset.class_names

    def on_image(done: int) -> None:
        progress.update(done=done)

    if request.export_format == ExportFormat.COCO:
        return write_coco(pulled, class_names, staged, transfer=request.transfer, on_image=on_image)
    return write_yolo(
        pulled,
        class_names,
        staged,
        segment=request.export_format == ExportFormat.YOLO_SEGMENT,
        transfer=request.transfer,
        on_image=on_image,
        min_fragment_area=request.min_fragment_area,
    )


async def _next(iterator: AsyncIterator[DatasetImage]) -> DatasetImage | None:
    try:
        return await anext(iterator)
    except StopAsyncIteration:
        return None
