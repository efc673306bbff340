"""Triton Python backend: a trained YOLO student on onnxruntime, batched across requests.

Written into a model repository by agentic_labeling.models.student.write_student_model, beside
model.onnx and classes.json. The model logic is agentic_labeling.models.student, the same code
tests call in-process; inputs and outputs are florence2's.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import triton_python_backend_utils as pb_utils  # type: ignore[import-not-found]

from agentic_labeling.models.batching import (
    batched,
    execute_batch,
    optional_input,
    read_image,
    required_input,
    string_list,
)
from agentic_labeling.models.student import (
    StudentDetection,
    StudentDetector,
    StudentServing,
    StudentSettings,
)


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.serving = StudentServing.from_triton_args(args)
        self.detector = StudentDetector.load(
            self.serving.model_dir, device=self.serving.device, threads=self.serving.threads
        )

    def _read(
        self, request: Any
    ) -> tuple[npt.NDArray[np.uint8], list[str], StudentSettings, tuple[int, int]]:
        pixels = read_image(pb_utils, request, max_pixels=self.serving.max_image_pixels)
        names = string_list(required_input(pb_utils, request, "CLASS_NAMES"), "CLASS_NAMES")
        min_confidence = optional_input(pb_utils, request, "MIN_CONFIDENCE")
        max_detections = optional_input(pb_utils, request, "MAX_DETECTIONS")
        settings = StudentSettings(
            min_confidence=0.0 if min_confidence is None else float(min_confidence[0]),
            max_detections=100 if max_detections is None else int(max_detections[0]),
        )
        # Checked per request, so one bad request fails alone instead of its whole batch.
        self.detector.validate(pixels, names, settings)
        return pixels, names, settings, (pixels.shape[1], pixels.shape[0])

    def _infer(self, decoded: list[Any]) -> list[tuple[list[StudentDetection], tuple[int, int]]]:
        detections = self.detector.detect(
            [d[0] for d in decoded], [d[1] for d in decoded], [d[2] for d in decoded]
        )
        return [(found, d[3]) for found, d in zip(detections, decoded, strict=True)]

    @staticmethod
    def _write(result: tuple[list[StudentDetection], tuple[int, int]]) -> list[Any]:
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
