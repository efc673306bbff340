"""Write a label set as COCO instance annotations, with exact masks.

Layout of the export directory (COCO 2017's, with the images of a split in their own folder):

    annotations/instances_{split}.json   one file per split that has images
    images/{split}/{stem}{ext}           the image (copy or link); ext from its real format

`file_name` in an instances file is `{stem}{ext}`, relative to `images/{split}/`, so a reader
is given the pair (`annotations/instances_train.json`, `images/train`), as pycocotools-based
tools and `supervision.DetectionDataset.from_coco` expect. The summary's entry point is the
`annotations` directory.

Ids are stable for a given input order: category id = class id + 1 (COCO reserves 0), image
ids count images in input order from 1 across all splits, annotation ids count objects from 1.

Each object is one annotation with `iscrowd` 0: it is one instance. A mask is stored exactly,
as the RLE of `pycocotools.mask.encode` (column-major, compressed `counts` as a string), with
`area` its pixel count (`pycocotools.mask.area`); pycocotools reads RLE whatever `iscrowd`
says (`annToRLE`), and so does supervision (`coco_annotations_to_masks` decodes any dict with
`counts`). An object without a mask gets its box as a 4-corner polygon and the box's area.

`bbox` follows COCO's convention: for an object with a mask it is the mask's tight box
(`pycocotools.mask.toBbox`: whole pixels, so `bbox` and `segmentation` always agree, as
pycocotools' own `loadRes` computes it); for one without a mask (or with an empty one) it is
the stored box. The detector's box (the stored float box) is always kept in the extra key
`alabel_detector_bbox`, and the registry's object id in `alabel_object_id`.

Memory stays flat however many objects there are: each split's image and annotation records
go, one JSON line each, to anonymous temporary files as the images stream in (splits may be
interleaved), and each instances file is then assembled by copying those lines.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pycocotools.mask as mask_utils  # type: ignore[import-untyped]  # no stubs shipped

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.datasets.export_target import place_image
from agentic_labeling.registry.datasets.label_sets import (
    SPLITS,
    ExportSummary,
    ImageTransfer,
    LabelImage,
    LabelObject,
    checked_image_header,
)

__all__ = ["ANNOTATIONS_DIR", "annotations_file_name", "write_coco"]

ANNOTATIONS_DIR = "annotations"


def annotations_file_name(split: str) -> str:
    """The instances file of a split: `instances_{split}.json`."""
    return f"instances_{split}.json"


@dataclass
class _SplitRecords:
    """One split's records so far, one JSON document per line, in two temporary files."""

    images: IO[str]
    annotations: IO[str]


def write_coco(
    images: Iterable[LabelImage],
    class_names: Sequence[str],
    directory: Path,
    *,
    transfer: ImageTransfer,
    on_image: Callable[[int], None] | None = None,
) -> ExportSummary:
    """Write `images` as COCO instance annotations into `directory` (which must exist).

    InvalidArgument for an image that cannot be written as is (`check_label_image`), a stem
    used twice in a split, or an image whose file is not the size the labels say.
    """
    if not class_names:
        raise InvalidArgument("an export needs at least one class name", field="class_names")
    annotations_dir = directory / ANNOTATIONS_DIR
    annotations_dir.mkdir(parents=True, exist_ok=True)
    splits: dict[str, _SplitRecords] = {}
    image_count = 0
    object_count = 0
    try:
        for image in images:
            header = checked_image_header(image, len(class_names))
            records = splits.get(image.split)
            if records is None:
                (directory / "images" / image.split).mkdir(parents=True, exist_ok=True)
                records = _SplitRecords(
                    images=_temporary_lines(annotations_dir),
                    annotations=_temporary_lines(annotations_dir),
                )
                splits[image.split] = records
            file_name = f"{image.file_stem}{header.extension}"
            destination = directory / "images" / image.split / file_name
            if destination.exists() or destination.is_symlink():
                raise InvalidArgument(
                    f"file stem {image.file_stem!r} is used twice in split {image.split!r}",
                    field="file_stem",
                )
            place_image(image.image_path, destination, transfer)
            image_count += 1
            image_record = {
                "id": image_count,
                "file_name": file_name,
                "width": image.width,
                "height": image.height,
            }
            records.images.write(json.dumps(image_record) + "\n")
            for item in image.objects:
                object_count += 1
                annotation = _annotation(item, object_count, image_count)
                records.annotations.write(json.dumps(annotation) + "\n")
            if on_image is not None:
                on_image(image_count)
        categories = [{"id": index + 1, "name": name} for index, name in enumerate(class_names)]
        for split in SPLITS:
            if split in splits:
                _assemble(annotations_dir / annotations_file_name(split), splits[split], categories)
    finally:
        for records in splits.values():
            records.images.close()
            records.annotations.close()
    return ExportSummary(
        image_count=image_count, object_count=object_count, entry_point=Path(ANNOTATIONS_DIR)
    )


def _temporary_lines(directory: Path) -> IO[str]:
    # Anonymous (unlinked) where the platform allows: nothing to clean up after a crash.
    return tempfile.TemporaryFile("w+", encoding="utf-8", dir=directory)


def _annotation(item: LabelObject, annotation_id: int, image_id: int) -> dict[str, Any]:
    detector_box = [float(value) for value in item.bbox]
    x, y, width, height = detector_box
    segmentation: dict[str, Any] | list[list[float]]
    box = detector_box
    if item.mask is None:
        segmentation = [[x, y, x + width, y, x + width, y + height, x, y + height]]
        area = width * height
    else:
        rle = mask_utils.encode(np.asfortranarray(item.mask, dtype=np.uint8))
        area = float(mask_utils.area(rle))
        segmentation = {
            "size": [int(size) for size in rle["size"]],
            "counts": rle["counts"].decode("ascii"),
        }
        if area > 0:
            box = [float(value) for value in mask_utils.toBbox(rle)]
    return {
        "id": annotation_id,
        "image_id": image_id,
        "category_id": item.class_id + 1,
        "bbox": box,
        "area": area,
        "segmentation": segmentation,
        "iscrowd": 0,
        "alabel_detector_bbox": detector_box,
        "alabel_object_id": item.object_id,
    }


def _assemble(path: Path, records: _SplitRecords, categories: list[dict[str, Any]]) -> None:
    """Write one instances file from the split's record lines, without loading them."""
    with path.open("w", encoding="utf-8", newline="\n") as out:
        out.write('{"info": {"description": "AgenticLabeling export"}, "licenses": [],\n')
        out.write(f'"categories": {json.dumps(categories)},\n"images": [\n')
        _copy_as_array_items(records.images, out)
        out.write('],\n"annotations": [\n')
        _copy_as_array_items(records.annotations, out)
        out.write("]}\n")


def _copy_as_array_items(lines: IO[str], out: IO[str]) -> None:
    lines.flush()
    lines.seek(0)
    first = True
    for line in lines:
        if not first:
            out.write(",\n")
        out.write(line.rstrip("\n"))
        first = False
    out.write("\n")
