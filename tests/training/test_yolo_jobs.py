"""The YOLO subprocess for real: ultralytics trains, predicts and exports a tiny model on CPU.

One 2-epoch training of 'yolo11n.yaml' on 64x64 images is shared by the module; the other
trainings stop after their first epoch.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime
import pytest
from PIL import Image, ImageDraw

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.training.yolo_jobs import (
    EpochProgress,
    TrainingCancelled,
    TrainingFailed,
    TrainingOutcome,
    TrainingSpec,
    check_model_spec,
    export_onnx,
    predict_yolo,
    train_yolo,
    training_available,
)

pytestmark = pytest.mark.slow
SIZE = 64
# Runs the training subprocess with an audit hook that reports, on stderr, every name lookup,
# internet connection, URL request and pip run: what a download or an online check needs.
AUDITED_CHILD = """
import runpy, sys
def report(event, args):
    network = event in ("socket.getaddrinfo", "socket.gethostbyname", "urllib.Request")
    network |= event == "socket.connect" and isinstance(args[1], tuple)
    network |= event == "subprocess.Popen" and "pip" in repr(args)
    if network:
        sys.__stderr__.write(f"NETWORK {event} {args!r}\\n")
sys.addaudithook(report)
sys.argv = ["yolo_process", "train"]
runpy.run_module("agentic_labeling.training.yolo_process", run_name="__main__")
"""


def write_square_dataset(root: Path, count: int = 8) -> Path:
    """YOLO layout: one bright square per dark image, class 0; train and val; data.yaml."""
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(count):
            x, y, side = 4 + 5 * i, 10 + 3 * i, 20
            image = Image.new("RGB", (SIZE, SIZE), (20, 20, 20))
            ImageDraw.Draw(image).rectangle((x, y, x + side - 1, y + side - 1), fill="white")
            image.save(root / "images" / split / f"{i}.png")
            centre_x, centre_y = (x + side / 2) / SIZE, (y + side / 2) / SIZE
            (root / "labels" / split / f"{i}.txt").write_text(
                f"0 {centre_x} {centre_y} {side / SIZE} {side / SIZE}\n"
            )
    data_yaml = root / "data.yaml"
    data_yaml.write_text(
        f"path: {root}\ntrain: images/train\nval: images/val\nnames:\n  0: square\n"
    )
    return data_yaml


def spec(data_yaml: Path, work_dir: Path, epochs: int = 2) -> TrainingSpec:
    return TrainingSpec(
        data_yaml=data_yaml,
        model="yolo11n.yaml",
        epochs=epochs,
        image_size=SIZE,
        batch=4,
        device="cpu",
        work_dir=work_dir,
    )


def never() -> bool:
    return False


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_square_dataset(tmp_path_factory.mktemp("squares"))


@pytest.fixture(scope="module")
async def trained(
    data_yaml: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[TrainingOutcome, list[EpochProgress]]:
    epochs: list[EpochProgress] = []
    outcome = await train_yolo(
        spec(data_yaml, tmp_path_factory.mktemp("run")), epochs.append, never
    )
    return outcome, epochs


def yolo_children() -> list[int]:
    """This process's children that run the YOLO subprocess."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if parent == os.getpid() and b"yolo_process" in command:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()


def test_training_is_available_with_the_train_extra() -> None:
    assert training_available()


async def test_training_reports_every_epoch_in_order(
    trained: tuple[TrainingOutcome, list[EpochProgress]],
) -> None:
    outcome, epochs = trained
    assert [(e.epoch, e.epochs) for e in epochs] == [(1, 2), (2, 2)]
    assert outcome.epochs_completed == 2
    for progress in epochs:
        assert {"box_loss", "cls_loss", "dfl_loss"} <= progress.losses.keys()
        assert {"precision", "recall", "mAP50", "mAP50-95"} <= progress.metrics.keys()


async def test_training_keeps_the_weights_final_metrics_and_plots(
    trained: tuple[TrainingOutcome, list[EpochProgress]],
) -> None:
    outcome, _ = trained
    assert outcome.weights.is_file()
    assert outcome.weights.suffix == ".pt"
    assert 0.0 <= outcome.metrics["mAP50"] <= 1.0
    names = {path.name for path in outcome.artifacts}
    assert {"confusion_matrix.png", "BoxPR_curve.png"} <= names
    assert all(path.is_file() for path in outcome.artifacts)


async def test_trained_weights_predict_boxes_inside_each_image(
    trained: tuple[TrainingOutcome, list[EpochProgress]], data_yaml: Path
) -> None:
    images = sorted((data_yaml.parent / "images" / "val").glob("*.png"))
    found = await predict_yolo(
        trained[0].weights, images, image_size=SIZE, min_confidence=0.0, device="cpu"
    )
    assert len(found) == len(images)
    boxes = [box for per_image in found for box in per_image]
    assert boxes, "an untrained model still proposes boxes at confidence 0"
    for box in boxes:
        assert box.class_id == 0
        assert 0.0 <= box.score <= 1.0
        assert box.x >= 0.0
        assert box.y >= 0.0
        assert box.w >= 0.0
        assert box.h >= 0.0
        assert box.x + box.w <= SIZE + 0.01
        assert box.y + box.h <= SIZE + 0.01


