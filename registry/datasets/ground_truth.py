"""Importing a COCO or YOLO label set as validated objects: existing ground truth, loaded for
evaluation and review.

Each image's bytes go into the image store and register (or find, by content hash) its IMAGE
source; its objects are created in one batch, validated by the importer, with the classes as
categories (created when missing). The batch of image i has the request id uuid5(request_id,
i), so retrying an import with the same request_id (the label set unchanged) creates nothing
twice, and an import interrupted half-way resumes where it stopped. Objects that overlap an
existing object of the same frame and category (IoU above the registry's duplicate threshold)
merge into it, as every BatchCreateObjects does: importing the same labels twice under another
request_id does not double them. Each image is all or nothing: when its objects are refused,
the source and the image file that this import created for it are removed again, so a failed
import leaves exactly the images before the failing one (which a retry skips as replays).

The reader (label_import.py) is synchronous and lazy; it runs in a worker thread one image at
a time, so a large label set never sits in memory whole.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID, uuid5

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.datasets.job_progress import JobProgress
from agentic_labeling.registry.datasets.label_import import ImportedLabelSet, read_coco, read_yolo
from agentic_labeling.registry.datasets.label_sets import LabelImage
from agentic_labeling.registry.metadata.source_images import create_source_with_image
from agentic_labeling.registry.values.input_checks import MAX_NAME_LENGTH, check_text
from agentic_labeling.registry.values.records import BoundingBox, NewObject, NewSource, SourceKind

if TYPE_CHECKING:
    from agentic_labeling.registry.coordinator import Registry

__all__ = ["ImportCounts", "LabelSetFormat", "import_label_set", "open_label_set"]

# The detection_model recorded on imported objects.
IMPORTED_MODEL = "import"


class LabelSetFormat(StrEnum):
    COCO = "coco"
    YOLO = "yolo"


@dataclass(frozen=True)
class ImportCounts:
    sources_created: int
    objects_created: int
    categories_created: int


def open_label_set(label_format: LabelSetFormat, path: Path) -> list[ImportedLabelSet]:
    """The label sets at `path`: a COCO instances JSON, a directory whose
    `annotations/instances_*.json` are all read (our COCO export's layout), or a YOLO
    data.yaml (or a directory holding one)."""
    check_text(str(path), "path")
    if not path.is_absolute():
        raise InvalidArgument(
            f"path {str(path)!r} must be absolute (a path on the server)", field="path"
        )
    if not path.exists():
        raise InvalidArgument(f"{path} does not exist on the server", field="path")
    if label_format == LabelSetFormat.YOLO:
        data_yaml = path / "data.yaml" if path.is_dir() else path
        return [read_yolo(data_yaml)]
    if path.is_dir():
        files = sorted((path / "annotations").glob("instances_*.json"))
        if not files:
            raise InvalidArgument(
                f"{path} holds no annotations/instances_*.json; give the COCO JSON file itself",
                field="path",
            )
        return [read_coco(f) for f in files]
    return [read_coco(path)]


async def import_label_set(
    registry: Registry,
    label_sets: list[ImportedLabelSet],
    *,
    validated_by: str,
    request_id: UUID,
    progress: JobProgress,
) -> ImportCounts:
    # Checked before the first image is written; each image is all or nothing anyway.
    check_text(validated_by, "validated_by", max_length=MAX_NAME_LENGTH)
    repo = registry.repository
    class_names = sorted({n for s in label_sets for n in s.class_names})
    known = await repo.categories.ids_for_names(class_names)
    categories_created = len(class_names) - len(known)
    sources_created = objects_created = 0
    progress.update(stage="importing images and labels", done=0, unit="images")
    index = 0
    for label_set in label_sets:
        images = iter(label_set.images)
        while (image := await asyncio.to_thread(_next_image, images)) is not None:
            progress.check_cancelled()
            created, objects = await _import_image(
                registry,
                image,
                label_set.class_names,
                validated_by=validated_by,
                request_id=uuid5(request_id, f"image:{index}"),
            )
            sources_created += created
            objects_created += objects
            index += 1
            progress.update(done=index)
    return ImportCounts(sources_created, objects_created, categories_created)


def _next_image(images: Iterator[LabelImage]) -> LabelImage | None:
    return next(images, None)


async def _import_image(
    registry: Registry,
    image: LabelImage,
    class_names: tuple[str, ...],
    *,
    validated_by: str,
    request_id: UUID,
) -> tuple[int, int]:
    """Register one image and its objects, all or nothing: when its objects fail, the source
    and the image file this call created are removed again. Returns (sources created,
    objects created)."""
    repo = registry.repository
    data = await asyncio.to_thread(image.image_path.read_bytes)
    sha256 = hashlib.sha256(data).hexdigest()
    existed = (await repo.sources.list(filter=f'content_sha256 = "{sha256}"')).items
    file_existed = registry.images.find(sha256) is not None
    source = await create_source_with_image(
        registry,
        NewSource(
            kind=SourceKind.IMAGE,
            width=image.width,
            height=image.height,
            display_name=image.image_path.name,
            content_sha256=sha256,
        ),
        data,
        return_existing=True,
        image_field="path",
    )
    if not image.objects:
        return (0 if existed else 1), 0
    try:
        result = await registry.batch_create(
            request_id,
            [
                NewObject(
                    source_id=source.id,
                    bbox=BoundingBox(*o.bbox),
                    category_name=class_names[o.class_id],
                    confidence=1.0,
                    detection_model=IMPORTED_MODEL,
                    validated_by=validated_by,
                )
                for o in image.objects
            ],
            [o.mask for o in image.objects],
            create_missing_categories=True,
        )
    except BaseException:
        if not existed:
            await asyncio.shield(
                _remove_source(registry, source.id, None if file_existed else sha256)
            )
        raise
    created = 0 if result.replayed else len(result.objects) - len(result.merged)
    return (0 if existed else 1), created


async def _remove_source(registry: Registry, source_id: UUID, sha256: str | None) -> None:
    """Undo the registration of an image whose objects failed (its source has no objects:
    the batch wrote none); `sha256` names an image file that this import wrote."""
    await registry.delete_source(source_id)
    if sha256 is not None:
        await asyncio.to_thread(registry.images.remove, sha256)
