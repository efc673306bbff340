"""The one launcher of `alabel serve` processes (used by `alabel up`, the tests' fixtures and
the benchmarks): a server that dies while starting is reported with its own words."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_labeling.errors import Unavailable
from agentic_labeling.local_mesh import start_server_process


def test_a_server_that_exits_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(Unavailable) as caught:
        start_server_process("orchestrator", tmp_path, ["--no-such-flag"])
    failure = caught.value
    assert failure.reason == "MESH_START_FAILED"
    assert failure.message.startswith("orchestrator exited with status 2:\n")
    assert "No such option '--no-such-flag'" in failure.message
    assert failure.metadata["log"] == str(tmp_path / "orchestrator.log")


def test_each_start_appends_to_the_log_after_a_banner(tmp_path: Path) -> None:
    starts = []
    for flag in ("--first-bad-flag", "--second-bad-flag"):
        with pytest.raises(Unavailable) as caught:
            start_server_process("registry", tmp_path, [flag])
        starts.append(int(caught.value.metadata["log_start"]))
        # The error quotes this start's lines only.
        assert flag in caught.value.message
    assert "--first-bad-flag" not in caught.value.message
    log = (tmp_path / "registry.log").read_bytes()
    assert starts[0] == 0 < starts[1]
    assert log.count(b"alabel: starting `alabel serve registry`") == 2
    assert b"--first-bad-flag" in log[: starts[1]]
