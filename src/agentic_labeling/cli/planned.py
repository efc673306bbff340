"""Commands that are part of the product but not built yet, declared honestly.

A planned command is declared like any other command, with its real name, options and help
text, plus `cls=PlannedCommand, plan="<what it will do>"`. Click still parses its arguments (a
bad option is click's usage error, exit 2); running it then prints that it is not available yet
and exits 3. Nothing pretends to work. To build one: drop `cls=` and `plan=`, write the body.
"""

from __future__ import annotations

from typing import Any, NoReturn

import click

from agentic_labeling.cli.failures import NotBuiltYet

__all__ = ["PLANNED_MARK", "PlannedCommand", "is_planned"]

# Shown before the one-line help in command listings, so `alabel --help` does not oversell.
PLANNED_MARK = "(planned) "


class PlannedCommand(click.Command):
    """A declared command whose invocation says it is not available yet (exit status 3)."""

    def __init__(self, *args: Any, plan: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plan = plan

    def invoke(self, ctx: click.Context) -> NoReturn:
        raise NotBuiltYet(ctx.command_path, self.plan)

    def get_short_help_str(self, limit: int = 45) -> str:
        return PLANNED_MARK + super().get_short_help_str(limit - len(PLANNED_MARK))

    def format_help_text(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        super().format_help_text(ctx, formatter)
        formatter.write_paragraph()
        with formatter.indentation():
            formatter.write_text(f"Not available yet in this version (planned: {self.plan}).")


def is_planned(command: click.Command) -> bool:
    """True for a planned command, and for a group whose commands are all planned."""
    if isinstance(command, PlannedCommand):
        return True
    if isinstance(command, click.Group):
        return bool(command.commands) and all(is_planned(c) for c in command.commands.values())
    return False
