"""`alabel label --classes`: a bad class list is a usage error (exit 2) that says what to change,
found before any network call (the orchestrator URL here has nothing listening)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from agentic_labeling.cli import cli
from agentic_labeling.local_mesh import unused_port


def _label(tmp_path: Path, classes: str) -> Result:
    (tmp_path / "a.png").write_bytes(b"not looked at: the class list fails first")
    url = f"127.0.0.1:{unused_port()}"
    return CliRunner().invoke(
        cli, ["--orchestrator-url", url, "label", str(tmp_path), "--classes", classes]
    )


@pytest.mark.parametrize(
    ("classes", "bad"),
    [('["person","car"]', '["person"'), ("'person','car'", "'person'"), ("cat,dog]", "dog]")],
)
def test_a_json_looking_class_list_is_a_usage_error_with_a_hint(
    tmp_path: Path, classes: str, bad: str
) -> None:
    result = _label(tmp_path, classes)
    assert result.exit_code == 2
    assert f"{bad!r} is not a class name: give plain names separated by commas" in result.stderr
    assert '--classes "traffic light,bicycle"' in result.stderr


def test_more_class_names_than_the_limit_is_a_usage_error_naming_the_limit(tmp_path: Path) -> None:
    result = _label(tmp_path, ",".join(f"thing{i}" for i in range(301)))
    assert result.exit_code == 2
    assert "301 class names given, at most 256 per run" in result.stderr
    assert "re-run the same command to finish" not in result.output


@pytest.mark.parametrize("token", ["<loc_5>", "<od>", "</s>"])
def test_a_class_name_with_a_special_token_is_a_usage_error(tmp_path: Path, token: str) -> None:
    result = _label(tmp_path, f"cat,big {token}")
    assert result.exit_code == 2
    assert f"contains {token}, which is written like one of the detector's special" in result.stderr


def test_names_with_spaces_pass_in_one_quoted_list(tmp_path: Path) -> None:
    result = _label(tmp_path, "traffic light,bicycle")
    assert result.exit_code == 1  # past the class list: the orchestrator is not there
    assert "is not reachable" in result.stderr
