"""Evaluations: the figures of one scoring, stored once per request id, listed newest first
(all of them, or those of one run).

The figures are one jsonb document (mAP, per-class metrics, the confusion matrix, the image
count): they are read and written whole, never queried inside.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from agentic_labeling.registry.database import Database
from agentic_labeling.registry.query.keyset import Listing, SortField, fetch_page, plan_page
from agentic_labeling.registry.query.listing import OrderKey
from agentic_labeling.registry.query.sql_filters import QueryParams
from agentic_labeling.registry.values.records import Page
from agentic_labeling.registry.values.training_records import (
    ClassFigures,
    EvaluationFigures,
    EvaluationRecord,
    NewEvaluation,
)

__all__ = ["EVALUATION_LISTING", "EvaluationStore", "evaluation_name"]

EVALUATION_LISTING = Listing(
    resource="evaluations",
    filter_sql=None,
    sort_fields={"create_time": SortField(sql.SQL("e.create_time"), "timestamptz")},
    tiebreak=SortField(sql.SQL("e.id"), "uuid"),
    default_order=(OrderKey("create_time", descending=True),),
)

_COLUMNS = sql.SQL(
    "e.id, e.run_id, e.dataset_id, e.split, e.detection_model, e.figures, e.mlflow_run_id, "
    "e.create_time"
)


def evaluation_name(evaluation_id: UUID) -> str:
    """`evaluations/{uuid}`."""
    return f"evaluations/{evaluation_id}"


def _number(value: float) -> float | None:
    # JSON (and so jsonb) has no NaN: an undefined figure is stored as null.
    return None if math.isnan(value) else value


def _float(value: float | None) -> float:
    return math.nan if value is None else float(value)


def _figures_json(figures: EvaluationFigures) -> dict[str, Any]:
    data = asdict(figures)
    data["map50"] = _number(figures.map50)
    data["map50_95"] = _number(figures.map50_95)
    for entry in data["per_class"]:
        for key in ("ap50", "ap50_95", "precision", "recall"):
            entry[key] = _number(entry[key])
    return data


def _class_figures(data: Mapping[str, Any]) -> ClassFigures:
    return ClassFigures(
        class_name=str(data["class_name"]),
        ap50=_float(data["ap50"]),
        ap50_95=_float(data["ap50_95"]),
        precision=_float(data["precision"]),
        recall=_float(data["recall"]),
        support=int(data["support"]),
    )


def _figures(data: Mapping[str, Any]) -> EvaluationFigures:
    return EvaluationFigures(
        map50=_float(data["map50"]),
        map50_95=_float(data["map50_95"]),
        per_class=tuple(_class_figures(c) for c in data["per_class"]),
        confusion_labels=tuple(data["confusion_labels"]),
        confusion_counts=tuple(tuple(int(n) for n in row) for row in data["confusion_counts"]),
        image_count=int(data["image_count"]),
    )


def _record(row: Mapping[str, Any]) -> EvaluationRecord:
    return EvaluationRecord(
        id=row["id"],
        dataset_id=row["dataset_id"],
        split=row["split"],
        run_id=row["run_id"],
        detection_model=row["detection_model"],
        figures=_figures(row["figures"]),
        mlflow_run_id=row["mlflow_run_id"],
        create_time=row["create_time"],
    )


class EvaluationStore:
    """Reads and writes the `evaluations` table."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(
        self, new: NewEvaluation, *, evaluation_id: UUID, request_id: UUID | None
    ) -> EvaluationRecord:
        """The stored evaluation; with a `request_id` stored before, that earlier one."""
        async with self._db.connection() as conn:
            await conn.execute(
                "INSERT INTO evaluations (id, run_id, dataset_id, split, detection_model, "
                "figures, mlflow_run_id, request_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (request_id) DO NOTHING",
                (
                    evaluation_id,
                    new.run_id,
                    new.dataset_id,
                    new.split,
                    new.detection_model,
                    Jsonb(_figures_json(new.figures)),
                    new.mlflow_run_id,
                    request_id,
                ),
            )
            found = await self._find(conn, request_id=request_id, evaluation_id=evaluation_id)
        assert found is not None
        return found

    async def by_request(self, request_id: UUID) -> EvaluationRecord | None:
        """The evaluation a request with this id stored, if any."""
        async with self._db.connection() as conn:
            return await self._find(conn, request_id=request_id, evaluation_id=None)

    async def list(
        self, *, run_id: UUID | None = None, page_size: int = 0, page_token: str = ""
    ) -> Page[EvaluationRecord]:
        """Newest first, all or those of `run_id`; page_size 0 means 50, at most 1000."""
        params = QueryParams()
        parent = "" if run_id is None else str(run_id)
        plan = plan_page(
            EVALUATION_LISTING, params, page_size=page_size, page_token=page_token, parent=parent
        )
        where = None
        if run_id is not None:
            where = sql.SQL("e.run_id = {}").format(params.add(run_id, "uuid"))
        async with self._db.connection() as conn:
            rows, token = await fetch_page(
                conn, plan, params, columns=_COLUMNS, table=sql.SQL("evaluations e"), where=where
            )
        return Page(tuple(_record(r) for r in rows), token)

    @staticmethod
    async def _find(
        conn: Any, *, request_id: UUID | None, evaluation_id: UUID | None
    ) -> EvaluationRecord | None:
        query = sql.SQL(
            "SELECT {} FROM evaluations e WHERE (%s::uuid IS NOT NULL AND e.request_id = %s) "
            "OR e.id = %s"
        ).format(_COLUMNS)
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(query, (request_id, request_id, evaluation_id))
            row = await cursor.fetchone()
        return None if row is None else _record(row)
