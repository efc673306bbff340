"""TrainingService: YOLO runs trained on built datasets, evaluations, exports to Triton.

Each slow method checks its request first (a bad name, a dataset never built, an empty split,
an unknown model spec, absurd numbers, a missing `[train]` extra: refused before anything is
written), then runs as a long-running operation polled through google.longrunning.Operations.

A training run is a row (QUEUED, RUNNING, then SUCCEEDED, FAILED or CANCELLED) and an
operation. Runs wait for their device in FIFO order (`DeviceTurns`): one training at a time
per device, the others QUEUED. The run's directory is `{data_dir}/runs/{run}/`: the dataset
exported as YOLO (`dataset/`), then what ultralytics writes (weights, plots). Everything is
logged to MLflow by this process (parameters, per-epoch metrics, artifacts); ultralytics runs
in a subprocess of its own (`training.yolo_jobs`) and is never imported here.

SuggestForReview answers at once (no operation): the registry's unvalidated candidates ranked
by `training.review_ranking`. With a run, the run's model predicts on the candidates' images
first, holding the run's device for that time; while a training holds or waits for that device
the call is refused (FAILED_PRECONDITION, DEVICE_BUSY) instead of waiting behind it.

ExportRun writes the run's ONNX as a Triton model into the request's model_repository, or by
default into the registry's student repository (`Settings.student_repository`,
DATA_DIR/triton-models), which the launcher serves beside the project's model_repository/ at
its next start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from google.longrunning import operations_pb2

from agentic_labeling.errors import (
    Cancelled,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from agentic_labeling.registry.coordinator import Registry, ReviewCandidates
from agentic_labeling.registry.values.dataset_records import DatasetRecord
from agentic_labeling.registry.values.resource_names import format_name
from agentic_labeling.registry.values.training_records import (
    ClassFigures,
    EvaluationFigures,
    NewEvaluation,
    NewRun,
    RunRecord,
    RunState,
)
from agentic_labeling.servers import training_conversions as wire
from agentic_labeling.servers.device_turns import DeviceTurns
from agentic_labeling.servers.operation_store import OperationStore, Progress
from agentic_labeling.servers.unbuilt import answer_unbuilt_methods
from agentic_labeling.training.mlflow_runs import EVALUATION_EXPERIMENT, TRAINING_EXPERIMENT
from agentic_labeling.training.review_ranking import (
    ImageKey,
    ModelDetection,
    candidates_from_records,
    model_detections,
    rank_for_review,
)
from agentic_labeling.v1 import training_pb2, training_pb2_grpc

__all__ = ["INTERRUPTED_RUN_MESSAGE", "TrainingServicer", "resolve_device"]

logger = logging.getLogger(__name__)

INTERRUPTED_RUN_MESSAGE = "the registry stopped before this run ended; start it again"
# Predictions below this confidence are left out of an evaluation (as ultralytics' val does).
_EVALUATION_MIN_CONFIDENCE = 0.001


def resolve_device(device: str) -> str:
    """The device a run trains on: as given, or for ""/"auto" the first GPU when the host has
    one (its device file exists; nothing is imported to find out), else "cpu"."""
    text = device.strip()
    if text and text != "auto":
        return text
    return "0" if Path("/dev/nvidia0").exists() else "cpu"


@dataclass(frozen=True)
class _TrainingJob:
    run: RunRecord
    dataset: DatasetRecord
    work_dir: Path


@answer_unbuilt_methods(training_pb2.DESCRIPTOR.services_by_name["TrainingService"])
class TrainingServicer(training_pb2_grpc.TrainingServiceServicer):
    def __init__(
        self,
        registry: Registry,
        operations: OperationStore,
        *,
        student_repository: Path,
        mlflow_uri: str = "",
    ) -> None:
        self._registry = registry
        self._operations = operations
        self._turns = DeviceTurns()
        # Trainings holding or waiting for each device: a suggestion's prediction is refused
        # there rather than wait hours behind them (a unary call has a deadline).
        self._trainings: Counter[str] = Counter()
        self._data_dir = registry.runs_directory.parent
        self._mlflow_uri = mlflow_uri
        # Where ExportRun writes when no model_repository is given (Settings.student_repository).
        self._student_repository = student_repository.resolve()

    # --- training -------------------------------------------------------------------------------

    async def StartTraining(
        self, request: training_pb2.StartTrainingRequest, context: Any
    ) -> operations_pb2.Operation:
        request_id = wire.optional_request_id(request.request_id)
        numbers = wire.training_numbers(request)
        dataset = await self._dataset(request.dataset, "dataset")
        wire.check_built(dataset)
        wire.check_splits_to_train(dataset)
        from agentic_labeling.training.yolo_jobs import check_model_spec

        if not request.model.strip():
            raise InvalidArgument(
                "model is required: an ultralytics .yaml (e.g. yolo11n.yaml) or a .pt path",
                field="model",
            )
        task = await asyncio.to_thread(check_model_spec, request.model)
        self._check_training_available()
        new = NewRun(
            dataset_id=dataset.id,
            model=request.model,
            task=task,
            epochs=numbers.epochs,
            image_size=numbers.image_size,
            batch=numbers.batch,
            device=resolve_device(request.device),
            class_names=dataset.class_names,
            split_seed=dataset.seed,
        )
        run, created = await self._registry.create_run(new, run_id=uuid4(), request_id=request_id)
        if not created and run.operation:
            return await self._operations.get(run.operation)  # a retry: the first one's
        job = _TrainingJob(run, dataset, self._registry.runs_directory / str(run.id))
        operation = await self._operations.start(
            format_name("runs", run.id), lambda progress: self._train(job, progress)
        )
        await self._registry.set_run_operation(run.id, operation.name)
        return operation

    async def GetRun(
        self, request: training_pb2.GetRunRequest, context: Any
    ) -> training_pb2.TrainingRun:
        return wire.run_message(await self._run(request.name, "name"))

    async def ListRuns(
        self, request: training_pb2.ListRunsRequest, context: Any
    ) -> training_pb2.ListRunsResponse:
        page = await self._registry.list_runs(
            page_size=request.page_size, page_token=request.page_token
        )
        return wire.list_runs_response(page)

    async def _train(self, job: _TrainingJob, progress: Progress) -> training_pb2.TrainingRun:
        run_id = job.run.id
        progress.update(
            stage=f"queued for device {job.run.device}", done=0, total=job.run.epochs, unit="epochs"
        )
        self._trainings[job.run.device] += 1
        try:
            async with self._turns.turn(job.run.device, progress.check_cancelled):
                await self._registry.start_run(run_id)
                return wire.run_message(await self._train_on_device(job, progress))
        except Cancelled:
            await asyncio.shield(self._registry.finish_run(run_id, RunState.CANCELLED))
            raise
        except asyncio.CancelledError:
            await asyncio.shield(
                self._registry.finish_run(
                    run_id, RunState.FAILED, error_message=INTERRUPTED_RUN_MESSAGE
                )
            )
            raise
        except Exception as error:
            message = getattr(error, "message", None) or str(error) or type(error).__name__
            await asyncio.shield(
                self._registry.finish_run(run_id, RunState.FAILED, error_message=message)
            )
            raise
        finally:
            self._trainings[job.run.device] -= 1
            if not self._trainings[job.run.device]:
                del self._trainings[job.run.device]

    async def _train_on_device(self, job: _TrainingJob, progress: Progress) -> RunRecord:
        from agentic_labeling.training.yolo_jobs import (
            EpochProgress,
            TrainingCancelled,
            TrainingFailed,
            TrainingSpec,
            train_yolo,
        )

        run = job.run
        progress.update(stage="exporting the dataset as YOLO")
        exported = await self._registry.export_training_data(
            job.dataset,
            job.work_dir / "dataset",
            segment=run.task == "segment",
            staging_token=progress.operation_id.hex,
            progress=progress,
        )
        manifest = await asyncio.to_thread(_write_manifest, job, exported.entry_point)
        progress.update(stage="starting ultralytics", done=0, total=run.epochs, unit="epochs")
        progress.check_cancelled()
        recorder = self._recorder()
        mlflow_run = await asyncio.to_thread(
            recorder.start, TRAINING_EXPERIMENT, format_name("runs", run.id), _run_params(job)
        )
        await self._registry.set_run_mlflow(run.id, mlflow_run)
        epochs: asyncio.Queue[EpochProgress | None] = asyncio.Queue()
        recording = asyncio.create_task(self._record_epochs(run.id, mlflow_run, recorder, epochs))

        def on_epoch(epoch: EpochProgress) -> None:
            progress.update(stage=_epoch_stage(epoch), done=epoch.epoch, total=epoch.epochs)
            epochs.put_nowait(epoch)

        spec = TrainingSpec(
            data_yaml=exported.entry_point,
            model=run.model,
            epochs=run.epochs,
            image_size=run.image_size,
            batch=run.batch,
            device=run.device,
            work_dir=job.work_dir,
        )
        status = "FAILED"
        try:
            try:
                outcome = await train_yolo(
                    spec, on_epoch, cancel_requested=lambda: progress.cancel_requested
                )
            finally:
                epochs.put_nowait(None)
                await recording
            progress.update(stage="storing the weights and plots")
            await asyncio.to_thread(
                recorder.log_artifacts,
                mlflow_run,
                [outcome.weights, *outcome.artifacts, exported.entry_point, manifest],
            )
            finished = await self._registry.finish_run(
                run.id,
                RunState.SUCCEEDED,
                metrics=dict(outcome.metrics),
                weights_path=str(outcome.weights),
                epochs_completed=outcome.epochs_completed,
            )
            status = "FINISHED"
            progress.update(stage="trained", done=outcome.epochs_completed)
            return finished
        except TrainingCancelled:
            status = "KILLED"
            raise Cancelled(f"{format_name('runs', run.id)} was cancelled") from None
        except TrainingFailed as error:
            raise FailedPrecondition(
                f"training {format_name('runs', run.id)} failed: {error}",
                reason="TRAINING_FAILED",
            ) from None
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(asyncio.to_thread(recorder.end, mlflow_run, status))

    async def _record_epochs(
        self,
        run_id: UUID,
        mlflow_run: str,
        recorder: Any,
        epochs: asyncio.Queue[Any],
    ) -> None:
        """Store each epoch's figures in order, in the run row and in MLflow."""
        while (epoch := await epochs.get()) is not None:
            figures = {**epoch.losses, **epoch.metrics}
            try:
                await self._registry.record_run_epoch(run_id, epoch.epoch, figures)
                await asyncio.to_thread(recorder.log_metrics, mlflow_run, figures, epoch.epoch)
            except Exception:
                # An epoch's figures are worth less than the run: log and train on.
                logger.exception("could not record an epoch", extra={"run": str(run_id)})

    # --- evaluation -----------------------------------------------------------------------------

    async def Evaluate(
        self, request: training_pb2.EvaluateRequest, context: Any
    ) -> operations_pb2.Operation:
        request_id = wire.optional_request_id(request.request_id)
        split = wire.split(request.split)
        iou = wire.iou_threshold(request.iou_threshold)
        source = request.WhichOneof("predictions")
        if source is None:
            raise InvalidArgument(
                "name the predictions: run (runs/{uuid}) or detection_model (e.g. florence2)",
                field="run",
            )
        run: RunRecord | None = None
        detection_model = ""
        if source == "run":
            run = await self._run(request.run, "run")
            if run.state != RunState.SUCCEEDED:
                raise FailedPrecondition(
                    f"{format_name('runs', run.id)} is {run.state}; only a succeeded run has "
                    "weights to evaluate",
                    reason="RUN_NOT_SUCCEEDED",
                    metadata={"field": "run"},
                )
        else:
            detection_model = request.detection_model.strip()
            if not detection_model:
                raise InvalidArgument("detection_model must not be empty", field="detection_model")
        dataset = await self._dataset(request.dataset, "dataset")
        wire.check_built(dataset)
        if request_id is not None:
            stored = await self._registry.evaluation_by_request(request_id)
            if stored is not None:
                message = wire.evaluation_message(stored)

                async def again(progress: Progress) -> training_pb2.Evaluation:
                    return message

                return await self._operations.start(format_name("datasets", dataset.id), again)

        async def evaluate(progress: Progress) -> training_pb2.Evaluation:
            return await self._evaluate(
                dataset, str(split), run, detection_model, iou, request_id, progress
            )

        return await self._operations.start(format_name("datasets", dataset.id), evaluate)

    async def _evaluate(
        self,
        dataset: DatasetRecord,
        split: str,
        run: RunRecord | None,
        detection_model: str,
        iou: float,
        request_id: UUID | None,
        progress: Progress,
    ) -> training_pb2.Evaluation:
        from agentic_labeling.training.evaluation import evaluate_boxes

        progress.update(stage=f"reading the {split} split's validated objects")
        evaluation_set = await self._registry.evaluation_images(dataset.id, split)
        images = list(evaluation_set.images)
        progress.update(stage="predicting", done=0, total=len(images), unit="images")
        progress.check_cancelled()
        if run is not None:
            predictions = await _run_predictions(run, images, dataset.class_names)
        else:
            predictions = await self._registry.auto_label_predictions(
                evaluation_set, detection_model
            )
        progress.update(stage="scoring", done=len(images))
        progress.check_cancelled()
        result = await asyncio.to_thread(
            evaluate_boxes,
            evaluation_set.ground_truth,
            predictions,
            images=[(i.image_id, i.width, i.height) for i in images],
            class_names=dataset.class_names,
            iou_threshold=iou,
        )
        figures = _figures(result)
        evaluation_id = uuid4()
        mlflow_run = await self._log_evaluation(
            evaluation_id, dataset, split, run, detection_model, iou, figures
        )
        stored = await self._registry.create_evaluation(
            NewEvaluation(
                dataset_id=dataset.id,
                split=split,
                run_id=None if run is None else run.id,
                detection_model=detection_model,
                figures=figures,
                mlflow_run_id=mlflow_run,
            ),
            evaluation_id=evaluation_id,
            request_id=request_id,
        )
        progress.update(stage="evaluated")
        return wire.evaluation_message(stored)

    async def _log_evaluation(
        self,
        evaluation_id: UUID,
        dataset: DatasetRecord,
        split: str,
        run: RunRecord | None,
        detection_model: str,
        iou: float,
        figures: EvaluationFigures,
    ) -> str:
        """The MLflow run holding the figures, the confusion matrix (PNG and JSON)."""
        directory = self._data_dir / "evaluations" / str(evaluation_id)
        artifacts = await asyncio.to_thread(_write_evaluation_files, directory, figures)
        recorder = self._recorder()
        params = {
            "dataset": format_name("datasets", dataset.id),
            "split": split,
            "predictions": format_name("runs", run.id) if run is not None else detection_model,
            "iou_threshold": iou,
            "class_names": ",".join(dataset.class_names),
        }
        mlflow_run: str = await asyncio.to_thread(
            recorder.start, EVALUATION_EXPERIMENT, format_name("evaluations", evaluation_id), params
        )
        metrics = {"mAP50": figures.map50, "mAP50-95": figures.map50_95}
        for c in figures.per_class:
            metrics[f"AP50/{c.class_name}"] = c.ap50
            metrics[f"AP50-95/{c.class_name}"] = c.ap50_95
        finite = {k: v for k, v in metrics.items() if math.isfinite(v)}
        await asyncio.to_thread(recorder.log_metrics, mlflow_run, finite, 0)
        await asyncio.to_thread(recorder.log_artifacts, mlflow_run, artifacts)
        await asyncio.to_thread(recorder.end, mlflow_run, "FINISHED")
        return mlflow_run

    async def ListEvaluations(
        self, request: training_pb2.ListEvaluationsRequest, context: Any
    ) -> training_pb2.ListEvaluationsResponse:
        run_id = None
        if request.run:
            run_id = (await self._run(request.run, "run")).id
        page = await self._registry.list_evaluations(
            run_id=run_id, page_size=request.page_size, page_token=request.page_token
        )
        return wire.list_evaluations_response(page)

    # --- active learning ------------------------------------------------------------------------

    async def SuggestForReview(
        self, request: training_pb2.SuggestForReviewRequest, context: Any
    ) -> training_pb2.SuggestForReviewResponse:
        count = wire.suggestion_count(request.count)
        threshold = wire.decision_threshold(request.decision_threshold)
        weights = wire.review_weights(request.strategy)
        run: RunRecord | None = None
        if request.run:
            run = await self._run(request.run, "run")
            if run.state != RunState.SUCCEEDED:
                raise FailedPrecondition(
                    f"{format_name('runs', run.id)} is {run.state}; only a succeeded run has "
                    "weights to compare the auto-labels with",
                    reason="RUN_NOT_SUCCEEDED",
                    metadata={"field": "run"},
                )
        found = await self._registry.review_candidates(request.filter)
        detections = None if run is None else await self._review_detections(run, found, threshold)
        ranked = await asyncio.to_thread(
            rank_for_review,
            candidates_from_records(found.objects, found.embeddings),
            weights=weights,
            count=count,
            decision_threshold=threshold,
            validated_embeddings=found.validated_embeddings,
            model_detections=detections,
            image_boxes=found.image_boxes,
        )
        return wire.suggestions_response(ranked, {o.id: o for o in found.objects})

    async def _review_detections(
        self, run: RunRecord, found: ReviewCandidates, threshold: float
    ) -> dict[ImageKey, list[ModelDetection]]:
        """The run's boxes (at or above `threshold`) on every candidate image that has a file,
        predicted at the run's image size on its device, in the device's line of turns."""
        from agentic_labeling.training.yolo_jobs import predict_yolo

        images = [(key, image.path) for key, image in found.images.items() if image.path]
        if not images:
            return {}
        self._check_training_available()
        if self._trainings[run.device]:
            raise FailedPrecondition(
                f"device {run.device!r} is training; ask again when the training ends, or "
                "without a run",
                reason="DEVICE_BUSY",
                metadata={"field": "run", "device": run.device},
            )
        # Taken at once (nothing trains there); a training started meanwhile waits for it.
        async with self._turns.turn(run.device, lambda: None):
            predictions = await predict_yolo(
                Path(run.weights_path),
                [path for _, path in images if path is not None],
                image_size=run.image_size,
                min_confidence=threshold,
                device=run.device,
            )
        return model_detections([key for key, _ in images], predictions, run.class_names)

    # --- export to Triton -----------------------------------------------------------------------

    async def ExportRun(
        self, request: training_pb2.ExportRunRequest, context: Any
    ) -> operations_pb2.Operation:
        run = await self._run(request.name, "name")
        model_name = wire.model_name(request.model_name)
        if not request.model_repository:
            # The registry's own student repository, which the launcher serves: a user never
            # writes into the project's (or an installed package's) model_repository/.
            repository = self._student_repository
            await asyncio.to_thread(repository.mkdir, parents=True, exist_ok=True)
        else:
            repository = Path(request.model_repository)
        if not repository.is_absolute() or not await asyncio.to_thread(repository.is_dir):
            raise InvalidArgument(
                f"model_repository {request.model_repository!r} must be an existing directory "
                "on the registry's host, as an absolute path",
                field="model_repository",
            )
        if run.state != RunState.SUCCEEDED:
            raise FailedPrecondition(
                f"{format_name('runs', run.id)} is {run.state}; only a succeeded run has weights "
                "to export",
                reason="RUN_NOT_SUCCEEDED",
                metadata={"field": "name"},
            )

        async def export(progress: Progress) -> training_pb2.ExportRunResponse:
            from agentic_labeling.models.student import write_student_model
            from agentic_labeling.training.yolo_jobs import export_onnx

            progress.update(stage="exporting the weights to ONNX")
            onnx = await export_onnx(
                Path(run.weights_path),
                self._registry.runs_directory / str(run.id) / "onnx",
                image_size=run.image_size,
            )
            progress.check_cancelled()
            progress.update(stage=f"writing the Triton model {model_name}")
            model_dir = await asyncio.to_thread(
                write_student_model, onnx, run.class_names, run.image_size, repository, model_name
            )
            return training_pb2.ExportRunResponse(
                model_dir=str(model_dir), model_name=model_name, class_names=run.class_names
            )

        return await self._operations.start(format_name("runs", run.id), export)

    # --- helpers --------------------------------------------------------------------------------

    async def _dataset(self, name: str, field: str) -> DatasetRecord:
        dataset_id = wire.required_name(name, "datasets", field)
        try:
            return await self._registry.get_dataset(dataset_id)
        except NotFound as error:
            raise wire.with_field(error, field) from None

    async def _run(self, name: str, field: str) -> RunRecord:
        run_id = wire.required_name(name, "runs", field)
        try:
            return await self._registry.get_run(run_id)
        except NotFound as error:
            raise wire.with_field(error, field) from None

    @staticmethod
    def _check_training_available() -> None:
        from agentic_labeling.training.yolo_jobs import training_available

        if not training_available():
            raise FailedPrecondition(
                "training needs the [train] extra on the registry's host: "
                "pip install 'agentic-labeling[train]' (ultralytics is AGPL-3.0)",
                reason="TRAINING_NOT_INSTALLED",
            )

    def _recorder(self) -> Any:
        from agentic_labeling.training.mlflow_runs import MlflowRecorder

        if self._mlflow_uri:
            return MlflowRecorder(self._mlflow_uri)
        return MlflowRecorder.embedded(self._data_dir)


