"""A trained YOLO "student" served like Florence-2: ONNX on onnxruntime, same inputs and outputs.

Distilling: Florence-2 labels, people review, ultralytics trains a small YOLO on the dataset and
exports it to ONNX (`ExportRun`). `write_student_model` puts that ONNX into a Triton model
repository as a Python-backend model (default name "yolo") whose inputs and outputs are exactly
florence2's (IMAGE, CLASS_NAMES, MIN_CONFIDENCE, MAX_DETECTIONS -> BOXES, SCORES, CLASS_IDS,
IMAGE_SIZE), so AutoLabel swaps detectors by name and SAM2 and DINOv2 carry on unchanged.

Classes. A student knows the classes it was trained on (`classes.json` beside the ONNX). It
answers a request only for the requested names it knows, matched case-insensitively after
stripping spaces (the first of two requested spellings of one class wins); a requested name it
does not know gets no boxes (the orchestrator refuses such a config up front instead: see
servers/detector_choice.py). Each anchor takes its best class over ALL the student's classes
first, then boxes of unrequested classes are dropped, as ultralytics' `classes=` filter does: a
box the student thinks is a truck is not reported as a car because only "car" was asked.

Pre-processing, as ultralytics' predictor does for an ONNX model: letterbox to a square
`image_size` (scale = min(size / height, size / width), aspect kept, up-scaling allowed, the
resized image centred on grey 114 padding with ultralytics' rounding), bilinear resize with
half-pixel centres (cv2.INTER_LINEAR, written in numpy: the served environment has no cv2;
values can differ from cv2 by one grey level through its fixed-point arithmetic), RGB, /255,
NCHW float32.

Decoding (detect exports: output [batch, 4 + nc (+ mask coefficients for a segment export,
ignored: boxes only), anchors], box rows cx, cy, w, h in letterbox pixels, class rows already
sigmoid-ed): best class per anchor, `min_confidence` kept (>=, like florence2), non-maximum
suppression per class at IoU `NMS_IOU` (ultralytics' predict default 0.7) in numpy, greedy and
stopped once `max_detections` boxes are kept, then boxes are moved back to the original image
(padding off, divided by the scale, clipped) as x, y, width, height; empty boxes are dropped.
Sorted by confidence, highest first.

Batching. An ONNX exported with a dynamic batch axis runs a whole Triton batch in one
`session.run`; one with a fixed batch of 1 runs image by image inside the same call (still
accepting batched requests). End-to-end exports (NMS inside the graph) are refused.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import string
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import FailedPrecondition, InvalidArgument
from agentic_labeling.models.inputs import check_rgb_image
from agentic_labeling.models.served_config import MAX_IMAGE_PIXELS_VARIABLE
from agentic_labeling.settings import load_settings

__all__ = [
    "CLASSES_FILE",
    "MODEL_FILE",
    "NMS_IOU",
    "RESERVED_MODEL_NAMES",
    "StudentDetection",
    "StudentDetector",
    "StudentServing",
    "StudentSettings",
    "check_model_name",
    "letterbox",
    "read_student_classes",
    "write_student_model",
]

MODEL_FILE = "model.onnx"
CLASSES_FILE = "classes.json"
NMS_IOU = 0.7  # ultralytics' predict default
PAD_VALUE = 114  # ultralytics' letterbox grey
# Class-offset NMS (ultralytics' trick): boxes of different classes never overlap once shifted.
_CLASS_OFFSET = 1 << 16
# The mesh's other models: a student written under one of these names would replace them.
RESERVED_MODEL_NAMES = frozenset({"florence2", "sam2", "dinov2"})
# Triton model names are directory names; keep them to what every tool quotes safely.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_TEMPLATE_DIR = Path(__file__).with_name("student_template")


@dataclass(frozen=True)
class StudentSettings:
    """Per-image knobs, as florence2's DetectionSettings."""

    min_confidence: float = 0.0
    max_detections: int = 100


@dataclass(frozen=True)
class StudentDetection:
    """One box: x, y, width, height in pixels of the original image; class_id indexes the
    request's class names."""

    box: tuple[float, float, float, float]
    class_id: int
    confidence: float


def check_model_name(name: str, field: str = "model_name") -> str:
    """A Triton model name for a student, or InvalidArgument naming `field`."""
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidArgument(
            f"{name!r} is not a model name: 1 to 64 letters, digits, '_', '.' or '-',"
            " starting with a letter or digit",
            field=field,
        )
    if name in RESERVED_MODEL_NAMES:
        raise InvalidArgument(
            f"{name!r} is one of the mesh's own models; choose another name, e.g. 'yolo'",
            field=field,
        )
    return name


