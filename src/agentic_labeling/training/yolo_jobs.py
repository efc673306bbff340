"""The parent side of the YOLO subprocess: train, predict and export without importing ultralytics.

Each call starts `python -m agentic_labeling.training.yolo_process <command>` in a session of
its own, sends the request as JSON on stdin and reads JSON lines back (see `yolo_process`).
If the awaiting task is cancelled, the whole process group is killed before the
cancellation propagates: no training outlives the request that started it.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import signal
import sys
import tempfile
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.training.yolo_process import CANCEL_FILE

__all__ = [
    "Detection",
    "EpochProgress",
    "TrainingCancelled",
    "TrainingFailed",
    "TrainingOutcome",
    "TrainingSpec",
    "check_model_spec",
    "export_onnx",
    "predict_yolo",
    "train_yolo",
    "training_available",
]

_MODULE = "agentic_labeling.training.yolo_process"
_STDERR_LINES = 20  # what a failure message quotes of the child's stderr
_CANCEL_POLL_S = 0.5
_LINE_LIMIT = 64 * 1024 * 1024  # one predict line holds every box of an image
# Tasks this loop trains and serves; the others (classify, pose, obb, open-vocabulary models
# that fetch a text encoder, RT-DETR's own trainer) are refused by name.
_REFUSED_FAMILIES = ("-cls", "-pose", "-obb", "-depth", "-sem", "world", "yoloe", "rtdetr")


@dataclass(frozen=True)
class TrainingSpec:
    data_yaml: Path
    model: str  # "yolo11n.yaml" (an architecture, nothing downloaded) or a local .pt file
    epochs: int
    image_size: int
    batch: int  # -1: ultralytics picks from the device's memory
    device: str  # "cpu", "0", "cuda:0", ...
    work_dir: Path  # ultralytics writes work_dir/train/ (weights/, plots)


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch. `losses`: the epoch's mean training losses ("box_loss", "cls_loss",
    "dfl_loss", segment adds "seg_loss"); `metrics`: validation after it ("precision",
    "recall", "mAP50", "mAP50-95", "mask_..." for segment, "val/box_loss", ...)."""

    epoch: int  # 1-based
    epochs: int
    losses: dict[str, float]
    metrics: dict[str, float]


@dataclass(frozen=True)
class TrainingOutcome:
    weights: Path  # best.pt (last.pt when no best was saved)
    metrics: dict[str, float]  # the final validation of `weights`, names as in EpochProgress
    epochs_completed: int
    artifacts: list[Path]  # the plots: confusion matrix, PR/F1 curves, results.png


@dataclass(frozen=True)
class Detection:
    """One predicted box in pixels of the original image; x, y is the top-left corner."""

    class_id: int
    x: float
    y: float
    w: float
    h: float
    score: float


class TrainingCancelled(Exception):
    """The training stopped at an epoch boundary because cancellation was requested."""

    def __init__(self, epochs_completed: int) -> None:
        super().__init__(f"training cancelled after {epochs_completed} epochs")
        self.epochs_completed = epochs_completed


class TrainingFailed(Exception):
    """The YOLO subprocess failed; the message says why, in ultralytics' words."""


def training_available() -> bool:
    """Whether the `[train]` extra (ultralytics) is installed; imports nothing."""
    return importlib.util.find_spec("ultralytics") is not None


@cache
def _architectures() -> frozenset[str]:
    """The model .yaml file names ultralytics ships (cfg/models/**), read from disk."""
    spec = importlib.util.find_spec("ultralytics")
    if spec is None or not spec.submodule_search_locations:
        return frozenset()
    return frozenset(
        path.name
        for root in spec.submodule_search_locations
        for path in (Path(root) / "cfg" / "models").rglob("*.yaml")
    )


def _shipped(name: str) -> bool:
    """ultralytics' own rule (`yaml_model_load`): the exact file, else the scale letter after
    the version dropped, "yolo11n-seg.yaml" -> "yolo11-seg.yaml" with scale "n"."""
    unified = re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", name)
    return name in _architectures() or unified in _architectures()


def check_model_spec(model: str) -> str:
    """The task ("detect" or "segment") of a model spec, or InvalidArgument on field "model".

    A spec is an architecture ultralytics ships ("yolo11n.yaml", "yolov8s-seg.yaml"), a local
    .yaml file, or a local .pt file to fine-tune; nothing is ever downloaded. The task comes
    from the name: "-seg" means segment.
    """
    name = Path(model).name
    lowered = name.lower()
    suffix = Path(lowered).suffix
    if not model.strip():
        raise InvalidArgument("model is required, e.g. 'yolo11n.yaml'", field="model")
    if suffix not in (".yaml", ".yml", ".pt"):
        raise InvalidArgument(
            f"model {model!r} must be a .yaml architecture (e.g. 'yolo11n.yaml', trained from "
            "scratch) or a local .pt file to fine-tune",
            field="model",
        )
    refused = [family for family in _REFUSED_FAMILIES if family in lowered]
    if refused:
        raise InvalidArgument(
            f"model {model!r} is not a detect or segment YOLO model ({refused[0]!r}); use e.g. "
            "'yolo11n.yaml' or 'yolo11n-seg.yaml'",
            field="model",
        )
    if suffix == ".pt":
        if not Path(model).is_file():
            raise InvalidArgument(
                f"model {model!r}: no such .pt file on the server (weights are never "
                "downloaded; name a .yaml architecture to train from scratch)",
                field="model",
            )
    elif not Path(model).is_file() and not _shipped(name):
        raise InvalidArgument(
            f"model {model!r} is neither a local file nor an architecture ultralytics ships "
            "(e.g. 'yolo11n.yaml', 'yolov8s.yaml', 'yolo11n-seg.yaml')",
            field="model",
        )
    return "segment" if "-seg" in lowered else "detect"


