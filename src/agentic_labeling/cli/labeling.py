"""`alabel label`: stream images and videos through the mesh and register what it finds."""

from __future__ import annotations

from pathlib import Path

import click

from agentic_labeling.cli.params import parse_name_list
from agentic_labeling.cli.planned import PlannedCommand

__all__ = ["label"]


@click.command(
    "label",
    cls=PlannedCommand,
    plan="streams images through the mesh",
    epilog="""\b
Examples:
  alabel label ./photos --classes person,car
  alabel label street.mp4 --classes "traffic light,bicycle" --box-threshold 0.4
  alabel --orchestrator-url 10.0.0.7:50052 label ./photos --classes cat --in-flight 32""",
)
@click.argument(
    "paths",
    metavar="PATH...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, path_type=Path),
)
@click.option(
    "--classes",
    callback=parse_name_list,
    required=True,
    metavar="NAME,NAME...",
    help="Class names to detect, comma-separated (synonyms resolve to their category).",
)
@click.option(
    "--box-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.3,
    show_default=True,
    help="Drop detections whose confidence is below this.",
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    metavar="N",
    help="Images in flight at once; more lets Triton batch more.",
)
@click.option(
    "--recursive/--no-recursive",
    default=True,
    show_default=True,
    help="Descend into sub-folders of folder PATHs.",
)
@click.option(
    "--masks/--no-masks",
    default=True,
    show_default=True,
    help="Segment each detected box with SAM2.",
)
@click.option(
    "--embeddings/--no-embeddings",
    default=True,
    show_default=True,
    help="Embed each object with DINOv2 (needed by `alabel search`).",
)
def label(**options: object) -> None:
    """Detect, segment, embed and register objects.

    PATHs are image files, video files or folders of them.
    Images are streamed to the orchestrator at --orchestrator-url with several in flight, so
    Triton batches them. Each image is registered once: re-running the same command after an
    interruption skips what is already registered (by content hash) and finishes the rest.
    A bad image fails alone and is reported; a summary is printed at the end.
    """
