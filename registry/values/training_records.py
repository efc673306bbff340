"""The records of training runs and evaluations: plain frozen dataclasses, no protobuf, no SQL.

`metadata.training_runs.TrainingRunStore` and `metadata.evaluations.EvaluationStore` take and
return these; the gRPC layer converts them to `agentic_labeling.v1.TrainingRun` and
`Evaluation` in one place (servers/training_conversions.py). Enum values are the ones stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

__all__ = [
    "ClassFigures",
    "EvaluationFigures",
    "EvaluationRecord",
    "NewEvaluation",
    "NewRun",
    "RunRecord",
    "RunState",
]


class RunState(StrEnum):
    QUEUED = "QUEUED"  # waiting for its device
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"  # weights and metrics are stored
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def ended(self) -> bool:
        return self not in (RunState.QUEUED, RunState.RUNNING)


@dataclass(frozen=True)
class NewRun:
    """A checked training request: the dataset is built, the spec and numbers are valid."""

    dataset_id: UUID
    model: str
    task: str  # "detect" | "segment"
    epochs: int
    image_size: int
    batch: int
    device: str
    class_names: tuple[str, ...]
    split_seed: int


@dataclass(frozen=True)
class RunRecord:
    """A training run as stored. `weights_path` is "" until the run succeeds."""

    id: UUID
    dataset_id: UUID
    model: str
    task: str
    epochs: int
    image_size: int
    batch: int
    device: str
    state: RunState
    metrics: Mapping[str, float]
    weights_path: str
    mlflow_run_id: str
    class_names: tuple[str, ...]
    epochs_completed: int
    operation: str
    error_message: str
    split_seed: int
    create_time: datetime
    end_time: datetime | None


@dataclass(frozen=True)
class ClassFigures:
    class_name: str
    ap50: float
    ap50_95: float
    precision: float
    recall: float
    support: int


@dataclass(frozen=True)
class EvaluationFigures:
    """What an evaluation found. `confusion_counts` rows are predictions and columns ground
    truth, over `confusion_labels` (the class names, then "background")."""

    map50: float
    map50_95: float
    per_class: tuple[ClassFigures, ...]
    confusion_labels: tuple[str, ...]
    confusion_counts: tuple[tuple[int, ...], ...]
    image_count: int


@dataclass(frozen=True)
class NewEvaluation:
    """Exactly one of `run_id` and `detection_model` is set."""

    dataset_id: UUID
    split: str
    run_id: UUID | None
    detection_model: str
    figures: EvaluationFigures
    mlflow_run_id: str = ""


@dataclass(frozen=True)
class EvaluationRecord:
    id: UUID
    dataset_id: UUID
    split: str
    run_id: UUID | None
    detection_model: str
    figures: EvaluationFigures
    mlflow_run_id: str
    create_time: datetime