def _absolute(path: Path) -> str:
    """The child runs elsewhere (its own cwd is not promised): it gets absolute paths."""
    return str(Path(path).resolve())


class _Child:
    """One yolo_process run: the events it printed, its stderr tail, its exit status."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.stderr: deque[str] = deque(maxlen=_STDERR_LINES)

    async def drain_stderr(self) -> None:
        assert self.process.stderr is not None
        async for line in self.process.stderr:
            text = line.decode(errors="replace").rstrip()
            if text:
                self.stderr.append(text)

    def kill(self) -> None:
        """The child and anything it started (its own session, see `_spawn`)."""
        if self.process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def failure(self, message: str | None) -> TrainingFailed:
        if message is not None:
            return TrainingFailed(message)
        tail = "\n".join(self.stderr) or "(no output)"
        return TrainingFailed(
            f"the YOLO process exited with status {self.process.returncode}: {tail}"
        )


async def _run(
    command: str,
    request: Mapping[str, Any],
    on_event: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Run one yolo_process command; `on_event` sees every event but the last, which is
    returned: "done" or "cancelled". An "error" event, or an exit without a final event,
    raises TrainingFailed."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        _MODULE,
        command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        limit=_LINE_LIMIT,
        start_new_session=True,  # a group of its own, killed as one
    )
    child = _Child(process)
    stderr_task = asyncio.create_task(child.drain_stderr())
    try:
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps(request).encode())
        await process.stdin.drain()
        process.stdin.close()
        final: dict[str, Any] | None = None
        error: str | None = None
        async for line in process.stdout:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue  # not an event: a library wrote to the channel after all
            kind = event.get("event") if isinstance(event, dict) else None
            if kind in ("done", "cancelled"):
                final = event
            elif kind == "error":
                error = str(event.get("message", "unknown error"))
            elif kind is not None:
                on_event(event)
        await process.wait()
        await stderr_task
    except BaseException:
        # Cancelled (or failed) while the child runs: it must not outlive us.
        child.kill()
        stderr_task.cancel()
        with contextlib.suppress(BaseException):
            await process.wait()
        raise
    if final is None or process.returncode != 0:
        raise child.failure(error)
    return final


async def train_yolo(
    spec: TrainingSpec,
    on_epoch: Callable[[EpochProgress], None],
    cancel_requested: Callable[[], bool],
) -> TrainingOutcome:
    """Train in a subprocess; `on_epoch` after each epoch. When `cancel_requested()` turns
    true (polled twice a second and after each epoch), the training stops at the end of the
    epoch it is in and TrainingCancelled is raised."""
    check_model_spec(spec.model)
    work_dir = spec.work_dir.resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    cancel_file = work_dir / CANCEL_FILE
    cancel_file.unlink(missing_ok=True)  # a stale one from an earlier, cancelled attempt

    def request_cancel_if_asked() -> bool:
        if not cancel_file.exists() and cancel_requested():
            cancel_file.touch()
        return cancel_file.exists()

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "epoch":
            on_epoch(
                EpochProgress(
                    epoch=int(event["epoch"]),
                    epochs=int(event["epochs"]),
                    losses=dict(event["losses"]),
                    metrics=dict(event["metrics"]),
                )
            )
            request_cancel_if_asked()

    async def watch_cancel() -> None:
        while True:
            if request_cancel_if_asked():
                return
            await asyncio.sleep(_CANCEL_POLL_S)

    request = {
        "data_yaml": str(spec.data_yaml.resolve()),
        "model": spec.model,
        "epochs": spec.epochs,
        "image_size": spec.image_size,
        "batch": spec.batch,
        "device": spec.device,
        "work_dir": str(work_dir),
    }
    watcher = asyncio.create_task(watch_cancel())
    try:
        final = await _run("train", request, on_event)
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
    if final["event"] == "cancelled":
        raise TrainingCancelled(int(final["epochs_completed"]))
    return TrainingOutcome(
        weights=Path(final["weights"]),
        metrics=dict(final["metrics"]),
        epochs_completed=int(final["epochs_completed"]),
        artifacts=[Path(path) for path in final["artifacts"]],
    )


async def predict_yolo(
    weights: Path,
    images: Sequence[Path],
    *,
    image_size: int,
    min_confidence: float,
    device: str,
) -> list[list[Detection]]:
    """The detections of `weights` on each image, in the order of `images`."""
    if not images:
        return []
    found: list[list[Detection]] = [[] for _ in images]

    def on_event(event: dict[str, Any]) -> None:
        if event["event"] == "detections":
            found[int(event["index"])] = [
                Detection(int(c), float(x), float(y), float(w), float(h), float(s))
                for c, x, y, w, h, s in event["boxes"]
            ]

    with tempfile.TemporaryDirectory(prefix="yolo-predict-") as work_dir:
        request = {
            "weights": _absolute(weights),
            "images": [_absolute(path) for path in images],
            "image_size": image_size,
            "min_confidence": min_confidence,
            "device": device,
            "work_dir": work_dir,  # ultralytics' settings and fonts, gone afterwards
        }
        await _run("predict", request, on_event)
    return found


async def export_onnx(weights: Path, out_dir: Path, *, image_size: int) -> Path:
    """`weights` as ONNX (dynamic batch, height and width axes) in `out_dir`; its path."""
    with tempfile.TemporaryDirectory(prefix="yolo-export-") as work_dir:
        request = {
            "weights": _absolute(weights),
            "out_dir": _absolute(out_dir),
            "image_size": image_size,
            "work_dir": work_dir,
        }
        final = await _run("export-onnx", request, lambda event: None)
    return Path(final["path"])
