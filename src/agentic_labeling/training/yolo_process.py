"""The training subprocess: the only module that imports ultralytics.

    python -m agentic_labeling.training.yolo_process train|predict|export-onnx < request.json

The request is one JSON object on stdin (stdin, not argv: a predict request may name more
images than one argument may hold). The answer is JSON lines on stdout, one event a line:

    {"event": "epoch", "epoch": 1, "epochs": 3, "losses": {...}, "metrics": {...}}
    {"event": "detections", "index": 0, "boxes": [[class_id, x, y, w, h, score], ...]}
    {"event": "cancelled", "epochs_completed": 1}
    {"event": "done", ...}
    {"event": "error", "message": "..."}            (and exit status 1)

Why a process of its own: ultralytics is AGPL-3.0 (kept out of every server's imports), it
replaces `PIL.Image.open` on import, and a training holds gigabytes that the OS must get back.
Everything ultralytics prints goes to stderr; stdout carries the events only.

Offline by construction: `offline_environment` is set before ultralytics is imported (no
DNS probe, no pip auto-install, settings in the run's own config directory), its integrations
(MLflow, hub, analytics) are switched off in those settings (we log MLflow runs ourselves),
and the fonts its plots ask for are a local DejaVu copy, so `check_font` never downloads.
A training stops at an epoch boundary when the file `work_dir/CANCEL` exists.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

CANCEL_FILE = "CANCEL"
# The fonts ultralytics' plots and dataset check look for; missing, it downloads them.
_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")
# Integrations ultralytics would start inside a training: none of them may run here.
_INTEGRATIONS_OFF = {
    "sync": False,
    "clearml": False,
    "comet": False,
    "dvc": False,
    "mlflow": False,
    "raytune": False,
    "tensorboard": False,
    "wandb": False,
    "api_key": "",
}


class _Cancelled(Exception):
    """Raised from the epoch callback to leave `model.train` at an epoch boundary."""

    def __init__(self, epochs_completed: int) -> None:
        super().__init__(f"cancelled after {epochs_completed} epochs")
        self.epochs_completed = epochs_completed


def offline_environment(config_dir: Path) -> dict[str, str]:
    """The environment variables that keep ultralytics from reaching the network.

    YOLO_OFFLINE makes `is_online()` answer False without a DNS probe (so no update check, no
    analytics, no hub); YOLO_AUTOINSTALL=false stops pip installs of missing requirements;
    YOLO_CONFIG_DIR keeps its settings.json and fonts in the run's directory.
    """
    return {
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_CONFIG_DIR": str(config_dir),
        "YOLO_VERBOSE": "false",
        "MPLBACKEND": "Agg",  # plots to files, never a display
    }


def _provide_fonts(config_dir: Path) -> None:
    """Put matplotlib's DejaVu Sans where ultralytics looks for Arial (its USER_CONFIG_DIR),
    so `check_font` never asks github.com."""
    from matplotlib import font_manager

    dejavu = Path(font_manager.findfont("DejaVu Sans", fallback_to_default=True))
    config_dir.mkdir(parents=True, exist_ok=True)
    for name in _FONTS:
        target = config_dir / name
        if not target.exists():
            shutil.copyfile(dejavu, target)


def _prepare(work_dir: Path) -> Any:
    """Set the offline environment up, import ultralytics and return its `YOLO` class."""
    config_dir = work_dir / ".ultralytics"
    os.environ.update(offline_environment(config_dir))
    os.environ.pop("ULTRALYTICS_API_KEY", None)
    from ultralytics.models.yolo.model import YOLO
    from ultralytics.utils import SETTINGS, USER_CONFIG_DIR

    _provide_fonts(USER_CONFIG_DIR)
    settings: Any = SETTINGS  # untyped upstream
    settings.update(_INTEGRATIONS_OFF)
    return YOLO


def _amp_without_download(model: Any) -> bool:
    """Stands in for ultralytics' `check_amp`, which downloads yolo26n.pt to compare FP32 and
    AMP outputs on a GPU. Offline it would retry the download and then say True anyway: AMP
    on CUDA, never on the CPU (what `check_amp` answers there too)."""
    return bool(next(model.parameters()).device.type == "cuda")


def _metric_name(key: str) -> str:
    """ultralytics' "metrics/mAP50-95(B)" -> "mAP50-95", "(M)" -> "mask_..."; MLflow refuses
    parentheses in names, and the box metrics are the ones every run has."""
    name = key.removeprefix("metrics/")
    if name.endswith("(M)"):
        return "mask_" + name.removesuffix("(M)")
    return name.removesuffix("(B)")


def _floats(values: Mapping[str, Any], rename: Callable[[str], str]) -> dict[str, float]:
    found = {}
    for key, value in values.items():
        try:
            found[rename(key)] = float(value)
        except (TypeError, ValueError):
            continue  # a non-numeric entry (ultralytics adds some) is not a metric
    return found


def _epoch_event(trainer: Any) -> dict[str, Any]:
    losses = trainer.label_loss_items(trainer.tloss, prefix="train") if trainer.tloss else {}
    return {
        "event": "epoch",
        "epoch": int(trainer.epoch) + 1,
        "epochs": int(trainer.epochs),
        "losses": _floats(losses, lambda key: key.removeprefix("train/")),
        "metrics": _floats(trainer.metrics or {}, _metric_name),
    }


def _artifacts(save_dir: Path) -> list[str]:
    return sorted(str(path) for path in save_dir.glob("*.png"))


def train(request: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """Train; one "epoch" event per epoch, then "done" (or "cancelled")."""
    work_dir = Path(request["work_dir"]).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    cancel_file = work_dir / CANCEL_FILE
    yolo = _prepare(work_dir)
    from ultralytics.engine import trainer as trainer_module

    trainer_module.check_amp = _amp_without_download  # type: ignore[attr-defined]
    model = yolo(request["model"])
    state = {"epochs": 0, "final": False}

    def wrap_final_eval(trainer: Any) -> None:
        # ultralytics calls on_fit_epoch_end once more, after the loop, with the best weights'
        # metrics: that call is the final result, not an epoch.
        final_eval = trainer.final_eval

        def marked() -> None:
            state["final"] = True
            final_eval()

        trainer.final_eval = marked

    def on_fit_epoch_end(trainer: Any) -> None:
        if state["final"]:
            return
        state["epochs"] += 1
        emit(_epoch_event(trainer))
        if cancel_file.exists() and state["epochs"] < trainer.epochs:
            raise _Cancelled(state["epochs"])

    model.add_callback("on_pretrain_routine_start", wrap_final_eval)
    model.add_callback("on_fit_epoch_end", on_fit_epoch_end)
    try:
        model.train(
            data=str(request["data_yaml"]),
            epochs=int(request["epochs"]),
            imgsz=int(request["image_size"]),
            batch=int(request["batch"]),
            device=str(request["device"]),
            project=str(work_dir),
            name="train",
            exist_ok=True,
            workers=0,  # no dataloader processes: a few cores are shared by the whole mesh
            plots=True,  # confusion matrix and PR curves, with the local fonts
            verbose=False,
        )
    except _Cancelled as cancelled:
        emit({"event": "cancelled", "epochs_completed": cancelled.epochs_completed})
        return
    trainer = model.trainer
    weights = trainer.best if trainer.best.exists() else trainer.last
    emit(
        {
            "event": "done",
            "weights": str(weights),
            "epochs_completed": state["epochs"],
            "metrics": _floats(trainer.metrics or {}, _metric_name),
            "artifacts": _artifacts(Path(trainer.save_dir)),
        }
    )


def predict(request: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """One "detections" event per image, in request order: [class_id, x, y, w, h, score] with
    x, y the top-left corner in pixels of the original image; then "done"."""
    work_dir = Path(request["work_dir"]).resolve()
    yolo = _prepare(work_dir)
    model = yolo(str(request["weights"]))
    images = [str(path) for path in request["images"]]
    chunk = 16  # results hold the images: stream them, a few at a time
    for start in range(0, len(images), chunk):
        results = model.predict(
            images[start : start + chunk],
            imgsz=int(request["image_size"]),
            conf=float(request["min_confidence"]),
            device=str(request["device"]),
            verbose=False,
        )
        for offset, result in enumerate(results):
            boxes = result.boxes
            rows = zip(boxes.cls.tolist(), boxes.xyxy.tolist(), boxes.conf.tolist(), strict=True)
            emit(
                {
                    "event": "detections",
                    "index": start + offset,
                    "boxes": [
                        [int(cls), x1, y1, x2 - x1, y2 - y1, score]
                        for cls, (x1, y1, x2, y2), score in rows
                    ],
                }
            )
    emit({"event": "done"})


def export_onnx(request: Mapping[str, Any], emit: Callable[[dict[str, Any]], None]) -> None:
    """ONNX with a dynamic batch axis (ultralytics' opset for this torch: 18, which onnxruntime
    runs), written to `out_dir/<weights stem>.onnx`; then "done" with its path."""
    work_dir = Path(request["work_dir"]).resolve()
    out_dir = Path(request["out_dir"]).resolve()
    yolo = _prepare(work_dir)
    # ultralytics writes the export next to the weights: export a copy inside out_dir.
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / Path(request["weights"]).name
    if weights.resolve() != Path(request["weights"]).resolve():
        shutil.copyfile(request["weights"], weights)
    model = yolo(str(weights))
    written = model.export(
        format="onnx",
        imgsz=int(request["image_size"]),
        dynamic=True,
        simplify=True,
        device="cpu",
        verbose=False,
    )
    if weights.resolve() != Path(request["weights"]).resolve():
        weights.unlink()
    emit({"event": "done", "path": str(Path(written).resolve())})


COMMANDS: dict[str, Callable[[Mapping[str, Any], Callable[[dict[str, Any]], None]], None]] = {
    "train": train,
    "predict": predict,
    "export-onnx": export_onnx,
}


def _die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies, so no training outlives a killed
    registry (best effort: other systems rely on the parent's cleanup)."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    except (OSError, AttributeError):
        return


def _event_channel() -> IO[str]:
    """stdout for the events only: whatever else writes to fd 1 (ultralytics' logger, a C
    library) lands on stderr instead."""
    channel = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    sys.stdout = sys.stderr
    return channel


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1 or args[0] not in COMMANDS:
        print(f"usage: yolo_process {{{'|'.join(COMMANDS)}}} < request.json", file=sys.stderr)
        return 2
    _die_with_parent()
    channel = _event_channel()

    def emit(event: dict[str, Any]) -> None:
        channel.write(json.dumps(event) + "\n")
        channel.flush()

    try:
        COMMANDS[args[0]](json.load(sys.stdin), emit)
    except Exception as error:  # every failure becomes an event for the parent
        emit({"event": "error", "message": f"{type(error).__name__}: {error}"})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
