"""Read COCO and YOLO label sets (ours or anyone's) into `LabelImage`s, refusing bad input.

Import takes files a user uploaded, so every fact is checked where it is read and a bad one
is an InvalidArgument naming the file and the line or entry: malformed JSON or YAML, an
unknown class or category, an odd number of coordinates, coordinates outside [0, 1] by more
than 0.01 (ultralytics' own tolerance), a missing image, an image whose size is not the one
declared. Image names are confined to the label set: a name that is absolute or has a `..`
component is refused (symlinks placed in the directory are followed; they are its owner's
choice, and our own SYMLINK exports are made of them). Sizes come from the image files'
headers, upright (EXIF orientation applied, as the registry decodes images and as
ultralytics and cv2 read them). Class names (COCO `categories[i].name`, YOLO `names`) must be
usable category names (`input_checks.check_name`); a bad one is refused naming its entry.

`images` is a lazy iterator: the label files (COCO: the JSON's structure, categories and ids,
checked up front) are read as it is consumed, and errors in an image's entries surface then.

COCO (`read_coco`): class ids are the categories in increasing id order (our exports'
`id = class id + 1` comes back as is). Masks are decoded with pycocotools, RLE (compressed or
not) or polygons alike; `iscrowd` is not kept. The split is `{split}` for a file named
`instances_{split}.json` (split one of train/val/test), else `train`. Images are looked up
in `images_dir`, by default our export layout's `images/{split}` beside the `annotations`
folder, else the JSON's own folder.

YOLO (`read_yolo`): splits are data.yaml's `train`/`val`/`test` entries (directories of
images, relative to the YAML's folder or to its relative `path:`); label files are found as
ultralytics finds them (the last `/images/` of the image path becomes `/labels/`, the
extension `.txt`; no file is an image without objects). Each line is one object: 5 numbers
are a box, more are a polygon rasterised as `mask_polygons` does (vertices are pixel
centres), whose box is the extent of the pixels it covers.

Both readers read a box written as a polygon (COCO: the box's 4 corners; YOLO: an
axis-aligned 4-point polygon, as our writers write objects without masks) as an object
without a mask: it says nothing the box does not.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
import pycocotools.mask as mask_utils  # type: ignore[import-untyped]  # no stubs shipped
import yaml

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.datasets.label_sets import (
    SPLITS,
    LabelImage,
    LabelObject,
    file_stem_from_name,
    read_image_header,
)
from agentic_labeling.registry.datasets.mask_polygons import polygon_pixel_box, polygons_to_mask
from agentic_labeling.registry.values.input_checks import check_name

__all__ = ["COORDINATE_TOLERANCE", "ImportedLabelSet", "read_coco", "read_yolo"]

COORDINATE_TOLERANCE = 0.01
"""How far normalised YOLO coordinates may stray outside [0, 1] (ultralytics allows 1.01)."""

_IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})
_COCO_FILE = re.compile(r"instances_(train|val|test)\.json")
_BOX_CORNER_TOLERANCE = 1e-9
# COCO boxes may overshoot the image by up to a pixel (rounding in other tools); clamped.
_COCO_BOX_OVERSHOOT = 1.0


@dataclass(frozen=True)
class ImportedLabelSet:
    """A label set read from files: its class names and its images, read as iterated."""

    class_names: tuple[str, ...]
    images: Iterator[LabelImage]


# --- COCO -------------------------------------------------------------------------------


def read_coco(annotations_json: Path, images_dir: Path | None = None) -> ImportedLabelSet:
    """The label set in a COCO instances file (see the module docstring for the rules)."""
    data = _load_json(annotations_json)
    match = _COCO_FILE.fullmatch(annotations_json.name)
    split = match.group(1) if match else "train"
    if images_dir is None:
        images_dir = _default_images_dir(annotations_json, split)
    categories = _coco_list(data, "categories", annotations_json)
    class_of_category, class_names = _coco_categories(categories, annotations_json)
    images = _coco_list(data, "images", annotations_json)
    declared = _coco_images(images, annotations_json)
    by_image = _coco_annotations_by_image(
        _coco_list(data, "annotations", annotations_json, required=False),
        declared,
        class_of_category,
        annotations_json,
    )
    return ImportedLabelSet(
        class_names=class_names,
        images=_coco_label_images(
            images, by_image, class_of_category, split, images_dir, annotations_json
        ),
    )


def _load_json(path: Path) -> Any:
    try:
        with path.open("rb") as file:
            return json.load(file)
    except json.JSONDecodeError as error:
        raise _bad(path, f"not valid JSON: {error}", "annotations_json") from None
    except (OSError, UnicodeDecodeError) as error:
        raise _bad(path, f"cannot be read: {error}", "annotations_json") from None


def _default_images_dir(annotations_json: Path, split: str) -> Path:
    folder = annotations_json.parent
    ours = folder.parent / "images" / split
    if folder.name == "annotations" and ours.is_dir():
        return ours
    return folder


def _coco_list(data: Any, key: str, path: Path, *, required: bool = True) -> list[Any]:
    if not isinstance(data, dict):
        raise _bad(path, "the top level must be a JSON object", "annotations_json")
    value = data.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise _bad(path, f"{key!r} must be a list", "annotations_json")
    return value


def _coco_categories(categories: list[Any], path: Path) -> tuple[dict[int, int], tuple[str, ...]]:
    named: dict[int, str] = {}
    for index, category in enumerate(categories):
        where = f"categories[{index}]"
        if not isinstance(category, dict) or not _is_int(category.get("id")):
            raise _bad(path, f"{where}: needs an integer 'id'", "annotations_json")
        if not isinstance(category.get("name"), str):
            raise _bad(path, f"{where}: needs a string 'name'", "annotations_json")
        _check_class_name(category["name"], path, f"{where}.name", "annotations_json")
        if category["id"] in named:
            raise _bad(path, f"{where}: id {category['id']} is used twice", "annotations_json")
        named[category["id"]] = category["name"]
    if not named:
        raise _bad(path, "has no categories", "annotations_json")
    ordered = sorted(named)
    return {category: index for index, category in enumerate(ordered)}, tuple(
        named[category] for category in ordered
    )


def _coco_images(images: list[Any], path: Path) -> set[int]:
    declared: set[int] = set()
    for index, image in enumerate(images):
        where = f"images[{index}]"
        if not isinstance(image, dict) or not _is_int(image.get("id")):
            raise _bad(path, f"{where}: needs an integer 'id'", "annotations_json")
        if image["id"] in declared:
            raise _bad(path, f"{where}: id {image['id']} is used twice", "annotations_json")
        for key in ("width", "height"):
            if not _is_int(image.get(key)) or image[key] <= 0:
                raise _bad(path, f"{where}: {key!r} must be a positive integer", "annotations_json")
        _confined_name(image.get("file_name"), path, where)
        declared.add(image["id"])
    return declared


def _coco_annotations_by_image(
    annotations: list[Any],
    declared: set[int],
    class_of_category: Mapping[int, int],
    path: Path,
) -> dict[int, list[tuple[int, dict[str, Any]]]]:
    by_image: dict[int, list[tuple[int, dict[str, Any]]]] = {}
    for index, annotation in enumerate(annotations):
        where = f"annotations[{index}]"
        if not isinstance(annotation, dict):
            raise _bad(path, f"{where}: must be an object", "annotations_json")
        if annotation.get("image_id") not in declared:
            raise _bad(
                path,
                f"{where}: image_id {annotation.get('image_id')!r} is not in 'images'",
                "annotations_json",
            )
        if annotation.get("category_id") not in class_of_category:
            raise _bad(
                path,
                f"{where}: category_id {annotation.get('category_id')!r} is not in 'categories'",
                "annotations_json",
            )
        by_image.setdefault(annotation["image_id"], []).append((index, annotation))
    return by_image


def _coco_label_images(
    images: list[dict[str, Any]],
    by_image: dict[int, list[tuple[int, dict[str, Any]]]],
    class_of_category: Mapping[int, int],
    split: str,
    images_dir: Path,
    path: Path,
) -> Iterator[LabelImage]:
    stems: set[str] = set()
    for index, image in enumerate(images):
        where = f"images[{index}] ({image['file_name']!r})"
        name = _confined_name(image["file_name"], path, where)
        image_path = images_dir.joinpath(*name.parts)
        width, height = _checked_size(image_path, path, where, (image["width"], image["height"]))
        objects = tuple(
            _coco_object(annotation, class_of_category, width, height, path, f"annotations[{i}]")
            for i, annotation in by_image.get(image["id"], [])
        )
        yield LabelImage(
            split=split,
            file_stem=_unique_stem(file_stem_from_name(str(name)), stems),
            image_path=image_path,
            width=width,
            height=height,
            objects=objects,
        )


def _coco_object(
    annotation: dict[str, Any],
    class_of_category: Mapping[int, int],
    width: int,
    height: int,
    path: Path,
    where: str,
) -> LabelObject:
    # Our COCO export writes the mask's tight box as `bbox` and keeps the detector's box beside
    # it: reading that one back makes an export import as the very objects it came from.
    key = "alabel_detector_bbox" if "alabel_detector_bbox" in annotation else "bbox"
    bbox = annotation.get(key)
    if (
        not isinstance(bbox, list)
        or len(bbox) != 4
        or not all(_is_number(value) and math.isfinite(value) for value in bbox)
    ):
        raise _bad(path, f"{where}: '{key}' must be 4 finite numbers", "annotations_json")
    x, y, box_width, box_height = (float(value) for value in bbox)
    if (
        box_width <= 0
        or box_height <= 0
        or min(x, y) < -_COCO_BOX_OVERSHOOT
        or x + box_width > width + _COCO_BOX_OVERSHOOT
        or y + box_height > height + _COCO_BOX_OVERSHOOT
    ):
        raise _bad(
            path,
            f"{where}: '{key}' {bbox} is empty or reaches outside the {width} x {height} image",
            "annotations_json",
        )
    inside = x >= 0 and y >= 0 and x + box_width <= width and y + box_height <= height
    box = (
        (x, y, box_width, box_height)
        if inside
        else _clamped_box(x, y, x + box_width, y + box_height, width, height)
    )
    mask = _coco_mask(annotation.get("segmentation"), box, width, height, path, where)
    object_id = annotation.get("alabel_object_id", "")
    return LabelObject(
        class_id=class_of_category[annotation["category_id"]],
        bbox=box,
        mask=mask,
        object_id=object_id if isinstance(object_id, str) else str(object_id),
    )


def _coco_mask(
    segmentation: Any,
    box: tuple[float, float, float, float],
    width: int,
    height: int,
    path: Path,
    where: str,
) -> npt.NDArray[np.bool_] | None:
    if segmentation is None or segmentation == []:
        return None
    try:
        if isinstance(segmentation, dict):
            rle = _coco_rle(segmentation, width, height, path, where)
        elif isinstance(segmentation, list):
            polygons = segmentation if isinstance(segmentation[0], list) else [segmentation]
            for polygon in polygons:
                if (
                    not isinstance(polygon, list)
                    or len(polygon) < 6
                    or len(polygon) % 2
                    or not all(_is_number(value) and math.isfinite(value) for value in polygon)
                ):
                    raise _bad(
                        path,
                        f"{where}: each polygon needs an even number (at least 6) of numbers",
                        "annotations_json",
                    )
            if len(polygons) == 1 and _is_box_polygon(polygons[0], box):
                return None
            rle = mask_utils.merge(mask_utils.frPyObjects(polygons, height, width))
        else:
            raise _bad(path, f"{where}: 'segmentation' must be RLE or polygons", "annotations_json")
        mask: npt.NDArray[np.bool_] = mask_utils.decode(rle).astype(bool)
    except (TypeError, ValueError) as error:
        raise _bad(
            path, f"{where}: 'segmentation' cannot be decoded ({error})", "annotations_json"
        ) from None
    return mask


def _coco_rle(segmentation: dict[str, Any], width: int, height: int, path: Path, where: str) -> Any:
    counts, size = segmentation.get("counts"), segmentation.get("size")
    if size != [height, width]:
        raise _bad(
            path,
            f"{where}: RLE size {size} is not the image's [height, width] [{height}, {width}]",
            "annotations_json",
        )
    if isinstance(counts, str):
        return {"size": size, "counts": counts.encode("ascii")}
    if isinstance(counts, list) and all(_is_int(value) and value >= 0 for value in counts):
        if sum(counts) != width * height:
            raise _bad(
                path,
                f"{where}: RLE counts do not add up to {width * height} pixels",
                "annotations_json",
            )
        return mask_utils.frPyObjects(segmentation, height, width)
    raise _bad(
        path, f"{where}: RLE 'counts' must be a string or a list of counts", "annotations_json"
    )


def _is_box_polygon(polygon: list[float], box: tuple[float, float, float, float]) -> bool:
    x, y, width, height = box
    corners = [x, y, x + width, y, x + width, y + height, x, y + height]
    return len(polygon) == len(corners) and all(
        abs(float(value) - corner) <= _BOX_CORNER_TOLERANCE * max(1.0, abs(corner))
        for value, corner in zip(polygon, corners, strict=True)
    )


# --- YOLO -------------------------------------------------------------------------------


def read_yolo(data_yaml: Path) -> ImportedLabelSet:
    """The label set described by a YOLO data.yaml (see the module docstring for the rules)."""
    data = _load_yaml(data_yaml)
    class_names = _yolo_names(data, data_yaml)
    root = data_yaml.parent
    if data.get("path") not in (None, ""):
        root = root.joinpath(*_confined_name(data["path"], data_yaml, "'path'").parts)
    split_dirs: list[tuple[str, Path]] = []
    for split in SPLITS:
        entries = data.get(split)
        if entries in (None, "", []):
            continue
        for entry in entries if isinstance(entries, list) else [entries]:
            name = _confined_name(entry, data_yaml, f"{split!r}")
            directory = root.joinpath(*name.parts)
            if not directory.is_dir():
                raise _bad(
                    data_yaml,
                    f"{split!r}: {entry!r} is not a directory of images (image list files are "
                    "not supported)",
                    "data_yaml",
                )
            split_dirs.append((split, directory))
    if not split_dirs:
        raise _bad(data_yaml, "names no split (train, val or test)", "data_yaml")
    return ImportedLabelSet(
        class_names=class_names, images=_yolo_label_images(split_dirs, len(class_names))
    )


def _load_yaml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            data = yaml.safe_load(file)
    except yaml.YAMLError as error:
        raise _bad(path, f"not valid YAML: {error}", "data_yaml") from None
    except OSError as error:
        raise _bad(path, f"cannot be read: {error}", "data_yaml") from None
    if not isinstance(data, dict):
        raise _bad(path, "the top level must be a mapping", "data_yaml")
    return data


def _yolo_names(data: dict[str, Any], path: Path) -> tuple[str, ...]:
    names = data.get("names")
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise _bad(path, "'names' keys must be the class ids 0, 1, 2, ...", "data_yaml")
        names = [names[index] for index in range(len(names))]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise _bad(path, "'names' must be a non-empty list or id -> name mapping", "data_yaml")
    for index, name in enumerate(names):
        _check_class_name(name, path, f"'names'[{index}]", "data_yaml")
    if "nc" in data and data["nc"] != len(names):
        raise _bad(path, f"'nc' is {data['nc']!r} but 'names' has {len(names)}", "data_yaml")
    return tuple(names)


def _yolo_label_images(
    split_dirs: list[tuple[str, Path]], class_count: int
) -> Iterator[LabelImage]:
    stems: set[str] = set()
    for split, directory in split_dirs:
        image_paths = sorted(
            path
            for path in directory.rglob("*")
            if path.suffix.lower() in _IMAGE_SUFFIXES and path.is_file()
        )
        for image_path in image_paths:
            header = read_image_header(image_path)
            label_path = _label_path(image_path)
            objects = (
                _yolo_objects(label_path, class_count, header.width, header.height)
                if label_path.is_file()
                else ()
            )
            name = image_path.relative_to(directory).as_posix()
            yield LabelImage(
                split=split,
                file_stem=_unique_stem(file_stem_from_name(name), stems),
                image_path=image_path,
                width=header.width,
                height=header.height,
                objects=objects,
            )


def _label_path(image_path: Path) -> Path:
    """Where ultralytics looks for an image's labels (`img2label_paths`)."""
    images, labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    text = labels.join(str(image_path).rsplit(images, 1))
    return Path(text.rsplit(".", 1)[0] + ".txt")


