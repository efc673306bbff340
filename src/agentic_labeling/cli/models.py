"""`alabel models ...`: model weights for the mesh."""

from __future__ import annotations

import shutil
from pathlib import Path

import click

from agentic_labeling.cli.groups import AlabelGroup

__all__ = ["models"]


@click.group(cls=AlabelGroup)
def models() -> None:
    """Prepare model weights for the mesh."""


@models.command(
    "make-tiny",
    epilog="""\b
Example:
  alabel models make-tiny ./tiny-models
  alabel --models-dir ./tiny-models triton start""",
)
@click.argument("directory", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the weights.")
@click.option("--overwrite", is_flag=True, help="Replace models already in DIR.")
def models_make_tiny(directory: Path, seed: int, overwrite: bool) -> None:
    """Build tiny random-weight models for tests and demos.

    Writes Florence-2, SAM2 and DINOv2 models with random weights into DIR. They have the real
    architectures and load through the same path as real checkpoints, with no download, so tests and
    demos can run the whole mesh on a small CPU. Their outputs are meaningless: they prove the
    plumbing, never label quality. DIR also gets a TINY_RANDOM_WEIGHTS file saying so; an
    orchestrator given --models-dir DIR reports it, and `alabel label` then warns once and uses
    threshold 0 (unless --box-threshold is given), as their confidences are near 0. For real
    labels, point --models-dir at real checkpoints in transformers format.
    """
    # Imported here so that `alabel --help` does not load torch.
    from transformers.utils import logging as transformers_logging

    from agentic_labeling.models.tiny import MODEL_NAMES, make_tiny_models

    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call,unused-ignore]  # noise

    existing = [name for name in MODEL_NAMES if (directory / name).exists()]
    if existing and not overwrite:
        raise click.UsageError(
            f"{directory} already holds {', '.join(existing)}; pass --overwrite to replace them"
        )
    for name in existing:  # replaced whole, so no file of an older build lingers
        shutil.rmtree(directory / name)
    from agentic_labeling.labeling_defaults import RANDOM_WEIGHTS_MARKER

    for name, path in make_tiny_models(directory, seed=seed).items():
        click.echo(f"{name:<10} {path}")
    click.echo(f"{'marker':<10} {directory / RANDOM_WEIGHTS_MARKER}")
    click.echo(
        "Random weights: these models prove the plumbing, their labels mean nothing. A mesh"
        " serving them says so, and `alabel label` then keeps every box (threshold 0)."
    )
