"""bench/models_gpu.py end to end on CPU with tiny models: a smoke run, not a benchmark.

It proves the script measures every variant (in-process one at a time, in-process batched,
Triton with concurrent streams), records Triton's batch sizes, and labels CPU/tiny results as
smoke; the real figures need a GPU and real weights (BENCHMARKS.md).
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from agentic_labeling.models.tiny import make_tiny_models

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
IMAGES = 8
STREAMS = [1, 4]
QUEUE_DELAY_US = 20000
# The random tiny detector writes boxes until its budget runs out: keep the budget small.
MAX_DETECTIONS = 4


@pytest.fixture(scope="module")
def models_gpu() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.models_gpu")


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("tiny-models")
    make_tiny_models(directory, seed=0)
    return directory


@pytest.fixture(scope="module")
def smoke_run(
    models_gpu: ModuleType, tiny_models: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], str]:
    """The JSON results and the printed table of one smoke run."""
    out = tmp_path_factory.mktemp("bench") / "models_gpu.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = models_gpu.main(
            [
                "--models-dir",
                str(tiny_models),
                "--device",
                "cpu",
                "--images",
                str(IMAGES),
                "--concurrency",
                ",".join(map(str, STREAMS)),
                "--max-queue-delay-us",
                str(QUEUE_DELAY_US),
                "--max-detections",
                str(MAX_DETECTIONS),
                "--warmup",
                "2",
                "--out",
                str(out),
            ]
        )
    assert status == 0, printed.getvalue()
    return json.loads(out.read_text()), printed.getvalue()


def test_every_variant_is_measured_with_positive_throughput(
    smoke_run: tuple[dict[str, Any], str],
) -> None:
    report, _ = smoke_run
    variants = {v["name"]: v for v in report["variants"]}
    assert set(variants) == {"in_process_single", "in_process_batched", "triton_1", "triton_4"}
    for variant in variants.values():
        assert variant["images"] == IMAGES
        assert variant["images_per_s"] > 0
        assert 0 < variant["latency_ms_p50"] <= variant["latency_ms_p95"]
        assert variant["over_one_at_a_time"] > 0
        assert variant["over_batched"] > 0
    assert variants["in_process_batched"]["batch_size"] == 8
    assert report["images"] == {"count": IMAGES, "source": "synthetic 640x480 JPEG, seed 0"}
    assert variants["triton_4"]["streams"] == 4
    assert set(report["ratios"]) == {
        "triton_4_over_in_process_batched",
        "triton_4_over_one_at_a_time",
    }
    # Every variant did the same work: the same boxes from the same detector.
    boxes = {v["boxes_per_image"] for v in variants.values()}
    assert len(boxes) == 1
    assert boxes.pop() > 0


def test_triton_batch_sizes_are_recorded_per_model(
    smoke_run: tuple[dict[str, Any], str],
) -> None:
    report, _ = smoke_run
    served = [v for v in report["variants"] if v["kind"] == "triton"]
    assert [v["streams"] for v in served] == STREAMS
    for variant in served:
        assert variant["max_queue_delay_us"] == QUEUE_DELAY_US
        assert set(variant["triton_batches"]) == {"florence2", "sam2", "dinov2"}
        # The warm-up is outside the deltas: each image reached the detector once.
        assert variant["triton_batches"]["florence2"]["inferences"] == IMAGES
        for model in variant["triton_batches"].values():
            assert 0 < model["inferences"] <= IMAGES
            assert model["average_batch_size"] >= 1
    [one_stream] = [v for v in served if v["streams"] == 1]
    assert one_stream["triton_batches"]["florence2"]["average_batch_size"] == 1


def test_cpu_and_tiny_results_are_labelled_smoke_not_benchmark(
    smoke_run: tuple[dict[str, Any], str],
) -> None:
    report, table = smoke_run
    assert report["smoke"] is True
    assert report["label"] == "smoke, not a benchmark"
    assert any("CPU" in reason for reason in report["smoke_reasons"])
    assert any("tiny" in reason for reason in report["smoke_reasons"])
    assert "SMOKE, NOT A BENCHMARK" in table
    assert "| in-process, batch 8 |" in table
    assert "| Triton, 4 concurrent streams |" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is visible here")
def test_cuda_without_a_gpu_exits_2_with_a_message(
    models_gpu: ModuleType, tiny_models: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = models_gpu.main(["--models-dir", str(tiny_models), "--device", "cuda"])
    assert status == 2
    assert "no GPU is visible" in capsys.readouterr().err
