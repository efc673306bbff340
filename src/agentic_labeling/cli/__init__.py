"""The `alabel` command line: one click tree over the mesh's servers and services.

`main` is the console script; `cli` is the click group, for tests and embedding.
"""

from __future__ import annotations

from collections.abc import Sequence

from agentic_labeling.cli.root import cli

__all__ = ["cli", "main"]


def main(args: Sequence[str] | None = None) -> None:
    """Run `alabel` with `args` (default: the process's arguments) and exit with its status."""
    # prog_name fixed so messages say `alabel ...` also under `python -m` or a wrapper script.
    cli.main(args=args, prog_name="alabel")
