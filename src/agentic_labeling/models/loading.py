"""Where a model's weights come from, and how many CPU threads torch may use.

A model is found, in order: `<models_dir>/<name>` when that directory exists, else the
default hub id of the model (which needs a model hub; there is none on the test machines,
so tests and the demo always pass a models_dir built by `alabel models make-tiny`).
"""

from __future__ import annotations

from pathlib import Path

import torch

__all__ = ["DEFAULT_HUB_IDS", "limit_torch_threads", "resolve_weights", "select_device"]

# The real checkpoints in transformers format, used when no local directory is given.
DEFAULT_HUB_IDS = {
    "florence2": "florence-community/Florence-2-base",
    "sam2": "facebook/sam2.1-hiera-tiny",
    "dinov2": "facebook/dinov2-base",
}


def resolve_weights(name: str, models_dir: Path | None) -> str:
    """A local directory for `name` under models_dir if there is one, else its hub id."""
    if models_dir is not None and (models_dir / name).is_dir():
        return str(models_dir / name)
    return DEFAULT_HUB_IDS[name]


def select_device(requested: str = "") -> str:
    """`requested` when given ("cpu", "cuda", "cuda:1"), else a GPU when there is one."""
    if requested:
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"


def limit_torch_threads(threads: int) -> None:
    """Cap torch's intra-op threads so several model instances do not oversubscribe the CPU."""
    if threads > 0:
        torch.set_num_threads(threads)
