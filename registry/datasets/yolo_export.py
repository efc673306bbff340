"""Write a label set in the YOLO format that ultralytics trains on (detection or segmentation).

Layout of the export directory:

    data.yaml               names (id -> name), nc, and train/val/test for the splits written
    images/{split}/{stem}{ext}   the image (copy or link); ext from the file's real format
    labels/{split}/{stem}.txt    one line per box or polygon; empty for an image without any

`data.yaml` has no `path:` key. ultralytics (`check_det_dataset`) then takes the dataset root
from the YAML file's own directory (`yaml_file` parent), so `train: images/train` resolves
wherever the directory is moved; a relative `path:` would instead be resolved against the
current directory or ultralytics' DATASETS_DIR. ultralytics requires both `train` and `val`:
an export with no image in one of them is written honestly (no key for it) and ultralytics
refuses it until the caller exports both splits.

Lines, with coordinates normalised by the image's width and height:
- detection: `class cx cy w h`, the box's centre and size;
- segmentation: `class x1 y1 x2 y2 ...`, one line per polygon of `mask_polygons` (one per
  part of the mask, holes joined by zero-width cuts). Parts of fewer than
  `min_fragment_area` pixels (setting `--min-fragment-area`, 16 by default: a 4 x 4 speck,
  under 2 px once a 1920 px image is resized to 640 for training) are dropped; the parts
  kept rasterise back as before. ultralytics and supervision read each line as one
  instance, so a mask in two real parts is two instances of its class there. (Joining the
  parts into one line by zero-width bridges, as ultralytics' `merge_multi_segment` does when
  converting COCO, would make it one instance, but every reader's `fillPoly` then paints the
  bridge: a one-pixel line of background across the gap, so the exact round trip of the
  parts would be lost.) An object without a mask, or whose mask has no polygon left (empty,
  or only specks), is written as its box: a 4-point polygon through its corner pixels' centres
  (`mask_polygons.box_polygon`), because ultralytics refuses files that mix box and polygon
  lines.
Numbers are written in fixed notation with 10 decimals (trailing zeros dropped): a box
survives the round trip to 1e-6 relative for anything over 0.05 px in a 5000 px image.

The images are read once, in order, and never held: `on_image(count)` is called after each.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
import yaml

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
from agentic_labeling.registry.datasets.mask_polygons import box_polygon, mask_to_polygons

__all__ = ["DATA_YAML", "format_number", "write_yolo"]

DATA_YAML = "data.yaml"
_DECIMALS = 10


def write_yolo(
    images: Iterable[LabelImage],
    class_names: Sequence[str],
    directory: Path,
    *,
    segment: bool,
    transfer: ImageTransfer,
    on_image: Callable[[int], None] | None = None,
    min_fragment_area: int = 0,
) -> ExportSummary:
    """Write `images` as a YOLO detection (or, with `segment`, segmentation) label set.

    `directory` must exist (normally a `staged_directory`). InvalidArgument for an image that
    cannot be written as is (`check_label_image`), a stem used twice in a split, or an image
    whose file is not the size the labels say.
    """
    if not class_names:
        raise InvalidArgument("an export needs at least one class name", field="class_names")
    splits_written: set[str] = set()
    image_count = 0
    object_count = 0
    for image in images:
        header = checked_image_header(image, len(class_names))
        if image.split not in splits_written:
            (directory / "images" / image.split).mkdir(parents=True, exist_ok=True)
            (directory / "labels" / image.split).mkdir(parents=True, exist_ok=True)
            splits_written.add(image.split)
        label_path = directory / "labels" / image.split / f"{image.file_stem}.txt"
        lines = "".join(
            _label_lines(item, image, segment=segment, min_area=min_fragment_area)
            for item in image.objects
        )
        try:
            with label_path.open("x", encoding="utf-8", newline="\n") as label_file:
                label_file.write(lines)
        except FileExistsError:
            raise InvalidArgument(
                f"file stem {image.file_stem!r} is used twice in split {image.split!r}",
                field="file_stem",
            ) from None
        destination = directory / "images" / image.split / f"{image.file_stem}{header.extension}"
        place_image(image.image_path, destination, transfer)
        image_count += 1
        object_count += len(image.objects)
        if on_image is not None:
            on_image(image_count)
    _write_data_yaml(directory / DATA_YAML, class_names, splits_written)
    return ExportSummary(
        image_count=image_count, object_count=object_count, entry_point=Path(DATA_YAML)
    )


def format_number(value: float) -> str:
    """A label number in fixed notation, 10 decimals, without trailing zeros (`0.25`, `0`)."""
    text = f"{value:.{_DECIMALS}f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def _label_lines(item: LabelObject, image: LabelImage, *, segment: bool, min_area: int) -> str:
    scale = np.array([image.width, image.height], dtype=np.float64)
    if not segment:
        x, y, width, height = item.bbox
        values = [
            (x + width / 2) / image.width,
            (y + height / 2) / image.height,
            width / image.width,
            height / image.height,
        ]
        return _line(item.class_id, values)
    polygons = mask_to_polygons(item.mask, min_area=min_area) if item.mask is not None else []
    if not polygons:
        polygons = [box_polygon(item.bbox)]
    return "".join(_polygon_line(item.class_id, polygon / scale) for polygon in polygons)


def _polygon_line(class_id: int, normalised: npt.NDArray[np.float64]) -> str:
    return _line(class_id, np.clip(normalised, 0.0, 1.0).ravel().tolist())


def _line(class_id: int, values: Iterable[float]) -> str:
    return " ".join([str(class_id), *(format_number(value) for value in values)]) + "\n"


def _write_data_yaml(path: Path, class_names: Sequence[str], splits: set[str]) -> None:
    data: dict[str, object] = {
        "names": dict(enumerate(class_names)),
        "nc": len(class_names),
    }
    for split in SPLITS:
        if split in splits:
            data[split] = f"images/{split}"
    with path.open("w", encoding="utf-8", newline="\n") as file:
        yaml.safe_dump(data, file, sort_keys=False, allow_unicode=True)
