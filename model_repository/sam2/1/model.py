"""Triton Python backend: SAM2 masks for boxes, batched across requests.

The model logic is agentic_labeling.models.sam2, the same code tests call in-process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from agentic_labeling.models.batching import batched, execute_batch, read_image, required_input
from agentic_labeling.models.loading import limit_torch_threads
from agentic_labeling.models.mask_codec import pack_masks
from agentic_labeling.models.sam2 import Sam2Segmenter, SegmentedMasks, validate_inputs
from agentic_labeling.models.served_config import ServedModelConfig


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.config = ServedModelConfig.from_triton_args("sam2", args)
        limit_torch_threads(self.config.torch_threads)
        self.segmenter = Sam2Segmenter.load(self.config.weights, device=self.config.device)

    def _read(self, request: Any) -> tuple[np.ndarray, np.ndarray]:
        pixels = read_image(pb_utils, request, max_pixels=self.config.max_image_pixels)
        boxes = required_input(pb_utils, request, "BOXES").astype(np.float32).reshape(-1, 4)
        # Checked per request, so one bad box fails its own request, not the whole batch.
        validate_inputs([pixels], [boxes])
        return pixels, boxes

    def _infer(self, decoded: list[tuple[np.ndarray, np.ndarray]]) -> list[SegmentedMasks]:
        return self.segmenter.segment([d[0] for d in decoded], [d[1] for d in decoded])

    @staticmethod
    def _write(result: SegmentedMasks) -> list[Any]:
        height, width = result.masks.shape[1:]
        return [
            pb_utils.Tensor("MASKS", batched(pack_masks(result.masks))),
            pb_utils.Tensor("MASK_SIZE", batched(np.array([height, width], dtype=np.int32))),
            pb_utils.Tensor("PREDICTED_IOU", batched(result.predicted_iou.astype(np.float32))),
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        return execute_batch(
            pb_utils, requests, read=self._read, infer=self._infer, write=self._write
        )
