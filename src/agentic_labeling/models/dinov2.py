"""DINOv2 object embeddings: one L2-normalised vector per object crop, for similarity search.

Why this shape: the registry finds look-alike objects (near duplicates, label mistakes, a class's
nearest neighbours) by cosine similarity in Qdrant, so every object gets one unit-length vector.
All crops of all images in a call go through the model together, `MAX_BATCH` at a time.

Decisions:
- The vector is DINOv2's CLS token after the final layer norm (`pooler_output`), the image-level
  feature the DINOv2 authors use for retrieval. Its length is the model's `hidden_size` (768 for
  base, 1024 large, 1536 giant), read from the config, never assumed.
- A crop is the box clipped to the image (at least 1 pixel each way). A box that misses the image
  entirely, or has a negative size or a non-finite value, is an `InvalidArgument`.
- The crop is letterboxed to a square and resized to the processor's crop size (224 for the real
  checkpoints) without a center crop, so a tall or wide object is never cut in half.
  Letterbox padding and, when a mask is given, the background outside the object are filled
  with the processor's mean colour, which normalises to zero: "no information", not black.
- An image with zero boxes is embedded whole (one row), as the proto's EmbedRequest says.

`build_tiny` saves a random-weight DINOv2 with the real architecture (hidden 32, 2 layers, 56 px,
patch 14) that loads through `Dinov2Embedder.load` like facebook/dinov2-*; its vectors mean
nothing about the objects.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import AutoImageProcessor, BitImageProcessor, Dinov2Config, Dinov2Model
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models.inputs import box_columns, check_rgb_image

__all__ = ["MAX_BATCH", "Dinov2Embedder", "build_tiny", "validate_inputs"]

# Crops per forward pass. 32 crops at 224 px are about 8k tokens for ViT-B: fine on one GPU and
# bounded on a CPU.
MAX_BATCH = 32

_TINY_IMAGE_SIZE = 56


def build_tiny(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight Dinov2Model + BitImageProcessor under `directory`; returns it.

    The processor mirrors facebook/dinov2-base's (bicubic, ImageNet mean/std, resize then crop)
    at 64 -> 56 px. Same seed, same weights.
    """
    config = Dinov2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        mlp_ratio=2,
        image_size=_TINY_IMAGE_SIZE,
        patch_size=14,
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Dinov2Model(config)
    processor = BitImageProcessor(
        size={"shortest_edge": 64},
        crop_size={"height": _TINY_IMAGE_SIZE, "width": _TINY_IMAGE_SIZE},
        image_mean=list(IMAGENET_DEFAULT_MEAN),
        image_std=list(IMAGENET_DEFAULT_STD),
        resample=3,  # bicubic, as in the real checkpoints
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def validate_inputs(
    images: Sequence[npt.NDArray[Any]],
    boxes: Sequence[npt.NDArray[Any]],
    masks: Sequence[npt.NDArray[Any] | None] | None = None,
) -> None:
    """Raise InvalidArgument naming the first bad field (`images[i]`, `boxes[i]`, `masks[i]`)."""
    if len(images) != len(boxes):
        raise InvalidArgument(
            f"got {len(images)} images and {len(boxes)} box arrays; need one per image",
            field="boxes",
        )
    if masks is not None and len(masks) != len(images):
        raise InvalidArgument(
            f"got {len(images)} images and {len(masks)} mask entries; need one per image",
            field="masks",
        )
    for index, (image, image_boxes) in enumerate(zip(images, boxes, strict=True)):
        check_rgb_image(image, f"images[{index}]")
        height, width = image.shape[:2]
        _check_boxes(image_boxes, height, width, f"boxes[{index}]")
        image_masks = None if masks is None else masks[index]
        if image_masks is not None:
            _check_masks(image_masks, len(image_boxes), height, width, f"masks[{index}]")


def _check_boxes(boxes: npt.NDArray[Any], height: int, width: int, field: str) -> None:
    x, y, w, h = box_columns(boxes, field)
    bad = (w < 0) | (h < 0) | (x >= width) | (y >= height) | (x + w <= 0) | (y + h <= 0)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise InvalidArgument(
            f"{field} row {row} {boxes[row].tolist()} has a negative size or lies outside "
            f"the {width}x{height} image",
            field=field,
        )


def _check_masks(masks: npt.NDArray[Any], count: int, height: int, width: int, field: str) -> None:
    if not isinstance(masks, np.ndarray) or masks.dtype != np.bool_:
        raise InvalidArgument(f"{field} must be a bool numpy array", field=field)
    if masks.shape != (count, height, width):
        raise InvalidArgument(
            f"{field} must have shape {(count, height, width)} (one mask per box), "
            f"got {masks.shape}",
            field=field,
        )


@dataclass(frozen=True)
class _Crop:
    """Where one object's pixels come from: an image, a clipped box, and maybe a mask."""

    image: int
    top: int
    left: int
    bottom: int
    right: int
    mask: int | None  # row of masks[image], or None to keep the background


class Dinov2Embedder:
    """A loaded DINOv2 (model + image processor) that embeds object crops, batched per call.

    Holds no state between calls; the model runs in eval mode under `torch.inference_mode`.
    """

    def __init__(self, model: Dinov2Model, processor: Any) -> None:
        model.eval()  # type: ignore[no-untyped-call,unused-ignore]
        self._model = model
        self._processor = processor
        self._side = _input_side(processor)
        mean = getattr(processor, "image_mean", None) or IMAGENET_DEFAULT_MEAN
        self._fill = np.clip(np.round(np.asarray(mean) * 255.0), 0, 255).astype(np.uint8)

    @classmethod
    def load(
        cls, weights: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None
    ) -> Dinov2Embedder:
        """Load from a local directory or a hub id (facebook/dinov2-small ... giant)."""
        # dtype None: the checkpoint's own dtype. transformers mis-annotates `to` and left
        # AutoImageProcessor.from_pretrained unannotated before 5.25: hence the two ignores,
        # marked unused-ignore so that mypy passes on every transformers release we allow.
        model = Dinov2Model.from_pretrained(str(weights), dtype=dtype)
        model.to(device)  # type: ignore[arg-type,unused-ignore]
        processor = AutoImageProcessor.from_pretrained(str(weights))  # type: ignore[no-untyped-call,unused-ignore]
        return cls(model, processor)

    @property
    def model(self) -> Dinov2Model:
        """The underlying transformers model (for hooks, statistics and tests)."""
        return self._model

    @property
    def dimension(self) -> int:
        """Length of every embedding: the model's hidden size (768 for dinov2-base)."""
        return int(self._model.config.hidden_size)

    @torch.inference_mode()
    def embed(
        self,
        images: Sequence[npt.NDArray[Any]],
        boxes: Sequence[npt.NDArray[Any]],
        masks: Sequence[npt.NDArray[Any] | None] | None = None,
    ) -> list[npt.NDArray[np.float32]]:
        """For each image a float32 (n_i, dimension) array of unit vectors, one per box.

        images: RGB uint8 (H, W, 3); boxes: (n_i, 4) x, y, w, h in pixels; masks: per image
        None or bool (n_i, H, W), whose False pixels are blanked. Zero boxes: the whole image,
        one row.
        """
        validate_inputs(images, boxes, masks)
        crops = [
            crop
            for index, image in enumerate(images)
            for crop in _crops_of(index, image.shape, boxes[index], masks)
        ]
        vectors: list[npt.NDArray[np.float32]] = []
        for start in range(0, len(crops), MAX_BATCH):
            batch = crops[start : start + MAX_BATCH]
            pixels = [self._pixels(crop, images, masks) for crop in batch]
            vectors.append(self._forward(pixels))
        table = np.concatenate(vectors) if vectors else np.zeros((0, self.dimension), np.float32)
        counts = [max(1, len(image_boxes)) for image_boxes in boxes]
        ends = np.cumsum(counts).tolist()
        return [table[end - count : end] for count, end in zip(counts, ends, strict=True)]

    def _pixels(
        self,
        crop: _Crop,
        images: Sequence[npt.NDArray[Any]],
        masks: Sequence[npt.NDArray[Any] | None] | None,
    ) -> npt.NDArray[np.uint8]:
        """The crop's RGB pixels, background blanked if masked, letterboxed to a square."""
        pixels = images[crop.image][crop.top : crop.bottom, crop.left : crop.right]
        image_masks = None if masks is None else masks[crop.image]
        if crop.mask is not None and image_masks is not None:
            keep = image_masks[crop.mask, crop.top : crop.bottom, crop.left : crop.right]
            pixels = np.where(keep[..., None], pixels, self._fill)
        height, width = pixels.shape[:2]
        side = max(height, width)
        square = np.empty((side, side, 3), dtype=np.uint8)
        square[...] = self._fill
        top, left = (side - height) // 2, (side - width) // 2
        square[top : top + height, left : left + width] = pixels
        return square

    def _forward(self, pixels: list[npt.NDArray[np.uint8]]) -> npt.NDArray[np.float32]:
        """One model pass over square crops: L2-normalised CLS vectors, float32 (n, D)."""
        encoded = self._processor(
            images=pixels,
            size={"height": self._side, "width": self._side},
            do_center_crop=False,
            input_data_format="channels_last",
            return_tensors="pt",
        )
        pixel_values = encoded["pixel_values"].to(self._model.device, dtype=self._model.dtype)
        pooled = self._model(pixel_values=pixel_values).pooler_output.float()
        unit = torch.nn.functional.normalize(pooled, p=2.0, dim=1)
        result: npt.NDArray[np.float32] = unit.cpu().numpy().astype(np.float32)
        return result


def _crops_of(
    index: int,
    shape: tuple[int, ...],
    boxes: npt.NDArray[Any],
    masks: Sequence[npt.NDArray[Any] | None] | None,
) -> Iterator[_Crop]:
    """The crops of one image: each box clipped to it (>= 1 px), or the whole image if none."""
    height, width = int(shape[0]), int(shape[1])
    if len(boxes) == 0:
        yield _Crop(index, 0, 0, height, width, None)
        return
    has_masks = masks is not None and masks[index] is not None
    for row, (x, y, w, h) in enumerate(boxes.astype(np.float64).tolist()):
        left = min(max(math.floor(x), 0), width - 1)
        top = min(max(math.floor(y), 0), height - 1)
        right = max(min(math.ceil(x + w), width), left + 1)
        bottom = max(min(math.ceil(y + h), height), top + 1)
        yield _Crop(index, top, left, bottom, right, row if has_masks else None)


def _input_side(processor: Any) -> int:
    """The square side the model sees: the center-crop size if the processor crops, else the
    resize size (its height, or its shortest edge)."""
    cropping = getattr(processor, "do_center_crop", False)
    size = processor.crop_size if cropping else processor.size
    for key in ("height", "shortest_edge"):
        value = getattr(size, key, None)
        if value:
            return int(value)
    raise ValueError(f"cannot tell the input size of {type(processor).__name__} from {size}")
