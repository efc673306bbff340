"""TrainingService's wire side: request fields checked into plain values, and run and evaluation
records turned into TrainingRun and Evaluation messages. No I/O.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from uuid import UUID

from agentic_labeling.errors import FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.values.dataset_records import DatasetRecord, DatasetState, Split
from agentic_labeling.registry.values.records import ObjectRecord, Page
from agentic_labeling.registry.values.resource_names import format_name, parse_name, parse_uuid
from agentic_labeling.registry.values.training_records import (
    EvaluationRecord,
    RunRecord,
    RunState,
)
from agentic_labeling.servers.registry_conversions import (
    bbox_message,
    object_message,
    timestamp_message,
)
from agentic_labeling.training.review_ranking import (
    DEFAULT_DECISION_THRESHOLD,
    DEFAULT_SUGGESTIONS,
    MAX_SUGGESTIONS,
    ReviewWeights,
    Suggestion,
)
from agentic_labeling.v1 import training_pb2

__all__ = [
    "DEFAULT_BATCH",
    "DEFAULT_IMAGE_SIZE",
    "TrainingNumbers",
    "check_built",
    "check_splits_to_train",
    "decision_threshold",
    "evaluation_message",
    "iou_threshold",
    "list_evaluations_response",
    "list_runs_response",
    "model_name",
    "optional_request_id",
    "required_name",
    "review_weights",
    "run_message",
    "split",
    "suggestion_count",
    "suggestions_response",
    "training_numbers",
    "with_field",
]

DEFAULT_IMAGE_SIZE = 640
DEFAULT_BATCH = 16
MAX_EPOCHS = 10_000
MIN_IMAGE_SIZE, MAX_IMAGE_SIZE = 32, 8192
MAX_BATCH = 1024
# A Triton model name: a directory name in the model repository.
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")

_STATE_MESSAGE = {
    RunState.QUEUED: training_pb2.RUN_STATE_QUEUED,
    RunState.RUNNING: training_pb2.RUN_STATE_RUNNING,
    RunState.SUCCEEDED: training_pb2.RUN_STATE_SUCCEEDED,
    RunState.FAILED: training_pb2.RUN_STATE_FAILED,
    RunState.CANCELLED: training_pb2.RUN_STATE_CANCELLED,
}


@dataclass(frozen=True)
class TrainingNumbers:
    """StartTraining's hyper-parameters with their defaults applied."""

    epochs: int
    image_size: int
    batch: int


def with_field(error: NotFound, field: str) -> NotFound:
    """`error` naming the request field that named the missing resource."""
    error.metadata["field"] = field
    return error


def required_name(text: str, collection: str, field: str) -> UUID:
    """The UUID of a required `collection/{uuid}` name; InvalidArgument naming `field`."""
    if not text:
        raise InvalidArgument(f"{field} is required ({collection}/{{uuid}})", field=field)
    return parse_name(text, collection, field=field)  # type: ignore[arg-type]


def optional_request_id(text: str) -> UUID | None:
    return parse_uuid(text, field="request_id") if text else None


def training_numbers(request: training_pb2.StartTrainingRequest) -> TrainingNumbers:
    """epochs 1..10000; image_size 0 (640) or 32..8192 in steps of 32; batch -1 (chosen by
    ultralytics from the device's memory), 0 (16) or 1..1024."""
    if not 1 <= request.epochs <= MAX_EPOCHS:
        raise InvalidArgument(
            f"epochs must be between 1 and {MAX_EPOCHS}, got {request.epochs}", field="epochs"
        )
    image_size = request.image_size or DEFAULT_IMAGE_SIZE
    if not MIN_IMAGE_SIZE <= image_size <= MAX_IMAGE_SIZE or image_size % 32:
        raise InvalidArgument(
            f"image_size must be 0 (640) or a multiple of 32 between {MIN_IMAGE_SIZE} and "
            f"{MAX_IMAGE_SIZE}, got {request.image_size}",
            field="image_size",
        )
    batch = request.batch or DEFAULT_BATCH
    if batch != -1 and not 1 <= batch <= MAX_BATCH:
        raise InvalidArgument(
            f"batch must be -1 (automatic), 0 ({DEFAULT_BATCH}) or between 1 and {MAX_BATCH}, "
            f"got {request.batch}",
            field="batch",
        )
    return TrainingNumbers(request.epochs, image_size, batch)


def check_built(dataset: DatasetRecord) -> None:
    if dataset.state != DatasetState.READY:
        raise FailedPrecondition(
            f"{format_name('datasets', dataset.id)} is {dataset.state}; build it first "
            "(alabel datasets build)",
            reason="DATASET_NOT_BUILT",
            metadata={"field": "dataset"},
        )


def check_splits_to_train(dataset: DatasetRecord) -> None:
    """ultralytics trains on the train split and validates every epoch on the val split."""
    counts = {s.split: s.image_count for s in dataset.split_stats}
    for needed in (Split.TRAIN, Split.VAL):
        if counts.get(needed, 0) == 0:
            raise FailedPrecondition(
                f"the {needed} split of {format_name('datasets', dataset.id)} has no images; "
                "training needs images in train and val (change the split ratios or add "
                "objects, then build again)",
                reason="EMPTY_SPLIT",
                metadata={"field": "dataset", "split": str(needed)},
            )


