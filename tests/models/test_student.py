"""The YOLO student in-process, on real ONNX exports of a random YOLO11n made by ultralytics.

Random weights prove the plumbing (pre-processing, decoding, class filtering, batching, the
model directory written for Triton), never detection quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from google.protobuf import text_format
from student_onnx import StudentExports, export_random_yolo
from tritonclient.grpc import model_config_pb2

from agentic_labeling.errors import FailedPrecondition, InvalidArgument
from agentic_labeling.models.served_config import MAX_IMAGE_PIXELS_VARIABLE
from agentic_labeling.models.student import (
    CLASSES_FILE,
    MODEL_FILE,
    StudentDetector,
    StudentServing,
    StudentSettings,
    letterbox,
    write_student_model,
)
from agentic_labeling.triton_server import default_model_repository

pytestmark = pytest.mark.slow

CLASSES = ["person", "car", "traffic light"]
SIZE = 64
ALL = StudentSettings(min_confidence=0.0, max_detections=20)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> StudentExports:
    return export_random_yolo(
        tmp_path_factory.mktemp("yolo-export"), class_count=len(CLASSES), image_size=SIZE
    )


@pytest.fixture(scope="module")
def student_dir(exports: StudentExports, tmp_path_factory: pytest.TempPathFactory) -> Path:
    repository = tmp_path_factory.mktemp("repository")
    return write_student_model(exports.dynamic, CLASSES, SIZE, repository)


@pytest.fixture(scope="module")
def student(student_dir: Path) -> StudentDetector:
    return StudentDetector.load(student_dir / "1")


def _image(width: int, height: int, seed: int) -> npt.NDArray[np.uint8]:
    rng = np.random.default_rng(seed)
    image = np.full((height, width, 3), rng.integers(0, 255, 3), dtype=np.uint8)
    for _ in range(3):
        x, y = int(rng.integers(0, width - 8)), int(rng.integers(0, height - 8))
        image[y : y + int(rng.integers(4, 30)), x : x + int(rng.integers(4, 30))] = rng.integers(
            0, 255, 3
        )
    return image


IMAGES = [_image(160, 120, 1), _image(48, 96, 2), _image(200, 50, 3)]


def test_detections_are_well_formed_boxes_inside_the_image(student: StudentDetector) -> None:
    for image in IMAGES:
        (found,) = student.detect([image], [CLASSES], [ALL])
        assert 0 < len(found) <= ALL.max_detections
        height, width = image.shape[:2]
        for detection in found:
            x, y, w, h = detection.box
            assert min(x, y) >= 0
            assert min(w, h) > 0
            assert x + w <= width + 1e-3
            assert y + h <= height + 1e-3
            assert 0 <= detection.class_id < len(CLASSES)
            assert 0.0 <= detection.confidence <= 1.0
        confidences = [d.confidence for d in found]
        assert confidences == sorted(confidences, reverse=True)


def test_max_detections_and_min_confidence_limit_the_boxes(student: StudentDetector) -> None:
    (everything,) = student.detect([IMAGES[0]], [CLASSES], [ALL])
    (two,) = student.detect([IMAGES[0]], [CLASSES], [StudentSettings(0.0, 2)])
    assert two == everything[:2]
    middle = everything[len(everything) // 2].confidence
    (confident,) = student.detect([IMAGES[0]], [CLASSES], [StudentSettings(middle, 20)])
    assert confident == [d for d in everything if d.confidence >= middle]


def test_only_requested_classes_come_back_indexed_into_the_request(
    student: StudentDetector,
) -> None:
    (everything,) = student.detect([IMAGES[0]], [CLASSES], [ALL])
    (cars,) = student.detect([IMAGES[0]], [["zebra", "CAR "]], [ALL])
    assert {d.class_id for d in cars} <= {1}  # index of "CAR " in this request
    # An anchor keeps its best class over all the student's classes: the car boxes are the
    # ones that were cars when every class was asked for.
    expected = [d for d in everything if d.class_id == 1]
    assert [(d.box, d.confidence) for d in cars] == [(d.box, d.confidence) for d in expected][
        : len(cars)
    ]


def test_names_the_student_does_not_know_get_no_boxes(student: StudentDetector) -> None:
    (found,) = student.detect([IMAGES[0]], [["zebra", "giraffe"]], [ALL])
    assert found == []


def test_a_batch_of_three_equals_three_single_images(student: StudentDetector) -> None:
    names = [CLASSES, ["traffic light"], ["car", "person"]]
    settings = [ALL, StudentSettings(0.0, 5), ALL]
    batch = student.detect(IMAGES, names, settings)
    singles = [
        student.detect([i], [n], [s])[0] for i, n, s in zip(IMAGES, names, settings, strict=True)
    ]
    for together, alone in zip(batch, singles, strict=True):
        assert len(together) == len(alone)
        for a, b in zip(together, alone, strict=True):
            assert a.class_id == b.class_id
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)
            assert a.confidence == pytest.approx(b.confidence, abs=1e-5)


def test_an_export_with_a_fixed_batch_of_one_gives_the_same_boxes_image_by_image(
    exports: StudentExports, student: StudentDetector, tmp_path: Path
) -> None:
    fixed = StudentDetector.load(write_student_model(exports.static, CLASSES, SIZE, tmp_path) / "1")
    assert student.dynamic_batch
    assert not fixed.dynamic_batch
    names, settings = [CLASSES] * 3, [ALL] * 3
    for a_list, b_list in zip(
        student.detect(IMAGES, names, settings), fixed.detect(IMAGES, names, settings), strict=True
    ):
        assert [d.class_id for d in a_list] == [d.class_id for d in b_list]
        for a, b in zip(a_list, b_list, strict=True):
            np.testing.assert_allclose(a.box, b.box, atol=1e-3)


def test_letterbox_resizes_like_cv2_and_pads_like_ultralytics() -> None:
    image = _image(160, 120, 7)
    boxed = letterbox(image, 64)
    assert boxed.scale == pytest.approx(0.4)
    # 160x120 -> 64x48, centred: 8 rows of grey above and below.
    assert (boxed.pad_left, boxed.pad_top) == (0, 8)
    expected = cv2.resize(image, (64, 48), interpolation=cv2.INTER_LINEAR)
    inside = boxed.pixels[8:56].astype(int)
    assert np.abs(inside - expected.astype(int)).max() <= 1
    assert (boxed.pixels[:8] == 114).all()
    assert (boxed.pixels[56:] == 114).all()


def test_bad_requests_are_refused_naming_the_field(student: StudentDetector) -> None:
    image = IMAGES[0]
    with pytest.raises(InvalidArgument) as empty:
        student.validate(image, [], ALL)
    assert empty.value.violations[0].field == "class_names[0]"
    with pytest.raises(InvalidArgument) as repeated:
        student.validate(image, ["car", "car"], ALL)
    assert repeated.value.violations[0].field == "class_names[0][1]"
    with pytest.raises(InvalidArgument) as confidence:
        student.validate(image, ["car"], StudentSettings(1.5, 10))
    assert confidence.value.violations[0].field == "settings[0].min_confidence"
    with pytest.raises(InvalidArgument) as grey:
        student.validate(image[:, :, 0], ["car"], ALL)
    assert grey.value.violations[0].field == "images[0]"


# --- the model directory for Triton ----------------------------------------------------------


def _parsed(config: Path) -> model_config_pb2.ModelConfig:
    return text_format.Parse(config.read_text(), model_config_pb2.ModelConfig())


def test_the_written_model_has_florence2s_inputs_outputs_and_batching(student_dir: Path) -> None:
    assert sorted(p.name for p in (student_dir / "1").iterdir()) == sorted(
        [MODEL_FILE, CLASSES_FILE, "model.py"]
    )
    student = _parsed(student_dir / "config.pbtxt")
    florence2 = _parsed(default_model_repository() / "florence2" / "config.pbtxt")
    assert (student.name, student.backend) == ("yolo", "python")
    assert list(student.input) == list(florence2.input)
    assert list(student.output) == list(florence2.output)
    assert student.max_batch_size == florence2.max_batch_size
    assert student.HasField("dynamic_batching")
    assert json.loads(student.parameters["class_names"].string_value) == CLASSES
    assert json.loads((student_dir / "1" / CLASSES_FILE).read_text()) == {
        "class_names": CLASSES,
        "image_size": SIZE,
    }


def test_class_names_with_quotes_and_accents_survive_the_config(
    exports: StudentExports, tmp_path: Path
) -> None:
    names = ['say "cheese"', "café", "back\\slash"]
    written = write_student_model(exports.dynamic, names, SIZE, tmp_path, model_name="odd")
    parsed = _parsed(written / "config.pbtxt")
    assert json.loads(parsed.parameters["class_names"].string_value) == names


def test_writing_again_replaces_the_model_and_leaves_no_staging_directories(
    exports: StudentExports, tmp_path: Path
) -> None:
    write_student_model(exports.dynamic, CLASSES, SIZE, tmp_path)
    renamed = ["a", "b", "c"]
    written = write_student_model(exports.static, renamed, SIZE, tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["yolo"]
    assert json.loads((written / "1" / CLASSES_FILE).read_text())["class_names"] == renamed


@pytest.mark.parametrize(
    ("arguments", "error", "field"),
    [
        ({"model_name": "florence2"}, InvalidArgument, "model_name"),
        ({"model_name": "../up"}, InvalidArgument, "model_name"),
        ({"class_names": []}, InvalidArgument, "class_names"),
        ({"class_names": ["car", "Car", "bus"]}, InvalidArgument, "class_names[1]"),
        ({"image_size": 50}, InvalidArgument, "image_size"),
        ({"class_names": ["car", "bus"]}, FailedPrecondition, None),  # trained on 3
        ({"image_size": 96}, None, None),  # the dynamic export takes any size
    ],
)
def test_a_bad_student_is_refused_before_anything_is_written(
    exports: StudentExports,
    tmp_path: Path,
    arguments: dict[str, object],
    error: type[Exception] | None,
    field: str | None,
) -> None:
    call: dict[str, object] = {
        "onnx_path": exports.dynamic,
        "class_names": CLASSES,
        "image_size": SIZE,
        "repository": tmp_path,
        **arguments,
    }
    if error is None:
        write_student_model(**call)  # type: ignore[arg-type]
        return
    with pytest.raises(error) as raised:
        write_student_model(**call)  # type: ignore[arg-type]
    if field is not None:
        assert isinstance(raised.value, InvalidArgument)
        assert raised.value.violations[0].field == field
    assert list(tmp_path.iterdir()) == []


def test_a_fixed_size_export_refuses_another_image_size(
    exports: StudentExports, tmp_path: Path
) -> None:
    with pytest.raises(FailedPrecondition, match="exported for 64x64"):
        write_student_model(exports.static, CLASSES, 96, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_served_instance_reads_its_own_directory_and_the_meshs_pixel_limit() -> None:
    args = {"model_repository": "/models/yolo", "model_version": "1", "model_instance_kind": "CPU"}
    serving = StudentServing.from_triton_args(args, {MAX_IMAGE_PIXELS_VARIABLE: "1234"})
    assert serving.model_dir == Path("/models/yolo/1")
    assert (serving.device, serving.max_image_pixels) == ("cpu", 1234)
    gpu = StudentServing.from_triton_args(
        {**args, "model_instance_kind": "GPU", "model_instance_device_id": "1"}, {}
    )
    assert gpu.device == "cuda:1"
