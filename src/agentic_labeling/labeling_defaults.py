"""The detection threshold a request gets when it does not name one, and how tiny models say
what they are. Light on purpose: the CLI reads it before it loads gRPC or torch.

One default for real checkpoints, used by the orchestrator when AutoLabelConfig.min_confidence
or DetectRequest.min_confidence is unset, and shown by `alabel label --help`. Random-weight
tiny models (`alabel models make-tiny`) score every box near 0, so with them `alabel label`
uses `RANDOM_WEIGHTS_MIN_CONFIDENCE` instead, unless --box-threshold is given; it learns that
the mesh serves them from GetMeshStatus (`MeshStatus.random_weights`), which the orchestrator
reads from `RANDOM_WEIGHTS_MARKER` in its models directory.
"""

from __future__ import annotations

from pathlib import Path

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "RANDOM_WEIGHTS_MARKER",
    "RANDOM_WEIGHTS_MIN_CONFIDENCE",
    "has_random_weights",
]

DEFAULT_MIN_CONFIDENCE = 0.5
RANDOM_WEIGHTS_MIN_CONFIDENCE = 0.0
# Written by `alabel models make-tiny` into the models directory it fills.
RANDOM_WEIGHTS_MARKER = "TINY_RANDOM_WEIGHTS"


def has_random_weights(models_dir: Path | None) -> bool:
    """Whether `models_dir` holds tiny random-weight models (it carries the marker)."""
    return models_dir is not None and (models_dir.expanduser() / RANDOM_WEIGHTS_MARKER).is_file()
