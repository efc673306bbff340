"""MlflowRecorder on a real SQLite MLflow store, read back with MLflow's own client.

One store serves the module: creating one runs MLflow's schema migrations (seconds each).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_labeling.training.mlflow_runs import (
    EVALUATION_EXPERIMENT,
    TRAINING_EXPERIMENT,
    MlflowRecorder,
    default_tracking_uri,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("data")


@pytest.fixture(scope="module")
def recorder(data_dir: Path) -> MlflowRecorder:
    return MlflowRecorder.embedded(data_dir)


def test_the_embedded_store_is_sqlite_under_the_data_directory(tmp_path: Path) -> None:
    assert default_tracking_uri(tmp_path) == f"sqlite:///{tmp_path.resolve()}/mlflow/mlflow.db"


def test_a_run_keeps_params_every_epoch_artifacts_and_its_status(
    recorder: MlflowRecorder, tmp_path: Path
) -> None:
    weights = tmp_path / "best.pt"
    weights.write_bytes(b"weights")
    plots = tmp_path / "plots"
    plots.mkdir()
    (plots / "confusion_matrix.png").write_bytes(b"png")

    run_id = recorder.start(
        TRAINING_EXPERIMENT,
        "run 1",
        {"model": "yolo11n.yaml", "epochs": 2, "class_names": ["cat", "dog"]},
    )
    recorder.log_metrics(run_id, {"mAP50": 0.25, "box_loss": 1.5}, step=1)
    recorder.log_metrics(run_id, {"mAP50": 0.5, "box_loss": 1.0}, step=2)
    recorder.log_artifacts(run_id, [weights], artifact_path="weights")
    recorder.log_artifacts(run_id, [plots])
    recorder.end(run_id, "FINISHED")

    run = recorder.read(run_id)
    assert run.experiment == TRAINING_EXPERIMENT
    assert run.run_name == "run 1"
    assert run.status == "FINISHED"
    assert run.params == {"model": "yolo11n.yaml", "epochs": "2", "class_names": '["cat", "dog"]'}
    assert run.metrics == {"mAP50": [(1, 0.25), (2, 0.5)], "box_loss": [(1, 1.5), (2, 1.0)]}
    assert run.artifacts == ["confusion_matrix.png", "weights/best.pt"]


def test_artifacts_are_copied_under_the_data_directory(
    recorder: MlflowRecorder, data_dir: Path, tmp_path: Path
) -> None:
    source = tmp_path / "manifest.json"
    source.write_text("{}")
    run_id = recorder.start(TRAINING_EXPERIMENT, "run", {})
    recorder.log_artifacts(run_id, [source])
    source.unlink()

    copied = list((data_dir / "mlflow" / "artifacts").rglob(f"{run_id}/**/manifest.json"))
    assert [path.read_text() for path in copied] == ["{}"]


def test_mlflows_own_client_reads_the_runs_of_each_experiment(
    recorder: MlflowRecorder, data_dir: Path
) -> None:
    from mlflow.tracking import MlflowClient

    trained = recorder.start(TRAINING_EXPERIMENT, "train", {"epochs": 1})
    evaluated = recorder.start(EVALUATION_EXPERIMENT, "eval", {"split": "val"})
    recorder.log_metrics(evaluated, {"map50": 0.75}, step=0)
    recorder.end(trained, "KILLED")
    recorder.end(evaluated, "FAILED")

    client = MlflowClient(tracking_uri=default_tracking_uri(data_dir))
    by_experiment = {
        name: {
            run.info.run_id: run
            for run in client.search_runs([client.get_experiment_by_name(name).experiment_id])
        }
        for name in (TRAINING_EXPERIMENT, EVALUATION_EXPERIMENT)
    }
    assert by_experiment[TRAINING_EXPERIMENT][trained].info.status == "KILLED"
    assert evaluated not in by_experiment[TRAINING_EXPERIMENT]
    assert trained not in by_experiment[EVALUATION_EXPERIMENT]
    evaluation = by_experiment[EVALUATION_EXPERIMENT][evaluated]
    assert evaluation.info.status == "FAILED"
    assert evaluation.data.metrics == {"map50": 0.75}
    assert evaluation.data.params == {"split": "val"}


def test_a_second_recorder_on_the_same_store_reuses_the_experiment(
    recorder: MlflowRecorder, data_dir: Path
) -> None:
    again = MlflowRecorder.embedded(data_dir)  # as after a restart of the registry
    run_a = recorder.start(TRAINING_EXPERIMENT, "a", {})
    run_b = again.start(TRAINING_EXPERIMENT, "b", {})
    assert again.read(run_a).experiment == again.read(run_b).experiment == TRAINING_EXPERIMENT


def test_a_param_longer_than_mlflow_allows_is_shortened_not_refused(
    recorder: MlflowRecorder,
) -> None:
    run_id = recorder.start(TRAINING_EXPERIMENT, "many classes", {"class_names": ["c"] * 5000})
    value = recorder.read(run_id).params["class_names"]
    assert len(value) == 6000
    assert value.endswith("…")


def test_an_unknown_end_status_is_refused(recorder: MlflowRecorder) -> None:
    run_id = recorder.start(TRAINING_EXPERIMENT, "run", {})
    with pytest.raises(ValueError, match="FINISHED, FAILED, KILLED"):
        recorder.end(run_id, "DONE")  # type: ignore[arg-type]
    assert recorder.read(run_id).status == "RUNNING"
