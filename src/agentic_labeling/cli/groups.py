"""The click group class every `alabel` command group uses."""

from __future__ import annotations

import click

from agentic_labeling.cli.planned import PLANNED_MARK, is_planned

__all__ = ["AlabelGroup"]


class AlabelGroup(click.Group):
    """Lists commands in the order they are declared, and marks a group that is all planned.

    Declaration order follows the workflow (create, list, get, build, export, ...), which reads
    better in `--help` than click's alphabetical order.
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.commands)

    def get_short_help_str(self, limit: int = 45) -> str:
        if is_planned(self):
            return PLANNED_MARK + super().get_short_help_str(limit - len(PLANNED_MARK))
        return super().get_short_help_str(limit)
