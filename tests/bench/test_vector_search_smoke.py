"""bench/vector_search.py end to end at a tiny size: a smoke run, not a benchmark.

It proves every variant (numpy exact scan, qdrant-edge HNSW as the registry runs it (int8
quantized) and with the float vectors only, qdrant-client local mode, pgvector HNSW on the
embedded PostgreSQL) loads the same data, answers every query with and without the payload
filter at every ef, and reports recall and latency; and that the plot is written. The
qdrant-edge thresholds are lowered so that even 2,000 small vectors get an HNSW graph and
filtered searches walk it.

pgvector's distance code dies with SIGILL on some CPUs (AVX2 without AVX-512:
bench/pgvector_support.py probes it); there the benchmark reports the variant as not
available, and its test here is skipped with that reason while the rest still runs.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
VECTORS = 2000
QUERIES = 20
EFS = [16, 256]
HNSW_VARIANTS = ("edge-hnsw", "edge-hnsw-float", "pgvector-hnsw")
EXACT_VARIANTS = ("numpy-exact", "qdrant-local")
EPSILON = 0.05


@pytest.fixture(scope="module")
def vector_search() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.vector_search")


@dataclass
class Run:
    report: dict[str, Any]
    printed: str
    out: Path
    picture: Path
    pgvector: Any  # bench.pgvector_support.PgvectorSupport: the probe's answer here

    def result(self, name: str) -> dict[str, Any]:
        return {r["variant"]: r for r in self.report["results"]}[name]


@pytest.fixture(scope="module")
def run(vector_search: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One small run of every variant (pgvector reported, not run, where it cannot run)."""
    tmp_path = tmp_path_factory.mktemp("vector_search")
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
                ",".join(map(str, EFS)),  # with the registry's default, 256
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
    return Run(report, printed.getvalue(), out, picture, vector_search.pgvector_support())


def test_the_report_is_written_as_json_and_a_plot(run: Run) -> None:
    assert json.loads(run.out.read_text()) == run.report
    assert run.picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert {r["variant"] for r in run.report["results"]} == set(HNSW_VARIANTS) | set(EXACT_VARIANTS)
    assert "| ef | recall@10 |" in run.printed
    for name in HNSW_VARIANTS + EXACT_VARIANTS:
        assert f"- {name}: " in run.printed


def test_the_exact_variants_answer_every_query(run: Run) -> None:
    for name in EXACT_VARIANTS:
        rows = run.result(name)["rows"]
        assert {(r["ef"], r["filtered"]) for r in rows} == {(None, False), (None, True)}
        for row in rows:
            assert 0 < row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    for row in run.result("numpy-exact")["rows"]:
        assert row["recall"] == 1.0
        assert row["queries"] == QUERIES


def _answers_every_query_at_every_ef(result: dict[str, Any]) -> None:
    assert result["available"]
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


@pytest.mark.parametrize("name", ["edge-hnsw", "edge-hnsw-float"])
def test_the_qdrant_edge_variants_answer_every_query_from_a_built_graph(
    run: Run, name: str
) -> None:
    result = run.result(name)
    _answers_every_query_at_every_ef(result)
    assert result["build"]["points"] == VECTORS
    assert result["build"]["indexed_vectors"] == VECTORS  # the graph was built, not only scanned


def test_pgvector_hnsw_answers_every_query(run: Run) -> None:
    result = run.result("pgvector-hnsw")
    if not result["available"]:
        pytest.skip(f"pgvector-hnsw {result['reason']}")
    _answers_every_query_at_every_ef(result)


def test_pgvector_is_reported_not_available_where_its_probe_fails(run: Run) -> None:
    if run.pgvector.available:
        pytest.skip("pgvector's distance functions work on this CPU")
    result = run.result("pgvector-hnsw")
    assert result == {
        "variant": "pgvector-hnsw",
        "exact": False,
        "available": False,
        "reason": run.pgvector.reason,
    }
    assert result["reason"].startswith("not available on this CPU")
    assert f"- pgvector-hnsw: {result['reason']}" in run.printed
    assert "| pgvector-hnsw | not available on this CPU |" in run.printed


def test_edge_hnsw_runs_with_the_registrys_quantization_and_is_judged_at_its_default_ef(
    run: Run,
) -> None:
    quantized = run.result("edge-hnsw")["settings"]
    assert quantized["quantization"]["enabled"] is True
    assert quantized["stored_quantization"] == {"scalar": {"type": "int8", "quantile": 0.99}}
    assert run.result("edge-hnsw-float")["settings"]["stored_quantization"] is None
    judged = run.result("edge-hnsw")["at_default_ef"]
    assert [(t["ef"], t["filtered"]) for t in judged] == [(256, False), (256, True)]
    assert "- edge-hnsw at the registry's default ef 256: " in run.printed
