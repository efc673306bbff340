"""bench/review_page.py end to end at a tiny size: a smoke run, not a benchmark.

It proves the page loads every card with its thumbnail (in Chromium where installed, over
HTTP always) and that a bulk decision on "more like this" is one round trip for all.
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
SIMILAR = 4


@pytest.fixture(scope="module")
def review_page() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.review_page")


def test_bulk_decision_is_one_round_trip_and_the_page_loads(
    review_page: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "review.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = review_page.main(
            ["--cards", "20", "--repeat", "1", "--similar", str(SIMILAR), "--out", str(out)]
        )
    assert json.loads(out.read_text()) == report
    bulk = report["decisions"]["more like this, bulk"]
    assert (bulk["decisions"], bulk["round_trips"]) == (SIMILAR, 1)
    single = report["decisions"]["one by one"]
    assert (single["decisions"], single["round_trips"]) == (SIMILAR, SIMILAR)
    assert report["http_warm_s"] > 0
    assert "Decisions per round trip" in printed.getvalue()
