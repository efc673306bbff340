"""Which Triton model detects for an AutoLabel stream (`AutoLabelConfig.detector`).

Empty means the default, florence2. Any other name must be a model Triton serves with
florence2's inputs and outputs, such as a trained YOLO student (models/student.py). The
default is not asked about (as before: with Triton down, images fail UNAVAILABLE one by one).
Another name is asked about once per config, when the config is read and before any image
after it, so a wrong choice fails the stream at once instead of every image:

- Triton's repository does not list it: NotFound (reason DETECTOR_NOT_FOUND);
- listed but not READY (it failed to load): FailedPrecondition (DETECTOR_NOT_READY) with
  Triton's reason;
- READY but without a detector's inputs and outputs (sam2, dinov2, ...): InvalidArgument on
  `config.detector`;
- a student (its config carries a `class_names` parameter) that was not trained on a requested
  class: InvalidArgument on `config.class_names[i]` (reason CLASS_UNKNOWN_TO_DETECTOR) listing
  the classes it knows; the student itself would only return no boxes for it;
- Triton cannot be asked: no verdict here; the images then fail UNAVAILABLE one by one, as
  with the default.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from tritonclient.grpc import aio as triton_aio
from tritonclient.utils import InferenceServerException

from agentic_labeling.clients.triton_models import ModelNames
from agentic_labeling.errors import FailedPrecondition, FieldViolation, InvalidArgument, NotFound

__all__ = ["DEFAULT_DETECTOR", "checked_detector", "require_detector"]

DEFAULT_DETECTOR = ModelNames().detector
# What AutoLabel sends a detector and reads back (model_repository/florence2/config.pbtxt).
_INPUTS = frozenset({"CLASS_NAMES", "MIN_CONFIDENCE", "MAX_DETECTIONS"})
_OUTPUTS = frozenset({"BOXES", "SCORES", "CLASS_IDS", "IMAGE_SIZE"})
# Triton model names are directory names of its repository.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TIMEOUT_S = 5.0


def checked_detector(name: str, field: str = "config.detector") -> str:
    """The detector's model name (empty: the default), or InvalidArgument naming `field`."""
    name = name.strip()
    if not name:
        return DEFAULT_DETECTOR
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"{name!r} is not a Triton model name (1 to 64 letters, digits, '_', '.' or '-')",
            field=field,
        )
    return name


async def require_detector(
    triton_url: str, detector: str, class_names: Sequence[str], *, timeout_s: float = _TIMEOUT_S
) -> None:
    """Raise the error that fails the stream when `detector` cannot label `class_names`."""
    if detector == DEFAULT_DETECTOR:
        return
    client = triton_aio.InferenceServerClient(triton_url)
    try:
        index = await client.get_model_repository_index(client_timeout=timeout_s)
        listed = {m.name: m for m in index.models}
        model = listed.get(detector)
        if model is None:
            error = NotFound("detector", detector, reason="DETECTOR_NOT_FOUND")
            error.metadata["served_models"] = ", ".join(sorted(listed))
            raise error
        if model.state != "READY":
            raise FailedPrecondition(
                f"detector {detector!r} is in Triton's model repository but not ready"
                f" ({model.state or 'not loaded'}: {model.reason or 'no reason given'});"
                " see the Triton log",
                reason="DETECTOR_NOT_READY",
                metadata={"detector": detector},
            )
        reply = await client.get_model_config(detector, client_timeout=timeout_s)
    except InferenceServerException:
        return  # Triton cannot say: the images fail UNAVAILABLE one by one
    finally:
        await client.close()
    config = reply.config
    inputs = {i.name for i in config.input}
    outputs = {o.name for o in config.output}
    missing = sorted((_INPUTS - inputs) | (_OUTPUTS - outputs))
    if not inputs & {"IMAGE", "PIXELS"}:
        missing.insert(0, "IMAGE")
    if missing:
        raise InvalidArgument(
            f"{detector!r} is served but is not a detector: it lacks florence2's"
            f" {', '.join(missing)}",
            field="config.detector",
            reason="NOT_A_DETECTOR",
        )
    if "class_names" in config.parameters:
        known = json.loads(config.parameters["class_names"].string_value)
        _require_known_classes(detector, known, class_names)


def _require_known_classes(detector: str, known: Sequence[str], wanted: Sequence[str]) -> None:
    """A student detects only the classes it was trained on (matched case-insensitively)."""
    folded = {name.strip().casefold() for name in known}
    unknown = [
        FieldViolation(
            f"config.class_names[{i}]",
            f"detector {detector!r} was not trained on {name!r}; it knows: {', '.join(known)}",
        )
        for i, name in enumerate(wanted)
        if name.strip().casefold() not in folded
    ]
    if unknown:
        raise InvalidArgument(
            unknown[0].description + " (label these classes with the default detector)",
            violations=unknown,
            reason="CLASS_UNKNOWN_TO_DETECTOR",
        )