def _epoch_stage(epoch: Any) -> str:
    """`epoch 3/50: box_loss 1.21 cls_loss 2.05 mAP50 0.312`."""
    shown = [f"{_short(k)} {v:.3g}" for k, v in [*epoch.losses.items(), *epoch.metrics.items()]]
    return f"epoch {epoch.epoch}/{epoch.epochs}: " + " ".join(shown)


def _short(name: str) -> str:
    # "train/box_loss" -> "box_loss"; "metrics/mAP50(B)" -> "mAP50(B)"
    return name.rsplit("/", 1)[-1]


def _run_params(job: _TrainingJob) -> dict[str, object]:
    run = job.run
    return {
        "dataset": format_name("datasets", run.dataset_id),
        "dataset_display_name": job.dataset.display_name,
        "split_seed": run.split_seed,
        "class_names": ",".join(run.class_names),
        "model": run.model,
        "task": run.task,
        "epochs": run.epochs,
        "image_size": run.image_size,
        "batch": run.batch,
        "device": run.device,
    }


def _write_manifest(job: _TrainingJob, data_yaml: Path) -> Path:
    """What the run trained on, beside the export: the dataset, its classes and splits."""
    dataset = job.dataset
    manifest = {
        "dataset": format_name("datasets", dataset.id),
        "display_name": dataset.display_name,
        "filter": dataset.filter,
        "class_names": list(dataset.class_names),
        "split_seed": dataset.seed,
        "split_ratios": asdict(dataset.ratios),
        "build_time": None if dataset.build_time is None else dataset.build_time.isoformat(),
        "splits": {
            str(s.split): {"images": s.image_count, "objects": s.object_count}
            for s in dataset.split_stats
        },
        "data_yaml": str(data_yaml),
    }
    path = job.work_dir / "dataset_manifest.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    return path


