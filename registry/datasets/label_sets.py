"""The in-memory label set that exporters write and importers read.

A label set is a stream of `LabelImage`s, each with its `LabelObject`s, in pixel coordinates;
the YOLO and COCO writers (`yolo_export`, `coco_export`) and the readers (`label_import`) meet
here so that neither side knows the other's file format, and neither knows the registry's
database. Also here: the two small facts every writer needs about a file, a safe file stem
and an image's real format.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np
import numpy.typing as npt
from PIL import Image, UnidentifiedImageError

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.images import upright_size

__all__ = [
    "BORDER_TOLERANCE",
    "MAX_STEM_LENGTH",
    "SPLITS",
    "ExportFormat",
    "ExportSummary",
    "ImageHeader",
    "ImageTransfer",
    "LabelImage",
    "LabelObject",
    "check_label_image",
    "checked_image_header",
    "file_stem_from_name",
    "image_extension",
    "is_safe_file_stem",
    "read_image_header",
    "safe_file_stem",
]

SPLITS = ("train", "val", "test")
"""The splits an export may hold, in the order they are written."""

MAX_STEM_LENGTH = 120
"""The longest stem `safe_file_stem` returns, in characters (ASCII, so also bytes)."""

BORDER_TOLERANCE = 1e-3
"""How far (pixels) a box may reach past the image's right or bottom edge (as the registry)."""


class ImageTransfer(StrEnum):
    """How an image file gets into an export."""

    COPY = "copy"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"


class ExportFormat(StrEnum):
    """The label formats an export can be written in."""

    YOLO_DETECT = "yolo_detect"
    YOLO_SEGMENT = "yolo_segment"
    COCO = "coco"


@dataclass(frozen=True)
class LabelObject:
    """One labelled object.

    `bbox` is (x, y, width, height) in pixels, top-left origin, as floats; `mask`, when
    present, is a bool array of the full image's shape (height, width).
    """

    class_id: int
    bbox: tuple[float, float, float, float]
    mask: npt.NDArray[np.bool_] | None
    object_id: str = ""


@dataclass(frozen=True)
class LabelImage:
    """One image of a label set.

    `file_stem` is unique within the export and has no extension: writers add the extension
    of the image's real format. `image_path` is an existing image file, possibly without an
    extension (a content-addressed store file).
    """

    split: str
    file_stem: str
    image_path: Path
    width: int
    height: int
    objects: tuple[LabelObject, ...]


@dataclass(frozen=True)
class ExportSummary:
    """What a writer wrote: counts, and the path a consumer opens.

    `entry_point` is relative to the export directory (`data.yaml`, `annotations`): writers
    fill a staging directory that is renamed afterwards, so an absolute path would be stale.
    `object_count` counts `LabelObject`s, not label lines (a two-part mask is two YOLO lines).
    """

    image_count: int
    object_count: int
    entry_point: Path


@dataclass(frozen=True)
class ImageHeader:
    """What an image file's header says: the extension of its format and its size in pixels.

    The size is the stored pixel grid, without EXIF orientation applied, as the registry
    decodes images (`agentic_labeling.images`).
    """

    extension: str
    width: int
    height: int


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_SEPARATOR_RUN = re.compile(r"[._-]{2,}")
_SAFE_STEM = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
_FORMAT_EXTENSIONS = {
    "JPEG": ".jpg",
    "PNG": ".png",
    "WEBP": ".webp",
    "BMP": ".bmp",
    "TIFF": ".tif",
}


def safe_file_stem(display_name: str, unique_suffix: str) -> str:
    """A file-system-safe stem such as `coins-3f2a9c1b`: readable part, then the unique suffix.

    Only ASCII letters, digits, `.`, `_` and `-` remain: accents are folded, anything else
    becomes `-`, and runs of `.`, `_`, `-` become one `-`, so there is never a `..`, a path
    separator or a leading dot; at most `MAX_STEM_LENGTH` characters. `unique_suffix` must be
    safe itself (`is_safe_file_stem`, InvalidArgument otherwise): it is what keeps stems
    unique, so it is never shortened.
    """
    if not is_safe_file_stem(unique_suffix):
        raise InvalidArgument(
            f"unique suffix {unique_suffix!r} must be non-empty ASCII letters, digits, '.', "
            "'_' or '-', without '..' and not starting with '.'",
            field="unique_suffix",
        )
    if len(unique_suffix) > MAX_STEM_LENGTH // 2:
        raise InvalidArgument(
            f"unique suffix is {len(unique_suffix)} characters, at most "
            f"{MAX_STEM_LENGTH // 2} allowed",
            field="unique_suffix",
        )
    readable = _readable(display_name, MAX_STEM_LENGTH - len(unique_suffix) - 1)
    return f"{readable}-{unique_suffix}" if readable else unique_suffix


