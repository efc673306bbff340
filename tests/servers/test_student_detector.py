"""A trained YOLO student served by the real tritonserver and chosen as AutoLabel's detector.

ultralytics exports a random-weight YOLO11n (in a subprocess), `write_student_model` writes it
as "yolo" into a student repository of its own (as ExportRun does into DATA_DIR/triton-models),
the launcher serves it beside a copy of the model repository (SAM2 and DINOv2, tiny weights),
and a real orchestrator and registry label images with `detector: "yolo"`. Random weights prove the
plumbing only: served outputs equal the in-process student, Triton batches it, objects record
it as their detection model, and a wrong choice fails the stream with a precise status.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from PIL import Image
from student_onnx import export_random_yolo

from agentic_labeling.clients.triton_models import TritonModels
from agentic_labeling.images import decode_image
from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.models.student import StudentDetector, StudentSettings, write_student_model
from agentic_labeling.rpc_status import rpc_error_details
from agentic_labeling.servers.auto_label_requests import check_config
from agentic_labeling.settings import Settings
from agentic_labeling.triton_server import (
    TritonHandle,
    TritonLaunch,
    default_model_repository,
    query_status,
    start_triton,
)
from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc

pytestmark = pytest.mark.slow

CLASSES = ["person", "car", "traffic light"]
SIZE = 64
CONCURRENT = 8


def _png(index: int, width: int = 96, height: int = 72) -> bytes:
    rng = np.random.default_rng([18, index])
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


# --- the mesh ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAM2 and DINOv2 from model_repository/ (no Florence-2: the student detects, and the
    start is quicker)."""
    root = tmp_path_factory.mktemp("student-repository")
    for model in ("sam2", "dinov2"):
        shutil.copytree(
            default_model_repository() / model,
            root / model,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return root


@pytest.fixture(scope="module")
def student_repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A student repository (as DATA_DIR/triton-models) holding the student as "yolo"."""
    root = tmp_path_factory.mktemp("student-data") / "triton-models"
    root.mkdir()
    exports = export_random_yolo(
        tmp_path_factory.mktemp("student-export"), class_count=len(CLASSES), image_size=SIZE
    )
    write_student_model(exports.dynamic, CLASSES, SIZE, root)
    return root


@pytest.fixture(scope="module")
def triton(
    repository: Path,
    student_repository: Path,
    tiny_models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TritonHandle]:
    handle = start_triton(
        TritonLaunch(
            model_repository=repository,
            student_repository=student_repository,
            grpc_port=0,
            http_port=0,
            metrics_port=0,
            models_dir=tiny_models_dir,
            log_file=tmp_path_factory.mktemp("student-triton") / "tritonserver.log",
            device="cpu",
            ready_timeout_s=180,
        )
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def orchestrator(
    triton: TritonHandle, tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    data_dirs = registry_data_dir()
    dimension = Dinov2Embedder.load(tiny_models_dir / "dinov2").dimension
    registry = start_server_process(
        "registry",
        tmp_path_factory.mktemp("student-registry"),
        ["--data-dir", str(next(data_dirs)), "--embedding-dimension", str(dimension)],
    )
    try:
        process = start_server_process(
            "orchestrator",
            tmp_path_factory.mktemp("student-orchestrator"),
            ["--triton-url", triton.address, "--registry-url", registry.address],
        )
    except BaseException:
        registry.stop()
        raise
    yield process
    statuses = [process.stop(), registry.stop()]
    next(data_dirs, None)
    assert statuses == [0, 0], process.log.read_text()[-4000:]


@pytest.fixture
async def stub(
    orchestrator: ManagedProcess,
) -> AsyncIterator[labeling_pb2_grpc.LabelingServiceStub]:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        yield labeling_pb2_grpc.LabelingServiceStub(channel)


def _counts(triton: TritonHandle, model: str) -> tuple[int, int]:
    (found,) = [m for m in query_status(triton.address).models if m.name == model]
    return found.inference_count, found.execution_count


def _config(classes: Sequence[str], detector: str) -> labeling_pb2.AutoLabelRequest:
    return labeling_pb2.AutoLabelRequest(
        config=labeling_pb2.AutoLabelConfig(
            class_names=classes,
            detector=detector,
            confidence_threshold=0.0,  # random weights: confidences near 0
            max_objects_per_image=3,
        )
    )


def _item(client_id: str, data: bytes) -> labeling_pb2.AutoLabelRequest:
    return labeling_pb2.AutoLabelRequest(
        item=labeling_pb2.AutoLabelItem(client_id=client_id, image=common_pb2.Image(data=data))
    )


async def _stream(
    stub: labeling_pb2_grpc.LabelingServiceStub, messages: Sequence[labeling_pb2.AutoLabelRequest]
) -> list[labeling_pb2.AutoLabelResponse]:
    async def requests() -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
        for message in messages:
            yield message

    return [answer async for answer in stub.AutoLabel(requests(), timeout=180)]


# --- the student on Triton ----------------------------------------------------------------


def test_the_student_repository_is_served_ready_beside_the_project_models(
    triton: TritonHandle,
) -> None:
    status = triton.status()
    assert status.all_ready
    assert sorted((m.name, m.state) for m in status.models) == [
        ("dinov2", "READY"),
        ("sam2", "READY"),
        ("yolo", "READY"),
    ]


async def test_the_served_student_answers_like_the_in_process_one_and_batches(
    triton: TritonHandle, student_repository: Path
) -> None:
    images = [_png(i) for i in range(CONCURRENT)]
    before = _counts(triton, "yolo")
    async with TritonModels(triton.address) as models:
        served = await asyncio.gather(
            *(models.detect(image, CLASSES, max_detections=5, model="yolo") for image in images)
        )
    inferences, executions = (a - b for a, b in zip(_counts(triton, "yolo"), before, strict=True))
    assert inferences == CONCURRENT
    assert executions < inferences, "Triton's dynamic batcher merged no requests"
    student = StudentDetector.load(student_repository / "yolo" / "1")
    for image, found in zip(images, served, strict=True):
        pixels = decode_image(image, max_pixels=10**8).pixels
        (expected,) = student.detect([pixels], [CLASSES], [StudentSettings(0.0, 5)])
        assert (found.image_width, found.image_height) == (96, 72)
        assert found.class_ids.tolist() == [d.class_id for d in expected]
        np.testing.assert_allclose(found.boxes, [d.box for d in expected], atol=1e-3)
        np.testing.assert_allclose(found.scores, [d.confidence for d in expected], atol=1e-5)


async def test_auto_label_with_the_student_registers_objects_detected_by_yolo(
    stub: labeling_pb2_grpc.LabelingServiceStub, triton: TritonHandle
) -> None:
    before = _counts(triton, "yolo")
    messages = [_config(CLASSES, "yolo")] + [
        _item(f"student-{i}", _png(100 + i)) for i in range(CONCURRENT)
    ]
    answers = await _stream(stub, messages)
    assert sorted(a.client_id for a in answers) == sorted(f"student-{i}" for i in range(8))
    assert [a.status.code for a in answers] == [0] * CONCURRENT
    objects = [o for a in answers for o in a.objects]
    assert objects, "the student found nothing at confidence 0"
    assert {o.detection_model for o in objects} == {"yolo"}
    assert {o.category_name for o in objects} <= set(CLASSES)
    assert all(o.has_mask and o.has_embedding for o in objects)  # SAM2, DINOv2 unchanged
    inferences, executions = (a - b for a, b in zip(_counts(triton, "yolo"), before, strict=True))
    assert inferences == CONCURRENT
    # What the batcher made of 8 concurrent images (not asserted: arrival spreads with load).
    print(f"yolo: {inferences} inferences in {executions} executions")


@pytest.mark.parametrize(
    ("detector", "classes", "code", "reason", "field"),
    [
        ("nope", CLASSES, grpc.StatusCode.NOT_FOUND, "DETECTOR_NOT_FOUND", None),
        ("florence2", CLASSES, None, None, None),  # the default, not asked about: see below
        ("sam2", CLASSES, grpc.StatusCode.INVALID_ARGUMENT, "NOT_A_DETECTOR", "config.detector"),
        (
            "yolo",
            ["car", "zebra"],
            grpc.StatusCode.INVALID_ARGUMENT,
            "CLASS_UNKNOWN_TO_DETECTOR",
            "config.class_names[1]",
        ),
        ("bad name!", CLASSES, grpc.StatusCode.INVALID_ARGUMENT, None, "config.detector"),
    ],
)
async def test_a_detector_that_cannot_label_fails_the_stream_before_any_image(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    triton: TritonHandle,
    detector: str,
    classes: list[str],
    code: grpc.StatusCode | None,
    reason: str | None,
    field: str | None,
) -> None:
    messages = [_config(classes, detector), _item("refused", _png(999))]
    if code is None:
        # This repository serves no florence2: the default is not checked up front, so the
        # image fails alone as UNAVAILABLE (Triton's NOT_FOUND for a model it lacks).
        (answer,) = await _stream(stub, messages)
        assert answer.status.code == grpc.StatusCode.UNAVAILABLE.value[0]
        return
    before = _counts(triton, "yolo")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _stream(stub, messages)
    details = rpc_error_details(caught.value)
    assert details.code == code
    assert detector in details.message or field is not None
    if reason is not None:
        assert details.reason == reason
    if field is not None:
        assert [v.field for v in details.field_violations] == [field]
    assert _counts(triton, "yolo") == before, "no image reached a model"


# --- the config -----------------------------------------------------------------------------


def test_the_detector_is_part_of_the_config_fingerprint_but_florence2s_stays_as_it_was() -> None:
    settings = Settings()
    plain = check_config(labeling_pb2.AutoLabelConfig(class_names=["car"]), settings)
    named = check_config(
        labeling_pb2.AutoLabelConfig(class_names=["car"], detector="florence2"), settings
    )
    student = check_config(
        labeling_pb2.AutoLabelConfig(class_names=["car"], detector="yolo"), settings
    )
    assert plain.detector == named.detector == "florence2"
    assert plain.fingerprint == named.fingerprint
    assert student.detector == "yolo"
    assert student.fingerprint != plain.fingerprint
