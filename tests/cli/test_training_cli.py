"""`alabel train`, `alabel runs list|show|export`, `alabel evaluate` and `alabel suggest`
against a real registry process: one tiny training through the CLI (CPU, two epochs), what a
user reads afterwards, and the exit status of usage errors."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from dataset_mesh import Mesh, register, running_registry

from agentic_labeling.cli import cli

pytest.importorskip("ultralytics")


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
        for seed in range(10):
            register(mesh, seed)
        yield mesh
    next(data_dirs, None)


def _alabel(mesh: Mesh, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--registry-url", mesh.process.address, *args])


@pytest.fixture(scope="module")
def trained_run(mesh: Mesh) -> str:
    """`alabel train` on a built dataset, to the end; the run's name."""
    for args in (
        ["datasets", "create", "toys", "--classes", "ring,pair", "--split", "0.6,0.2,0.2"],
        ["datasets", "build", "toys"],
    ):
        result = _alabel(mesh, *args)
        assert result.exit_code == 0, result.output
    trained = _alabel(
        mesh,
        "train",
        "toys",
        "--epochs",
        "2",
        "--image-size",
        "64",
        "--batch",
        "4",
        "--device",
        "cpu",
    )
    assert trained.exit_code == 0, trained.output
    found = re.search(r"runs/[0-9a-f-]{36}", trained.stdout)
    assert found is not None, trained.stdout
    assert "(succeeded)" in trained.stdout
    assert "weights: " in trained.stdout
    assert "mlflow ui --backend-store-uri sqlite:///" in trained.stdout
    return found.group(0)


def test_runs_list_and_show_describe_the_trained_run(mesh: Mesh, trained_run: str) -> None:
    listed = _alabel(mesh, "runs", "list")
    assert listed.exit_code == 0, listed.output
    assert trained_run.removeprefix("runs/") in listed.output
    assert "succeeded" in listed.output
    assert "2/2" in listed.output
    shown = _alabel(mesh, "runs", "show", trained_run, "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.stdout)
    assert data["run"]["state"] == "RUN_STATE_SUCCEEDED"
    assert data["run"]["class_names"] == ["ring", "pair"]


def test_evaluate_prints_map_a_class_table_and_a_confusion_matrix(
    mesh: Mesh, trained_run: str
) -> None:
    result = _alabel(mesh, "evaluate", "toys", "--run", trained_run)
    assert result.exit_code == 0, result.output
    assert "mAP50" in result.stdout
    assert "CLASS" in result.stdout
    assert "confusion matrix" in result.stdout
    assert "background" in result.stdout
    shown = _alabel(mesh, "runs", "show", trained_run)
    assert "evaluations/" in shown.stdout


def test_evaluate_a_detection_model_as_json(mesh: Mesh, trained_run: str) -> None:
    result = _alabel(mesh, "evaluate", "toys", "--detection-model", "test", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["detection_model"] == "test"
    assert [c["class_name"] for c in data["per_class"]] == ["ring", "pair"]


def test_train_no_wait_prints_the_run_and_returns(mesh: Mesh, trained_run: str) -> None:
    result = _alabel(
        mesh, "train", "toys", "--epochs", "1", "--image-size", "64", "--device", "cpu",
        "--no-wait", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"].startswith("runs/")
    assert data["operation"].startswith("operations/")


@pytest.mark.parametrize(
    "args",
    [
        ["evaluate", "toys"],
        ["evaluate", "toys", "--run", "runs/x", "--detection-model", "florence2"],
        ["evaluate", "toys", "--run", "not-a-run"],
        ["train", "toys", "--image-size", "100"],
        ["train", "toys", "--epochs", "0"],
        ["train", "toys", "--batch", "0"],
        ["runs", "show", "seven"],
        ["suggest", "--n", "0"],
        ["suggest", "--uncertainty", "2"],
    ],
)
def test_usage_errors_exit_2(mesh: Mesh, args: list[str]) -> None:
    result = _alabel(mesh, *args)
    assert result.exit_code == 2, result.output


def test_training_a_dataset_that_is_not_there_exits_1(mesh: Mesh) -> None:
    result = _alabel(mesh, "train", "nowhere", "--epochs", "1")
    assert result.exit_code == 1
    assert "no dataset is named 'nowhere'" in result.stderr


def test_every_training_command_has_help_with_examples() -> None:
    for args in (["train"], ["runs"], ["runs", "export"], ["evaluate"], ["suggest"]):
        result = CliRunner().invoke(cli, [*args, "--help"])
        assert result.exit_code == 0, result.output
    assert "Ctrl-C cancels" in CliRunner().invoke(cli, ["train", "--help"]).output
    assert "Examples:" in CliRunner().invoke(cli, ["evaluate", "--help"]).output
