"""SAM2 box-prompted segmentation: image + N boxes -> N binary masks at the image's resolution.

Why this shape: the vision encoder is nearly all of SAM2's cost, the mask decoder is cheap. So a
call encodes every image exactly once (several images share one encoder forward pass, since the
processor resizes all of them to the same square), then sends all boxes of an image through the
mask decoder together. The same `Sam2Segmenter` runs in-process and inside the Triton model, so
served and in-process masks can be compared.

Decisions:
- One mask per box: `multimask_output=False`. A box is an unambiguous prompt (the SAM2 authors
  use single-mask output for boxes); with the real checkpoints' `dynamic_multimask_via_stability`
  the decoder itself falls back to the best of its three candidate masks (by predicted IoU) when
  the single mask is unstable, so no second heuristic is layered on top.
- Masks are upsampled from the decoder's low-resolution logits straight to the original image
  size with the processor's `post_process_masks` and thresholded at logit 0 (SAM's threshold).
- Boxes are x, y, width, height in pixels and must lie inside the image (a tolerance of
  `BOX_TOLERANCE_PX` absorbs rounding at the border); anything else is an `InvalidArgument`
  naming the field, raised before any model work.

`build_tiny` saves a random-weight SAM2 with the real architecture (a small Hiera at 256 px) that
loads through `Sam2Segmenter.load` exactly like facebook/sam2.1-hiera-*; its masks mean nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from transformers import (
    AutoProcessor,
    Sam2Config,
    Sam2ImageProcessor,
    Sam2MaskDecoderConfig,
    Sam2Model,
    Sam2Processor,
    Sam2PromptEncoderConfig,
    Sam2VisionConfig,
)
from transformers.models.sam2.configuration_sam2 import Sam2HieraDetConfig

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models.inputs import box_columns, check_rgb_image

__all__ = [
    "BOX_TOLERANCE_PX",
    "MAX_BOXES_PER_DECODE",
    "MAX_IMAGES_PER_ENCODE",
    "Sam2Segmenter",
    "SegmentedMasks",
    "build_tiny",
    "validate_inputs",
]

# Images per vision-encoder forward pass. At 1024 px one image's activations take a few hundred
# MB in the real encoders; 8 keeps a batch well inside one GPU and within reason on a CPU.
MAX_IMAGES_PER_ENCODE = 8
# Boxes per mask-decoder pass: the decoder copies the image embedding once per box.
MAX_BOXES_PER_DECODE = 64
# Float values (not masks) per upsampling step, so a 4K image with many boxes stays near 256 MB.
_MAX_UPSAMPLED_VALUES = 1 << 26
# How far (pixels) a box may reach past the image border before it is refused.
BOX_TOLERANCE_PX = 1.0
# SAM's decision threshold on mask logits.
_MASK_THRESHOLD = 0.0

_TINY_IMAGE_SIZE = 256


@dataclass(frozen=True)
class SegmentedMasks:
    """The masks of one image, one per input box, in the order of the boxes."""

    masks: npt.NDArray[np.bool_]  # bool (n, H, W) at the ORIGINAL image resolution
    predicted_iou: npt.NDArray[np.float32]  # float32 (n,): SAM2's own estimate of each mask's IoU


def build_tiny(directory: Path, *, seed: int = 0) -> Path:
    """Save a tiny random-weight Sam2Model + Sam2Processor under `directory`; returns it.

    The Hiera backbone has four stages (strides 4..32 at 256 px) like the real ones, with the
    one global-attention block last in its stage (a global block first in a stage divides by
    zero) and `backbone_feature_sizes` following the image size. Same seed, same weights.
    """
    size = _TINY_IMAGE_SIZE
    backbone = Sam2HieraDetConfig(
        hidden_size=16,
        num_attention_heads=1,
        image_size=[size, size],
        blocks_per_stage=[1, 1, 2, 1],
        embed_dim_per_stage=[16, 32, 64, 128],
        num_attention_heads_per_stage=[1, 1, 2, 2],
        window_size_per_stage=[8, 4, 4, 4],
        global_attention_blocks=[3],  # the second block of stage 3, never a stage's first
        window_positional_embedding_background_size=[4, 4],
    )
    vision = Sam2VisionConfig(
        backbone_config=backbone,
        backbone_channel_list=[128, 64, 32, 16],
        backbone_feature_sizes=[[size // 4] * 2, [size // 8] * 2, [size // 16] * 2],
        fpn_hidden_size=32,
    )
    config = Sam2Config(
        vision_config=vision,
        prompt_encoder_config=Sam2PromptEncoderConfig(hidden_size=32, image_size=size),
        mask_decoder_config=Sam2MaskDecoderConfig(
            hidden_size=32, mlp_dim=64, num_attention_heads=2, iou_head_hidden_dim=32
        ),
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = Sam2Model(config)
    image_processor = Sam2ImageProcessor(
        size={"height": size, "width": size},
        mask_size={"height": size // 4, "width": size // 4},
    )
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    Sam2Processor(image_processor=image_processor).save_pretrained(directory)
    return directory


def validate_inputs(images: Sequence[npt.NDArray[Any]], boxes: Sequence[npt.NDArray[Any]]) -> None:
    """Raise InvalidArgument naming the first bad field (`images[i]`, `boxes[i]`, `boxes`)."""
    if len(images) != len(boxes):
        raise InvalidArgument(
            f"got {len(images)} images and {len(boxes)} box arrays; need one per image",
            field="boxes",
        )
    for index, (image, image_boxes) in enumerate(zip(images, boxes, strict=True)):
        check_rgb_image(image, f"images[{index}]")
        _check_boxes(image_boxes, image.shape[0], image.shape[1], f"boxes[{index}]")


def _check_boxes(boxes: npt.NDArray[Any], height: int, width: int, field: str) -> None:
    x, y, w, h = box_columns(boxes, field)
    bad = (w < 0) | (h < 0)
    bad |= (x < -BOX_TOLERANCE_PX) | (y < -BOX_TOLERANCE_PX)
    bad |= (x + w > width + BOX_TOLERANCE_PX) | (y + h > height + BOX_TOLERANCE_PX)
    if np.any(bad):
        row = int(np.flatnonzero(bad)[0])
        raise InvalidArgument(
            f"{field} row {row} {boxes[row].tolist()} is not an x, y, width, height box "
            f"inside the {width}x{height} image",
            field=field,
        )


class Sam2Segmenter:
    """A loaded SAM2 (model + processor) that turns boxes into masks, batched per call.

    Holds no state between calls; the model runs in eval mode under `torch.inference_mode`.
    """

    def __init__(self, model: Sam2Model, processor: Sam2Processor) -> None:
        model.eval()  # type: ignore[no-untyped-call,unused-ignore]
        self._model = model
        self._processor = processor

    @classmethod
    def load(
        cls, weights: str | Path, *, device: str = "cpu", dtype: torch.dtype | None = None
    ) -> Sam2Segmenter:
        """Load from a local directory or a hub id (facebook/sam2.1-hiera-tiny ... large)."""
        # dtype None: the checkpoint's own dtype. transformers mis-annotates `to` and leaves
        # AutoProcessor.from_pretrained unannotated, hence the two ignores.
        model = Sam2Model.from_pretrained(str(weights), dtype=dtype)
        model.to(device)  # type: ignore[arg-type,unused-ignore]
        processor = AutoProcessor.from_pretrained(str(weights))  # type: ignore[no-untyped-call,unused-ignore]
        return cls(model, processor)

    @property
    def model(self) -> Sam2Model:
        """The underlying transformers model (for hooks, statistics and tests)."""
        return self._model

    @torch.inference_mode()
    def segment(
        self, images: Sequence[npt.NDArray[Any]], boxes: Sequence[npt.NDArray[Any]]
    ) -> list[SegmentedMasks]:
        """One mask and one predicted IoU per box, for each image, in input order.

        images: RGB uint8 (H, W, 3), sizes may differ; boxes: (n_i, 4) x, y, w, h in pixels.
        An image with no boxes is not encoded and gives empty (0, H, W) masks.
        """
        validate_inputs(images, boxes)
        results: dict[int, SegmentedMasks] = {}
        for index, image in enumerate(images):
            if len(boxes[index]) == 0:
                results[index] = SegmentedMasks(
                    masks=np.zeros((0, *image.shape[:2]), dtype=np.bool_),
                    predicted_iou=np.zeros((0,), dtype=np.float32),
                )
        pending = [index for index in range(len(images)) if index not in results]
        for start in range(0, len(pending), MAX_IMAGES_PER_ENCODE):
            chunk = pending[start : start + MAX_IMAGES_PER_ENCODE]
            embeddings = self._encode([images[index] for index in chunk])
            for position, index in enumerate(chunk):
                per_image = [level[position : position + 1] for level in embeddings]
                results[index] = self._decode(per_image, images[index].shape[:2], boxes[index])
        return [results[index] for index in range(len(images))]

    def _encode(self, images: list[npt.NDArray[Any]]) -> list[torch.Tensor]:
        """One vision-encoder pass over all images: the per-level feature maps, batch first."""
        encoded = self._processor(
            images=images, input_data_format="channels_last", return_tensors="pt"
        )
        pixel_values = encoded["pixel_values"].to(self._model.device, dtype=self._model.dtype)
        embeddings: list[torch.Tensor] = self._model.get_image_embeddings(pixel_values)
        return embeddings

    def _decode(
        self, embeddings: list[torch.Tensor], size: tuple[int, ...], boxes: npt.NDArray[Any]
    ) -> SegmentedMasks:
        """All boxes of one image through the mask decoder, masks back at the image's size."""
        height, width = int(size[0]), int(size[1])
        corners = boxes.astype(np.float64)
        corners[:, 2:] += corners[:, :2]  # x, y, w, h -> x1, y1, x2, y2
        normalised = self._processor(
            original_sizes=[[height, width]],
            input_boxes=[corners.tolist()],
            return_tensors="pt",
        )["input_boxes"].to(self._model.device, dtype=self._model.dtype)
        masks: list[npt.NDArray[np.bool_]] = []
        scores: list[npt.NDArray[np.float32]] = []
        for start in range(0, normalised.shape[1], MAX_BOXES_PER_DECODE):
            output = self._model(
                image_embeddings=embeddings,
                input_boxes=normalised[:, start : start + MAX_BOXES_PER_DECODE],
                multimask_output=False,
            )
            low_res = output.pred_masks[0].float().cpu()  # (k, 1, h, w) logits
            scores.append(output.iou_scores[0, :, 0].float().cpu().numpy())
            step = max(1, _MAX_UPSAMPLED_VALUES // (height * width))
            for first in range(0, low_res.shape[0], step):
                upsampled = self._processor.post_process_masks(  # type: ignore[no-untyped-call,unused-ignore]
                    [low_res[first : first + step]],
                    [[height, width]],
                    mask_threshold=_MASK_THRESHOLD,
                    binarize=True,
                )[0]
                masks.append(upsampled[:, 0].numpy())
        return SegmentedMasks(
            masks=np.concatenate(masks).astype(np.bool_),
            predicted_iou=np.concatenate(scores).astype(np.float32),
        )
