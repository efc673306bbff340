"""How a failed command reaches the user: plain lines on stderr and a documented exit status.

Exit statuses of `alabel`:
    0  done
    1  the platform refused or failed (a `DomainError`: not found, unavailable, ...)
    2  bad usage (click's own usage errors) or a bad setting
    3  the command, or the server method it needs, is not available yet in this version

A failure is never shown as a traceback: these exceptions are `click.ClickException`s, which
click prints through `show()` and turns into the exit status.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import IO, Any

import click

from agentic_labeling.errors import DomainError, InvalidArgument, Unimplemented

__all__ = [
    "EXIT_FAILED",
    "EXIT_NOT_BUILT",
    "EXIT_USAGE",
    "BadSetting",
    "CliFailure",
    "MethodNotBuilt",
    "NotBuiltYet",
    "failure_from_domain_error",
]

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_BUILT = 3


class CliFailure(click.ClickException):
    """A failure shown as `<prefix>: <message>` plus indented details, on stderr."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, details: Sequence[str] = (), prefix: str = "error") -> None:
        super().__init__(message)
        self.details = list(details)
        self.prefix = prefix

    def show(self, file: IO[Any] | None = None) -> None:
        # rich is imported here, not at module level, so that `alabel --help` stays fast.
        from rich.console import Console
        from rich.text import Text

        # soft_wrap: a message is one line whatever the terminal width, so scripts can grep it.
        console = Console(file=file or sys.stderr, highlight=False, soft_wrap=True)
        console.print(Text.assemble((f"{self.prefix}:", "bold red"), " ", self.message))
        for detail in self.details:
            console.print(Text(f"  {detail}"))


class BadSetting(CliFailure):
    """A setting (flag or `ALABEL_*` variable) that `load_settings` refused."""

    exit_code = EXIT_USAGE


class NotBuiltYet(CliFailure):
    """A command that is part of the product but not available in this version."""

    exit_code = EXIT_NOT_BUILT

    def __init__(self, command_path: str, plan: str) -> None:
        super().__init__(
            f"not available yet in this version (planned: {plan}; see `{command_path} --help`)",
            prefix=command_path,
        )
        self.plan = plan


class MethodNotBuilt(CliFailure):
    """The server said the method a command needs is not built yet: like a planned command."""

    exit_code = EXIT_NOT_BUILT


def failure_from_domain_error(error: DomainError) -> CliFailure:
    """The CLI's view of a domain error that escaped a command."""
    details: list[str] = []
    if isinstance(error, InvalidArgument):
        # A violation that only repeats the message (a single named field) adds nothing.
        details = [
            f"{v.field}: {v.description}"
            for v in error.violations
            if v.description != error.message
        ]
    if isinstance(error, Unimplemented):
        return MethodNotBuilt(error.message)
    return CliFailure(error.message, details=details)
