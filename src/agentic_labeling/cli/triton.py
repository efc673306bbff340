"""`alabel triton start|stop|status`: the local Triton Inference Server that serves the models."""

from __future__ import annotations

from pathlib import Path

import click

from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import json_option
from agentic_labeling.cli.planned import PlannedCommand

__all__ = ["triton"]


@click.group(cls=AlabelGroup)
def triton() -> None:
    """Start, stop and inspect the local Triton server.

    Triton Inference Server serves Florence-2, SAM2 and DINOv2 from the repository's
    model_repository/ with dynamic batching, so concurrent images share forward passes. To use a
    Triton server run elsewhere (e.g. the NGC image on a GPU machine), skip these commands and pass
    --triton-url.
    """


@triton.command(
    "start",
    cls=PlannedCommand,
    plan="starts tritonserver with the repository's models and waits until they are ready",
    epilog="""\b
Examples:
  alabel triton start
  alabel --models-dir ~/weights triton start --device gpu""",
)
@click.option(
    "--model-repository",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Model repository to serve.  [default: the project's model_repository/]",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="Where model instances run; auto picks the GPU when one is visible.",
)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for every model to be READY before giving up.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write tritonserver's log here.  [default: under --data-dir]",
)
def triton_start(**options: object) -> None:
    """Start tritonserver and wait until the models are ready.

    The server runs in the background on loopback ports. Weights come from --models-dir
    (transformers format; `alabel models make-tiny` builds tiny random ones for trying things out).
    The gRPC port is the one in --triton-url. Returns once florence2, sam2 and dinov2 all report
    READY.
    """


@triton.command(
    "stop",
    cls=PlannedCommand,
    plan="stops the tritonserver that `alabel triton start` started",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Time given to in-flight inferences before the server is killed.",
)
def triton_stop(**options: object) -> None:
    """Stop the tritonserver that `alabel triton start` started.

    Sends SIGTERM, waits --grace seconds, then kills it.
    """


@triton.command(
    "status",
    cls=PlannedCommand,
    plan="shows each model's readiness and batching statistics",
)
@json_option
def triton_status(**options: object) -> None:
    """Show whether Triton is live and each model's state.

    Asks the server at --triton-url.
    For each model: READY or the reason it is not, version, and its statistics since start
    (requests, executions and the average batch size, inference_count / execution_count).
    """
