"""`alabel serve review`: its help, a bad --reviewer, a port already taken, and a clean stop
on SIGTERM of a real process."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner
from review_mesh import get_json, start_review

from agentic_labeling.cli import cli


def test_help_shows_examples_and_the_keys() -> None:
    result = CliRunner().invoke(cli, ["serve", "review", "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.output
    assert "alabel serve review" in result.output
    assert "--review-port" in result.output


def test_an_empty_reviewer_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["serve", "review", "--reviewer", " "])
    assert result.exit_code == 2
    assert "--reviewer must not be empty" in result.output


def test_a_port_already_taken_is_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        command = ["--review-port", str(port), "--data-dir", str(tmp_path), "serve", "review"]
        result = subprocess.run(
            [sys.executable, "-m", "agentic_labeling", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert result.returncode != 0
    assert f"review cannot listen on 127.0.0.1:{port}" in result.stderr


def test_serves_health_without_a_registry_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    review = start_review(tmp_path, "127.0.0.1:1", tmp_path / "data")
    health = get_json(f"http://{review.address}/healthz")
    assert (health["status"], health["registry"]) == ("SERVING", "unavailable")
    assert review.stop() == 0
    assert not (tmp_path / "review.port").exists()
