"""MLflow runs for trainings and evaluations: params, per-epoch metrics, artifacts, status.

The embedded store is SQLite under the data directory (`default_tracking_uri`; MLflow 3.13+
refuses a plain file store unless told to), with artifacts in `{data_dir}/mlflow/artifacts`;
`mlflow ui --backend-store-uri sqlite:///{data_dir}/mlflow/mlflow.db` opens it. Any other
tracking URI (an MLflow server) works too; its server then decides where artifacts go.

mlflow is imported on first use only, so a registry that never trains never loads it. Its
calls block (SQLite, HTTP): an async caller runs them with `asyncio.to_thread`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

__all__ = [
    "EVALUATION_EXPERIMENT",
    "TRAINING_EXPERIMENT",
    "MlflowRecorder",
    "RecordedRun",
    "RunStatus",
    "default_artifact_root",
    "default_tracking_uri",
]

TRAINING_EXPERIMENT = "training"
EVALUATION_EXPERIMENT = "evaluation"
RunStatus = Literal["FINISHED", "FAILED", "KILLED"]
_STATUSES = ("FINISHED", "FAILED", "KILLED")
_MAX_PARAM_LENGTH = 6000  # MLflow refuses a longer param value
# MLflow's own telemetry: off before the first import (it decides when mlflow is imported).
_QUIET = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}


def default_tracking_uri(data_dir: Path) -> str:
    """The embedded store: `sqlite:///{data_dir}/mlflow/mlflow.db` (absolute path)."""
    return f"sqlite:///{Path(data_dir).resolve() / 'mlflow' / 'mlflow.db'}"


def default_artifact_root(data_dir: Path) -> Path:
    return Path(data_dir).resolve() / "mlflow" / "artifacts"


@dataclass(frozen=True)
class RecordedRun:
    """A run as MLflow holds it: what `alabel runs show` and the tests read back."""

    run_id: str
    experiment: str
    run_name: str
    status: str  # RUNNING, FINISHED, FAILED, KILLED
    params: dict[str, str]
    # metric -> [(step, value)] in step order: every epoch, not only the latest
    metrics: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)  # paths relative to the run's root
    artifact_uri: str = ""


def _param_value(value: Any) -> str:
    """Lists and mappings as JSON, the rest as text; cut to MLflow's limit."""
    text = json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)
    if len(text) > _MAX_PARAM_LENGTH:
        text = text[: _MAX_PARAM_LENGTH - 1] + "…"
    return text


class MlflowRecorder:
    """Writes runs into one MLflow store; one experiment per kind of run, created on demand.

    `artifact_root`: where a new experiment keeps its artifacts (a folder per experiment);
    None lets the tracking server decide (for a remote `--mlflow-uri`).
    """

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self._client: MlflowClient | None = None
        self._experiments: dict[str, str] = {}

    @classmethod
    def embedded(cls, data_dir: Path) -> MlflowRecorder:
        """The SQLite store under `data_dir`."""
        root = default_artifact_root(data_dir)
        root.mkdir(parents=True, exist_ok=True)
        return cls(default_tracking_uri(data_dir), root)

    @property
    def client(self) -> MlflowClient:
        if self._client is None:
            for name, value in _QUIET.items():
                os.environ.setdefault(name, value)
            from mlflow.tracking import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _experiment_id(self, name: str) -> str:
        if name not in self._experiments:
            found = self.client.get_experiment_by_name(name)
            if found is not None:
                self._experiments[name] = found.experiment_id
            else:
                location = (
                    (self.artifact_root / name).as_uri() if self.artifact_root is not None else None
                )
                self._experiments[name] = self.client.create_experiment(
                    name, artifact_location=location
                )
        return self._experiments[name]

    def start(self, experiment: str, run_name: str, params: Mapping[str, Any]) -> str:
        """A new RUNNING run with `params` logged; its run id."""
        from mlflow.entities import Param

        run = self.client.create_run(self._experiment_id(experiment), run_name=run_name)
        run_id: str = run.info.run_id
        if params:
            self.client.log_batch(
                run_id, params=[Param(key, _param_value(value)) for key, value in params.items()]
            )
        return run_id

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], step: int) -> None:
        """`metrics` at `step` (the epoch); non-finite values are kept, as MLflow keeps them."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        if metrics:
            self.client.log_batch(
                run_id,
                metrics=[Metric(key, float(value), now, step) for key, value in metrics.items()],
            )

    def log_artifacts(
        self, run_id: str, paths: Sequence[Path], artifact_path: str | None = None
    ) -> None:
        """Copy files (and folders, recursively) into the run's artifacts, under
        `artifact_path` when given."""
        for path in paths:
            if Path(path).is_dir():
                self.client.log_artifacts(run_id, str(path), artifact_path=artifact_path)
            else:
                self.client.log_artifact(run_id, str(path), artifact_path=artifact_path)

    def end(self, run_id: str, status: RunStatus) -> None:
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {', '.join(_STATUSES)}, got {status!r}")
        self.client.set_terminated(run_id, status=status)

    def read(self, run_id: str) -> RecordedRun:
        """Everything recorded on a run, every metric's full history included."""
        run = self.client.get_run(run_id)
        experiment = self.client.get_experiment(run.info.experiment_id)
        metrics = {
            key: sorted(
                (int(m.step), float(m.value)) for m in self.client.get_metric_history(run_id, key)
            )
            for key in run.data.metrics
        }
        return RecordedRun(
            run_id=run_id,
            experiment=experiment.name,
            run_name=run.info.run_name or "",
            status=str(run.info.status),
            params=dict(run.data.params),
            metrics=metrics,
            artifacts=self._artifact_paths(run_id, None),
            artifact_uri=str(run.info.artifact_uri),
        )

    def _artifact_paths(self, run_id: str, under: str | None) -> list[str]:
        found = []
        for info in self.client.list_artifacts(run_id, under):
            if info.is_dir:
                found.extend(self._artifact_paths(run_id, info.path))
            else:
                found.append(info.path)
        return sorted(found)
