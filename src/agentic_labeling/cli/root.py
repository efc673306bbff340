"""The root `alabel` group: version, settings options, command tree, error reporting."""

from __future__ import annotations

import os
from typing import Any

import click

from agentic_labeling import __version__
from agentic_labeling.cli.categories import categories
from agentic_labeling.cli.datasets import datasets
from agentic_labeling.cli.demo_video import demo_video
from agentic_labeling.cli.failures import failure_from_domain_error
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.labeling import label
from agentic_labeling.cli.mesh import down, up
from agentic_labeling.cli.models import models
from agentic_labeling.cli.registry import objects, registry, search, stats, validate
from agentic_labeling.cli.serve import serve
from agentic_labeling.cli.settings_options import SettingOption, SettingsSource, setting_options
from agentic_labeling.cli.tracks import tracks
from agentic_labeling.cli.training import evaluate, runs, suggest, train
from agentic_labeling.cli.triton import triton
from agentic_labeling.errors import DomainError

__all__ = ["cli"]

SETTINGS_SECTION = "Settings (a flag wins over its ALABEL_* environment variable, then the default)"


class RootGroup(AlabelGroup):
    """Adds what only the root does: domain errors become exit 1, settings get their section."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except DomainError as error:
            raise failure_from_domain_error(error) from error

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        general: list[tuple[str, str]] = []
        settings: list[tuple[str, str]] = []
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                (settings if isinstance(param, SettingOption) else general).append(record)
        with formatter.section("Options"):
            formatter.write_dl(general)
        # Commands before the long settings list: they are what a newcomer looks for.
        self.format_commands(ctx, formatter)
        with formatter.section(SETTINGS_SECTION):
            formatter.write_dl(settings)


@click.group(
    name="alabel",
    cls=RootGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
    epilog="""\b
Examples:
  alabel up
  alabel label ./photos --classes person,car
  alabel objects list --filter 'category = "car" AND confidence >= 0.5'
  alabel --registry-url 10.0.0.5:50051 stats --json

\b
Exit status: 0 done; 1 the platform refused or failed; 2 bad usage or a bad setting;
3 not available yet in this version.""",
)
@click.version_option(__version__, "--version", "-V", prog_name="alabel")
@click.pass_context
def cli(ctx: click.Context, /, **flags: object) -> None:
    """Auto-label images and videos with Florence-2, SAM2 and DINOv2 served by Triton.

    Images stream through a gRPC mesh (orchestrator, Triton, registry). Every object found is
    stored with its box, mask and embedding in a registry (Postgres + Qdrant), where it can be
    searched, reviewed, grouped into datasets and exported as YOLO or COCO.

    Settings go before the command (`alabel --registry-url HOST:PORT objects list`) or in
    ALABEL_* environment variables.
    """
    # Only the CLI reads the environment; the settings are built when a command first needs them.
    ctx.obj = SettingsSource(flags=flags, environ=os.environ)


cli.params.extend(setting_options())

for command in (
    serve,
    triton,
    up,
    down,
    label,
    search,
    objects,
    validate,
    categories,
    tracks,
    stats,
    registry,
    datasets,
    train,
    runs,
    evaluate,
    suggest,
    models,
    demo_video,
):
    cli.add_command(command)