def file_stem_from_name(name: str) -> str:
    """A safe stem for a file name read from a label set: `a/b c.jpg` gives `a-b-c`.

    Folders are kept (joined by `-`) so that names in different folders stay apart; the
    result may still collide with another name's, which the caller resolves.
    """
    without_extension = name.rsplit(".", 1)[0] if "." in name.rsplit("/", 1)[-1] else name
    return _readable(without_extension, MAX_STEM_LENGTH) or "image"


def _readable(text: str, limit: int) -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    readable = _SEPARATOR_RUN.sub("-", _UNSAFE.sub("-", folded)).strip(".-_")
    return readable[:limit].rstrip(".-_")


def is_safe_file_stem(stem: str) -> bool:
    """Whether `stem` is safe as a file name: ASCII letters, digits, `.`, `_`, `-`, no `..`,
    no leading dot, at most `MAX_STEM_LENGTH` characters."""
    return (
        len(stem) <= MAX_STEM_LENGTH and _SAFE_STEM.fullmatch(stem) is not None and ".." not in stem
    )


def image_extension(path: Path) -> str:
    """The extension of the image format in the file's header: .jpg, .png, .webp, .bmp, .tif.

    The name is not consulted (a store file may have none); anything else, or a file PIL
    cannot identify, is InvalidArgument naming the file.
    """
    return read_image_header(path).extension


def read_image_header(path: Path) -> ImageHeader:
    """The format and upright size (EXIF orientation applied, as everywhere in the registry)
    in `path`'s header (pixels are not decoded); see `image_extension`."""
    try:
        with Image.open(path) as image:
            found = image.format
            width, height = upright_size(image)
    except (UnidentifiedImageError, OSError) as error:
        raise InvalidArgument(f"{path}: not a readable image ({error})", field="image") from error
    extension = _FORMAT_EXTENSIONS.get(found or "")
    if extension is None:
        raise InvalidArgument(
            f"{path}: image format {found} is not one of {', '.join(sorted(_FORMAT_EXTENSIONS))}",
            field="image",
        )
    return ImageHeader(extension=extension, width=width, height=height)


def check_label_image(image: LabelImage, class_count: int) -> None:
    """InvalidArgument (naming the image and object) unless `image` can be written as is.

    Checked: a known split, a safe file stem, a positive size, and for each object a class id
    below `class_count`, a finite box with positive size inside the image (up to
    `BORDER_TOLERANCE`), and a bool mask of the image's shape when there is one.
    """
    where = f"image {image.file_stem!r}"
    if image.split not in SPLITS:
        raise InvalidArgument(
            f"{where}: split {image.split!r} is not one of {', '.join(SPLITS)}", field="split"
        )
    if not is_safe_file_stem(image.file_stem):
        raise InvalidArgument(
            f"{where}: file stem must be ASCII letters, digits, '.', '_' or '-', not starting "
            f"with '.', at most {MAX_STEM_LENGTH} characters",
            field="file_stem",
        )
    if image.width <= 0 or image.height <= 0:
        raise InvalidArgument(
            f"{where}: size must be positive, got {image.width} x {image.height}", field="image"
        )
    for index, item in enumerate(image.objects):
        _check_object(item, image, f"{where}, object {index}", class_count)


def checked_image_header(image: LabelImage, class_count: int) -> ImageHeader:
    """`check_label_image`, then the header of the image's file, which must be the size the
    labels are for (InvalidArgument naming the image otherwise). Both writers start here."""
    check_label_image(image, class_count)
    header = read_image_header(image.image_path)
    if (header.width, header.height) != (image.width, image.height):
        raise InvalidArgument(
            f"image {image.file_stem!r}: file {image.image_path} is {header.width} x "
            f"{header.height}, labels are for {image.width} x {image.height}",
            field="image",
        )
    return header


def _check_object(item: LabelObject, image: LabelImage, where: str, class_count: int) -> None:
    if not 0 <= item.class_id < class_count:
        raise InvalidArgument(
            f"{where}: class id {item.class_id} is not below the {class_count} class names",
            field="class_id",
        )
    x, y, width, height = item.bbox
    if not all(math.isfinite(value) for value in item.bbox):
        raise InvalidArgument(f"{where}: bbox {item.bbox} is not finite", field="bbox")
    if (
        width <= 0
        or height <= 0
        or x < 0
        or y < 0
        or x + width > image.width + BORDER_TOLERANCE
        or y + height > image.height + BORDER_TOLERANCE
    ):
        raise InvalidArgument(
            f"{where}: bbox {item.bbox} is empty or reaches outside the "
            f"{image.width} x {image.height} image",
            field="bbox",
        )
    if item.mask is not None and (
        item.mask.dtype != np.bool_ or item.mask.shape != (image.height, image.width)
    ):
        raise InvalidArgument(
            f"{where}: mask must be bool with shape {(image.height, image.width)}, got "
            f"{item.mask.dtype} {item.mask.shape}",
            field="mask",
        )
