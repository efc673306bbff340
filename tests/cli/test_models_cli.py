"""`alabel models make-tiny`: tiny models a user can point the mesh at."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from agentic_labeling.cli import cli
from agentic_labeling.models.dinov2 import Dinov2Embedder


def test_make_tiny_writes_three_loadable_models_and_says_they_are_random(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["models", "make-tiny", str(tmp_path / "tiny")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "tiny").iterdir()) == [
        "TINY_RANDOM_WEIGHTS",  # the marker: a mesh serving them says so
        "dinov2",
        "florence2",
        "sam2",
    ]
    assert "Random weights" in result.output
    assert Dinov2Embedder.load(tmp_path / "tiny" / "dinov2").dimension > 0


def test_make_tiny_refuses_to_replace_models_without_overwrite(tmp_path: Path) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["models", "make-tiny", str(tmp_path)]).exit_code == 0
    (tmp_path / "sam2" / "stale.txt").write_text("from an older build")

    refused = runner.invoke(cli, ["models", "make-tiny", str(tmp_path)])
    assert refused.exit_code == 2
    assert "--overwrite" in refused.output

    replaced = runner.invoke(cli, ["models", "make-tiny", str(tmp_path), "--overwrite"])
    assert replaced.exit_code == 0
    assert not (tmp_path / "sam2" / "stale.txt").exists()
