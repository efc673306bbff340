"""Triton Python backend: Florence-2 detection, batched across requests.

The model logic is agentic_labeling.models.florence2, the same code tests call in-process.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from agentic_labeling.models.batching import (
    batched,
    execute_batch,
    optional_input,
    read_image,
    required_input,
    string_list,
)
from agentic_labeling.models.florence2 import Detection, DetectionSettings, Florence2Detector
from agentic_labeling.models.loading import limit_torch_threads
from agentic_labeling.models.served_config import ServedModelConfig


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.config = ServedModelConfig.from_triton_args("florence2", args)
        limit_torch_threads(self.config.torch_threads)
        self.detector = Florence2Detector.load(self.config.weights, device=self.config.device)

    def _read(
        self, request: Any
    ) -> tuple[np.ndarray, list[str], DetectionSettings, tuple[int, int]]:
        pixels = read_image(pb_utils, request, max_pixels=self.config.max_image_pixels)
        names = string_list(required_input(pb_utils, request, "CLASS_NAMES"), "CLASS_NAMES")
        min_confidence = optional_input(pb_utils, request, "MIN_CONFIDENCE")
        max_detections = optional_input(pb_utils, request, "MAX_DETECTIONS")
        settings = DetectionSettings(
            min_confidence=0.0 if min_confidence is None else float(min_confidence[0]),
            max_detections=100 if max_detections is None else int(max_detections[0]),
        )
        # Checked per request, so one bad request fails alone instead of its whole batch.
        self.detector.validate(pixels, names, settings)
        return pixels, names, settings, (pixels.shape[1], pixels.shape[0])

    def _infer(self, decoded: list[Any]) -> list[tuple[list[Detection], tuple[int, int]]]:
        detections = self.detector.detect(
            [d[0] for d in decoded], [d[1] for d in decoded], [d[2] for d in decoded]
        )
        return [(found, d[3]) for found, d in zip(detections, decoded, strict=True)]

    @staticmethod
    def _write(result: tuple[list[Detection], tuple[int, int]]) -> list[Any]:
        found, size = result
        boxes = np.array([d.box for d in found], dtype=np.float32).reshape(-1, 4)
        return [
            pb_utils.Tensor("BOXES", batched(boxes)),
            pb_utils.Tensor("SCORES", batched(np.array([d.confidence for d in found], np.float32))),
            pb_utils.Tensor("CLASS_IDS", batched(np.array([d.class_id for d in found], np.int32))),
            pb_utils.Tensor("IMAGE_SIZE", batched(np.array(size, dtype=np.int32))),
        ]

    def execute(self, requests: list[Any]) -> list[Any]:
        return execute_batch(
            pb_utils, requests, read=self._read, infer=self._infer, write=self._write
        )
