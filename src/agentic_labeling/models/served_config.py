"""What a model instance inside Triton needs to know, read once in `initialize`.

Sources, in order: the model's `parameters` in config.pbtxt (`weights`, `device`,
`torch_threads`), then the environment that `alabel triton start` sets for the server
(`ALABEL_MODELS_DIR`, `ALABEL_TORCH_THREADS`, `ALABEL_MAX_IMAGE_PIXELS`), then defaults. The
model.py files are entry points of their own process (Triton's Python stub), which is why this
module, and only this one besides the CLI, reads the environment.

The pixel limit has no config.pbtxt parameter on purpose: it must equal the orchestrator's
and the registry's, so it comes from `Settings` only (the launcher passes
`settings.max_image_pixels`; the NGC deployment sets `ALABEL_MAX_IMAGE_PIXELS` in
docker-compose.yml) and is parsed and defaulted by `load_settings`, like theirs.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentic_labeling.models.loading import resolve_weights
from agentic_labeling.settings import ENV_PREFIX, load_settings

__all__ = ["MAX_BATCH_SIZE", "MAX_IMAGE_PIXELS_VARIABLE", "ServedModelConfig"]

MAX_IMAGE_PIXELS_VARIABLE = ENV_PREFIX + "MAX_IMAGE_PIXELS"
# Every config.pbtxt's max_batch_size (Triton wants the literal there; a test checks each equals
# this). Settings.labeling_window must be at least this for Triton's batches to fill: the
# orchestrator warns at start-up when the window is smaller than what Triton serves.
MAX_BATCH_SIZE = 8


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
        pixels = _max_image_pixels(environ)
        return cls(
            weights=weights,
            device=device,
            torch_threads=int(threads),
            max_image_pixels=pixels,
        )


def _max_image_pixels(environ: Mapping[str, str]) -> int:
    """The launcher's `settings.max_image_pixels`, through the same parsing and default."""
    given = environ.get(MAX_IMAGE_PIXELS_VARIABLE)
    only = {} if given is None else {MAX_IMAGE_PIXELS_VARIABLE: given}
    return load_settings(environ=only).max_image_pixels
