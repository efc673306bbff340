"""`alabel up` and `alabel down`: the whole mesh on this machine, started and stopped together."""

from __future__ import annotations

import click

from agentic_labeling.cli.planned import PlannedCommand

__all__ = ["down", "up"]


@click.command(
    "up",
    cls=PlannedCommand,
    plan="starts tritonserver, the registry and the orchestrator and prints their endpoints",
    epilog="""\b
Examples:
  alabel up
  alabel --triton-url gpu-box:8001 up --no-triton""",
)
@click.option(
    "--triton/--no-triton",
    default=True,
    show_default=True,
    help="Start a local tritonserver; --no-triton uses the server at --triton-url.",
)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for every part to report ready.",
)
def up(**options: object) -> None:
    """Start the whole mesh and print its endpoints.

    Starts, in the background, tritonserver with the models, the registry (embedded Postgres and
    Qdrant under --data-dir unless --postgres-dsn / --qdrant-url are given) and the orchestrator,
    waits until each is ready, and prints the addresses to give to `alabel label` or grpcurl.
    `alabel down` stops them.
    """


@click.command(
    "down",
    cls=PlannedCommand,
    plan="stops the parts of the mesh that `alabel up` started",
)
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Time each part gets to finish in-flight work before it is killed.",
)
def down(**options: object) -> None:
    """Stop the mesh that `alabel up` started.

    Stops the orchestrator first, then the registry, then Triton. In-flight work is finished or
    cancelled, never left half-written.
    """
