"""`alabel train`, `alabel runs list|show|export`, `alabel evaluate` and `alabel suggest`
against a real registry process: one tiny training through the CLI (CPU, two epochs), what a
user reads afterwards, and the exit status of usage errors."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator

import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from dataset_mesh import Mesh, register, running_registry
from training_mesh import skip_unless_training_installed

from agentic_labeling.cli import cli

skip_unless_training_installed()


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


def test_latest_names_the_newest_run(mesh: Mesh, trained_run: str) -> None:
    listed = _alabel(mesh, "runs", "list", "--json")
    assert listed.exit_code == 0, listed.output
    newest = json.loads(listed.stdout)[0]["name"]

    shown = _alabel(mesh, "runs", "show", "latest", "--json")

    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["run"]["name"] == newest


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


def test_runs_export_writes_into_the_data_dir_and_says_how_to_serve_it(
    mesh: Mesh, trained_run: str
) -> None:
    students = (mesh.export_root.parent / "triton-models").resolve()

    exported = _alabel(mesh, "runs", "export", trained_run)

    assert exported.exit_code == 0, exported.output
    assert exported.stdout.splitlines() == [
        f"wrote Triton model yolo to {students / 'yolo'}",
        "  classes: ring, pair",
        "Triton loads it at its next start: `alabel down` then `alabel up` (or `alabel triton"
        " stop` then `alabel triton start`); then label with `alabel label DIR --classes ..."
        " --detector yolo`",
    ]
    assert (students / "yolo" / "config.pbtxt").is_file()


def test_train_no_wait_prints_the_run_and_returns(mesh: Mesh, trained_run: str) -> None:
    result = _alabel(
        mesh, "train", "toys", "--epochs", "1", "--image-size", "64", "--device", "cpu",
        "--no-wait", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["run"].startswith("runs/")
    assert data["operation"].startswith("operations/")


@pytest.fixture(scope="module")
def unreviewed(mesh: Mesh) -> list[str]:
    """Three photos whose ring and pair nobody has validated yet; their sources."""
    return [register(mesh, seed, validated=False)[0] for seed in range(50, 53)]


def test_suggest_prints_the_n_best_suggestions_with_their_reasons(
    mesh: Mesh, unreviewed: list[str]
) -> None:
    result = _alabel(mesh, "suggest", "--n", "5")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SCORE", "OBJECT", "CLASS", "BOX", "WHY"]
    rows = [line for line in lines[1:] if "objects/" in line]
    assert len(rows) == 5
    assert all("confidence 0.90" in row for row in rows)
    assert lines[-1] == "5 suggestions"


def _no_training_left(mesh: Mesh) -> None:
    """Wait for every run to end (a --no-wait training may still hold the cpu: a suggestion
    with a run is refused while a training holds its device)."""
    from agentic_labeling.v1 import training_pb2, training_pb2_grpc

    stub = training_pb2_grpc.TrainingServiceStub(mesh.channel)
    unfinished = {training_pb2.RUN_STATE_QUEUED, training_pb2.RUN_STATE_RUNNING}
    deadline = time.monotonic() + 300
    while any(
        r.state in unfinished
        for r in stub.ListRuns(training_pb2.ListRunsRequest(page_size=1000), timeout=30).runs
    ):
        assert time.monotonic() < deadline, "a training never ended"
        time.sleep(0.5)


def test_suggest_with_a_run_as_json_lists_whole_objects_or_missed_boxes(
    mesh: Mesh, trained_run: str, unreviewed: list[str]
) -> None:
    _no_training_left(mesh)
    result = _alabel(
        mesh, "suggest", "--n", "100", "--run", trained_run, "--disagreement", "1",
        "--threshold", "0.01", "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert sum(1 for s in data if s["object"]) == 6  # every unvalidated object
    for s in data:
        assert s["source"] in unreviewed
        if s["object"]:
            assert s["object"]["name"].startswith("objects/")
            assert s["object"]["is_validated"] is False
        else:
            assert s["missed_class_name"] in {"ring", "pair"}
    scores = [s["score"] for s in data]
    assert scores == sorted(scores, reverse=True)


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