def _check_class_names(names: Sequence[str], field: str) -> list[str]:
    if isinstance(names, str) or len(names) == 0:
        raise InvalidArgument("need a non-empty list of class names", field=field)
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument("a class name must be a non-empty string", field=f"{field}[{j}]")
        key = name.strip().casefold()
        if key in seen:
            raise InvalidArgument(
                f"class name {name.strip()!r} repeats {field}[{seen[key]}] (names match"
                " case-insensitively)",
                field=f"{field}[{j}]",
            )
        seen[key] = j
    return [name.strip() for name in names]


def _check_settings(settings: StudentSettings, field: str) -> None:
    if not 0.0 <= settings.min_confidence <= 1.0:
        raise InvalidArgument(
            "min_confidence must be within [0, 1]", field=f"{field}.min_confidence"
        )
    if settings.max_detections < 1:
        raise InvalidArgument("max_detections must be at least 1", field=f"{field}.max_detections")


# --- pre-processing -------------------------------------------------------------------------


@dataclass(frozen=True)
class Letterboxed:
    """An image resized and padded into the model's square input, and how to undo it."""

    pixels: npt.NDArray[np.uint8]  # (size, size, 3)
    scale: float
    pad_left: int
    pad_top: int


def _resize_bilinear(
    image: npt.NDArray[np.uint8], width: int, height: int
) -> npt.NDArray[np.uint8]:
    """cv2.resize(INTER_LINEAR) in numpy: half-pixel centres, edges clamped."""
    src_h, src_w = image.shape[:2]
    if (src_w, src_h) == (width, height):
        return image.copy()

    def axis(dst: int, src: int) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp], Any]:
        position = (np.arange(dst, dtype=np.float64) + 0.5) * (src / dst) - 0.5
        position = np.clip(position, 0.0, src - 1)
        low = np.floor(position).astype(np.intp)
        high = np.minimum(low + 1, src - 1)
        return low, high, (position - low).astype(np.float32)

    y0, y1, fy = axis(height, src_h)
    x0, x1, fx = axis(width, src_w)
    pixels = image.astype(np.float32)
    top = pixels[y0] * (1 - fy)[:, None, None] + pixels[y1] * fy[:, None, None]
    out = top[:, x0] * (1 - fx)[None, :, None] + top[:, x1] * fx[None, :, None]
    resized: npt.NDArray[np.uint8] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return resized


def letterbox(image: npt.NDArray[np.uint8], size: int) -> Letterboxed:
    """ultralytics' LetterBox(new_shape=(size, size), auto=False, scaleup=True, center=True)."""
    height, width = image.shape[:2]
    scale = min(size / height, size / width)
    new_w, new_h = round(width * scale), round(height * scale)
    resized = _resize_bilinear(image, new_w, new_h)
    dw, dh = (size - new_w) / 2, (size - new_h) / 2
    top, left = round(dh - 0.1), round(dw - 0.1)
    canvas = np.full((size, size, 3), PAD_VALUE, dtype=np.uint8)
    canvas[top : top + new_h, left : left + new_w] = resized
    return Letterboxed(canvas, scale, left, top)


# --- decoding --------------------------------------------------------------------------------


def _nms(
    boxes: npt.NDArray[np.float32], scores: npt.NDArray[np.float32], iou: float, limit: int
) -> list[int]:
    """Greedy NMS over x1, y1, x2, y2 boxes, best first; stops once `limit` are kept."""
    order = np.argsort(-scores, kind="stable")
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    kept: list[int] = []
    while order.size and len(kept) < limit:
        best = int(order[0])
        kept.append(best)
        rest = order[1:]
        left = np.maximum(boxes[best, 0], boxes[rest, 0])
        top = np.maximum(boxes[best, 1], boxes[rest, 1])
        right = np.minimum(boxes[best, 2], boxes[rest, 2])
        bottom = np.minimum(boxes[best, 3], boxes[rest, 3])
        inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
        union = areas[best] + areas[rest] - inter
        overlap = np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)
        order = rest[overlap <= iou]
    return kept


