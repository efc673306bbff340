"""Training runs: created QUEUED (once per request id), moved through RUNNING to an end state
as the training goes, read and listed newest first.

    run, created = await store.create(new, run_id=uuid4(), request_id=request_id)
    await store.set_operation(run.id, "operations/...")
    await store.start(run.id)                                # QUEUED -> RUNNING
    await store.record_epoch(run.id, 3, {"metrics/mAP50(B)": 0.2})
    await store.finish(run.id, RunState.SUCCEEDED, weights_path=..., metrics=...)

An unfinished run belongs to the registry process that trains it; `fail_unfinished` at
start-up ends those a stopped process left QUEUED or RUNNING.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from agentic_labeling.errors import DomainError
from agentic_labeling.registry.database import Database
from agentic_labeling.registry.query.keyset import Listing, SortField, fetch_page, plan_page
from agentic_labeling.registry.query.listing import OrderKey
from agentic_labeling.registry.query.sql_filters import QueryParams
from agentic_labeling.registry.values.records import Page
from agentic_labeling.registry.values.resource_names import not_found
from agentic_labeling.registry.values.training_records import NewRun, RunRecord, RunState

__all__ = ["RUN_LISTING", "TrainingRunStore", "run_name"]

RUN_LISTING = Listing(
    resource="runs",
    filter_sql=None,
    sort_fields={"create_time": SortField(sql.SQL("r.create_time"), "timestamptz")},
    tiebreak=SortField(sql.SQL("r.id"), "uuid"),
    default_order=(OrderKey("create_time", descending=True),),
)

_COLUMNS = sql.SQL(
    "r.id, r.dataset_id, r.model, r.task, r.epochs, r.image_size, r.batch, r.device, r.state, "
    "r.metrics, r.weights_path, r.mlflow_run_id, r.class_names, r.epochs_completed, "
    "r.operation, r.error_message, r.split_seed, r.create_time, r.end_time"
)


def run_name(run_id: UUID) -> str:
    """`runs/{uuid}`."""
    return f"runs/{run_id}"


def run_not_found(run_id: UUID, field: str = "name") -> DomainError:
    return not_found("training run", run_name(run_id), field)


def _record(row: Mapping[str, Any]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        dataset_id=row["dataset_id"],
        model=row["model"],
        task=row["task"],
        epochs=row["epochs"],
        image_size=row["image_size"],
        batch=row["batch"],
        device=row["device"],
        state=RunState(row["state"]),
        metrics={str(k): float(v) for k, v in (row["metrics"] or {}).items()},
        weights_path=row["weights_path"],
        mlflow_run_id=row["mlflow_run_id"],
        class_names=tuple(row["class_names"]),
        epochs_completed=row["epochs_completed"],
        operation=row["operation"],
        error_message=row["error_message"],
        split_seed=int(row["split_seed"]),
        create_time=row["create_time"],
        end_time=row["end_time"],
    )


class TrainingRunStore:
    """Reads and writes the `training_runs` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, new: NewRun, *, run_id: UUID, request_id: UUID | None, owner: str
    ) -> tuple[RunRecord, bool]:
        """The run QUEUED, and True; or the run an earlier request with `request_id` created,
        and False (a retry starts nothing twice)."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "INSERT INTO training_runs (id, dataset_id, model, task, epochs, image_size, "
                "batch, device, class_names, split_seed, request_id, owner) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (request_id) DO NOTHING RETURNING id",
                (
                    run_id,
                    new.dataset_id,
                    new.model,
                    new.task,
                    new.epochs,
                    new.image_size,
                    new.batch,
                    new.device,
                    list(new.class_names),
                    new.split_seed,
                    request_id,
                    owner,
                ),
            )
            created = await cursor.fetchone() is not None
            if created:
                return await self._get(conn, "r.id = %s", run_id), True
            return await self._get(conn, "r.request_id = %s", request_id), False

    async def get(self, run_id: UUID) -> RunRecord:
        async with self._db.connection() as conn:
            return await self._get(conn, "r.id = %s", run_id)

    async def list(self, *, page_size: int = 0, page_token: str = "") -> Page[RunRecord]:
        """Runs newest first; page_size 0 means 50, at most 1000."""
        params = QueryParams()
        plan = plan_page(RUN_LISTING, params, page_size=page_size, page_token=page_token)
        async with self._db.connection() as conn:
            rows, token = await fetch_page(
                conn, plan, params, columns=_COLUMNS, table=sql.SQL("training_runs r")
            )
        return Page(tuple(_record(r) for r in rows), token)

    async def set_operation(self, run_id: UUID, operation: str) -> None:
        await self._update(run_id, "operation = %s", operation)

    async def start(self, run_id: UUID) -> RunRecord:
        """QUEUED -> RUNNING."""
        return await self._update(run_id, "state = 'RUNNING'", state_was="QUEUED")

    async def set_mlflow_run(self, run_id: UUID, mlflow_run_id: str) -> None:
        await self._update(run_id, "mlflow_run_id = %s", mlflow_run_id)

    async def record_epoch(
        self, run_id: UUID, epochs_completed: int, metrics: Mapping[str, float]
    ) -> None:
        """Epochs done so far and the latest metrics, while RUNNING."""
        await self._update(
            run_id,
            "epochs_completed = %s, metrics = %s",
            epochs_completed,
            Jsonb(dict(metrics)),
            state_was="RUNNING",
        )

    async def finish(
        self,
        run_id: UUID,
        state: RunState,
        *,
        metrics: Mapping[str, float] | None = None,
        weights_path: str = "",
        epochs_completed: int | None = None,
        error_message: str = "",
    ) -> RunRecord:
        """End an unfinished run in `state`; a run already ended is left as it is."""
        assert state.ended
        async with self._db.connection() as conn:
            await conn.execute(
                "UPDATE training_runs SET state = %s, end_time = clock_timestamp(), "
                "metrics = COALESCE(%s, metrics), weights_path = %s, "
                "epochs_completed = COALESCE(%s, epochs_completed), error_message = %s "
                "WHERE id = %s AND state IN ('QUEUED', 'RUNNING')",
                (
                    str(state),
                    None if metrics is None else Jsonb(dict(metrics)),
                    weights_path,
                    epochs_completed,
                    error_message,
                    run_id,
                ),
            )
            return await self._get(conn, "r.id = %s", run_id)

    async def fail_unfinished(self, owner: str, message: str) -> tuple[UUID, ...]:
        """End every QUEUED or RUNNING run of `owner` as FAILED with `message`; their ids.

        Call at start-up only: runs are trained by the registry instance that started them,
        so an unfinished one of this instance then belongs to a predecessor that stopped."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "UPDATE training_runs SET state = 'FAILED', end_time = clock_timestamp(), "
                "error_message = %s WHERE owner = %s AND state IN ('QUEUED', 'RUNNING') "
                "RETURNING id",
                (message, owner),
            )
            return tuple(row[0] for row in await cursor.fetchall())

    async def _update(
        self, run_id: UUID, assignments: str, *values: object, state_was: str | None = None
    ) -> RunRecord:
        condition = "id = %s" if state_was is None else "id = %s AND state = %s"
        arguments = (*values, run_id) if state_was is None else (*values, run_id, state_was)
        async with self._db.connection() as conn:
            await conn.execute(
                f"UPDATE training_runs SET {assignments} WHERE {condition}",
                arguments,
            )
            return await self._get(conn, "r.id = %s", run_id)

    @staticmethod
    async def _get(conn: Any, condition: str, value: object) -> RunRecord:
        query = sql.SQL("SELECT {} FROM training_runs r WHERE {}").format(
            _COLUMNS,
            sql.SQL(condition),
        )
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, (value,))
            row = await cursor.fetchone()
        if row is None:
            raise run_not_found(value if isinstance(value, UUID) else UUID(int=0))
        return _record(row)
