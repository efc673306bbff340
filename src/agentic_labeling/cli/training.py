"""`alabel train ...`: train YOLO on a dataset, evaluate, and pick objects worth a review."""

from __future__ import annotations

import click

from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import filter_option, json_option
from agentic_labeling.cli.planned import PlannedCommand

__all__ = ["train"]


@click.group(cls=AlabelGroup)
def train() -> None:
    """Train and evaluate YOLO; suggest objects to review.

    Runs (parameters, metrics, weights) are recorded and listed by `alabel train runs`.
    """


@train.command(
    "start",
    cls=PlannedCommand,
    plan="trains an ultralytics YOLO model on a built dataset",
    epilog="""\b
Examples:
  alabel train start street --epochs 50
  alabel train start street --model yolo11s-seg.yaml --image-size 1024 --device 0""",
)
@click.argument("dataset")
@click.option(
    "--model",
    default="yolo11n.yaml",
    show_default=True,
    help="ultralytics model spec: a .yaml trains from scratch, a .pt file fine-tunes.",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    help="Passes over the training split.",
)
@click.option(
    "--image-size",
    type=click.IntRange(min=32),
    default=640,
    show_default=True,
    help="Training image size in pixels.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="cpu, a CUDA device index such as 0, or auto.",
)
def train_start(**options: object) -> None:
    """Train a YOLO model on a built dataset.

    Shows progress and metrics per epoch; the run is recorded with its weights.
    """


@train.command(
    "evaluate",
    cls=PlannedCommand,
    plan="compares a run's predictions with ground truth (mAP, per-class AP, confusion matrix)",
)
@click.argument("run")
@click.option("--dataset", metavar="NAME", help="Dataset to evaluate on.  [default: the run's]")
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    default="val",
    show_default=True,
    help="Split to evaluate on.",
)
@json_option
def train_evaluate(**options: object) -> None:
    """Evaluate a run's weights against ground truth.

    Reports mAP50, mAP50-95, AP per class and a confusion matrix.
    """


@train.command(
    "suggest",
    cls=PlannedCommand,
    plan="ranks objects for human review (active learning)",
)
@filter_option
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=50,
    show_default=True,
    metavar="N",
    help="How many objects to suggest.",
)
@json_option
def train_suggest(**options: object) -> None:
    """Suggest the objects whose review would help most.

    Each suggestion comes with its reason. Ranks unvalidated objects by uncertainty (low or
    conflicting confidence) and by how different they are from what is already validated.
    """


@train.command("runs", cls=PlannedCommand, plan="lists training runs with their metrics")
@click.option("--dataset", metavar="NAME", help="Only runs on this dataset.")
@json_option
def train_runs(**options: object) -> None:
    """List training runs with their state and best mAP."""
