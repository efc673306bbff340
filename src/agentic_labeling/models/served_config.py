"""What a model instance inside Triton needs to know, read once in `initialize`.

Sources, in order: the model's `parameters` in config.pbtxt (`weights`, `device`,
`torch_threads`, `max_image_pixels`), then the environment that `alabel triton start` sets
for the server (`ALABEL_MODELS_DIR`, `ALABEL_TORCH_THREADS`), then defaults. The model.py
files are entry points of their own process (Triton's Python stub), which is why this module,
and only this one besides the CLI, reads the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_labeling.models.loading import resolve_weights

__all__ = ["ServedModelConfig"]

_DEFAULT_MAX_IMAGE_PIXELS = 40_000_000


def _parameters(model_config: Mapping[str, Any]) -> dict[str, str]:
    raw = model_config.get("parameters", {}) or {}
    return {key: str(value.get("string_value", "")) for key, value in raw.items()}


@dataclass(frozen=True)
class ServedModelConfig:
    """Where to load weights from, on which device, with how many threads."""

    weights: str
    device: str
    torch_threads: int
    max_image_pixels: int

    @classmethod
    def from_triton_args(
        cls, name: str, args: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> ServedModelConfig:
        environ = os.environ if environ is None else environ
        params = _parameters(json.loads(args["model_config"]))
        models_dir = environ.get("ALABEL_MODELS_DIR", "")
        weights = params.get("weights") or resolve_weights(
            name, Path(models_dir) if models_dir else None
        )
        # Triton says where this instance runs: KIND_GPU instances get their own device.
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args.get('model_instance_device_id', '0')}"
        else:
            device = params.get("device") or "cpu"
        threads = params.get("torch_threads") or environ.get("ALABEL_TORCH_THREADS", "0")
        pixels = params.get("max_image_pixels") or str(_DEFAULT_MAX_IMAGE_PIXELS)
        return cls(
            weights=weights,
            device=device,
            torch_threads=int(threads),
            max_image_pixels=int(pixels),
        )
