"""bench/tracking.py end to end at a tiny size: a smoke run, not a benchmark.

It proves both variants (IoU only, IoU + Re-ID) run over the same generated videos, are scored
by motmetrics and timed, and that the report is printed as a table and written as JSON.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from pathlib import Path
from types import ModuleType

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VIDEOS = 2
FRAMES = 40


@pytest.fixture(scope="module")
def tracking() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.tracking")


def test_both_variants_are_scored_and_timed_on_the_same_videos(
    tracking: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "tracking.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = tracking.main(
            [
                *("--videos", str(VIDEOS), "--frames", str(FRAMES)),
                *("--objects", "4", "--dim", "16", "--out", str(out)),
            ]
        )
    assert json.loads(out.read_text()) == report
    assert report["scenes"]["videos"] == VIDEOS
    assert report["scenes"]["frames"] == VIDEOS * FRAMES
    results = {r["variant"]: r for r in report["results"]}
    assert set(results) == {"IoU only", "IoU + Re-ID"}
    assert results["IoU only"]["config"]["reid"] is False
    assert results["IoU + Re-ID"]["config"]["reid"] is True
    for result in results.values():
        assert result["frames_per_s"] > 0
        assert result["frames_per_cpu_s"] > 0
        assert 0 <= result["metrics"]["idf1"] <= 1
        assert result["metrics"]["num_unique_objects"] > 0
    assert "| Tracker | IDF1 | MOTA |" in printed.getvalue()
    assert "| IoU + Re-ID |" in printed.getvalue()


def test_a_count_below_1_is_a_usage_error(tracking: ModuleType) -> None:
    with pytest.raises(SystemExit) as exited, contextlib.redirect_stderr(io.StringIO()):
        tracking.main(["--videos", "0"])
    assert exited.value.code == 2