def _yolo_objects(path: Path, class_count: int, width: int, height: int) -> tuple[LabelObject, ...]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise _bad(path, f"cannot be read: {error}", "data_yaml") from None
    objects = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            objects.append(_yolo_object(line, class_count, width, height, f"{path}:{number}"))
    return tuple(objects)


def _yolo_object(line: str, class_count: int, width: int, height: int, where: str) -> LabelObject:
    tokens = line.split()
    try:
        values = [float(token) for token in tokens]
    except ValueError:
        raise InvalidArgument(
            f"{where}: not all numbers: {line.strip()!r}", field="data_yaml"
        ) from None
    if not all(math.isfinite(value) for value in values):
        raise InvalidArgument(f"{where}: numbers must be finite", field="data_yaml")
    class_value, coordinates = values[0], values[1:]
    if not class_value.is_integer() or not 0 <= class_value < class_count:
        raise InvalidArgument(
            f"{where}: class {tokens[0]} is not one of the {class_count} class ids",
            field="data_yaml",
        )
    if len(coordinates) != 4 and (len(coordinates) < 6 or len(coordinates) % 2):
        raise InvalidArgument(
            f"{where}: {len(coordinates)} coordinates: a box has 4, a polygon an even number "
            "(at least 6)",
            field="data_yaml",
        )
    if min(coordinates) < -COORDINATE_TOLERANCE or max(coordinates) > 1 + COORDINATE_TOLERANCE:
        raise InvalidArgument(f"{where}: coordinates must be within [0, 1]", field="data_yaml")
    class_id = int(class_value)
    if len(coordinates) == 4:
        centre_x, centre_y, box_width, box_height = coordinates
        if box_width <= 0 or box_height <= 0:
            raise InvalidArgument(f"{where}: the box is empty", field="data_yaml")
        box = _clamped_box(
            (centre_x - box_width / 2) * width,
            (centre_y - box_height / 2) * height,
            (centre_x + box_width / 2) * width,
            (centre_y + box_height / 2) * height,
            width,
            height,
        )
        return LabelObject(class_id=class_id, bbox=box, mask=None)
    normalised: npt.NDArray[np.float64] = np.clip(
        np.array(coordinates, dtype=np.float64).reshape(-1, 2), 0.0, 1.0
    )
    polygon: npt.NDArray[np.float64] = normalised * np.array([width, height], dtype=np.float64)
    x, y, box_width, box_height = polygon_pixel_box(polygon)
    box = _clamped_box(x, y, x + box_width, y + box_height, width, height)
    if _is_axis_aligned_rectangle(normalised):
        return LabelObject(class_id=class_id, bbox=box, mask=None)
    return LabelObject(class_id=class_id, bbox=box, mask=polygons_to_mask([polygon], height, width))


