"""bench/dataset_export.py end to end at a tiny size: a smoke run, not a benchmark.

It proves both formats export the small and the large dataset completely, through the same
export job the server runs, and that memory figures are sampled and compared.
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
OBJECTS = 400


@pytest.fixture(scope="module")
def dataset_export() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.dataset_export")


def test_both_formats_export_every_object_at_both_sizes(
    dataset_export: ModuleType, tmp_path: Path
) -> None:
    out = tmp_path / "export.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = dataset_export.main(["--objects", str(OBJECTS), "--out", str(out)])
    assert json.loads(out.read_text()) == report
    exported = {(r["export_format"], r["objects"], r["images"]) for r in report["results"]}
    assert exported == {
        (export_format, objects, objects // 20)
        for export_format in ("yolo_segment", "coco")
        for objects in (OBJECTS // 10, OBJECTS)
    }
    for result in report["results"]:
        assert result["rss_before_mib"] > 0
        assert result["peak_rss_growth_mib"] >= 0
    assert [c["format"] for c in report["comparisons"]] == ["yolo_segment", "coco"]
    assert "| Format |" in printed.getvalue()