def decode_output(
    output: npt.NDArray[np.float32],
    *,
    class_count: int,
    wanted: Mapping[int, int],
    boxed: Letterboxed,
    width: int,
    height: int,
    settings: StudentSettings,
) -> list[StudentDetection]:
    """One image's raw output [4 + nc (+ extra), anchors] as detections of the original image.

    `wanted` maps a student class index to the request's class id; other classes are dropped.
    """
    boxes_cxcywh = output[:4].T
    class_scores = output[4 : 4 + class_count].T
    best = class_scores.argmax(axis=1)
    scores = class_scores[np.arange(len(best)), best]
    requested = np.isin(best, np.fromiter(wanted, dtype=np.intp, count=len(wanted)))
    keep = requested & (scores >= settings.min_confidence) & np.isfinite(scores)
    if not keep.any():
        return []
    cx, cy, w, h = (boxes_cxcywh[keep, k].astype(np.float32) for k in range(4))
    xyxy = np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], axis=1)
    scores, best = scores[keep].astype(np.float32), best[keep]
    offset = (best * _CLASS_OFFSET).astype(np.float32)[:, None]
    kept = _nms(xyxy + offset, scores, NMS_IOU, settings.max_detections)
    found: list[StudentDetection] = []
    for index in kept:
        x1 = float(np.clip((xyxy[index, 0] - boxed.pad_left) / boxed.scale, 0, width))
        y1 = float(np.clip((xyxy[index, 1] - boxed.pad_top) / boxed.scale, 0, height))
        x2 = float(np.clip((xyxy[index, 2] - boxed.pad_left) / boxed.scale, 0, width))
        y2 = float(np.clip((xyxy[index, 3] - boxed.pad_top) / boxed.scale, 0, height))
        if x2 <= x1 or y2 <= y1:
            continue
        class_id = wanted[int(best[index])]
        found.append(StudentDetection((x1, y1, x2 - x1, y2 - y1), class_id, float(scores[index])))
    found.sort(key=lambda d: (-d.confidence, d.class_id, d.box))
    return found


# --- the detector ----------------------------------------------------------------------------


def read_student_classes(model_dir: Path) -> tuple[list[str], int]:
    """The class names and image size written beside a student's ONNX."""
    path = model_dir / CLASSES_FILE
    try:
        facts = json.loads(path.read_text(encoding="utf-8"))
        names = _check_class_names(facts["class_names"], f"{CLASSES_FILE}.class_names")
        size = int(facts["image_size"])
    except (OSError, ValueError, KeyError, TypeError, InvalidArgument) as error:
        raise FailedPrecondition(
            f"{path} is not a student's class list ({error}); write the model with"
            " write_student_model",
            reason="STUDENT_MODEL_BROKEN",
        ) from None
    return names, size


def _session_options(threads: int) -> Any:
    import onnxruntime as ort  # type: ignore[import-untyped]

    options = ort.SessionOptions()
    if threads > 0:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    return options


def _open_session(onnx_path: Path, *, device: str = "cpu", threads: int = 0) -> Any:
    import onnxruntime as ort

    providers: list[Any] = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        device_id = int(device.partition(":")[2] or 0)
        providers.insert(0, ("CUDAExecutionProvider", {"device_id": device_id}))
    return ort.InferenceSession(
        str(onnx_path), sess_options=_session_options(threads), providers=providers
    )


def _check_session(session: Any, class_count: int, image_size: int, where: str) -> bool:
    """Whether the ONNX takes a batch axis; FailedPrecondition if it is not a YOLO detect
    export for `class_count` classes at `image_size`."""
    metadata = session.get_modelmeta().custom_metadata_map
    if metadata.get("end2end", "False") == "True":
        raise FailedPrecondition(
            f"{where} is an end-to-end export (NMS inside the graph), which is not supported:"
            " export with end2end=False",
            reason="STUDENT_MODEL_UNSUPPORTED",
        )
    inputs = session.get_inputs()
    shape = inputs[0].shape if len(inputs) == 1 else []
    if len(shape) != 4:
        raise FailedPrecondition(
            f"{where} takes {len(inputs)} inputs of shape {shape}; a YOLO export takes one"
            " image batch [batch, 3, height, width]",
            reason="STUDENT_MODEL_UNSUPPORTED",
        )
    for fixed in shape[2:]:
        if isinstance(fixed, int) and fixed != image_size:
            raise FailedPrecondition(
                f"{where} was exported for {shape[2]}x{shape[3]} images, not {image_size}",
                reason="STUDENT_MODEL_UNSUPPORTED",
            )
    names = metadata.get("names")
    if names:
        with_names = ast.literal_eval(names)
        if isinstance(with_names, dict) and len(with_names) != class_count:
            raise FailedPrecondition(
                f"{where} was trained on {len(with_names)} classes, but {class_count} class"
                " names were given",
                reason="STUDENT_MODEL_UNSUPPORTED",
            )
    return not isinstance(shape[0], int)


