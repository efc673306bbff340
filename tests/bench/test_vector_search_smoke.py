"""bench/vector_search.py end to end at a tiny size: a smoke run, not a benchmark.

It proves every variant (numpy exact scan, qdrant-edge HNSW with and without scalar
quantization, qdrant-client local mode, pgvector HNSW on the embedded PostgreSQL) loads the
same data, answers every query with and without the payload filter at every ef, and reports
recall and latency; and that the plot is written. The qdrant-edge thresholds are lowered so that
even 2,000 small vectors get an HNSW graph and filtered searches walk it.
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
VECTORS = 2000
QUERIES = 20
EFS = [16, 64]
HNSW_VARIANTS = ("edge-hnsw", "edge-hnsw-sq", "pgvector-hnsw")
EXACT_VARIANTS = ("numpy-exact", "qdrant-local")
EPSILON = 0.05


@pytest.fixture(scope="module")
def vector_search() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.vector_search")


def test_every_variant_answers_every_query(vector_search: ModuleType, tmp_path: Path) -> None:
    out = tmp_path / "vector_search.json"  # only outputs here: the databases live under mkdtemp
    picture = tmp_path / "vector_search.png"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        report = vector_search.main(
            [
                "--vectors",
                str(VECTORS),
                "--dim",
                "32",
                "--intrinsic-dim",
                "8",
                "--clusters",
                "20",
                "--queries",
                str(QUERIES),
                "--warmup",
                "2",
                "--ef",
                ",".join(map(str, EFS)),
                "--full-scan-threshold-kb",
                "1",
                "--indexing-threshold-kb",
                "1",
                "--pg-shared-buffers",
                "128MB",
                "--pg-maintenance-work-mem",
                "64MB",
                "--quiet",
                "--out",
                str(out),
                "--plot",
                str(picture),
            ]
        )
    assert json.loads(out.read_text()) == report
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    results = {r["variant"]: r for r in report["results"]}
    assert set(results) == set(HNSW_VARIANTS) | set(EXACT_VARIANTS)

    for name in EXACT_VARIANTS:
        rows = results[name]["rows"]
        assert {(r["ef"], r["filtered"]) for r in rows} == {(None, False), (None, True)}
        for row in rows:
            assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    for row in results["numpy-exact"]["rows"]:
        assert row["recall"] == 1.0
        assert row["queries"] == QUERIES

    for name in HNSW_VARIANTS:
        result = results[name]
        assert result["build"]["index_s"] > 0
        rows = {(r["ef"], r["filtered"]): r for r in result["rows"]}
        assert set(rows) == {(ef, filtered) for ef in EFS for filtered in (False, True)}
        for row in rows.values():
            assert 0.0 <= row["recall"] <= 1.0
            assert row["queries"] == QUERIES
            assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        for filtered in (False, True):
            smallest, largest = rows[(min(EFS), filtered)], rows[(max(EFS), filtered)]
            assert largest["recall"] >= smallest["recall"] - EPSILON
        assert len(result["targets"]) == 2
    for name in ("edge-hnsw", "edge-hnsw-sq"):
        build = results[name]["build"]
        assert build["points"] == VECTORS
        assert build["indexed_vectors"] == VECTORS  # the graph was built, not only scanned

    text = printed.getvalue()
    assert "| ef | recall@10 |" in text
    for name in HNSW_VARIANTS + EXACT_VARIANTS:
        assert f"- {name}: " in text
