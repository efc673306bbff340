"""Click parameter parsers and options that several commands share."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

__all__ = [
    "filter_option",
    "json_option",
    "parse_class_list",
    "parse_name_list",
    "parse_split_ratios",
    "port_option",
    "yes_option",
]


# Parsers are option callbacks, not ParamType subclasses: ParamType is generic only from
# click 8.4 on, and a callback reads the same on every click 8 release.
def parse_name_list(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    """`person,car` -> ("person", "car"): order kept (it gives class ids); no blanks or repeats."""
    if value is None:
        return None
    names = tuple(part.strip() for part in value.split(","))
    if any(not name for name in names):
        raise click.BadParameter(
            f"{value!r} has an empty name; separate names with single commas", ctx, param
        )
    seen: set[str] = set()
    for name in names:
        # Category names are unique case-insensitively in the registry.
        if name.casefold() in seen:
            raise click.BadParameter(f"{name!r} is given twice", ctx, param)
        seen.add(name.casefold())
    return names


def parse_class_list(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[str, ...] | None:
    """`--classes` of a labelling command: `parse_name_list`, then the rules every class name
    meets on the orchestrator (class_names.py), so a bad list is a usage error (exit 2) that
    says what to change, before any image is sent."""
    from agentic_labeling.class_names import MAX_CLASS_NAMES, looks_quoted, special_token_in

    names = parse_name_list(ctx, param, value)
    if names is None:
        return None
    for name in names:
        if looks_quoted(name):
            raise click.BadParameter(
                f"{name!r} is not a class name: give plain names separated by commas, without"
                ' brackets or quotes, e.g. --classes person,car or --classes "traffic'
                ' light,bicycle" (a JSON list is not read)',
                ctx,
                param,
            )
        token = special_token_in(name)
        if token is not None:
            raise click.BadParameter(
                f"{name!r} contains {token}, which is written like one of the detector's"
                " special tokens (<OD>, <loc_0>..<loc_999>, </s>, ...); name the class without"
                " angle brackets",
                ctx,
                param,
            )
    if len(names) > MAX_CLASS_NAMES:
        raise click.BadParameter(
            f"{len(names)} class names given, at most {MAX_CLASS_NAMES} per run; label with"
            f" at most {MAX_CLASS_NAMES} classes at a time (run the command again with the"
            " rest and --reprocess)",
            ctx,
            param,
        )
    return names


def parse_split_ratios(
    ctx: click.Context, param: click.Parameter, value: str
) -> tuple[float, float, float]:
    """`0.8,0.1,0.1` -> (train, val, test) fractions, each >= 0, adding up to 1."""
    parts = value.split(",")
    try:
        train, val, test = (float(part) for part in parts)
    except ValueError:
        raise click.BadParameter(
            f"{value!r} must be three numbers TRAIN,VAL,TEST", ctx, param
        ) from None
    ratios = (train, val, test)
    if any(not math.isfinite(r) or r < 0 for r in ratios):
        raise click.BadParameter(f"{value!r}: each fraction must be a number >= 0", ctx, param)
    if not math.isclose(sum(ratios), 1.0, abs_tol=1e-6):
        raise click.BadParameter(f"{value!r}: the fractions must add up to 1", ctx, param)
    return ratios


json_option = click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print JSON on stdout (stable field names, for scripts) instead of a table.",
)
filter_option = click.option(
    "--filter",
    "filter_expr",
    metavar="EXPR",
    help="Only objects matching EXPR, in the AIP-160 style of every List call, e.g."
    " 'category = \"car\" AND confidence >= 0.5 AND is_validated = false'.",
)
yes_option = click.option(
    "--yes", "-y", is_flag=True, help="Do not ask for confirmation (for scripts)."
)


_F = TypeVar("_F", bound=Callable[..., Any])


def port_option(flag: str, default: int, what: str) -> Callable[[_F], _F]:
    """A `--...-port` option for a server this command starts on --host (0: a free port)."""
    return click.option(
        flag,
        type=click.IntRange(0, 65535),
        default=default,
        show_default=True,
        metavar="PORT",
        help=f"{what} on --host; 0 picks a free port.",
    )
