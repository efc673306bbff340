"""Structured logging for every process of the platform: one line per event on stderr.

`configure_logging("INFO", "json")` makes each record one JSON object (ts, level, logger, msg,
the `extra={...}` fields of the call, and the traceback as `exc` when there is one), which log
shippers ingest as is. `"text"` prints the same facts as a readable line for a terminal.
Call it once at process start (servers do it through `servers/bootstrap.py`); calling it again
replaces the handler instead of adding a second one.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import TextIO

from agentic_labeling.errors import InvalidArgument

__all__ = ["LOG_FORMATS", "LOG_LEVELS", "configure_logging"]

LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
LOG_FORMATS = ("json", "text")

# Attributes every LogRecord carries; anything else on a record came from `extra={...}`.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", logging.INFO, "", 0, "", None, None)).keys()
    | {"message", "asctime", "taskName"}
)


def _timestamp(record: logging.LogRecord) -> str:
    """RFC 3339 in UTC with milliseconds, e.g. 2026-11-24T08:15:02.113Z."""
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _extra_fields(record: logging.LogRecord) -> dict[str, object]:
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


def _exception_text(formatter: logging.Formatter, record: logging.LogRecord) -> str | None:
    parts: list[str] = []
    if record.exc_info:
        parts.append(formatter.formatException(record.exc_info))
    if record.stack_info:
        parts.append(formatter.formatStack(record.stack_info))
    return "\n".join(parts) or None


class _JsonFormatter(logging.Formatter):
    """One JSON object per record; values JSON cannot encode are written with str()."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extra_fields(record).items():
            # An extra field never overwrites the four fixed ones a log reader relies on.
            entry.setdefault(key, value)
        exc = _exception_text(self, record)
        if exc is not None:
            entry["exc"] = exc
        return json.dumps(entry, default=str, ensure_ascii=False)


def _text_value(value: object) -> str:
    text = str(value)
    if not text or any(ch.isspace() or ch in '"=' for ch in text):
        return json.dumps(text, ensure_ascii=False)
    return text


class _TextFormatter(logging.Formatter):
    """`ts LEVEL logger: msg key=value ...`, traceback (if any) on the following lines."""

    def format(self, record: logging.LogRecord) -> str:
        line = f"{_timestamp(record)} {record.levelname:<7} {record.name}: {record.getMessage()}"
        fields = " ".join(f"{k}={_text_value(v)}" for k, v in _extra_fields(record).items())
        if fields:
            line = f"{line} {fields}"
        exc = _exception_text(self, record)
        return line if exc is None else f"{line}\n{exc}"


class _StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever `sys.stderr` is at emit time, so redirection (and pytest) works."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        # StreamHandler.__init__ and setStream assign here; the live sys.stderr always wins.
        pass


def configure_logging(level: str, fmt: str) -> None:
    """Send every log record of the process to stderr as `fmt` ("json" or "text") at `level`.

    Idempotent: a second call replaces the handler installed by the first.
    """
    level_name = level.upper()
    if level_name not in LOG_LEVELS:
        raise InvalidArgument(
            f"log level must be one of {', '.join(LOG_LEVELS)}, got {level!r}", field="log_level"
        )
    if fmt not in LOG_FORMATS:
        raise InvalidArgument(
            f"log format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}", field="log_format"
        )
    root = logging.getLogger()
    for handler in list(root.handlers):
        if isinstance(handler, _StderrHandler):
            root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(_JsonFormatter() if fmt == "json" else _TextFormatter())
    root.addHandler(handler)
    root.setLevel(level_name)
