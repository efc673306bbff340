"""`alabel label` against the real mesh: tritonserver with the tiny models, a registry and an
orchestrator on loopback. The tiny models' labels are meaningless; these tests check what is
registered, counted and reported, and that an interrupted run finishes the job when re-run.

`--box-threshold 0 --max-objects 3`: the tiny Florence-2's confidences are near 0, so every
image gets objects (a still image counts as registered once it has objects), three at most.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from PIL import Image

from agentic_labeling.cli import cli
from agentic_labeling.local_mesh import ManagedProcess, start_server_process, unused_port
from agentic_labeling.triton_server import TritonHandle
from agentic_labeling.v1 import registry_pb2, registry_pb2_grpc

pytestmark = pytest.mark.slow

LABEL = ["--classes", "cat,dog", "--box-threshold", "0", "--max-objects", "3"]
GOOD_IMAGES = 11


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


def _write_image(path: Path, seed: int) -> None:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, (48 + seed % 5 * 8, 64 + seed % 3 * 8, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path, format="JPEG" if path.suffix == ".jpg" else "PNG")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class Mesh:
    def __init__(self, workdir: Path, registry: ManagedProcess, triton: TritonHandle) -> None:
        self.workdir = workdir
        self.registry = registry
        self.triton = triton
        self.orchestrators: list[ManagedProcess] = []

    def start_orchestrator(self, port: int = 0, *extra: str) -> ManagedProcess:
        flags = ["--triton-url", self.triton.address, "--registry-url", self.registry.address]
        flags += extra
        if port:
            flags += ["--orchestrator-port", str(port)]
        workdir = self.workdir / f"orchestrator-{len(self.orchestrators)}"
        self.orchestrators.append(start_server_process("orchestrator", workdir, flags))
        return self.orchestrators[-1]

    @property
    def orchestrator_url(self) -> str:
        return self.orchestrators[0].address

    def sources(self) -> list[registry_pb2.Source]:
        found: list[registry_pb2.Source] = []
        token = ""
        with grpc.insecure_channel(self.registry.address) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
            while True:
                page = stub.ListSources(
                    registry_pb2.ListSourcesRequest(page_size=1000, page_token=token), timeout=30
                )
                found.extend(page.sources)
                token = page.next_page_token
                if not token:
                    return found

    def objects_of(self, source: str) -> list[registry_pb2.LabeledObject]:
        with grpc.insecure_channel(self.registry.address) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
            page = stub.ListObjects(
                registry_pb2.ListObjectsRequest(filter=f'source = "{source}"', page_size=1000),
                timeout=30,
            )
        return list(page.objects)


@pytest.fixture(scope="module")
def mesh(served_triton: TritonHandle, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    data_dirs = registry_data_dir()
    workdir = tmp_path_factory.mktemp("label-mesh")
    registry = start_server_process(
        "registry", workdir, ["--data-dir", str(next(data_dirs)), "--embedding-dimension", "32"]
    )
    mesh = Mesh(workdir, registry, served_triton)
    try:
        mesh.start_orchestrator()
        yield mesh
    finally:
        for orchestrator in mesh.orchestrators:
            orchestrator.stop()
        registry.stop()
        next(data_dirs, None)


def alabel(mesh_or_url: Mesh | str, *args: str, env: dict[str, str] | None = None) -> Result:
    url = mesh_or_url if isinstance(mesh_or_url, str) else mesh_or_url.orchestrator_url
    return CliRunner().invoke(cli, ["--orchestrator-url", url, "label", *args], env=env)


def _json_lines(output: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in output.splitlines()]


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """11 images (PNG and JPEG, some in a sub-folder) and one corrupt file."""
    folder = tmp_path_factory.mktemp("photos")
    for i in range(GOOD_IMAGES):
        sub = "street/" if i % 3 == 0 else ""
        _write_image(folder / f"{sub}photo{i:02d}.{'jpg' if i % 2 else 'png'}", seed=i)
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a JPEG")
    (folder / "notes.txt").write_text("not an image: skipped by extension")
    return folder


@pytest.fixture(scope="module")
def first_run(mesh: Mesh, photos: Path) -> Result:
    return alabel(mesh, str(photos), *LABEL, "--json")


@pytest.fixture(scope="module")
def second_run(mesh: Mesh, photos: Path, first_run: Result) -> Result:
    return alabel(mesh, str(photos), *LABEL)


def test_a_corrupt_image_fails_alone_and_the_run_exits_1(first_run: Result, photos: Path) -> None:
    assert first_run.exit_code == 1, first_run.output
    records = _json_lines(first_run.stdout)
    failed = [r for r in records if r["type"] == "image" and r["status"] == "failed"]
    assert [r["path"] for r in failed] == [str(photos / "broken.jpg")]
    assert failed[0]["error"]["code"] == "INVALID_ARGUMENT"
    assert failed[0]["error"]["fields"] == ["item.image.data"]


def test_json_output_is_one_object_per_image_then_a_summary(
    first_run: Result, photos: Path
) -> None:
    *images, summary = _json_lines(first_run.stdout)
    assert {r["type"] for r in images} == {"image"}
    expected = {str(p) for p in photos.rglob("*") if p.suffix in (".png", ".jpg")}
    assert sorted(r["path"] for r in images) == sorted(expected)
    assert summary["type"] == "summary"
    assert summary == summary | {
        "images": GOOD_IMAGES + 1,
        "labelled": GOOD_IMAGES,
        "already_registered": 0,
        "failed": 1,
        "not_answered": 0,
        "complete": True,
    }
    labelled = [r for r in images if r["status"] == "labelled"]
    assert summary["new_objects"] == sum(len(r["objects"]) for r in labelled)
    per_class = Counter(o["category_name"] for r in labelled for o in r["objects"])
    assert summary["objects_per_class"] == dict(per_class)


def test_every_good_image_is_registered_once_with_its_objects(
    first_run: Result, mesh: Mesh, photos: Path
) -> None:
    images = {r["path"]: r for r in _json_lines(first_run.stdout) if r["type"] == "image"}
    by_hash = {s.content_sha256: s for s in mesh.sources()}
    for path, record in images.items():
        if record["status"] == "failed":
            continue
        source = by_hash[_sha256(Path(path))]
        assert source.name == record["source"]
        assert source.display_name == Path(path).name
        stored = {o.name for o in mesh.objects_of(source.name)}
        assert stored == {o["name"] for o in record["objects"]}
        assert 1 <= len(stored) <= 3


def test_a_second_run_registers_nothing_new_and_reports_images_as_already_registered(
    second_run: Result, first_run: Result, mesh: Mesh
) -> None:
    assert second_run.exit_code == 1  # the corrupt image fails again
    first = _json_lines(first_run.stdout)[-1]
    lines = second_run.stdout.splitlines()
    assert sum(line.startswith("skipped ") for line in lines) == GOOD_IMAGES
    assert not any(line.startswith("labelled ") for line in lines)
    assert (
        f"{GOOD_IMAGES + 1} images: 0 labelled, {GOOD_IMAGES} already registered (skipped),"
        " 1 failed" in second_run.stdout
    )
    assert f"objects: 0 new, {first['new_objects']} registered before" in second_run.stdout
    assert "failed:" in second_run.stdout
    sources = mesh.sources()
    assert len({s.content_sha256 for s in sources}) == len(sources)


def test_a_terminal_gets_a_progress_bar_and_the_summary(
    second_run: Result, mesh: Mesh, photos: Path
) -> None:
    good = [str(p) for p in sorted(photos.rglob("photo*"))]
    result = alabel(mesh, *good, *LABEL, env={"FORCE_COLOR": "1", "COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "labelling" in result.stdout
    assert f"{GOOD_IMAGES} already registered (skipped), 0 failed" in result.stdout


def test_an_unreachable_orchestrator_is_one_clear_error_and_exit_1(photos: Path) -> None:
    nowhere = f"127.0.0.1:{unused_port()}"
    result = alabel(nowhere, str(photos), *LABEL)
    assert result.exit_code == 1
    assert f"error: orchestrator at {nowhere} is not reachable" in result.stderr
    assert "Traceback" not in result.output


def test_no_images_found_is_a_usage_error_before_any_network_call(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no images here")
    result = alabel(f"127.0.0.1:{unused_port()}", str(tmp_path), *LABEL)
    assert result.exit_code == 2
    assert f"no image files found in {tmp_path}" in result.stderr


def test_a_file_that_is_not_an_image_is_a_usage_error(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("text")
    result = alabel(f"127.0.0.1:{unused_port()}", str(notes), *LABEL)
    assert result.exit_code == 2
    assert f"{notes} is not an image file" in result.stderr


def test_an_unreadable_file_in_a_folder_is_a_usage_error(tmp_path: Path) -> None:
    _write_image(tmp_path / "good.png", seed=1)
    (tmp_path / "gone.png").symlink_to(tmp_path / "deleted.png")
    result = alabel(f"127.0.0.1:{unused_port()}", str(tmp_path), *LABEL)
    assert result.exit_code == 2
    assert f"cannot read {tmp_path / 'gone.png'}" in result.stderr


def test_a_file_too_large_for_one_message_fails_alone_without_being_sent(
    mesh: Mesh, tmp_path: Path
) -> None:
    _write_image(tmp_path / "small.png", seed=77)
    big = tmp_path / "big.png"
    pixels = np.random.default_rng(78).integers(0, 255, (200, 200, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(big)
    limit = 100_000  # one message; the file must fit in it with 64 KiB to spare
    settings = ["--orchestrator-url", mesh.orchestrator_url, "--max-message-bytes", str(limit)]
    result = CliRunner().invoke(cli, [*settings, "label", str(tmp_path), *LABEL, "--json"])
    assert result.exit_code == 1, result.output
    records = {r.get("path"): r for r in _json_lines(result.stdout)}
    assert records[str(tmp_path / "small.png")]["status"] == "labelled"
    failure = records[str(big)]
    assert failure["status"] == "failed"
    assert failure["error"]["message"] == (
        f"cannot send {big}: the file has {big.stat().st_size} bytes; one message carries at"
        f" most {limit - 64 * 1024} (--max-message-bytes)"
    )


def test_sub_folders_are_skipped_with_no_recursive(mesh: Mesh, photos: Path) -> None:
    result = alabel(mesh, str(photos), *LABEL, "--no-recursive", "--json")
    paths = {r["path"] for r in _json_lines(result.stdout) if r["type"] == "image"}
    assert paths
    assert not any("/street/" in p for p in paths)


# --- the done-when: SIGKILL the orchestrator mid-run, re-run, nothing lost or doubled --


def _label_process(url: str, folder: Path) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "agentic_labeling", "--orchestrator-url", url, "label"]
    return subprocess.Popen(
        [*command, str(folder), *LABEL, "--in-flight", "2", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={k: v for k, v in os.environ.items() if not k.startswith("ALABEL_")},
    )


def test_a_run_cut_by_a_killed_orchestrator_is_finished_by_rerunning_it(
    mesh: Mesh, tmp_path: Path
) -> None:
    folder = tmp_path / "batch"
    count = 24
    for i in range(count):
        _write_image(folder / f"frame{i:03d}.png", seed=1000 + i)
    orchestrator = mesh.start_orchestrator(port=unused_port())
    port = orchestrator.port

    cut = _label_process(orchestrator.address, folder)
    assert cut.stdout is not None
    answered_before_kill = [json.loads(cut.stdout.readline()) for _ in range(4)]
    os.kill(orchestrator.process.pid, signal.SIGKILL)
    orchestrator.process.wait()
    rest, errors = cut.communicate(timeout=60)
    assert cut.returncode == 1, errors
    assert f"error: orchestrator at {orchestrator.address}" in errors
    summary = json.loads(rest.splitlines()[-1])
    assert summary["complete"] is False
    assert summary["not_answered"] > 0  # the kill did cut the run
    assert all(r["status"] == "labelled" for r in answered_before_kill)

    mesh.start_orchestrator(port=port)  # the same address: the very same command again
    rerun = _label_process(orchestrator.address, folder)
    output, errors = rerun.communicate(timeout=120)
    assert rerun.returncode == 0, errors
    *images, final = (json.loads(line) for line in output.splitlines())
    assert final["complete"] is True
    assert final["labelled"] + final["already_registered"] == count
    assert final["already_registered"] >= len(answered_before_kill)

    # The registry holds each image exactly once, with exactly the objects reported for it.
    hashes = {_sha256(p): str(p) for p in folder.iterdir()}
    ours = [s for s in mesh.sources() if s.content_sha256 in hashes]
    assert sorted(s.content_sha256 for s in ours) == sorted(hashes)  # none missing, none twice
    reported = {r["source"]: {o["name"] for o in r["objects"]} for r in images}
    for source in ours:
        stored = mesh.objects_of(source.name)
        assert {o.name for o in stored} == reported[source.name]
        boxes = [(o.category, o.bbox.x, o.bbox.y, o.bbox.width, o.bbox.height) for o in stored]
        assert len(set(boxes)) == len(boxes)  # no object registered twice


# --- thresholds: one default, and tiny models that say what they are --------------------------

TINY_WARNING = (
    "warning: random-weight tiny models: labels are meaningless; threshold 0 used so boxes are"
    " kept (--box-threshold overrides)"
)


def test_with_tiny_models_and_no_threshold_one_warning_is_printed_and_boxes_are_kept(
    mesh: Mesh, tiny_models_dir: Path, tmp_path: Path
) -> None:
    for i in range(3):
        _write_image(tmp_path / f"tiny{i}.png", seed=500 + i)
    orchestrator = mesh.start_orchestrator(0, "--models-dir", str(tiny_models_dir))
    result = alabel(orchestrator.address, str(tmp_path), "--classes", "owl", "--json")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [TINY_WARNING]
    summary = _json_lines(result.stdout)[-1]
    assert summary["labelled"] == 3
    assert summary["new_objects"] > 0


def test_an_explicit_threshold_wins_over_the_tiny_models_default_without_a_warning(
    mesh: Mesh, tiny_models_dir: Path, tmp_path: Path
) -> None:
    _write_image(tmp_path / "strict.png", seed=510)
    orchestrator = mesh.start_orchestrator(0, "--models-dir", str(tiny_models_dir))
    result = alabel(
        orchestrator.address, str(tmp_path), "--classes", "heron", "--box-threshold", "1", "--json"
    )
    assert result.exit_code == 0, result.output
    assert TINY_WARNING not in result.stderr
    assert _json_lines(result.stdout)[-1]["new_objects"] == 0  # no confidence reaches 1


def test_real_checkpoints_get_the_default_threshold_without_a_warning(
    mesh: Mesh, tmp_path: Path
) -> None:
    for i in range(2):
        _write_image(tmp_path / f"real{i}.png", seed=520 + i)
    result = alabel(mesh, str(tmp_path), "--classes", "stork", "--json")
    assert result.exit_code == 0, result.output
    assert "warning" not in result.stderr
    images = [r for r in _json_lines(result.stdout) if r["type"] == "image"]
    confidences = [o["confidence"] for r in images for o in r["objects"]]
    assert all(c >= 0.5 for c in confidences)  # the tiny model's near-0 boxes are dropped


# --- re-labelling registered images with new classes -------------------------------------------


@pytest.fixture(scope="module")
def relabel_photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("relabel")
    for i in range(3):
        _write_image(folder / f"relabel{i}.png", seed=600 + i)
    return folder


@pytest.fixture(scope="module")
def labelled_once(mesh: Mesh, relabel_photos: Path) -> list[dict[str, Any]]:
    result = alabel(mesh, str(relabel_photos), *LABEL, "--json")
    assert result.exit_code == 0, result.output
    return [r for r in _json_lines(result.stdout) if r["type"] == "image"]


def _stored_names(mesh: Mesh, records: list[dict[str, Any]]) -> set[str]:
    return {o.name for r in records for o in mesh.objects_of(r["source"])}


def test_new_classes_without_reprocess_skip_registered_images_and_say_how_to_relabel(
    mesh: Mesh, relabel_photos: Path, labelled_once: list[dict[str, Any]]
) -> None:
    before = _stored_names(mesh, labelled_once)
    result = alabel(mesh, str(relabel_photos), "--classes", "cat,dog,bird", "--box-threshold", "0")
    assert result.exit_code == 0, result.output
    assert (
        "3 image(s) skipped because they were already labelled (new classes were not looked for"
        " in them); add --reprocess to label them again for these classes" in result.stdout
    )
    assert _stored_names(mesh, labelled_once) == before


def test_reprocess_labels_registered_images_again_and_adds_only_new_objects(
    mesh: Mesh, relabel_photos: Path, labelled_once: list[dict[str, Any]]
) -> None:
    before = _stored_names(mesh, labelled_once)
    args = ["--classes", "cat,dog,bird", "--box-threshold", "0", "--max-objects", "3"]
    result = alabel(mesh, str(relabel_photos), *args, "--reprocess", "--json")
    assert result.exit_code == 0, result.output
    *images, summary = _json_lines(result.stdout)
    assert {r["status"] for r in images} == {"labelled"}
    assert "--reprocess" not in result.stdout  # no hint: nothing was skipped
    answered = {o["name"] for r in images for o in r["objects"]}
    merged = {name for r in images for name in r["merged_objects"]}
    assert merged <= before  # what merged existed before
    assert not (answered - merged) & before  # the rest is new
    after = _stored_names(mesh, labelled_once)
    assert after == before | answered
    assert summary["new_objects"] == len(after) - len(before)
    assert summary["merged_objects"] == len(merged)


def test_reprocess_with_the_same_detections_merges_every_box_into_the_stored_objects(
    mesh: Mesh, relabel_photos: Path, labelled_once: list[dict[str, Any]]
) -> None:
    before = _stored_names(mesh, labelled_once)
    # Another fingerprint (no masks, no embeddings), the same detections: every box matches.
    flags = ["--reprocess", "--no-masks", "--no-embeddings", "--json"]
    result = alabel(mesh, str(relabel_photos), *LABEL, *flags)
    assert result.exit_code == 0, result.output
    *images, summary = _json_lines(result.stdout)
    assert summary["new_objects"] == 0
    for record in images:
        assert record["status"] == "labelled"
        assert set(record["merged_objects"]) == {o["name"] for o in record["objects"]}
    assert _stored_names(mesh, labelled_once) == before
