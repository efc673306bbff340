"""Servers log one structured line per event on stderr (`agentic_labeling.logs`)."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator

import pytest

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.logs import configure_logging

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(autouse=True)
def restore_root_logger() -> Iterator[None]:
    """configure_logging changes the process-wide root logger; put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_line_has_timestamp_level_logger_message_and_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")

    logging.getLogger("alabel.test").info(
        "listening on %s", "127.0.0.1:5", extra={"server": "registry", "port": 5}
    )

    entry = json.loads(capsys.readouterr().err)
    assert RFC3339_UTC.match(entry.pop("ts"))
    assert entry == {
        "level": "INFO",
        "logger": "alabel.test",
        "msg": "listening on 127.0.0.1:5",
        "server": "registry",
        "port": 5,
    }


def test_json_line_carries_the_traceback_as_a_string(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")

    try:
        raise ValueError("broken pipe to triton")
    except ValueError:
        logging.getLogger("alabel.test").exception("inference failed")

    entry = json.loads(capsys.readouterr().err)
    assert entry["level"] == "ERROR"
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert "ValueError: broken pipe to triton" in entry["exc"]


def test_json_writes_values_json_cannot_encode_as_text(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "json")

    logging.getLogger("alabel.test").info("saved", extra={"path": object()})

    assert json.loads(capsys.readouterr().err)["path"].startswith("<object object at")


def test_extra_fields_never_replace_the_fixed_ones(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")

    logging.getLogger("alabel.test").info("real message", extra={"ts": "fake", "level": "x"})

    entry = json.loads(capsys.readouterr().err)
    assert (entry["level"], entry["msg"]) == ("INFO", "real message")
    assert entry["ts"] != "fake"


def test_text_line_shows_level_logger_message_and_extra_fields(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "text")

    logging.getLogger("alabel.test").warning(
        "slow batch", extra={"model": "sam2", "note": "took 3 s", "empty": ""}
    )

    line = capsys.readouterr().err.rstrip("\n")
    timestamp, rest = line.split(" ", 1)
    assert RFC3339_UTC.match(timestamp)
    assert rest == 'WARNING alabel.test: slow batch model=sam2 note="took 3 s" empty=""'


def test_text_format_puts_the_traceback_after_the_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("INFO", "text")

    try:
        raise KeyError("frame 7")
    except KeyError:
        logging.getLogger("alabel.test").exception("lost a frame")

    first, *rest = capsys.readouterr().err.splitlines()
    assert first.endswith("ERROR   alabel.test: lost a frame")
    assert rest[0] == "Traceback (most recent call last):"
    assert rest[-1] == "KeyError: 'frame 7'"


def test_records_below_the_level_are_dropped(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("warning", "json")

    logging.getLogger("alabel.test").info("chatty")
    logging.getLogger("alabel.test").warning("important")

    lines = capsys.readouterr().err.splitlines()
    assert [json.loads(line)["msg"] for line in lines] == ["important"]


def test_configuring_twice_logs_each_record_once(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "text")
    configure_logging("INFO", "json")

    logging.getLogger("alabel.test").info("once")

    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["msg"] == "once"


def test_stack_info_is_included_in_the_exc_field(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging("INFO", "json")

    logging.getLogger("alabel.test").info("where am I", stack_info=True)

    assert json.loads(capsys.readouterr().err)["exc"].startswith("Stack (most recent call last):")


@pytest.mark.parametrize(
    ("level", "fmt", "field"), [("LOUD", "json", "log_level"), ("INFO", "xml", "log_format")]
)
def test_unknown_level_or_format_is_invalid_argument(level: str, fmt: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as failure:
        configure_logging(level, fmt)

    assert [v.field for v in failure.value.violations] == [field]
