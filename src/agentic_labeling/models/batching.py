"""Stacks the requests of one Triton execution into one batch call and splits the results.

Triton's dynamic batcher hands a Python-backend model several requests at once. Every
model.py in model_repository/ goes through `execute_batch`:

1. each request is read on its own (`read`); a bad one (undecodable image, box outside the
   image, wrong dtype) gets its own error response and leaves the batch;
2. the good ones go through the model in one call (`infer`), e.g. one `generate`, one SAM2
   encoder pass, one DINOv2 forward;
3. each result becomes that request's response tensors (`write`), in request order.

`pb_utils` (triton_python_backend_utils) exists only inside Triton's stub, so it is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import DomainError, InvalidArgument
from agentic_labeling.images import decode_image
from agentic_labeling.models.inputs import check_rgb_image

__all__ = [
    "batched",
    "execute_batch",
    "optional_input",
    "read_image",
    "required_input",
    "string_list",
]

logger = logging.getLogger(__name__)

Decoded = TypeVar("Decoded")
Result = TypeVar("Result")


def required_input(pb_utils: Any, request: Any, name: str) -> npt.NDArray[Any]:
    """The request's tensor `name` without its batch dimension of 1."""
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    if tensor is None:
        raise InvalidArgument(f"input {name} is required", field=name)
    array: npt.NDArray[Any] = tensor.as_numpy()
    if array.ndim == 0 or array.shape[0] != 1:
        raise InvalidArgument(
            f"input {name} must have a batch dimension of 1, got shape {array.shape}", field=name
        )
    first: npt.NDArray[Any] = array[0]
    return first


def optional_input(pb_utils: Any, request: Any, name: str) -> npt.NDArray[Any] | None:
    if pb_utils.get_input_tensor_by_name(request, name) is None:
        return None
    return required_input(pb_utils, request, name)


def read_image(pb_utils: Any, request: Any, *, max_pixels: int) -> npt.NDArray[np.uint8]:
    """The request's image as upright RGB pixels (height, width, 3), checked.

    Exactly one of two inputs carries it: IMAGE, the encoded file (decoded here), or PIXELS,
    pixels a caller already decoded with `decode_image` (the orchestrator decodes every image
    to check it; sending its pixels spares each model decoding the same file again).
    """
    has_image = pb_utils.get_input_tensor_by_name(request, "IMAGE") is not None
    has_pixels = pb_utils.get_input_tensor_by_name(request, "PIXELS") is not None
    if has_image == has_pixels:
        raise InvalidArgument("send exactly one of IMAGE and PIXELS", field="IMAGE")
    if has_image:
        data = required_input(pb_utils, request, "IMAGE")
        return decode_image(
            data.astype(np.uint8).tobytes(), max_pixels=max_pixels, field="IMAGE"
        ).pixels
    pixels = required_input(pb_utils, request, "PIXELS")
    check_rgb_image(pixels, "PIXELS")
    height, width = pixels.shape[:2]
    if height * width > max_pixels:
        raise InvalidArgument(
            f"image is {width}x{height} = {height * width} pixels, more than the limit of "
            f"{max_pixels}",
            field="PIXELS",
            reason="IMAGE_TOO_LARGE",
        )
    return pixels


def string_list(array: npt.NDArray[Any], field: str) -> list[str]:
    """A BYTES tensor as Python strings (UTF-8)."""
    try:
        return [item.decode("utf-8") if isinstance(item, bytes) else str(item) for item in array]
    except UnicodeDecodeError:
        raise InvalidArgument("must be UTF-8 text", field=field) from None


def _error_response(pb_utils: Any, exc: DomainError) -> Any:
    # Only bad input is the client's fault; anything else is reported as Triton's INTERNAL.
    code = (
        pb_utils.TritonError.INVALID_ARG
        if isinstance(exc, InvalidArgument)
        else pb_utils.TritonError.INTERNAL
    )
    return pb_utils.InferenceResponse(error=pb_utils.TritonError(exc.message, code))


def execute_batch(
    pb_utils: Any,
    requests: Sequence[Any],
    *,
    read: Callable[[Any], Decoded],
    infer: Callable[[list[Decoded]], list[Result]],
    write: Callable[[Result], list[Any]],
) -> list[Any]:
    """One response per request, in order: errors for bad requests, results for the rest."""
    responses: list[Any] = [None] * len(requests)
    good_positions: list[int] = []
    good_inputs: list[Decoded] = []
    for position, request in enumerate(requests):
        try:
            good_inputs.append(read(request))
            good_positions.append(position)
        except DomainError as exc:
            responses[position] = _error_response(pb_utils, exc)
    if good_inputs:
        try:
            results = infer(good_inputs)
        except DomainError as exc:
            results = None
            failure = _error_response(pb_utils, exc)
        except Exception:
            # A bug or a broken model: the whole batch fails, the model instance lives on.
            logger.exception("model inference failed for a batch of %d", len(good_inputs))
            results = None
            failure = pb_utils.InferenceResponse(
                error=pb_utils.TritonError(
                    "model inference failed; see the Triton log", pb_utils.TritonError.INTERNAL
                )
            )
        for index, position in enumerate(good_positions):
            if results is None:
                responses[position] = failure
            else:
                responses[position] = pb_utils.InferenceResponse(
                    output_tensors=write(results[index])
                )
    return responses


def batched(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Add the batch dimension of 1 that a max_batch_size > 0 model's outputs need."""
    return np.expand_dims(array, 0)
