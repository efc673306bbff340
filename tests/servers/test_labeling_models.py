"""Detect, Segment and Embed through a real orchestrator process and the real Triton.

The models are the tiny random-weight ones: these tests prove the plumbing (shapes, names,
masks, errors, grpcurl), never label quality.
"""

from __future__ import annotations

import base64
import io
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from PIL import Image
from real_parts import GRPCURL

from agentic_labeling.labeling_defaults import DEFAULT_MIN_CONFIDENCE
from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.mask_codec import rle_to_mask
from agentic_labeling.triton_server import TritonHandle
from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc

pytestmark = pytest.mark.slow
WIDTH, HEIGHT = 120, 90


def _png() -> bytes:
    pixels = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    pixels[20:60, 30:90] = (200, 40, 40)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def orchestrator(
    served_triton: TritonHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    workdir: Path = tmp_path_factory.mktemp("orchestrator")
    process = start_server_process("orchestrator", workdir, ["--triton-url", served_triton.address])
    yield process
    assert process.stop() == 0


@pytest.fixture(scope="module")
def stub(orchestrator: ManagedProcess) -> Iterator[labeling_pb2_grpc.LabelingServiceStub]:
    with grpc.insecure_channel(orchestrator.address) as channel:
        yield labeling_pb2_grpc.LabelingServiceStub(channel)


def test_detect_returns_boxes_inside_the_image_with_requested_names(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    response = stub.Detect(
        labeling_pb2.DetectRequest(
            image=common_pb2.Image(data=_png()),
            class_names=["cat", "dog"],
            max_detections=3,
            confidence_threshold=0.0,  # the tiny model's confidences are near 0
        ),
        timeout=60,
    )
    assert (response.image_width, response.image_height) == (WIDTH, HEIGHT)
    assert response.model == "florence2"
    assert 0 < len(response.detections) <= 3
    for detection in response.detections:
        assert detection.class_name in {"cat", "dog"}
        assert 0 < detection.confidence <= 1
        box = detection.bbox
        assert min(box.x, box.y) >= 0
        assert min(box.width, box.height) > 0
        assert box.x + box.width <= WIDTH
        assert box.y + box.height <= HEIGHT
    confidences = [d.confidence for d in response.detections]
    assert confidences == sorted(confidences, reverse=True)


def test_detect_without_a_threshold_keeps_only_boxes_at_the_default_confidence(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    def detections(**fields: float) -> list[tuple[str, float]]:
        request = labeling_pb2.DetectRequest(
            image=common_pb2.Image(data=_png()), class_names=["cat"], max_detections=3, **fields
        )
        found = stub.Detect(request, timeout=60).detections
        return [(d.class_name, round(d.confidence, 6)) for d in found]

    every_box = detections(confidence_threshold=0.0)
    assert every_box  # an explicit 0 is honoured: 0 keeps every box
    assert detections() == [d for d in every_box if d[1] >= DEFAULT_MIN_CONFIDENCE]


def test_segment_returns_one_image_sized_rle_mask_per_box(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    boxes = [
        common_pb2.BoundingBox(x=30, y=20, width=60, height=40),
        common_pb2.BoundingBox(x=0, y=0, width=10, height=10),
    ]
    response = stub.Segment(
        labeling_pb2.SegmentRequest(image=common_pb2.Image(data=_png()), boxes=boxes), timeout=60
    )
    assert response.model == "sam2"
    assert len(response.masks) == 2
    for segmented in response.masks:
        rle = segmented.mask.rle
        assert (rle.height, rle.width) == (HEIGHT, WIDTH)
        assert sum(rle.counts) == WIDTH * HEIGHT
        assert rle_to_mask(list(rle.counts), HEIGHT, WIDTH).shape == (HEIGHT, WIDTH)


def test_embed_returns_unit_vectors_and_uses_masks(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    box = common_pb2.BoundingBox(x=30, y=20, width=60, height=40)
    plain = stub.Embed(
        labeling_pb2.EmbedRequest(image=common_pb2.Image(data=_png()), boxes=[box]), timeout=60
    )
    half = np.zeros((HEIGHT, WIDTH), np.uint8)
    half[20:60, 30:60] = 255
    buffer = io.BytesIO()
    Image.fromarray(half).save(buffer, format="PNG")
    masked = stub.Embed(
        labeling_pb2.EmbedRequest(
            image=common_pb2.Image(data=_png()),
            boxes=[box],
            masks=[common_pb2.Mask(png=buffer.getvalue())],
        ),
        timeout=60,
    )
    assert plain.model == "dinov2"
    assert plain.dimension == len(plain.embeddings[0].values) > 0
    vector = np.array(plain.embeddings[0].values)
    assert abs(np.linalg.norm(vector) - 1) < 1e-5
    assert not np.allclose(vector, masked.embeddings[0].values)


def test_embed_with_a_mask_of_another_size_names_that_mask(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    wrong = common_pb2.Mask(rle=common_pb2.RunLengthEncoding(height=2, width=2, counts=[4]))
    with pytest.raises(grpc.RpcError) as caught:
        stub.Embed(
            labeling_pb2.EmbedRequest(
                image=common_pb2.Image(data=_png()),
                boxes=[common_pb2.BoundingBox(x=0, y=0, width=5, height=5)],
                masks=[wrong],
            ),
            timeout=60,
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "masks[0]" in caught.value.details() or "mask is 2x2" in caught.value.details()


def test_mesh_status_lists_the_three_ready_models(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=15)
    assert status.triton.reachable
    assert {m.name: m.ready for m in status.models} == {
        "dinov2": True,
        "florence2": True,
        "sam2": True,
    }


def test_grpcurl_calls_detect_with_an_image(orchestrator: ManagedProcess) -> None:
    request = {"image": {"data": base64.b64encode(_png()).decode()}, "class_names": ["cat"]}
    request["max_detections"] = 2
    request["confidence_threshold"] = 0  # the tiny model's confidences are near 0
    result = subprocess.run(
        [
            str(GRPCURL),
            "-plaintext",
            "-max-time",
            "60",
            "-d",
            json.dumps(request),
            orchestrator.address,
            "agentic_labeling.v1.LabelingService/Detect",
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    # grpcurl prints the proto field names.
    assert response["image_width"] == WIDTH
    assert {d["class_name"] for d in response["detections"]} == {"cat"}
