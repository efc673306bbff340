"""MOTChallenge ground truth: one video's tracks as the files MOT tools read.

A sequence directory holds `gt/gt.txt`, one line per box:

    frame,id,x,y,w,h,conf,class,vis

with 1-based frame numbers (the registry's zero-based frame index + 1, so a video sampled
every N-th frame keeps its real frame numbers), 1-based track numbers given in order of each
track's first frame, the box's top-left corner and size in pixels, the object's detection
confidence (MOT tools skip a ground-truth line whose conf is 0 and keep any other), 1-based
class numbers in the order of `classes.txt` (one class name a line), and visibility 1 (the
registry keeps none). `seqinfo.ini` gives the sequence's length, frame size and, when frame
times say, its frame rate. py-motmetrics (`motmetrics.io.loadtxt(path, fmt="mot15-2D")`) and
TrackEval read these files.

Pure: no gRPC and no registry; the CLI (`alabel tracks export`) gathers the boxes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MotBox", "SequenceInfo", "mot_lines", "seqinfo_text", "track_numbers", "write_sequence"]


@dataclass(frozen=True)
class MotBox:
    """One tracked object in one frame."""

    frame_index: int  # zero-based, as the registry numbers frames
    track: str  # any key that names the track, e.g. `tracks/{uuid}`
    x: float
    y: float
    width: float
    height: float
    confidence: float
    class_number: int  # 1-based, a line of classes.txt


@dataclass(frozen=True)
class SequenceInfo:
    """What `seqinfo.ini` says about the video."""

    name: str
    length: int  # frames, counting from frame number 1
    width: int
    height: int
    frame_rate: float | None = None  # None: the frame times do not say


def track_numbers(boxes: Sequence[MotBox]) -> dict[str, int]:
    """1-based numbers for the tracks of `boxes`, in order of first frame (then track key)."""
    first: dict[str, int] = {}
    for box in boxes:
        first[box.track] = min(box.frame_index, first.get(box.track, box.frame_index))
    ordered = sorted(first, key=lambda track: (first[track], track))
    return {track: number for number, track in enumerate(ordered, start=1)}


def mot_lines(boxes: Sequence[MotBox]) -> list[str]:
    """The lines of gt.txt, sorted by frame then track number."""
    numbers = track_numbers(boxes)
    ordered = sorted(boxes, key=lambda b: (b.frame_index, numbers[b.track]))
    return [
        f"{b.frame_index + 1},{numbers[b.track]},{_num(b.x)},{_num(b.y)},{_num(b.width)},"
        f"{_num(b.height)},{_num(b.confidence)},{b.class_number},1"
        for b in ordered
    ]


def seqinfo_text(info: SequenceInfo) -> str:
    lines = ["[Sequence]", f"name={info.name}"]
    if info.frame_rate is not None:
        lines.append(f"frameRate={_num(info.frame_rate)}")
    lines += [f"seqLength={info.length}", f"imWidth={info.width}", f"imHeight={info.height}"]
    return "\n".join(lines) + "\n"


def write_sequence(
    directory: Path, boxes: Sequence[MotBox], class_names: Sequence[str], info: SequenceInfo
) -> Path:
    """Write gt/gt.txt, classes.txt and seqinfo.ini under `directory`; the gt.txt path."""
    gt = directory / "gt" / "gt.txt"
    gt.parent.mkdir(parents=True, exist_ok=True)
    gt.write_text("".join(line + "\n" for line in mot_lines(boxes)), encoding="utf-8")
    (directory / "classes.txt").write_text(
        "".join(name + "\n" for name in class_names), encoding="utf-8"
    )
    (directory / "seqinfo.ini").write_text(seqinfo_text(info), encoding="utf-8")
    return gt


def _num(value: float) -> str:
    """Up to 6 decimals without trailing zeros: `12`, `12.5`, `0.912345`."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return "0" if text == "-0" else text
