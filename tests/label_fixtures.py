"""A small label set on real image files, for the export and import tests.

Three images (splits interleaved: train, val, train): a 160x120 PNG stored without an
extension (as in the content-addressed store), a 96x64 JPEG, and an image without objects.
The objects cover what the formats find hard: a ring (a mask with a hole), an object in two
separate parts, a blob, and objects with a box only (fractional coordinates).

Also here: the one-pixel band used to compare polygon masks with the originals, and the
environment that keeps ultralytics offline and out of the home directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import ModuleType

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from agentic_labeling.registry.datasets.label_sets import LabelImage, LabelObject

__all__ = [
    "CLASS_NAMES",
    "boundary_band",
    "import_ultralytics",
    "mask_box",
    "ring_mask",
    "sample_images",
    "two_part_mask",
    "within_one_pixel",
]

CLASS_NAMES = ("ring", "pair", "crate")

Mask = npt.NDArray[np.bool_]


def ring_mask(height: int = 120, width: int = 160) -> Mask:
    """A disc of radius 30 with a hole of radius 12, centred at (50, 60)."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.circle(canvas, (50, 60), 30, (1,), thickness=-1)
    cv2.circle(canvas, (50, 60), 12, (0,), thickness=-1)
    return canvas.astype(bool)


def two_part_mask(height: int = 120, width: int = 160) -> Mask:
    """A rectangle and a disc that do not touch."""
    canvas = np.zeros((height, width), dtype=np.uint8)
    canvas[10:30, 100:140] = 1
    cv2.circle(canvas, (125, 85), 15, (1,), thickness=-1)
    return canvas.astype(bool)


def blob_mask(height: int = 64, width: int = 96) -> Mask:
    canvas = np.zeros((height, width), dtype=np.uint8)
    cv2.ellipse(canvas, (40, 30), (25, 14), 30, 0, 360, (1,), thickness=-1)
    return canvas.astype(bool)


def mask_box(mask: Mask) -> tuple[float, float, float, float]:
    """The pixel extent of a mask as (x, y, width, height)."""
    rows = np.flatnonzero(mask.any(axis=1))
    columns = np.flatnonzero(mask.any(axis=0))
    return (
        float(columns[0]),
        float(rows[0]),
        float(columns[-1] + 1 - columns[0]),
        float(rows[-1] + 1 - rows[0]),
    )


def _noise_image(path: Path, width: int, height: int, image_format: str, seed: int) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format=image_format)
    return path


def sample_images(directory: Path) -> list[LabelImage]:
    """The label set, its image files written under `directory/store`."""
    store = directory / "store"
    store.mkdir(parents=True, exist_ok=True)
    png = _noise_image(store / "3f2a9c1b0d", 160, 120, "PNG", seed=1)  # no extension
    jpeg = _noise_image(store / "photo.jpeg", 96, 64, "JPEG", seed=2)
    empty = _noise_image(store / "empty.png", 160, 120, "PNG", seed=3)
    ring, pair, blob = ring_mask(), two_part_mask(), blob_mask()
    return [
        LabelImage(
            split="train",
            file_stem="coins-3f2a9c1b",
            image_path=png,
            width=160,
            height=120,
            objects=(
                LabelObject(0, mask_box(ring), ring, "obj-ring"),
                LabelObject(1, mask_box(pair), pair, "obj-pair"),
                LabelObject(2, (3.25, 90.5, 40.125, 20.75), None, "obj-crate"),
            ),
        ),
        LabelImage(
            split="val",
            file_stem="desk-77aa",
            image_path=jpeg,
            width=96,
            height=64,
            objects=(
                LabelObject(0, mask_box(blob), blob, "obj-blob"),
                LabelObject(2, (60.0, 5.5, 30.0, 12.25), None, "obj-crate-2"),
            ),
        ),
        LabelImage(
            split="train",
            file_stem="empty-0001",
            image_path=empty,
            width=160,
            height=120,
            objects=(),
        ),
    ]


def boundary_band(mask: Mask) -> Mask:
    """The pixels within one pixel (8-neighbourhood) of the mask's boundary."""
    kernel = np.ones((3, 3), dtype=np.uint8)
    as_bytes = mask.astype(np.uint8)
    dilated = cv2.dilate(as_bytes, kernel).astype(bool)
    eroded = cv2.erode(as_bytes, kernel, borderType=cv2.BORDER_REPLICATE).astype(bool)
    return dilated & ~eroded


def within_one_pixel(found: Mask, expected: Mask) -> bool:
    """Whether every pixel where the masks differ lies within 1 px of `expected`'s boundary."""
    return not ((found ^ expected) & ~boundary_band(expected)).any()


def import_ultralytics(config_dir: Path) -> ModuleType:
    """ultralytics, imported with its settings in `config_dir` and no network access.

    ultralytics reads both variables once, at its first import: call this before anything
    else imports it. They stay set for the process (ultralytics reads some of them later).

    Importing ultralytics replaces `PIL.Image.open` for the whole process with a wrapper that,
    on a file Pillow cannot identify, tries to pip-install pi-heif and then raises
    ModuleNotFoundError instead of UnidentifiedImageError. Pillow's own function is put back,
    so tests that run later (ours and others') see Pillow as the product does.
    """
    os.environ["YOLO_CONFIG_DIR"] = str(config_dir)
    os.environ["YOLO_OFFLINE"] = "1"
    import ultralytics
    from ultralytics.utils import patches

    Image.open = getattr(patches, "_image_open", Image.open)
    return ultralytics
