"""Test-only Python-backend model: each request's payload length and checksum.

It answers a request whose payload is `REJECTED_PAYLOAD` with its own INVALID_ARG error while
the other requests of the batch succeed, and reports the environment the stub runs in (numpy
version, where `agentic_labeling` was imported from, the variables the launcher passes), so the
tests can check what `agentic_labeling.triton_server` promises.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np
import triton_python_backend_utils as pb_utils

import agentic_labeling

REJECTED_PAYLOAD = b"reject me"


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        self.environment = json.dumps(
            {
                "numpy": np.__version__,
                "agentic_labeling": agentic_labeling.__file__,
                "sys_prefix": sys.prefix,
                "instance_kind": args["model_instance_kind"],
                "models_dir": os.environ.get("ALABEL_MODELS_DIR"),
                "torch_threads": os.environ.get("ALABEL_TORCH_THREADS"),
                "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            }
        ).encode()

    def execute(self, requests: list[object]) -> list[object]:
        responses = []
        for request in requests:
            data = pb_utils.get_input_tensor_by_name(request, "DATA").as_numpy()
            if data.tobytes() == REJECTED_PAYLOAD:
                error = pb_utils.TritonError(
                    "DATA: this payload is rejected on purpose", pb_utils.TritonError.INVALID_ARG
                )
                responses.append(pb_utils.InferenceResponse(error=error))
                continue
            outputs = [
                pb_utils.Tensor("LENGTH", np.array([[data.size]], dtype=np.int64)),
                pb_utils.Tensor("CHECKSUM", np.array([[int(data.sum())]], dtype=np.int64)),
                pb_utils.Tensor("ENVIRONMENT", np.array([[self.environment]], dtype=np.object_)),
            ]
            responses.append(pb_utils.InferenceResponse(output_tensors=outputs))
        return responses