def _figures(result: Any) -> EvaluationFigures:
    return EvaluationFigures(
        map50=float(result.map50),
        map50_95=float(result.map50_95),
        per_class=tuple(
            ClassFigures(
                class_name=c.class_name,
                ap50=float(c.ap50),
                ap50_95=float(c.ap50_95),
                precision=float(c.precision),
                recall=float(c.recall),
                support=int(c.support),
            )
            for c in result.per_class
        ),
        confusion_labels=tuple(result.confusion_labels),
        confusion_counts=tuple(tuple(int(n) for n in row) for row in result.confusion_counts),
        image_count=int(result.image_count),
    )


async def _run_predictions(
    run: RunRecord, images: Sequence[Any], class_names: Sequence[str]
) -> list[Any]:
    """The run's detections on `images` as scored boxes of the dataset's classes (a class the
    dataset does not have cannot match its ground truth and is left out)."""
    from agentic_labeling.training.evaluation import ScoredBox
    from agentic_labeling.training.yolo_jobs import predict_yolo

    if not images:
        return []
    found = await predict_yolo(
        Path(run.weights_path),
        [Path(i.path) for i in images],
        image_size=run.image_size,
        min_confidence=_EVALUATION_MIN_CONFIDENCE,
        device=run.device,
    )
    wanted = set(class_names)
    boxes = []
    for image, detections in zip(images, found, strict=True):
        for d in detections:
            name = run.class_names[d.class_id] if 0 <= d.class_id < len(run.class_names) else ""
            if name in wanted:
                boxes.append(ScoredBox(image.image_id, name, d.x, d.y, d.w, d.h, d.score))
    return boxes