def _is_axis_aligned_rectangle(points: npt.NDArray[np.float64]) -> bool:
    """The corners in our writers' order: top-left, top-right, bottom-right, bottom-left."""
    if len(points) != 4:
        return False
    (x0, y0), (x1, y1), (x2, y2), (x3, y3) = points.tolist()
    return bool(y0 == y1 and x1 == x2 and y2 == y3 and x3 == x0 and x0 < x1 and y0 < y2)


def _clamped_box(
    left: float, top: float, right: float, bottom: float, width: int, height: int
) -> tuple[float, float, float, float]:
    left, top = max(0.0, left), max(0.0, top)
    right, bottom = min(float(width), right), min(float(height), bottom)
    return (left, top, right - left, bottom - top)


# --- both -------------------------------------------------------------------------------


def _confined_name(name: Any, path: Path, where: str) -> PurePosixPath:
    """`name` as a relative path that cannot leave its folder by its own components."""
    if not isinstance(name, str) or not name or "\x00" in name or "\\" in name:
        raise _bad(path, f"{where}: {name!r} is not a usable relative path", _field(path))
    relative = PurePosixPath(name)
    if relative.is_absolute() or ".." in relative.parts or not relative.parts:
        raise _bad(path, f"{where}: {name!r} must be a relative path without '..'", _field(path))
    return relative


