"""`alabel datasets create|list|get|build|export|import|delete` against a real registry
process: what a user types, what they read, and the exit status scripts rely on."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from dataset_mesh import Mesh, register, running_registry

from agentic_labeling.cli import cli


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    with running_registry(tmp_path_factory.mktemp("registry"), data_dir) as mesh:
        for seed in range(5):
            register(mesh, seed)
        yield mesh
    next(data_dirs, None)


def _alabel(mesh: Mesh, *args: str) -> Result:
    runner = CliRunner()
    return runner.invoke(cli, ["--registry-url", mesh.process.address, *args])


def test_a_dataset_goes_from_create_to_export_by_its_name(mesh: Mesh) -> None:
    created = _alabel(mesh, "datasets", "create", "toys", "--classes", "ring,pair", "--seed", "3")
    assert created.exit_code == 0, created.output
    assert "toys" in created.output
    assert "classes: ring, pair" in created.output
    again = _alabel(mesh, "datasets", "create", "toys", "--classes", "ring")
    assert again.exit_code == 1
    assert "exists already" in again.stderr

    built = _alabel(mesh, "datasets", "build", "toys", "--json")
    assert built.exit_code == 0, built.output
    stats = {s["split"]: s for s in json.loads(built.stdout)["split_stats"]}
    assert sum(s["object_count"] for s in stats.values()) == 10
    assert sum(s["image_count"] for s in stats.values()) == 5

    exported = _alabel(
        mesh, "datasets", "export", "toys", "--format", "yolo-detect", "--out", "toys-yolo"
    )
    assert exported.exit_code == 0, exported.output
    assert "exported 5 images and 10 objects" in exported.output
    data_yaml = mesh.export_root.resolve() / "toys-yolo" / "data.yaml"
    assert data_yaml.is_file()
    assert f"load: {data_yaml}" in exported.output
    refused = _alabel(mesh, "datasets", "export", "toys", "--format", "coco", "--out", "toys-yolo")
    assert refused.exit_code == 1
    assert "ALREADY_EXISTS" in refused.stderr

    listed = _alabel(mesh, "datasets", "list")
    assert listed.exit_code == 0
    assert "toys" in listed.output
    assert "ready" in listed.output
    shown = _alabel(mesh, "datasets", "get", "toys")
    assert "SPLIT" in shown.output
    assert "ring" in shown.output

    deleted = _alabel(mesh, "datasets", "delete", "toys", "--yes")
    assert deleted.exit_code == 0
    missing = _alabel(mesh, "datasets", "get", "toys")
    assert missing.exit_code == 1
    assert "no dataset is named 'toys'" in missing.stderr


def test_import_reads_a_coco_export_back_and_repeating_it_adds_nothing(
    mesh: Mesh, tmp_path: Path
) -> None:
    assert _alabel(mesh, "datasets", "create", "again", "--classes", "ring").exit_code == 0
    assert _alabel(mesh, "datasets", "build", "again").exit_code == 0
    out = _alabel(mesh, "datasets", "export", "again", "--format", "coco", "--out", "again-coco")
    assert out.exit_code == 0, out.output
    source = mesh.export_root / "again-coco"
    imported = _alabel(mesh, "datasets", "import", str(source), "--format", "coco", "--json")
    assert imported.exit_code == 0, imported.output
    counts = json.loads(imported.stdout)
    # The same images and boxes exist already: every object merges into its twin.
    assert counts["objects_created"] == 0
    assert counts["sources_created"] == 0


def test_export_of_a_dataset_never_built_says_to_build_it(mesh: Mesh) -> None:
    assert _alabel(mesh, "datasets", "create", "draft", "--classes", "ring").exit_code == 0
    result = _alabel(mesh, "datasets", "export", "draft", "--format", "coco", "--out", "x")
    assert result.exit_code == 1
    assert "FAILED_PRECONDITION" in result.stderr
    assert "build it first" in result.stderr
    assert not (mesh.export_root / "x").exists()


def test_an_export_that_fails_while_running_says_why_and_leaves_nothing(mesh: Mesh) -> None:
    source, _ = register(mesh, 99, with_image=False)  # its image never reached the registry
    created = _alabel(
        mesh, "datasets", "create", "blind", "--classes", "ring", "--filter", f'source = "{source}"'
    )
    assert created.exit_code == 0, created.output
    assert _alabel(mesh, "datasets", "build", "blind").exit_code == 0
    result = _alabel(mesh, "datasets", "export", "blind", "--format", "coco", "--out", "blind")
    assert result.exit_code == 1
    assert "exporting blind failed: FAILED_PRECONDITION" in result.stderr
    assert "reason: IMAGE_NOT_STORED" in result.stderr
    assert not (mesh.export_root / "blind").exists()
