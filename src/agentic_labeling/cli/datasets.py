"""`alabel datasets ...`: datasets built from registered objects, split, exported, imported."""

from __future__ import annotations

from pathlib import Path

import click

from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import (
    filter_option,
    json_option,
    parse_name_list,
    parse_split_ratios,
    yes_option,
)
from agentic_labeling.cli.planned import PlannedCommand

__all__ = ["datasets"]


@click.group(
    cls=AlabelGroup,
    epilog="""\b
A typical session:
  alabel datasets create street --classes person,car --filter 'is_validated = true'
  alabel datasets build street
  alabel datasets export street --format yolo-segment --out ./street-yolo""",
)
def datasets() -> None:
    """Build datasets, split them, export YOLO or COCO.

    A dataset is a filter over objects, a class list (its order gives the class ids), split
    ratios and a seed. Building it snapshots the membership: frames of one source never cross
    splits, and the same seed over the same data gives the same split.
    """


@datasets.command("create", cls=PlannedCommand, plan="creates a dataset definition")
@click.argument("name")
@click.option(
    "--classes",
    callback=parse_name_list,
    required=True,
    metavar="NAME,NAME...",
    help="Classes in id order (0, 1, ...); objects of other categories are left out.",
)
@filter_option
@click.option(
    "--split",
    callback=parse_split_ratios,
    default="0.8,0.1,0.1",
    show_default=True,
    metavar="TRAIN,VAL,TEST",
    help="Fractions of sources per split; they must add up to 1.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option(
    "--group-by-source/--no-group-by-source",
    default=True,
    show_default=True,
    help="Keep all frames of a source in one split (no leakage between splits).",
)
def datasets_create(**options: object) -> None:
    """Create dataset NAME from the objects matching a filter.

    Only the definition is stored; `alabel datasets build` fills it.
    """


@datasets.command("list", cls=PlannedCommand, plan="lists datasets")
@json_option
def datasets_list(**options: object) -> None:
    """List datasets with their classes and split sizes.

    Shows name, classes, objects per split and when each was last built.
    """


@datasets.command("get", cls=PlannedCommand, plan="shows one dataset with per-split statistics")
@click.argument("name")
@json_option
def datasets_get(**options: object) -> None:
    """Show one dataset and its objects per split and class."""


@datasets.command("build", cls=PlannedCommand, plan="snapshots a dataset's membership and split")
@click.argument("name")
def datasets_build(**options: object) -> None:
    """Snapshot the membership of a dataset and split it.

    Shows a progress bar. Rebuilding picks up objects registered or validated since the last build.
    """


@datasets.command(
    "export",
    cls=PlannedCommand,
    plan="writes a built dataset as YOLO or COCO",
    epilog="""\b
Examples:
  alabel datasets export street --format yolo-detect --out ./street-yolo
  alabel datasets export street --format coco --out ./street-coco --link""",
)
@click.argument("name")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(["yolo-detect", "yolo-segment", "coco"]),
    required=True,
    help="yolo-detect / yolo-segment: data.yaml with images/ and labels/ per split, as"
    " ultralytics reads them; coco: instances JSON per split with RLE masks.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    metavar="DIR",
    help="Target directory; written in full under a temporary name, then renamed.",
)
@click.option(
    "--link",
    is_flag=True,
    help="Link images into the export instead of copying them.",
)
@click.option("--overwrite", is_flag=True, help="Replace DIR if it exists.")
def datasets_export(**options: object) -> None:
    """Export a built dataset as YOLO or COCO.

    Shows progress; DIR is written in full or not at all, never half-written.
    """


@datasets.command(
    "import",
    cls=PlannedCommand,
    plan="loads COCO or YOLO labels with their images as validated objects",
)
@click.argument("directory", metavar="DIR", type=click.Path(exists=True, file_okay=False))
@click.option(
    "--format",
    "import_format",
    type=click.Choice(["coco", "yolo"]),
    required=True,
    help="Layout of DIR.",
)
@click.option(
    "--by",
    "validated_by",
    default="import",
    show_default=True,
    metavar="NAME",
    help="Recorded as the validator of the imported objects.",
)
def datasets_import(**options: object) -> None:
    """Import COCO or YOLO labels as validated objects.

    Reads the label set and its images from DIR. Use it to load ground truth for evaluation and
    review; an export imports back unchanged.
    """


@datasets.command("delete", cls=PlannedCommand, plan="deletes a dataset definition")
@click.argument("name")
@yes_option
def datasets_delete(**options: object) -> None:
    """Delete a dataset; its objects stay in the registry."""
