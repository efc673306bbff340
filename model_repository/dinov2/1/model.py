"""Triton Python backend: DINOv2 embeddings of object crops, batched across requests.

The model logic is agentic_labeling.models.dinov2, the same code tests call in-process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models.batching import (
    batched,
    execute_batch,
    optional_input,
    read_image,
    required_input,
)
from agentic_labeling.models.dinov2 import Dinov2Embedder, validate_inputs
from agentic_labeling.models.loading import limit_torch_threads
from agentic_labeling.models.mask_codec import unpack_masks
from agentic_labeling.models.served_config import ServedModelConfig


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.config = ServedModelConfig.from_triton_args("dinov2", args)
        limit_torch_threads(self.config.torch_threads)
        self.embedder = Dinov2Embedder.load(self.config.weights, device=self.config.device)

    def _read(self, request: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        pixels = read_image(pb_utils, request, max_pixels=self.config.max_image_pixels)
        boxes = required_input(pb_utils, request, "BOXES").astype(np.float32).reshape(-1, 4)
        packed = optional_input(pb_utils, request, "MASKS")
        masks = None
        if packed is not None:
            if len(packed) != len(boxes):
                raise InvalidArgument(f"{len(packed)} masks for {len(boxes)} boxes", field="MASKS")
            masks = unpack_masks(packed.astype(np.uint8), *pixels.shape[:2])
        # Checked per request, so one bad box fails its own request, not the whole batch.
        validate_inputs([pixels], [boxes], [masks])
        return pixels, boxes, masks

    def _infer(self, decoded: list[Any]) -> list[np.ndarray]:
        return self.embedder.embed(
            [d[0] for d in decoded], [d[1] for d in decoded], [d[2] for d in decoded]
        )

    @staticmethod
    def _write(result: np.ndarray) -> list[Any]:
        return [pb_utils.Tensor("EMBEDDINGS", batched(result.astype(np.float32)))]

    def execute(self, requests: list[Any]) -> list[Any]:
        return execute_batch(
            pb_utils, requests, read=self._read, infer=self._infer, write=self._write
        )
