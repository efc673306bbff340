"""bench/autolabel_mesh.py end to end at a tiny size: a smoke run, not a benchmark.

It proves the script measures both paths at each level (Triton only, and AutoLabel through a
real orchestrator and registry), that the registry holds exactly the objects AutoLabel
reported, that every server it started is stopped, and that a registry holding less than
was reported fails the run.
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

from agentic_labeling.v1 import labeling_pb2, registry_pb2

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
IMAGES = 6
IN_FLIGHT = [1, 2]
MAX_DETECTIONS = 4  # the random tiny detector writes boxes until its budget runs out


@pytest.fixture(scope="module")
def autolabel_mesh() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.autolabel_mesh")


@pytest.fixture(scope="module")
def work_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("autolabel-mesh")


@pytest.fixture(scope="module")
def smoke_run(
    autolabel_mesh: ModuleType, tiny_models_dir: Path, work_dir: Path
) -> tuple[dict[str, Any], str]:
    """The JSON results and the printed tables of one smoke run."""
    out = work_dir / "autolabel_mesh.json"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = autolabel_mesh.main(
            [
                "--models-dir",
                str(tiny_models_dir),
                "--images",
                str(IMAGES),
                "--concurrency",
                ",".join(map(str, IN_FLIGHT)),
                "--max-detections",
                str(MAX_DETECTIONS),
                "--warmup",
                "1",
                "--work-dir",
                str(work_dir / "run"),
                "--out",
                str(out),
            ]
        )
    assert status == 0, printed.getvalue()
    return json.loads(out.read_text()), printed.getvalue()


def test_both_paths_are_measured_at_every_level_with_positive_throughput(
    smoke_run: tuple[dict[str, Any], str],
) -> None:
    report, _ = smoke_run
    variants = {v["name"]: v for v in report["variants"]}
    assert list(variants) == [
        f"{path}_{k}" for k in IN_FLIGHT for path in ("triton_only", "orchestrator")
    ]
    for variant in variants.values():
        assert variant["images"] == IMAGES
        assert variant["images_per_s"] > 0
        assert variant["objects_per_s"] > 0
        assert 0 < variant["latency_ms_p50"] <= variant["latency_ms_p95"]
        assert 0 < variant["objects_per_image"] <= MAX_DETECTIONS
        # The warm-up is outside the deltas: each measured image reached the detector once.
        assert variant["triton_batches"]["florence2"]["inferences"] == IMAGES
    for k in IN_FLIGHT:
        meshed = variants[f"orchestrator_{k}"]
        ratio = meshed["images_per_s"] / variants[f"triton_only_{k}"]["images_per_s"]
        assert meshed["over_triton_only"] == pytest.approx(ratio)
        assert report["ratios"][f"orchestrator_{k}_over_triton_only_{k}"] == pytest.approx(ratio)
        assert set(meshed["server_stage_ms_mean"]) == {
            "decode",
            "register",
            "detect",
            "segment",
            "embed",
            "total",
        }
        assert meshed["server_stage_ms_mean"]["total"] > 0
        # Where the CPU went: every process of the mesh is counted.
        assert set(meshed["cpu_ms_per_image"]) == {
            "tritonserver",
            "orchestrator",
            "registry",
            "postgres",
            "benchmark client",
        }
        assert set(variants[f"triton_only_{k}"]["cpu_ms_per_image"]) == {
            "tritonserver",
            "benchmark client",
        }
        assert meshed["cpu_ms_per_image"]["registry"] > 0
    assert report["images"] == {"count": IMAGES, "source": "synthetic 640x480 JPEG, seed 0"}
    assert report["machine"]["cpu_cores_usable"] >= 1


def test_the_registry_holds_every_object_autolabel_reported(
    smoke_run: tuple[dict[str, Any], str],
) -> None:
    report, _ = smoke_run
    for variant in report["variants"]:
        if variant["kind"] != "orchestrator":
            assert variant["registry_objects"] is None
            continue
        assert variant["registry_objects"] == variant["objects"] > 0
        assert variant["registry_images_stored"] == IMAGES
        # Each level had a registry and an orchestrator of its own, stopped cleanly.
        assert variant["server_exit_status"] == {"orchestrator": 0, "registry": 0}


def test_every_server_it_started_is_gone(
    smoke_run: tuple[dict[str, Any], str], work_dir: Path
) -> None:
    """The orchestrators and registries ran with port files under the work directory."""
    alive = []
    for process in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            command_line = (process / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            if process.name.isdigit() and str(work_dir) in command_line:
                alive.append(command_line)
    assert not alive


def test_the_tables_are_printed_and_say_tiny_models_on_cpu(
    smoke_run: tuple[dict[str, Any], str],
) -> None:
    report, table = smoke_run
    assert report["caveat"].startswith("Tiny random-weight models on CPU")
    assert "TINY RANDOM-WEIGHT MODELS ON CPU" in table
    assert "not model throughput or label quality" in table
    assert "| 2 | Triton only |" in table
    assert "| 2 | orchestrator + registry |" in table
    assert "| In flight | decode | register |" in table
    assert "| In flight | Path | tritonserver | orchestrator | registry |" in table


def test_a_registry_holding_fewer_objects_than_reported_fails_the_run(
    autolabel_mesh: ModuleType, tmp_path: Path
) -> None:
    answered = [
        labeling_pb2.AutoLabelResponse(
            client_id=f"image-{i}",
            objects=[registry_pb2.LabeledObject(name=f"objects/{i}-{j}") for j in range(2)],
        )
        for i in range(3)
    ]
    run = autolabel_mesh.StreamRun(1.0, [0.1] * 3, answered)
    stored = [
        registry_pb2.LabeledObject(name=o.name, has_mask=True, has_embedding=True)
        for r in answered[:2]
        for o in r.objects
    ]
    with pytest.raises(autolabel_mesh.MeshCheckFailed, match="reported 6 objects"):
        autolabel_mesh.check_registry(tmp_path, [b"a"] * 3, run, set(), 0, len(stored), stored)