class StudentDetector:
    """A YOLO ONNX export with its class names: florence2's `detect` contract on onnxruntime.

    Not safe to call from several threads at once; use one per Triton model instance.
    """

    def __init__(self, session: Any, class_names: Sequence[str], image_size: int) -> None:
        self.session = session
        self.class_names = _check_class_names(class_names, "class_names")
        self.image_size = image_size
        self.dynamic_batch = _check_session(
            session, len(self.class_names), image_size, "the student model"
        )
        self._input = session.get_inputs()[0].name
        self._index = {name.casefold(): i for i, name in enumerate(self.class_names)}
        # Fail at load, not on the first request: the output must hold 4 + nc rows.
        probe = np.zeros((1, 3, image_size, image_size), np.float32)
        rows = session.run(None, {self._input: probe})[0].shape[1]
        if rows < 4 + len(self.class_names):
            raise FailedPrecondition(
                f"the student model's output has {rows} rows per anchor; a detect export for"
                f" {len(self.class_names)} classes has {4 + len(self.class_names)}",
                reason="STUDENT_MODEL_UNSUPPORTED",
            )

    @classmethod
    def load(cls, model_dir: Path, *, device: str = "cpu", threads: int = 0) -> StudentDetector:
        """The student in `model_dir` (model.onnx and classes.json, as write_student_model
        writes them)."""
        names, size = read_student_classes(model_dir)
        session = _open_session(model_dir / MODEL_FILE, device=device, threads=threads)
        return cls(session, names, size)

    def wanted(self, class_names: Sequence[str]) -> dict[int, int]:
        """Student class index -> the request's class id, for the requested names it knows."""
        wanted: dict[int, int] = {}
        for j, name in enumerate(class_names):
            index = self._index.get(name.strip().casefold())
            if index is not None and index not in wanted:
                wanted[index] = j
        return wanted

    def validate(
        self, image: npt.NDArray[Any], class_names: Sequence[str], settings: StudentSettings
    ) -> None:
        """Check one request alone (as `detect` does), raising InvalidArgument naming the field."""
        check_rgb_image(image, "images[0]")
        _check_request_names(class_names, "class_names[0]")
        _check_settings(settings, "settings[0]")

    def detect(
        self,
        images: Sequence[npt.NDArray[Any]],
        class_names: Sequence[Sequence[str]],
        settings: Sequence[StudentSettings],
    ) -> list[list[StudentDetection]]:
        """Boxes per image, for the requested names this student knows (module docstring)."""
        if not len(class_names) == len(settings) == len(images):
            raise InvalidArgument(
                f"got {len(images)} images, {len(class_names)} class lists and {len(settings)}"
                " settings; need one of each per image",
                field="class_names",
            )
        for index, (image, names, wanted) in enumerate(
            zip(images, class_names, settings, strict=True)
        ):
            check_rgb_image(image, f"images[{index}]")
            _check_request_names(names, f"class_names[{index}]")
            _check_settings(wanted, f"settings[{index}]")
        boxed = [letterbox(image, self.image_size) for image in images]
        outputs = self._run([b.pixels for b in boxed])
        return [
            decode_output(
                output,
                class_count=len(self.class_names),
                wanted=self.wanted(names),
                boxed=box,
                width=image.shape[1],
                height=image.shape[0],
                settings=wanted,
            )
            for output, box, image, names, wanted in zip(
                outputs, boxed, images, class_names, settings, strict=True
            )
        ]

    def _run(self, pixels: Sequence[npt.NDArray[np.uint8]]) -> list[npt.NDArray[np.float32]]:
        if not pixels:
            return []
        batch = np.stack(pixels).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        if self.dynamic_batch:
            return list(self.session.run(None, {self._input: batch})[0])
        return [self.session.run(None, {self._input: one[None]})[0][0] for one in batch]