async def test_predicting_no_images_answers_an_empty_list(
    trained: tuple[TrainingOutcome, list[EpochProgress]],
) -> None:
    assert (
        await predict_yolo(
            trained[0].weights, [], image_size=SIZE, min_confidence=0.5, device="cpu"
        )
        == []
    )


async def test_exported_onnx_runs_in_onnxruntime_with_a_dynamic_batch(
    trained: tuple[TrainingOutcome, list[EpochProgress]], tmp_path: Path
) -> None:
    path = await export_onnx(trained[0].weights, tmp_path / "onnx", image_size=SIZE)
    assert path.parent == (tmp_path / "onnx").resolve()
    assert path.suffix == ".onnx"
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (model_input,) = session.get_inputs()
    assert model_input.shape[1] == 3
    assert isinstance(model_input.shape[0], str)  # the batch axis is dynamic
    (output,) = session.run(None, {model_input.name: np.zeros((3, 3, SIZE, SIZE), np.float32)})
    assert output.shape[:2] == (3, 4 + 1)  # per image: box (4) + one class score, per anchor


async def test_cancel_stops_training_at_the_next_epoch_boundary(
    data_yaml: Path, tmp_path: Path
) -> None:
    epochs: list[EpochProgress] = []
    with pytest.raises(TrainingCancelled) as cancelled:
        await train_yolo(spec(data_yaml, tmp_path, epochs=3), epochs.append, lambda: True)
    assert cancelled.value.epochs_completed == 1
    assert [e.epoch for e in epochs] == [1]


async def test_cancelling_the_awaiting_task_kills_the_training_process(
    data_yaml: Path, tmp_path: Path
) -> None:
    first_epoch = asyncio.Event()
    children: list[int] = []

    def on_epoch(progress: EpochProgress) -> None:
        children.extend(yolo_children())
        first_epoch.set()

    task = asyncio.create_task(train_yolo(spec(data_yaml, tmp_path, epochs=50), on_epoch, never))
    await first_epoch.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert children, "the training ran in a child process"
    assert not any(alive(pid) for pid in children)


def test_a_training_neither_resolves_names_nor_connects_nor_installs(
    data_yaml: Path, tmp_path: Path
) -> None:
    request = {
        "data_yaml": str(data_yaml),
        "model": "yolo11n.yaml",
        "epochs": 1,
        "image_size": SIZE,
        "batch": 4,
        "device": "cpu",
        "work_dir": str(tmp_path),
    }
    child = subprocess.run(
        [sys.executable, "-c", AUDITED_CHILD],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert child.returncode == 0, child.stderr[-2000:]
    assert json.loads(child.stdout.splitlines()[-1])["event"] == "done"
    assert [line for line in child.stderr.splitlines() if line.startswith("NETWORK")] == []


async def test_a_corrupt_data_yaml_fails_with_a_message_naming_it(tmp_path: Path) -> None:
    data_yaml = tmp_path / "data.yaml"
    data_yaml.write_text("train: [unclosed\nnames: {0: square\n")
    with pytest.raises(TrainingFailed) as failed:
        await train_yolo(spec(data_yaml, tmp_path / "run"), lambda progress: None, never)
    assert "data.yaml" in str(failed.value)


async def test_an_unknown_model_spec_is_refused_before_any_process(tmp_path: Path) -> None:
    bad = TrainingSpec(tmp_path / "data.yaml", "yolo99z.yaml", 1, SIZE, 4, "cpu", tmp_path / "run")
    with pytest.raises(InvalidArgument) as refused:
        await train_yolo(bad, lambda progress: None, never)
    assert refused.value.violations[0].field == "model"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("model", "task"),
    [
        ("yolo11n.yaml", "detect"),
        ("yolo11x.yaml", "detect"),
        ("yolov8s.yaml", "detect"),
        ("yolov9c.yaml", "detect"),
        ("yolo11n-seg.yaml", "segment"),
        ("yolov8m-seg.yaml", "segment"),
    ],
)
def test_shipped_architectures_are_accepted_with_their_task(model: str, task: str) -> None:
    assert check_model_spec(model) == task


def test_a_local_weights_file_is_accepted(tmp_path: Path) -> None:
    weights = tmp_path / "best-seg.pt"
    weights.write_bytes(b"")
    assert check_model_spec(str(weights)) == "segment"


@pytest.mark.parametrize(
    "model",
    [
        "",
        "yolo11n",  # no suffix: ultralytics would download yolo11n.pt
        "yolo99n.yaml",
        "yolo11n-cls.yaml",
        "yolo11n-pose.yaml",
        "yoloe-11s-seg.yaml",
        "rtdetr-l.yaml",
        "/nowhere/best.pt",
        "https://example.com/yolo11n.pt",
    ],
)
def test_other_model_specs_are_invalid_arguments_on_the_model_field(model: str) -> None:
    with pytest.raises(InvalidArgument) as refused:
        check_model_spec(model)
    assert refused.value.violations[0].field == "model"
