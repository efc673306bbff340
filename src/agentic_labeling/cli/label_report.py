"""How `alabel label` reports: per-image lines or JSON, a progress bar on a terminal, a summary.

Three ways to show the same results, picked by the command:
- `JsonReport`: one JSON object per image on stdout, then a summary object (for scripts);
- `LineReport`: one plain line per image (for logs and pipes);
- `ProgressReport`: a rich progress bar (images done/total, objects, failures, rate) with
  failures printed above it as they happen (for people at a terminal).
Each gets every `ImageResult` through `add`, and `finish` prints the summary.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from agentic_labeling.cli.label_stream import ImageResult
from agentic_labeling.cli.output import message_json
from agentic_labeling.v1 import registry_pb2

__all__ = [
    "JsonReport",
    "LabelTally",
    "LineReport",
    "ProgressReport",
    "Report",
    "shown_path",
    "stdout_is_terminal",
]


def shown_path(path: Path) -> str:
    """`path` relative to the working directory when it lies under it, else absolute."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def shown_result(result: ImageResult) -> str:
    """The result's file, and its frame for a video frame: `clip.mp4 frame 12`."""
    path = shown_path(result.path)
    return path if result.frame_index is None else f"{path} frame {result.frame_index}"


def _classes(objects: tuple[registry_pb2.LabeledObject, ...]) -> Counter[str]:
    return Counter(o.category_name or o.category for o in objects)


@dataclass
class LabelTally:
    """Counts over the results so far."""

    total: int
    reprocess: bool = False  # registered images were labelled again, not skipped
    labelled: int = 0
    already_registered: int = 0
    failures: list[ImageResult] = field(default_factory=list)
    new_objects: int = 0
    merged_objects: int = 0  # detections of re-labelled images that matched stored objects
    registered_objects: int = 0
    per_class: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.monotonic)

    def add(self, result: ImageResult) -> None:
        if result.error is not None:
            self.failures.append(result)
            return
        if result.already_registered:
            self.already_registered += 1
            self.registered_objects += len(result.objects)
        else:
            self.labelled += 1
            self.new_objects += result.new_objects
            self.merged_objects += len(result.merged)
        self.per_class.update(_classes(result.objects))

    @property
    def done(self) -> int:
        return self.labelled + self.already_registered + len(self.failures)

    @property
    def elapsed_s(self) -> float:
        return time.monotonic() - self.started

    @property
    def rate(self) -> float:
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0

    def to_json(self, *, complete: bool, error: str | None) -> dict[str, Any]:
        return {
            "type": "summary",
            "images": self.total,
            "labelled": self.labelled,
            "already_registered": self.already_registered,
            "failed": len(self.failures),
            "not_answered": self.total - self.done,
            "new_objects": self.new_objects,
            "merged_objects": self.merged_objects,
            "registered_objects": self.registered_objects,
            "objects_per_class": dict(self.per_class.most_common()),
            "elapsed_s": round(self.elapsed_s, 3),
            "complete": complete,
            "error": error,
        }

    def summary_lines(self) -> list[str]:
        counts = (
            f"{self.total} images: {self.labelled} labelled, {self.already_registered} already"
            f" registered (skipped), {len(self.failures)} failed"
        )
        missing = self.total - self.done
        if missing:
            counts += f", {missing} not answered"
        lines = [f"{counts} in {self.elapsed_s:.1f} s ({self.rate:.1f} images/s)"]
        objects = f"objects: {self.new_objects} new"
        if self.merged_objects:
            objects += f", {self.merged_objects} matched objects registered before"
        if self.already_registered:
            objects += f", {self.registered_objects} registered before"
        if self.per_class:
            per_class = ", ".join(f"{name} {count}" for name, count in self.per_class.most_common())
            objects += f"; per class: {per_class}"
        lines.append(objects)
        if self.already_registered and not self.reprocess:
            lines.append(
                f"{self.already_registered} image(s) skipped because they were already labelled"
                " (new classes were not looked for in them); add --reprocess to label them again"
                " for these classes (matching objects merge, only new ones are added)"
            )
        if self.failures:
            lines.append("failed:")
            lines += [f"  {shown_result(f)}: {_error_text(f)}" for f in self.failures]
        return lines


