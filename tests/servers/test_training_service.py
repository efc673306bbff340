"""TrainingService on a real registry process (the session's: tests/training_mesh.py): bad
requests refused with a precise status before anything starts, one tiny YOLO training end to
end (CPU, 64-pixel images, two epochs) logged to MLflow, evaluations of that run and of a
detection model's objects, paging, the FIFO queue per device and cancellation.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import grpc
import pytest
from dataset_mesh import build, create_dataset
from google.longrunning import operations_pb2
from training_mesh import (
    EPOCHS,
    TrainingMesh,
    error_info,
    operation_target,
    refused,
    skip_unless_training_installed,
)

from agentic_labeling.v1 import dataset_pb2, training_pb2

skip_unless_training_installed()


@pytest.fixture(scope="module")
def mesh(training_mesh: TrainingMesh) -> TrainingMesh:
    return training_mesh


@pytest.fixture(scope="module")
def dataset(shapes_dataset: dataset_pb2.Dataset) -> dataset_pb2.Dataset:
    return shapes_dataset


@pytest.fixture(scope="module")
def trained(trained_run: training_pb2.TrainingRun) -> training_pb2.TrainingRun:
    return trained_run


_target = operation_target
_error_info = error_info
_refused = refused


# --- bad requests -----------------------------------------------------------------------------


def test_training_an_unknown_dataset_is_not_found(mesh: TrainingMesh) -> None:
    error = _refused(
        mesh.training.StartTraining,
        training_pb2.StartTrainingRequest(
            dataset=f"datasets/{uuid.uuid4()}", model="yolo11n.yaml", epochs=1
        ),
    )
    assert error.code() == grpc.StatusCode.NOT_FOUND


def test_training_a_malformed_dataset_name_is_invalid_argument(mesh: TrainingMesh) -> None:
    error = _refused(
        mesh.training.StartTraining,
        training_pb2.StartTrainingRequest(dataset="shapes", model="yolo11n.yaml", epochs=1),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(error)[1] == ["dataset"]


def test_training_a_dataset_never_built_is_failed_precondition(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset
) -> None:
    draft = create_dataset(mesh, "never built")
    error = _refused(mesh.start, draft.name)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_info(error)[0] == "DATASET_NOT_BUILT"


def test_training_without_a_val_split_is_failed_precondition(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset
) -> None:
    all_train = build(
        mesh,
        create_dataset(
            mesh, "train only", split_ratios=dataset_pb2.SplitRatios(train=1, val=0, test=0)
        ),
    )
    error = _refused(mesh.start, all_train.name)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_info(error)[0] == "EMPTY_SPLIT"
    assert "val split" in (error.details() or "")


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"model": "nonsense.yaml"}, "model"),
        ({"model": "/nowhere/best.pt"}, "model"),
        ({"model": ""}, "model"),
        ({"epochs": 0}, "epochs"),
        ({"epochs": 10_001}, "epochs"),
        ({"image_size": 33}, "image_size"),
        ({"image_size": 16}, "image_size"),
        ({"image_size": 9000}, "image_size"),
        ({"batch": -2}, "batch"),
        ({"batch": 1025}, "batch"),
        ({"request_id": "not-a-uuid"}, "request_id"),
    ],
)
def test_absurd_training_requests_are_invalid_argument_naming_the_field(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        mesh.start(dataset.name, **fields)
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert _error_info(error)[1] == [field]


def test_an_unknown_run_is_not_found_and_a_malformed_one_invalid(mesh: TrainingMesh) -> None:
    missing = _refused(
        mesh.training.GetRun, training_pb2.GetRunRequest(name=f"runs/{uuid.uuid4()}")
    )
    assert missing.code() == grpc.StatusCode.NOT_FOUND
    malformed = _refused(mesh.training.GetRun, training_pb2.GetRunRequest(name="runs/7"))
    assert malformed.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(malformed)[1] == ["name"]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({}, "run"),
        ({"detection_model": "test", "split": "validation"}, "split"),
        ({"detection_model": "test", "iou_threshold": 1.5}, "iou_threshold"),
        ({"detection_model": " "}, "detection_model"),
        ({"run": "runs/x"}, "run"),
    ],
)
def test_bad_evaluate_requests_are_invalid_argument_naming_the_field(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset, fields: dict[str, object], field: str
) -> None:
    error = _refused(
        mesh.training.Evaluate,
        training_pb2.EvaluateRequest(dataset=dataset.name, **fields),  # type: ignore[arg-type]
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(error)[1] == [field]


def test_export_run_needs_an_existing_model_repository(
    mesh: TrainingMesh, trained: training_pb2.TrainingRun, tmp_path: Path
) -> None:
    error = _refused(
        mesh.training.ExportRun,
        training_pb2.ExportRunRequest(name=trained.name, model_repository=str(tmp_path / "no")),
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(error)[1] == ["model_repository"]


def test_a_bad_page_token_is_invalid_argument(mesh: TrainingMesh) -> None:
    error = _refused(mesh.training.ListRuns, training_pb2.ListRunsRequest(page_token="garbage"))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(error)[1] == ["page_token"]


# --- training end to end ----------------------------------------------------------------------


def test_a_tiny_training_succeeds_with_weights_metrics_and_an_mlflow_run(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset, trained: training_pb2.TrainingRun
) -> None:
    run = mesh.run(trained.name)
    assert run.state == training_pb2.RUN_STATE_SUCCEEDED
    assert run.dataset == dataset.name
    assert run.task == "detect"
    assert list(run.class_names) == list(dataset.class_names)
    assert run.epochs_completed == EPOCHS
    assert Path(run.weights_uri).is_file()
    assert Path(run.weights_uri).is_relative_to(mesh.data_dir / "runs")
    assert "mAP50" in run.metrics
    assert run.end_time.seconds > 0
    assert run.operation.startswith("operations/")

    import mlflow

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{mesh.data_dir / 'mlflow' / 'mlflow.db'}")
    logged = client.get_run(run.mlflow_run_id)
    assert logged.info.status == "FINISHED"
    assert logged.data.params["dataset"] == dataset.name
    assert logged.data.params["class_names"] == ",".join(dataset.class_names)
    assert logged.data.params["split_seed"] == str(dataset.seed)
    assert logged.data.params["epochs"] == str(EPOCHS)
    history = client.get_metric_history(run.mlflow_run_id, "mAP50")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS + 1))
    artifacts = {Path(a.path).name for a in _all_artifacts(client, run.mlflow_run_id)}
    assert Path(run.weights_uri).name in artifacts
    assert {"data.yaml", "dataset_manifest.json"} <= artifacts


def _all_artifacts(client: object, run_id: str, path: str | None = None) -> list[object]:
    found = []
    for entry in client.list_artifacts(run_id, path):  # type: ignore[attr-defined]
        if entry.is_dir:
            found.extend(_all_artifacts(client, run_id, entry.path))
        else:
            found.append(entry)
    return found


def test_a_retried_start_with_the_same_request_id_starts_nothing_twice(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset, trained: training_pb2.TrainingRun
) -> None:
    request_id = str(uuid.uuid4())
    first = mesh.start(dataset.name, request_id=request_id, epochs=1)
    again = mesh.start(dataset.name, request_id=request_id, epochs=1)
    assert again.name == first.name
    mesh.finish(first)


def test_evaluating_the_run_stores_coco_figures_per_class_and_a_confusion_matrix(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset, trained: training_pb2.TrainingRun
) -> None:
    operation = mesh.training.Evaluate(
        training_pb2.EvaluateRequest(dataset=dataset.name, run=trained.name, split="val"),
        timeout=30,
    )
    evaluation = mesh.result(operation, training_pb2.Evaluation())
    assert isinstance(evaluation, training_pb2.Evaluation)
    assert evaluation.run == trained.name
    assert evaluation.split == "val"
    assert evaluation.image_count == 2
    assert [c.class_name for c in evaluation.per_class] == list(dataset.class_names)
    assert sum(c.support for c in evaluation.per_class) == 4  # a ring and a pair per image
    labels = list(evaluation.confusion_matrix.labels)
    assert labels == [*dataset.class_names, "background"]
    assert len(evaluation.confusion_matrix.counts) == len(labels) ** 2
    assert evaluation.mlflow_run_id
    listed = mesh.training.ListEvaluations(
        training_pb2.ListEvaluationsRequest(run=trained.name), timeout=30
    )
    assert [e.name for e in listed.evaluations] == [evaluation.name]


def test_evaluating_a_detection_model_scores_its_objects_against_validated_ones(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset
) -> None:
    operation = mesh.training.Evaluate(
        training_pb2.EvaluateRequest(dataset=dataset.name, detection_model="test", split="train"),
        timeout=30,
    )
    evaluation = mesh.result(operation, training_pb2.Evaluation())
    assert isinstance(evaluation, training_pb2.Evaluation)
    assert evaluation.detection_model == "test"
    assert evaluation.run == ""
    assert evaluation.image_count > 0


def test_list_evaluations_pages_through_every_evaluation(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset
) -> None:
    for split in ("val", "test"):
        mesh.finish(
            mesh.training.Evaluate(
                training_pb2.EvaluateRequest(
                    dataset=dataset.name, detection_model="test", split=split
                ),
                timeout=30,
            )
        )
    every = mesh.training.ListEvaluations(
        training_pb2.ListEvaluationsRequest(page_size=1000), timeout=30
    )
    seen, token = [], ""
    while True:
        page = mesh.training.ListEvaluations(
            training_pb2.ListEvaluationsRequest(page_size=1, page_token=token), timeout=30
        )
        seen.extend(e.name for e in page.evaluations)
        token = page.next_page_token
        if not token:
            break
    assert seen == [e.name for e in every.evaluations]
    assert len(seen) >= 2


def test_a_second_run_waits_queued_and_cancelling_runs_ends_them_cancelled(
    mesh: TrainingMesh, dataset: dataset_pb2.Dataset, trained: training_pb2.TrainingRun
) -> None:
    long = mesh.start(dataset.name, epochs=1000)
    long_run = _target(long)
    mesh.wait_state(long_run, training_pb2.RUN_STATE_RUNNING)
    queued = mesh.start(dataset.name, epochs=1)
    queued_run = _target(queued)
    assert mesh.run(queued_run).state == training_pb2.RUN_STATE_QUEUED

    mesh.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=queued.name))
    ended = mesh.finish(queued)
    assert ended.error.code == grpc.StatusCode.CANCELLED.value[0]
    assert mesh.run(queued_run).state == training_pb2.RUN_STATE_CANCELLED
    assert mesh.run(queued_run).epochs_completed == 0

    mesh.operations.CancelOperation(operations_pb2.CancelOperationRequest(name=long.name))
    mesh.finish(long)
    cancelled = mesh.run(long_run)
    assert cancelled.state == training_pb2.RUN_STATE_CANCELLED
    assert cancelled.epochs_completed < 1000

    refused = _refused(
        mesh.training.Evaluate,
        training_pb2.EvaluateRequest(dataset=dataset.name, run=long_run),
    )
    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_info(refused)[0] == "RUN_NOT_SUCCEEDED"


def test_list_runs_pages_newest_first_through_every_run(
    mesh: TrainingMesh, trained: training_pb2.TrainingRun
) -> None:
    every = mesh.training.ListRuns(training_pb2.ListRunsRequest(page_size=1000), timeout=30)
    assert trained.name in [r.name for r in every.runs]
    times = [r.create_time.ToNanoseconds() for r in every.runs]
    assert times == sorted(times, reverse=True)
    seen, token = [], ""
    while True:
        page = mesh.training.ListRuns(
            training_pb2.ListRunsRequest(page_size=1, page_token=token), timeout=30
        )
        seen.extend(r.name for r in page.runs)
        token = page.next_page_token
        if not token:
            break
    assert seen == [r.name for r in every.runs]
