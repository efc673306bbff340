"""Typed async client for the three models on Triton: the orchestrator's only way to reach them.

It encodes inputs as the configs in model_repository/ declare them, decodes the outputs into
numpy arrays, sends a deadline with every call, and turns Triton's errors into our domain
errors by their gRPC status code, each read as the class that declares it in `errors.py`: a
request Triton refused as INVALID_ARGUMENT stays InvalidArgument (the image or boxes were bad),
DEADLINE_EXCEEDED is DeadlineExceeded, RESOURCE_EXHAUSTED ResourceExhausted; an unreachable
server, an unloaded model (NOT_FOUND), a crashed stub (INTERNAL) or an error tritonclient
raised itself, with no code, is Unavailable.

An image goes as its encoded bytes (IMAGE: the model decodes it) or as pixels already decoded
(PIXELS: upright RGB, as `decode_image` gives them; the model decodes nothing). With
`shared_memory` and Triton on loopback, that tensor travels through Triton system shared
memory (clients/triton_shared_memory.py) instead of inside the gRPC message.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import grpc
import numpy as np
import numpy.typing as npt
from tritonclient.grpc import InferInput, InferRequestedOutput
from tritonclient.grpc import aio as triton_aio
from tritonclient.utils import InferenceServerException

from agentic_labeling.channel_options import channel_options
from agentic_labeling.clients.triton_shared_memory import SharedMemoryPool
from agentic_labeling.errors import (
    DeadlineExceeded,
    DomainError,
    InvalidArgument,
    ResourceExhausted,
    Unavailable,
)
from agentic_labeling.local.addresses import is_loopback
from agentic_labeling.models.mask_codec import pack_masks, unpack_masks
from agentic_labeling.rpc_status import error_class_for

__all__ = [
    "DetectedBoxes",
    "ImageAndPixels",
    "ImageInput",
    "ModelNames",
    "SegmentedBoxes",
    "TritonModels",
]

logger = logging.getLogger(__name__)

_MiB = 1024 * 1024


@dataclass(frozen=True)
class ImageAndPixels:
    """An encoded image with its pixels already decoded: the pixels go to a model that
    declares PIXELS, the bytes to one that takes IMAGE only (a florence2-compatible detector
    of its own, or a model repository older than PIXELS)."""

    data: bytes
    pixels: npt.NDArray[np.uint8]


ImageInput = bytes | npt.NDArray[np.uint8] | ImageAndPixels
"""An encoded image file, its upright RGB pixels (height, width, 3), or both."""


@dataclass(frozen=True)
class ModelNames:
    """Names of the models in the Triton repository."""

    detector: str = "florence2"
    segmenter: str = "sam2"
    embedder: str = "dinov2"


@dataclass(frozen=True)
class DetectedBoxes:
    boxes: npt.NDArray[np.float32]  # (n, 4): x, y, width, height in pixels
    scores: npt.NDArray[np.float32]  # (n,)
    class_ids: npt.NDArray[np.int32]  # (n,): indexes into the class names sent
    image_width: int
    image_height: int


@dataclass(frozen=True)
class SegmentedBoxes:
    masks: npt.NDArray[np.bool_]  # (n, height, width)
    predicted_iou: npt.NDArray[np.float32]  # (n,)


def _status_code(exc: InferenceServerException) -> grpc.StatusCode | None:
    """The gRPC code of a Triton error: tritonclient writes it as `str(grpc.StatusCode.X)`
    ("StatusCode.X"), and None for errors it raises itself, before anything is sent."""
    status = exc.status()
    if not status:
        return None
    with contextlib.suppress(KeyError):
        return grpc.StatusCode[str(status).removeprefix("StatusCode.")]
    return None


def _domain_error(exc: InferenceServerException, model: str) -> DomainError:
    message = f"{model}: {exc.message()}"
    metadata = {"model": model}
    code = _status_code(exc)
    error_class = error_class_for(code) if code is not None else None
    if error_class is InvalidArgument:
        # Triton refused an input: the request, not the server, was wrong.
        return InvalidArgument(message, reason="MODEL_REFUSED_INPUT", metadata=metadata)
    if error_class is DeadlineExceeded or error_class is ResourceExhausted:
        return error_class(message, metadata=metadata)
    # Any other code (UNAVAILABLE, a model that is not loaded: NOT_FOUND, a crashed stub:
    # INTERNAL) says nothing about the request: retrying later, or against a healthy server,
    # may work.
    return Unavailable(message, reason="MODEL_UNAVAILABLE", metadata=metadata)


def _image_tensor(image: bytes | npt.NDArray[np.uint8]) -> tuple[str, npt.NDArray[np.uint8]]:
    """The model input that carries `image`, and its batched tensor."""
    if isinstance(image, bytes):
        return "IMAGE", np.frombuffer(image, dtype=np.uint8)[np.newaxis, :]
    return "PIXELS", np.ascontiguousarray(image, dtype=np.uint8)[np.newaxis, ...]


def _array_input(name: str, array: npt.NDArray[Any], datatype: str) -> InferInput:
    batched = array[np.newaxis, ...]
    tensor = InferInput(name, list(batched.shape), datatype)
    tensor.set_data_from_numpy(batched)
    return tensor


def _boxes_array(boxes: npt.ArrayLike) -> npt.NDArray[np.float32]:
    return np.asarray(boxes, dtype=np.float32).reshape(-1, 4)


class TritonModels:
    """Florence-2, SAM2 and DINOv2 on one Triton server, over gRPC.

    Use as `async with TritonModels(url) as models: ...`; one instance is shared by every
    concurrent request of the orchestrator (the gRPC channel multiplexes them, and that
    concurrency is what Triton's dynamic batcher turns into batches).
    """

    def __init__(
        self,
        url: str,
        *,
        names: ModelNames | None = None,
        deadline_s: float = 120.0,
        max_message_bytes: int = 64 * _MiB,
        shared_memory: bool = False,
        shared_memory_prefix: str = "",
    ) -> None:
        """`shared_memory`: send images through Triton system shared memory when `url` is a
        loopback address (elsewhere Triton cannot map this host's /dev/shm: over the wire,
        with a warning). `shared_memory_prefix` names the regions (default: unique)."""
        self.url = url
        self.names = names or ModelNames()
        self.deadline_s = deadline_s
        self._client = triton_aio.InferenceServerClient(
            url, channel_args=channel_options(url, max_message_bytes=max_message_bytes)
        )
        self._shared: SharedMemoryPool | None = None
        self._takes_pixels: dict[str, bool] = {}  # per model, from its config
        if shared_memory and is_loopback(url):
            self._shared = SharedMemoryPool(self._client, url, name_prefix=shared_memory_prefix)
        elif shared_memory:
            logger.warning(
                "Triton shared memory needs Triton on this host (a loopback address); "
                "images go over gRPC",
                extra={"triton_url": url},
            )

    async def __aenter__(self) -> TritonModels:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def shared_memory(self) -> SharedMemoryPool | None:
        """The shared memory regions in use (None: every tensor goes over the wire)."""
        return self._shared

    async def close(self) -> None:
        try:
            if self._shared is not None:
                await self._shared.close()
        finally:
            await self._client.close()

    async def takes_pixels(self, model: str) -> bool:
        """Whether `model`'s config declares the PIXELS input; asked once per model (False,
        and asked again next time, when Triton cannot say)."""
        known = self._takes_pixels.get(model)
        if known is None:
            try:
                reply = await self._client.get_model_config(model, client_timeout=self.deadline_s)
            except InferenceServerException:
                return False
            known = any(i.name == "PIXELS" for i in reply.config.input)
            self._takes_pixels[model] = known
        return known

    @contextlib.asynccontextmanager
    async def _image_input(self, image: ImageInput, model: str) -> AsyncIterator[InferInput]:
        """The image's InferInput for one call to `model`: in a shared memory region held
        until the call has its answer, or in the message itself."""
        if isinstance(image, ImageAndPixels):
            image = image.pixels if await self.takes_pixels(model) else image.data
        name, array = _image_tensor(image)
        tensor = InferInput(name, list(array.shape), "UINT8")
        pool = self._shared
        region = None if pool is None else await pool.acquire(array.nbytes)
        if pool is None or region is None:
            tensor.set_data_from_numpy(array)
            yield tensor
            return
        try:
            region.write(array)
            tensor.set_shared_memory(region.name, array.nbytes)
            yield tensor
        finally:
            pool.release(region)

    async def _infer(
        self,
        model: str,
        inputs: list[InferInput],
        outputs: Sequence[str],
        deadline_s: float | None,
    ) -> Any:
        try:
            return await self._client.infer(
                model,
                inputs,
                outputs=[InferRequestedOutput(name) for name in outputs],
                client_timeout=self.deadline_s if deadline_s is None else deadline_s,
            )
        except InferenceServerException as exc:
            raise _domain_error(exc, model) from None

    async def detect(
        self,
        image: ImageInput,
        class_names: Sequence[str],
        *,
        min_confidence: float = 0.0,
        max_detections: int = 100,
        deadline_s: float | None = None,
        model: str = "",
    ) -> DetectedBoxes:
        """Boxes of the named classes in an encoded image, most confident first. `model`: the
        detector to ask (empty: `names.detector`), florence2 or one with its inputs and outputs."""
        names = np.array([name.encode("utf-8") for name in class_names], dtype=np.object_)
        detector = model or self.names.detector
        async with self._image_input(image, detector) as image_input:
            result = await self._infer(
                detector,
                [
                    image_input,
                    _array_input("CLASS_NAMES", names, "BYTES"),
                    _array_input("MIN_CONFIDENCE", np.array([min_confidence], np.float32), "FP32"),
                    _array_input("MAX_DETECTIONS", np.array([max_detections], np.int32), "INT32"),
                ],
                ("BOXES", "SCORES", "CLASS_IDS", "IMAGE_SIZE"),
                deadline_s,
            )
        width, height = (int(v) for v in result.as_numpy("IMAGE_SIZE")[0])
        return DetectedBoxes(
            boxes=result.as_numpy("BOXES")[0].reshape(-1, 4),
            scores=result.as_numpy("SCORES")[0],
            class_ids=result.as_numpy("CLASS_IDS")[0],
            image_width=width,
            image_height=height,
        )

    async def segment(
        self, image: ImageInput, boxes: npt.ArrayLike, *, deadline_s: float | None = None
    ) -> SegmentedBoxes:
        """One mask per box (x, y, width, height in pixels) at the image's resolution."""
        box_array = _boxes_array(boxes)
        async with self._image_input(image, self.names.segmenter) as image_input:
            result = await self._infer(
                self.names.segmenter,
                [image_input, _array_input("BOXES", box_array, "FP32")],
                ("MASKS", "MASK_SIZE", "PREDICTED_IOU"),
                deadline_s,
            )
        height, width = (int(v) for v in result.as_numpy("MASK_SIZE")[0])
        packed = result.as_numpy("MASKS")[0]
        return SegmentedBoxes(
            masks=unpack_masks(packed, height, width),
            predicted_iou=result.as_numpy("PREDICTED_IOU")[0],
        )

    async def embed(
        self,
        image: ImageInput,
        boxes: npt.ArrayLike,
        masks: npt.NDArray[np.bool_] | None = None,
        *,
        deadline_s: float | None = None,
    ) -> npt.NDArray[np.float32]:
        """One L2-normalised embedding per box (the whole image when there are no boxes)."""
        box_array = _boxes_array(boxes)
        async with self._image_input(image, self.names.embedder) as image_input:
            inputs = [image_input, _array_input("BOXES", box_array, "FP32")]
            if masks is not None:
                inputs.append(_array_input("MASKS", pack_masks(masks), "UINT8"))
            result = await self._infer(self.names.embedder, inputs, ("EMBEDDINGS",), deadline_s)
        embeddings: npt.NDArray[np.float32] = result.as_numpy("EMBEDDINGS")[0]
        return embeddings
