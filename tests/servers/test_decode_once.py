"""Each image is decoded once per AutoLabel: by the orchestrator's check, whose pixels the
models then take as PIXELS instead of decoding the file again.

Counted at the two places a decode can happen: `check_item` in the orchestrator, and
`read_image`, which every model.py in model_repository/ reads its image with (run here on a
request shaped as Triton's Python backend hands it over).
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from agentic_labeling import images
from agentic_labeling.clients.triton_models import ImageAndPixels
from agentic_labeling.errors import InvalidArgument
from agentic_labeling.models import batching
from agentic_labeling.servers import auto_label_requests
from agentic_labeling.servers.auto_label_requests import MAX_KEPT_PIXEL_BYTES, check_item
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import common_pb2, labeling_pb2


def _jpeg(width: int, height: int) -> bytes:
    rng = np.random.default_rng(width)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8)).save(
        buffer, format="JPEG"
    )
    return buffer.getvalue()


class _Tensor:
    def __init__(self, array: npt.NDArray[Any]) -> None:
        self._array = array

    def as_numpy(self) -> npt.NDArray[Any]:
        return self._array


class _PbUtils:
    """The one call of triton_python_backend_utils that read_image makes."""

    @staticmethod
    def get_input_tensor_by_name(request: dict[str, _Tensor], name: str) -> _Tensor | None:
        return request.get(name)


def _request(**inputs: npt.NDArray[Any]) -> dict[str, _Tensor]:
    return {name: _Tensor(array[np.newaxis, ...]) for name, array in inputs.items()}


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many times images.decode_image ran, wherever it was called from."""
    calls = [0]
    real = images.decode_image

    def counting(data: bytes, **kwargs: Any) -> images.DecodedImage:
        calls[0] += 1
        return real(data, **kwargs)

    monkeypatch.setattr(batching, "decode_image", counting)
    monkeypatch.setattr("agentic_labeling.servers.labeling_requests.decode_image", counting)
    return lambda: calls[0]


def _item(data: bytes) -> labeling_pb2.AutoLabelItem:
    return labeling_pb2.AutoLabelItem(client_id="a", image=common_pb2.Image(data=data))


def test_an_image_is_decoded_once_from_the_check_to_all_three_models(
    decodes: Callable[[], int],
) -> None:
    data = _jpeg(64, 48)
    checked = check_item(_item(data), Settings())
    assert decodes() == 1
    sent = checked.model_input
    assert isinstance(sent, ImageAndPixels)
    assert sent.data == data
    for _model in ("florence2", "sam2", "dinov2"):
        pixels = batching.read_image(_PbUtils, _request(PIXELS=sent.pixels), max_pixels=10**6)
        np.testing.assert_array_equal(pixels, images.decode_image(data, max_pixels=10**6).pixels)
    assert decodes() == 1  # the comparisons above decode outside the counted seams


def test_encoded_bytes_are_still_decoded_by_the_model(decodes: Callable[[], int]) -> None:
    data = _jpeg(64, 48)
    encoded = np.frombuffer(data, np.uint8)
    pixels = batching.read_image(_PbUtils, _request(IMAGE=encoded), max_pixels=10**6)
    assert pixels.shape == (48, 64, 3)
    assert decodes() == 1


def test_an_image_too_big_to_keep_is_sent_as_its_bytes(
    decodes: Callable[[], int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _jpeg(64, 48)
    monkeypatch.setattr(auto_label_requests, "MAX_KEPT_PIXEL_BYTES", 64 * 48 * 3 - 1)
    checked = check_item(_item(data), Settings())
    assert checked.pixels is None
    assert checked.model_input == data
    assert MAX_KEPT_PIXEL_BYTES >= 1920 * 1080 * 3  # a full-HD frame goes as pixels


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "exactly one of IMAGE and PIXELS"),
        (
            {"IMAGE": np.zeros(4, np.uint8), "PIXELS": np.zeros((2, 2, 3), np.uint8)},
            "exactly one of IMAGE and PIXELS",
        ),
        ({"PIXELS": np.zeros((2, 2, 4), np.uint8)}, "shape (height, width, 3)"),
        ({"PIXELS": np.zeros((2, 2, 3), np.float32)}, "uint8 RGB"),
        ({"PIXELS": np.zeros((40, 30, 3), np.uint8)}, "more than the limit of 1000"),
    ],
)
def test_bad_image_inputs_are_refused_naming_the_input(
    inputs: dict[str, npt.NDArray[Any]], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message.replace("(", r"\(").replace(")", r"\)")):
        batching.read_image(_PbUtils, _request(**inputs), max_pixels=1000)
