"""Tiny random-weight models with the real architectures, for tests and the offline demo.

`make_tiny_models(directory)` writes `florence2/`, `sam2/` and `dinov2/` under `directory`
with `save_pretrained`, so they load through the same `from_pretrained` path as real
checkpoints (point ALABEL_MODELS_DIR at the directory). Their weights are random: they prove
the plumbing (shapes, batching, serving, parity), never the quality of a label.

The directory also gets a `TINY_RANDOM_WEIGHTS` file saying so: an orchestrator given this
directory reports `random_weights` in GetMeshStatus, and `alabel label` then warns and keeps
every box (see labeling_defaults.py).
"""

from __future__ import annotations

from pathlib import Path

from agentic_labeling.labeling_defaults import RANDOM_WEIGHTS_MARKER
from agentic_labeling.models import dinov2, florence2_tiny, sam2

__all__ = ["MODEL_NAMES", "make_tiny_models"]

MODEL_NAMES = ("florence2", "sam2", "dinov2")


def make_tiny_models(directory: Path, *, seed: int = 0) -> dict[str, Path]:
    """Build the three tiny models under `directory`, with the random-weights marker; returns
    where each model went."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / RANDOM_WEIGHTS_MARKER).write_text(
        "The models in this directory have random weights (alabel models make-tiny): they prove\n"
        "the plumbing; their labels and confidences mean nothing.\n"
    )
    return {
        "florence2": florence2_tiny.build_tiny(directory / "florence2", seed=seed),
        "sam2": sam2.build_tiny(directory / "sam2", seed=seed),
        "dinov2": dinov2.build_tiny(directory / "dinov2", seed=seed),
    }
