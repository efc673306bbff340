"""bench/registry_ingest.py end to end at a tiny size: a smoke run, not a benchmark.

It proves every variant (bulk `batch_create`, one INSERT per object) runs with each writer count
on the embedded PostgreSQL, writes exactly the expected rows and reports a throughput.
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
OBJECTS = 200
WRITERS = [1, 2]


@pytest.fixture(scope="module")
def registry_ingest() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.registry_ingest")


def test_every_variant_writes_every_row(registry_ingest: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "ingest.json"  # only the JSON here: the database lives under mkdtemp
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = registry_ingest.main(
            [
                "--objects",
                str(OBJECTS),
                "--batch",
                "50",
                "--writers",
                ",".join(map(str, WRITERS)),
                "--embedding-dim",
                "16",
                "--repeat",
                "2",
                "--out",
                str(out),
            ]
        )
    assert json.loads(out.read_text()) == report
    variants = {(r["variant"], r["writers"], r["repeat"]): r for r in report["results"]}
    assert set(variants) == {
        (v, w, i) for v in ("bulk", "per-INSERT") for w in WRITERS for i in range(2)
    }
    for result in variants.values():
        assert result["rows_written"] == OBJECTS
        assert result["objects_per_s"] > 0
    assert [c["writers"] for c in report["comparisons"]] == WRITERS
    for comparison in report["comparisons"]:
        assert 0 < comparison["ratio_min"] <= comparison["ratio"] <= comparison["ratio_max"]
    assert "| Writers |" in printed.getvalue()
