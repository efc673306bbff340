"""`alabel models ...`: model weights for the mesh."""

from __future__ import annotations

from pathlib import Path

import click

from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.planned import PlannedCommand

__all__ = ["models"]


@click.group(cls=AlabelGroup)
def models() -> None:
    """Prepare model weights for the mesh."""


@models.command(
    "make-tiny",
    cls=PlannedCommand,
    plan="builds tiny random-weight Florence-2, SAM2 and DINOv2 models",
    epilog="""\b
Example:
  alabel models make-tiny ./tiny-models
  alabel --models-dir ./tiny-models triton start""",
)
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the weights.")
@click.option("--overwrite", is_flag=True, help="Replace models already in DIR.")
def models_make_tiny(**options: object) -> None:
    """Build tiny random-weight models for tests and demos.

    Writes Florence-2, SAM2 and DINOv2 models with random weights into DIR. They have the real
    architectures and load through the same path as real checkpoints, with no download, so tests and
    demos can run the whole mesh on a small CPU. Their outputs are meaningless: they prove the
    plumbing, never label quality. For real labels, point --models-dir at real checkpoints in
    transformers format.
    """
