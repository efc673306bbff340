"""Settings on the command line: one root option per `Settings` field, loaded lazily.

The options are generated from `dataclasses.fields(Settings)`, so a new field is a new flag
with no change here. Values stay strings until `load_settings` parses them, so a bad flag and a
bad `ALABEL_*` variable get the same message. Settings are built once, when a command first
asks for them: `--help` and planned commands never read them, so a broken environment cannot
stop a user from reading help.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import click

from agentic_labeling.cli.failures import BadSetting
from agentic_labeling.errors import InvalidArgument
from agentic_labeling.settings import ENV_PREFIX, Settings, load_settings

__all__ = [
    "SettingOption",
    "SettingsSource",
    "current_settings",
    "setting_options",
]

_METAVARS: dict[object, str] = {
    int: "INTEGER",
    float: "FLOAT",
    Path: "PATH",
    str: "TEXT",
    bool: "on|off",
}


class SettingOption(click.Option):
    """An option generated from a `Settings` field (the root help lists these apart)."""


def _metavar(hint: object) -> str:
    # `Path | None` is shown as PATH: an empty value means None.
    concrete = [arg for arg in typing.get_args(hint) if arg is not type(None)] or [hint]
    return _METAVARS.get(concrete[0], "TEXT")


def _default_text(f: dataclasses.Field[object]) -> str | None:
    if f.default_factory is not dataclasses.MISSING:
        default: object = f.default_factory()
    else:
        default = f.default
    if default is None or default == "":
        return None  # the field's help says what "not set" means
    return str(default)


def _option_for(f: dataclasses.Field[object], hint: object) -> SettingOption:
    envvar = ENV_PREFIX + f.name.upper()
    default = _default_text(f)
    where = f"env var: {envvar}" + (f"; default: {default}" if default is not None else "")
    return SettingOption(
        ["--" + f.name.replace("_", "-"), f.name],
        metavar=_metavar(hint),
        default=None,  # None means "not given": the environment or the default decides
        help=f"{f.metadata['help']}  [{where}]",
    )


def setting_options() -> list[SettingOption]:
    """One option per `Settings` field, in the dataclass's order."""
    hints = typing.get_type_hints(Settings)
    return [_option_for(f, hints[f.name]) for f in dataclasses.fields(Settings)]


@dataclass
class SettingsSource:
    """The raw flags and the environment, turned into `Settings` once, on first use."""

    flags: Mapping[str, object | None]
    environ: Mapping[str, str]
    _settings: Settings | None = field(default=None, init=False, repr=False)

    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings(self.flags, self.environ)
            except InvalidArgument as error:
                raise BadSetting(error.message) from None
        return self._settings


def current_settings(ctx: click.Context | None = None) -> Settings:
    """The settings of the running `alabel` invocation (built now if this is the first ask)."""
    ctx = ctx or click.get_current_context()
    source = ctx.find_object(SettingsSource)
    if source is None:
        raise RuntimeError("current_settings() needs a command run under the alabel root group")
    return source.settings()