def _check_class_name(name: str, path: Path, where: str, field: str) -> None:
    """A class name that can become a category (`check_name`), else an error naming the file
    and the entry (`categories[3].name`), not the category it would have made."""
    try:
        check_name(name, where)
    except InvalidArgument as error:
        raise _bad(path, f"{where}: {error.message}", field) from None


def _checked_size(
    image_path: Path, path: Path, where: str, declared: tuple[int, int]
) -> tuple[int, int]:
    if not image_path.is_file():
        raise _bad(path, f"{where}: image file {image_path} is missing", "annotations_json")
    try:
        header = read_image_header(image_path)
    except InvalidArgument as error:
        raise _bad(path, f"{where}: {error.message}", "annotations_json") from None
    if (header.width, header.height) != declared:
        raise _bad(
            path,
            f"{where}: the image is {header.width} x {header.height}, declared "
            f"{declared[0]} x {declared[1]}",
            "annotations_json",
        )
    return header.width, header.height


def _unique_stem(stem: str, seen: set[str]) -> str:
    candidate, number = stem, 1
    while candidate in seen:
        number += 1
        candidate = f"{stem[:100]}-{number}"
    seen.add(candidate)
    return candidate


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _field(path: Path) -> str:
    return "annotations_json" if path.suffix == ".json" else "data_yaml"


def _bad(path: Path, message: str, field: str) -> InvalidArgument:
    return InvalidArgument(f"{path}: {message}", field=field)
