"""`alabel serve registry|orchestrator|review`: run one server of the mesh in the foreground."""

from __future__ import annotations

import getpass
import importlib
from pathlib import Path
from typing import Protocol, cast

import click

from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.settings_options import current_settings
from agentic_labeling.settings import Settings

__all__ = ["serve"]


class ServerRun(Protocol):
    """What every server module offers: serve until SIGTERM or SIGINT, then stop cleanly."""

    def __call__(self, settings: Settings, *, port_file: Path | None = None) -> None: ...


def _run_server(module_name: str, port_file: Path | None) -> None:
    settings = current_settings()  # first, so a bad setting is reported as such
    # Imported here, not at the top, so that `alabel --help` loads no gRPC or database code.
    module = importlib.import_module(f"agentic_labeling.servers.{module_name}")
    run = cast(ServerRun, module.run)
    run(settings, port_file=port_file)


port_file_option = click.option(
    "--port-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the bound port to this file once the server is serving (useful with port 0:"
    " a script waits for the file, then reads the port).",
)


@click.group(cls=AlabelGroup)
def serve() -> None:
    """Run one server of the mesh in the foreground.

    The server logs to stderr (--log-format, --log-level), reports SERVING through the standard
    gRPC health service once ready, offers reflection for grpcurl, and stops cleanly on SIGTERM
    or Ctrl-C, giving in-flight calls --shutdown-grace-s seconds to finish. `alabel up` starts
    the whole mesh instead.
    """


@serve.command(
    "registry",
    epilog="""\b
Examples:
  alabel serve registry
  alabel --registry-port 0 --data-dir /tmp/al serve registry --port-file /tmp/al/registry.port
  alabel --postgres-dsn postgresql://al@db/al --qdrant-url http://qdrant:6333 serve registry""",
)
@port_file_option
def serve_registry(port_file: Path | None) -> None:
    """Run the registry server (RegistryService) until stopped.

    The registry stores sources, frames, categories and objects in Postgres, embeddings in
    Qdrant and masks as PNG files. By default Postgres and Qdrant run embedded under
    --data-dir; --postgres-dsn and --qdrant-url use external services instead. It listens on
    --host and --registry-port.
    """
    _run_server("registry_server", port_file)


@serve.command(
    "orchestrator",
    epilog="""\b
Examples:
  alabel serve orchestrator
  alabel --orchestrator-port 0 serve orchestrator --port-file /tmp/al/orchestrator.port
  alabel --triton-url gpu-box:8001 --registry-url 127.0.0.1:50051 serve orchestrator""",
)
@port_file_option
def serve_orchestrator(port_file: Path | None) -> None:
    """Run the orchestrator server (LabelingService) until stopped.

    The orchestrator takes image streams, runs detection (Florence-2), segmentation (SAM2) and
    embedding (DINOv2) on Triton at --triton-url, and registers the objects with the registry at
    --registry-url. It listens on --host and --orchestrator-port.
    """
    _run_server("orchestrator_server", port_file)


@serve.command(
    "review",
    epilog="""\b
Examples:
  alabel serve review
  alabel --registry-url 127.0.0.1:50051 --review-port 8765 serve review --reviewer alice
  alabel --review-port 0 serve review --port-file /tmp/al/review.port""",
)
@port_file_option
@click.option(
    "--reviewer",
    default=lambda: getpass.getuser(),
    show_default="your user name",
    help="Who the decisions are recorded as (validated_by).",
)
def serve_review(port_file: Path | None, reviewer: str) -> None:
    """Run the review web app until stopped.

    A page at http://HOST:REVIEW_PORT/ where a person accepts (a), rejects (r) and relabels (c)
    auto-labels, keyboard first, finds "more like this" (s) and decides on many at once, edits
    boxes on the whole image, and follows progress. It holds no data: every decision is one
    RPC to the registry at --registry-url, images included (GetSourceImage), so it needs no
    --data-dir and may run on another machine. It listens on --host (127.0.0.1 by default:
    the page has no login) and --review-port.
    """
    settings = current_settings()
    if not reviewer.strip():
        raise click.UsageError("--reviewer must not be empty: give a name, e.g. --reviewer alice")
    from agentic_labeling.logs import configure_logging
    from agentic_labeling.review.server import run

    # The same structured log as the gRPC servers: its "listening" line is what scripts wait for.
    configure_logging(settings.log_level, settings.log_format)
    run(settings, port_file=port_file, reviewer=reviewer.strip())