def _write_evaluation_files(directory: Path, figures: EvaluationFigures) -> list[Path]:
    """figures.json and confusion_matrix.png (matplotlib comes with the [train] extra)."""
    directory.mkdir(parents=True, exist_ok=True)
    data = asdict(figures)
    json_path = directory / "evaluation.json"
    json_path.write_text(
        json.dumps(data, indent=2, default=str).replace("NaN", "null"), encoding="utf-8"
    )
    paths = [json_path]
    with contextlib.suppress(ImportError):
        paths.append(_confusion_png(directory / "confusion_matrix.png", figures))
    return paths


def _confusion_png(path: Path, figures: EvaluationFigures) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    labels = list(figures.confusion_labels)
    size = max(4.0, 0.6 * len(labels) + 2)
    figure, axes = pyplot.subplots(figsize=(size, size))
    try:
        axes.imshow(figures.confusion_counts, cmap="Blues")
        axes.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        axes.set_yticks(range(len(labels)), labels)
        axes.set_xlabel("ground truth")
        axes.set_ylabel("predicted")
        for row, counts in enumerate(figures.confusion_counts):
            for column, count in enumerate(counts):
                axes.text(column, row, str(count), ha="center", va="center")
        figure.tight_layout()
        figure.savefig(path, dpi=100)
    finally:
        pyplot.close(figure)
    return path