def _check_request_names(names: Sequence[str], field: str) -> None:
    """florence2's rules for a request's class names (non-empty, no exact repeats)."""
    if isinstance(names, str) or len(names) == 0:
        raise InvalidArgument("need a non-empty list of class names", field=field)
    seen: dict[str, int] = {}
    for j, name in enumerate(names):
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgument("a class name must be a non-empty string", field=f"{field}[{j}]")
        if name.strip() in seen:
            raise InvalidArgument(
                f"class name {name.strip()!r} repeats {field}[{seen[name.strip()]}]",
                field=f"{field}[{j}]",
            )
        seen[name.strip()] = j


# --- serving -------------------------------------------------------------------------------


@dataclass(frozen=True)
class StudentServing:
    """What a student's Triton instance reads in `initialize`: where its files are, its
    device and threads, and the mesh's pixel limit (the same sources as ServedModelConfig)."""

    model_dir: Path
    device: str
    threads: int
    max_image_pixels: int

    @classmethod
    def from_triton_args(
        cls, args: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> StudentServing:
        environ = os.environ if environ is None else environ
        if args.get("model_instance_kind") == "GPU":
            device = f"cuda:{args.get('model_instance_device_id', '0')}"
        else:
            device = "cpu"
        given = environ.get(MAX_IMAGE_PIXELS_VARIABLE)
        only = {} if given is None else {MAX_IMAGE_PIXELS_VARIABLE: given}
        return cls(
            model_dir=Path(args["model_repository"]) / args["model_version"],
            device=device,
            threads=int(environ.get("ALABEL_TORCH_THREADS", "0") or 0),
            max_image_pixels=load_settings(environ=only).max_image_pixels,
        )


def _config_text(model_name: str, class_names: Sequence[str]) -> str:
    template = string.Template((_TEMPLATE_DIR / "config.pbtxt").read_text(encoding="utf-8"))
    # The orchestrator reads the classes from the served config (servers/detector_choice.py).
    return template.substitute(
        model_name=model_name,
        class_names=json.dumps(json.dumps(list(class_names))),
    )


def write_student_model(
    onnx_path: Path,
    class_names: Sequence[str],
    image_size: int,
    repository: Path,
    model_name: str = "yolo",
) -> Path:
    """Write {repository}/{model_name}/ (config.pbtxt, 1/model.py, 1/model.onnx,
    1/classes.json) and return it.

    The ONNX is checked first (a YOLO detect export for these classes at this size). The files
    go to a hidden temporary directory beside the model and are renamed into place, so Triton
    never sees a half-written model; an existing model of that name is replaced (moved aside,
    then removed). Triton loads it at its next start (`alabel triton stop`/`start`, or `alabel
    down`/`up`): the launcher runs Triton with --model-control-mode=none.
    """
    check_model_name(model_name)
    names = _check_class_names(class_names, "class_names")
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 32:
        raise InvalidArgument(
            f"image_size must be an integer of at least 32, got {image_size!r}",
            field="image_size",
        )
    if image_size % 32:
        raise InvalidArgument(
            f"image_size must be a multiple of 32 (YOLO's stride), got {image_size}",
            field="image_size",
        )
    if not onnx_path.is_file():
        raise InvalidArgument(f"{onnx_path} is not a file", field="onnx_path")
    if not repository.is_dir():
        raise InvalidArgument(
            f"model repository {repository} is not a directory", field="repository"
        )
    # Fails here, not when Triton loads it: the export matches the classes and the size.
    StudentDetector(_open_session(onnx_path), names, image_size)
    target = repository / model_name
    staging = Path(tempfile.mkdtemp(prefix=f".{model_name}-", dir=repository))
    try:
        version = staging / "1"
        version.mkdir()
        shutil.copyfile(onnx_path, version / MODEL_FILE)
        (version / CLASSES_FILE).write_text(
            json.dumps({"class_names": names, "image_size": image_size}, indent=2) + "\n",
            encoding="utf-8",
        )
        shutil.copyfile(_TEMPLATE_DIR / "model.py", version / "model.py")
        (staging / "config.pbtxt").write_text(_config_text(model_name, names), encoding="utf-8")
        staging.chmod(0o755)  # mkdtemp's 0700 would hide it from a Triton of another user
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    aside = None
    if target.exists():
        aside = Path(tempfile.mkdtemp(prefix=f".{model_name}-old-", dir=repository))
        target.rename(aside / model_name)
    try:
        staging.rename(target)
    except BaseException:
        if aside is not None:  # the old model goes back where it was
            (aside / model_name).rename(target)
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    return target