def split(text: str) -> Split:
    """ "train", "val" or "test"; empty: "val"."""
    if not text:
        return Split.VAL
    try:
        return Split(text)
    except ValueError:
        raise InvalidArgument(
            f"split must be train, val or test, got {text!r}", field="split"
        ) from None


def iou_threshold(value: float) -> float:
    """0: 0.5; else in (0, 1]."""
    if value == 0:
        return 0.5
    if not (math.isfinite(value) and 0 < value <= 1):
        raise InvalidArgument(
            f"iou_threshold must be in (0, 1] (0: 0.5), got {value!r}", field="iou_threshold"
        )
    return value


def model_name(text: str) -> str:
    """A Triton model name; empty: "yolo"."""
    name = text or "yolo"
    if not _MODEL_NAME.fullmatch(name):
        raise InvalidArgument(
            f"model_name must be letters, digits, '_', '-' or '.', starting with a letter or "
            f"digit (at most 128), got {text!r}",
            field="model_name",
        )
    return name


def run_message(run: RunRecord) -> training_pb2.TrainingRun:
    message = training_pb2.TrainingRun(
        name=format_name("runs", run.id),
        dataset=format_name("datasets", run.dataset_id),
        model=run.model,
        epochs=run.epochs,
        image_size=run.image_size,
        device=run.device,
        state=_STATE_MESSAGE[run.state],
        metrics=dict(run.metrics),
        weights_uri=run.weights_path,
        mlflow_run_id=run.mlflow_run_id,
        create_time=timestamp_message(run.create_time),
        batch=run.batch,
        task=run.task,
        class_names=run.class_names,
        epochs_completed=run.epochs_completed,
        operation=run.operation,
        error_message=run.error_message,
    )
    if run.end_time is not None:
        message.end_time.CopyFrom(timestamp_message(run.end_time))
    return message


def list_runs_response(page: Page[RunRecord]) -> training_pb2.ListRunsResponse:
    return training_pb2.ListRunsResponse(
        runs=[run_message(r) for r in page.items], next_page_token=page.next_page_token
    )


def evaluation_message(record: EvaluationRecord) -> training_pb2.Evaluation:
    figures = record.figures
    return training_pb2.Evaluation(
        name=format_name("evaluations", record.id),
        dataset=format_name("datasets", record.dataset_id),
        split=record.split,
        map50=figures.map50,
        map50_95=figures.map50_95,
        per_class=[
            training_pb2.ClassMetrics(
                class_name=c.class_name,
                ap50=c.ap50,
                ap50_95=c.ap50_95,
                precision=c.precision,
                recall=c.recall,
                support=c.support,
            )
            for c in figures.per_class
        ],
        confusion_matrix=training_pb2.ConfusionMatrix(
            labels=figures.confusion_labels,
            counts=[n for row in figures.confusion_counts for n in row],
        ),
        run="" if record.run_id is None else format_name("runs", record.run_id),
        detection_model=record.detection_model,
        mlflow_run_id=record.mlflow_run_id,
        create_time=timestamp_message(record.create_time),
        image_count=figures.image_count,
    )


def list_evaluations_response(
    page: Page[EvaluationRecord],
) -> training_pb2.ListEvaluationsResponse:
    return training_pb2.ListEvaluationsResponse(
        evaluations=[evaluation_message(e) for e in page.items],
        next_page_token=page.next_page_token,
    )


def suggestion_count(count: int) -> int:
    """0: 50; else 1..1000."""
    if count == 0:
        return DEFAULT_SUGGESTIONS
    if not 1 <= count <= MAX_SUGGESTIONS:
        raise InvalidArgument(
            f"count must be 0 ({DEFAULT_SUGGESTIONS}) or between 1 and {MAX_SUGGESTIONS}, "
            f"got {count}",
            field="count",
        )
    return count


def decision_threshold(value: float) -> float:
    """0: 0.5; else in (0, 1)."""
    if value == 0:
        return DEFAULT_DECISION_THRESHOLD
    if not (math.isfinite(value) and 0 < value < 1):
        raise InvalidArgument(
            f"decision_threshold must be in (0, 1) (0: {DEFAULT_DECISION_THRESHOLD}), "
            f"got {value!r}",
            field="decision_threshold",
        )
    return value


def review_weights(strategy: training_pb2.ReviewStrategy) -> ReviewWeights:
    """The request's weights, checked (finite, >= 0; `strategy.<signal>` named) but not yet
    normalised: rank_for_review does that."""
    weights = ReviewWeights(strategy.uncertainty, strategy.diversity, strategy.disagreement)
    weights.normalised()  # raises for a negative or non-finite weight
    return weights


def suggestions_response(
    suggestions: Sequence[Suggestion], objects: Mapping[UUID, ObjectRecord]
) -> training_pb2.SuggestForReviewResponse:
    """Each suggestion with its whole object (as GetObject returns it) or, for an image where
    the trained model found an object no auto-label covers, that box and class."""
    messages = []
    for s in suggestions:
        message = training_pb2.ReviewSuggestion(
            score=s.score,
            reasons=s.reasons,
            source=format_name("sources", s.source_id),
            frame_index=s.frame_index,
        )
        if s.object_id is not None:
            message.object.CopyFrom(object_message(objects[s.object_id]))
        elif s.missed_box is not None:
            message.missed_box.CopyFrom(bbox_message(s.missed_box))
            message.missed_class_name = s.missed_class_name
        messages.append(message)
    return training_pb2.SuggestForReviewResponse(suggestions=messages)
