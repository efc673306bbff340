"""Random-weight YOLO11n ONNX exports for the student tests, made by ultralytics in a subprocess.

ultralytics replaces PIL.Image.open when imported, so it never enters the test process: a
`python -c` child builds YOLO11n for the given number of classes from ultralytics' own
architecture file (no download), seeds torch, and exports it twice from the same weights: with
a dynamic batch axis and with a fixed batch of 1. Random weights prove the plumbing only.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_EXPORT = """
import pathlib, shutil, sys
import torch, yaml
from ultralytics import YOLO
from ultralytics.utils import ROOT
out, class_count, size = pathlib.Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
cfg = yaml.safe_load((ROOT / "cfg/models/11/yolo11.yaml").read_text())
cfg["nc"], cfg["scale"] = class_count, "n"
(out / "yolo11n.yaml").write_text(yaml.safe_dump(cfg))
torch.manual_seed(0)
model = YOLO(str(out / "yolo11n.yaml"))
for name, dynamic in (("dynamic", True), ("static", False)):
    exported = model.export(format="onnx", imgsz=size, dynamic=dynamic, simplify=False)
    shutil.move(exported, out / f"{name}.onnx")
"""


@dataclass(frozen=True)
class StudentExports:
    dynamic: Path  # batch axis dynamic
    static: Path  # batch fixed at 1
    image_size: int
    class_count: int


def export_random_yolo(directory: Path, *, class_count: int, image_size: int) -> StudentExports:
    """Two ONNX exports of one random YOLO11n detect model into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        # Offline and private: nothing fetched, settings written under the test's directory.
        "YOLO_OFFLINE": "1",
        "YOLO_AUTOINSTALL": "false",
        "YOLO_CONFIG_DIR": str(directory / "ultralytics-config"),
    }
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT, str(directory), str(class_count), str(image_size)],
        cwd=directory,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return StudentExports(
        directory / "dynamic.onnx", directory / "static.onnx", image_size, class_count
    )