def _error_text(result: ImageResult) -> str:
    return result.error.text() if result.error is not None else ""


def _objects_text(result: ImageResult) -> str:
    classes = _classes(result.objects)
    count = f"{len(result.objects)} object{'s' if len(result.objects) != 1 else ''}"
    if not classes:
        return count
    return count + ": " + ", ".join(f"{name} {n}" for name, n in classes.most_common())


def _settle_total(tally: LabelTally, complete: bool) -> None:
    """A video's frame count is estimated up front; once every result is in, it is known."""
    if complete:
        tally.total = tally.done


class Report:
    """Shows results as they come (`add`) and the summary at the end (`finish`)."""

    def __init__(self, total: int, *, reprocess: bool = False) -> None:
        self.tally = LabelTally(total, reprocess=reprocess)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        return None

    def add(self, result: ImageResult) -> None:
        self.tally.add(result)

    def finish(self, *, complete: bool, error: str | None = None) -> None:
        _settle_total(self.tally, complete)
        for line in self.tally.summary_lines():
            click.echo(line)
        if not complete:
            click.echo("re-run the same command to finish: registered images are skipped")


class LineReport(Report):
    """One plain line per image on stdout, then the summary."""

    def add(self, result: ImageResult) -> None:
        super().add(result)
        path = shown_result(result)
        if result.error is not None:
            click.echo(f"failed     {path}  {result.error.text()}")
        elif result.already_registered:
            click.echo(f"skipped    {path}  already registered ({_objects_text(result)})")
        else:
            merged = f" ({len(result.merged)} registered before)" if result.merged else ""
            click.echo(f"labelled   {path}  {_objects_text(result)}{merged}")


class JsonReport(Report):
    """One JSON object per line: `{"type": "image", ...}` per image, then `{"type": "summary"}`."""

    def add(self, result: ImageResult) -> None:
        super().add(result)
        if result.error is not None:
            status = "failed"
        elif result.already_registered:
            status = "already_registered"
        else:
            status = "labelled"
        record = {
            "type": "image",
            "path": str(result.path),
            "frame_index": result.frame_index,
            "status": status,
            "source": result.source,
            "objects": [message_json(o) for o in result.objects],
            "merged_objects": sorted(result.merged),
            "error": result.error.to_json() if result.error is not None else None,
        }
        click.echo(json.dumps(record))

    def finish(self, *, complete: bool, error: str | None = None) -> None:
        _settle_total(self.tally, complete)
        click.echo(json.dumps(self.tally.to_json(complete=complete, error=error)))


class ProgressReport(Report):
    """A live progress bar on a terminal; failures are printed above it as they happen."""

    def __init__(
        self, total: int, *, reprocess: bool = False, console: Console | None = None
    ) -> None:
        super().__init__(total, reprocess=reprocess)
        self.console = console or Console(highlight=False)
        self.progress = Progress(
            TextColumn("[bold]labelling"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("images"),
            TextColumn("{task.fields[objects]} objects"),
            TextColumn("{task.fields[failed]} failed"),
            TextColumn("{task.fields[rate]:.1f} img/s"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.task: TaskID = self.progress.add_task(
            "labelling", total=total, objects=0, failed=0, rate=0.0
        )

    def __enter__(self) -> Self:
        self.progress.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.progress.stop()

    def add(self, result: ImageResult) -> None:
        super().add(result)
        if result.error is not None:
            self.console.print(
                Text.assemble(("failed", "red"), f" {shown_result(result)}: {result.error.text()}")
            )
        tally = self.tally
        self.progress.update(
            self.task,
            completed=tally.done,
            total=max(tally.total, tally.done),  # a video's frame count is an estimate
            objects=tally.new_objects + tally.merged_objects + tally.registered_objects,
            failed=len(tally.failures),
            rate=tally.rate,
        )

    def finish(self, *, complete: bool, error: str | None = None) -> None:
        self.progress.stop()
        super().finish(complete=complete, error=error)


def stdout_is_terminal() -> bool:
    """Whether a live progress bar can be drawn on stdout (a TTY, or FORCE_COLOR is set)."""
    console = Console()
    return console.is_terminal and not console.is_dumb_terminal
