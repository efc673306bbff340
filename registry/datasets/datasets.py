"""Datasets: create (a definition), get, list, delete, build (snapshot the membership and assign
splits) and read the built membership image by image.

A build is three steps, so that BUILDING is visible to others while the snapshot runs:

    await store.begin_build(dataset_id)      # quick checks, state BUILDING, committed
    try:
        dataset = await store.build(dataset_id)   # one transaction; READY at its commit
    except Exception:
        await store.fail_build(dataset_id)   # state FAILED; the previous membership stays
        raise

`build` takes one REPEATABLE READ snapshot: the objects that match the dataset's filter and
whose category is one of its classes (names and synonyms resolved again at build time; class id
= index in class_names), grouped by source or by frame, split by `dataset_splits.assign_splits`,
and written as `dataset_images` / `dataset_objects` in place of the previous membership. A build
that fails writes nothing. A process that dies mid-build leaves BUILDING behind:
`fail_stale_builds` turns those into FAILED.

The membership follows the registry afterwards: a deleted object, frame or source leaves every
dataset (foreign keys ON DELETE CASCADE). An image whose objects were all deleted is no longer
read or counted (its image number is not reused).
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from psycopg.rows import dict_row

from agentic_labeling.errors import (
    AlreadyExists,
    Conflict,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
)
from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.datasets.dataset_splits import SplitGroup, assign_splits
from agentic_labeling.registry.metadata.categories import resolve_category_names
from agentic_labeling.registry.query.filtering import parse_filter
from agentic_labeling.registry.query.keyset import Listing, SortField, fetch_page, plan_page
from agentic_labeling.registry.query.listing import OrderKey
from agentic_labeling.registry.query.sql_filters import OBJECT_FILTER_SQL, QueryParams, where_clause
from agentic_labeling.registry.values.dataset_records import (
    DEFAULT_SPLIT_RATIOS,
    SPLITS,
    DatasetImage,
    DatasetObject,
    DatasetRecord,
    DatasetState,
    NewDataset,
    Split,
    SplitGrouping,
    SplitRatios,
    SplitStats,
)
from agentic_labeling.registry.values.input_checks import MAX_NAME_LENGTH, check_name, check_text
from agentic_labeling.registry.values.records import BoundingBox, Page, category_name_key
from agentic_labeling.registry.values.resource_names import not_found

__all__ = [
    "DATASET_LISTING",
    "DEFAULT_IMAGE_BATCH",
    "MAX_CLASSES",
    "MAX_IMAGE_BATCH",
    "DatasetStore",
    "dataset_name",
]

MAX_CLASSES = 1000
DEFAULT_IMAGE_BATCH = 500
MAX_IMAGE_BATCH = 10_000
# How far the ratios may sum from 1 (they are stored normalised).
_RATIO_TOLERANCE = 1e-6
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1

# Newest first: a dataset created while someone pages lands before their cursor and never
# shifts the pages they have not read yet.
DATASET_LISTING = Listing(
    resource="datasets",
    filter_sql=None,
    sort_fields={"create_time": SortField(sql.SQL("d.create_time"), "timestamptz")},
    tiebreak=SortField(sql.SQL("d.id"), "uuid"),
    default_order=(OrderKey("create_time", descending=True),),
)

_DATASET_COLUMNS = sql.SQL(
    "d.id, d.display_name, d.filter, d.class_names, d.train_ratio, d.val_ratio, d.test_ratio, "
    "d.seed, d.split_grouping, d.state, d.create_time, d.build_time"
)


def dataset_name(dataset_id: UUID) -> str:
    """`datasets/{uuid}`."""
    return f"datasets/{dataset_id}"


def _not_found(dataset_id: UUID, field: str = "name") -> DomainError:
    return not_found("dataset", dataset_name(dataset_id), field)


# --- Checks of a new dataset --------------------------------------------------------------------


@dataclass(frozen=True)
class _CheckedDataset:
    display_name: str
    class_names: tuple[str, ...]
    filter: str
    ratios: SplitRatios
    seed: int
    grouping: SplitGrouping


def _check_ratios(ratios: SplitRatios) -> SplitRatios:
    """All zero: the default; else each in [0, 1], summing to 1 (within 1e-6), normalised."""
    field = "dataset.split_ratios"
    values = ratios.as_tuple()
    shown = f"train {values[0]!r}, val {values[1]!r}, test {values[2]!r}"
    if not all(isinstance(v, int | float) and math.isfinite(v) for v in values):
        raise InvalidArgument(f"ratios must be finite numbers, got {shown}", field=field)
    if all(v == 0 for v in values):
        return DEFAULT_SPLIT_RATIOS
    if not all(0 <= v <= 1 for v in values):
        raise InvalidArgument(f"each ratio must be between 0 and 1, got {shown}", field=field)
    total = math.fsum(values)
    if abs(total - 1) > _RATIO_TOLERANCE:
        raise InvalidArgument(f"ratios must sum to 1, got {total!r} ({shown})", field=field)
    return SplitRatios(*(float(v) / total for v in values))


def _check_filter(text: str, field: str = "dataset.filter") -> None:
    """Parse the filter as ListObjects would, and build its SQL (resource names are checked
    there); InvalidArgument naming `field`."""
    check_text(text, field)
    try:
        where_clause(parse_filter(text, OBJECT_FILTER_SQL.schema), OBJECT_FILTER_SQL, QueryParams())
    except InvalidArgument as error:
        raise InvalidArgument(
            error.message, field=field, reason=error.reason, metadata=error.metadata
        ) from None


def _check_new_dataset(new: NewDataset) -> _CheckedDataset:
    if not new.display_name.strip():
        raise InvalidArgument("a dataset needs a display_name", field="dataset.display_name")
    check_text(new.display_name, "dataset.display_name", max_length=MAX_NAME_LENGTH)
    if isinstance(new.class_names, str) or not new.class_names:
        raise InvalidArgument("name at least one class", field="dataset.class_names")
    if len(new.class_names) > MAX_CLASSES:
        raise InvalidArgument(
            f"at most {MAX_CLASSES} classes, got {len(new.class_names)}",
            field="dataset.class_names",
        )
    for i, name in enumerate(new.class_names):
        check_name(name, f"dataset.class_names[{i}]")
    _check_filter(new.filter)
    if isinstance(new.seed, bool) or not isinstance(new.seed, int):
        raise InvalidArgument(f"seed must be an integer, got {new.seed!r}", field="dataset.seed")
    if not _INT64_MIN <= new.seed <= _INT64_MAX:
        raise InvalidArgument("seed must fit in 64 bits (int64)", field="dataset.seed")
    try:
        grouping = SplitGrouping(new.grouping)
    except ValueError:
        raise InvalidArgument(
            f"grouping must be SOURCE or FRAME, got {new.grouping!r}", field="dataset.grouping"
        ) from None
    return _CheckedDataset(
        display_name=new.display_name,
        class_names=tuple(new.class_names),
        filter=new.filter,
        ratios=_check_ratios(new.ratios),
        seed=new.seed,
        grouping=grouping,
    )


async def _resolve_classes(
    conn: Connection, class_names: Sequence[str], *, at_build: bool
) -> list[UUID]:
    """The category of each class name (name or synonym, any case), in class-id order.

    A name no category has, or two names of one category, is InvalidArgument naming
    `dataset.class_names[i]` on create (`at_build=False`) and FailedPrecondition at build time
    (the categories changed since).
    """
    keys = [category_name_key(name) for name in class_names]
    found = await resolve_category_names(conn, set(keys))
    category_ids: list[UUID] = []
    for i, (name, key) in enumerate(zip(class_names, keys, strict=True)):
        field = f"dataset.class_names[{i}]"
        category_id = found.get(key)
        if category_id is None:
            message = f"no category is named {name!r} (class {i}; names and synonyms count)"
        elif category_id in category_ids:
            j = category_ids.index(category_id)
            message = (
                f"{name!r} (class {i}) and {class_names[j]!r} (class {j}) name one category; "
                "each class must be a different category"
            )
        else:
            category_ids.append(category_id)
            continue
        if at_build:
            raise FailedPrecondition(
                message + "; the categories changed since the dataset was defined",
                reason="DATASET_CLASS_UNRESOLVED",
                metadata={"class_name": name, "class_id": str(i)},
            )
        raise InvalidArgument(message, field=field)
    return category_ids


# --- Reading datasets ---------------------------------------------------------------------------


def _record_from_row(row: Mapping[str, Any], stats: tuple[SplitStats, ...]) -> DatasetRecord:
    return DatasetRecord(
        id=row["id"],
        display_name=row["display_name"],
        filter=row["filter"],
        class_names=tuple(row["class_names"]),
        ratios=SplitRatios(row["train_ratio"], row["val_ratio"], row["test_ratio"]),
        seed=row["seed"],
        grouping=SplitGrouping(row["split_grouping"]),
        state=DatasetState(row["state"]),
        create_time=row["create_time"],
        build_time=row["build_time"],
        split_stats=stats,
    )


async def _records(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> list[DatasetRecord]:
    """Records for dataset rows, with the split stats of those that have a membership."""
    built = [row["id"] for row in rows if row["build_time"] is not None]
    objects: dict[tuple[UUID, str], int] = {}
    images: dict[tuple[UUID, str], int] = {}
    per_class: dict[tuple[UUID, str, int], int] = {}
    if built:
        cursor = await conn.execute(
            "SELECT dataset_id, split, class_id, count(*), count(DISTINCT image_number) "
            "FROM dataset_objects WHERE dataset_id = ANY(%s::uuid[]) "
            "GROUP BY GROUPING SETS ((dataset_id, split), (dataset_id, split, class_id))",
            (built,),
        )
        for dataset_id, split, class_id, object_count, image_count in await cursor.fetchall():
            if class_id is None:
                objects[dataset_id, split] = object_count
                images[dataset_id, split] = image_count
            else:
                per_class[dataset_id, split, class_id] = object_count
    records = []
    for row in rows:
        stats: tuple[SplitStats, ...] = ()
        if row["build_time"] is not None:
            key = row["id"]
            stats = tuple(
                SplitStats(
                    split=split,
                    image_count=images.get((key, split), 0),
                    object_count=objects.get((key, split), 0),
                    objects_per_class={
                        name: per_class.get((key, split, i), 0)
                        for i, name in enumerate(row["class_names"])
                    },
                )
                for split in SPLITS
            )
        records.append(_record_from_row(row, stats))
    return records


async def _load(conn: Connection, dataset_id: UUID) -> DatasetRecord:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            sql.SQL("SELECT {} FROM datasets d WHERE d.id = %s").format(_DATASET_COLUMNS),
            (dataset_id,),
        )
        row = await cursor.fetchone()
    if row is None:
        raise _not_found(dataset_id)
    return (await _records(conn, [row]))[0]


# --- Building -----------------------------------------------------------------------------------


def _member_condition(
    filter_text: str, category_ids: Sequence[UUID], params: QueryParams
) -> sql.Composable:
    """Objects (`o`) that match the stored filter and belong to one of the classes."""
    try:
        expr = parse_filter(filter_text, OBJECT_FILTER_SQL.schema)
        condition = where_clause(expr, OBJECT_FILTER_SQL, params)
    except InvalidArgument as error:  # a filter stored by an older version that no longer fits
        raise FailedPrecondition(
            f"the dataset's filter cannot be applied: {error.message}",
            reason="DATASET_FILTER_INVALID",
        ) from None
    return sql.SQL("({} AND o.category_id = ANY({}::uuid[]))").format(
        condition, params.add(list(category_ids))
    )


def _group_key(source_id: UUID, frame_index: int, grouping: SplitGrouping) -> str:
    if grouping is SplitGrouping.SOURCE:
        return str(source_id)
    return f"{source_id}/{frame_index}"


def _nothing_matches(dataset_id: UUID, filter_text: str) -> FailedPrecondition:
    shown = f"filter {filter_text!r}" if filter_text.strip() else "no filter"
    return FailedPrecondition(
        f"no objects match {dataset_name(dataset_id)} ({shown}, objects of its classes only); "
        "nothing was built",
        reason="DATASET_EMPTY",
    )


class DatasetStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewDataset, *, dataset_id: UUID | None = None) -> DatasetRecord:
        """A new dataset in state DRAFT; nothing is copied until it is built.

        InvalidArgument naming the field for a missing display_name, no classes, a class name no
        category has or two names of one category (`dataset.class_names[i]`), bad ratios
        (`dataset.split_ratios`; all zero means 0.8 / 0.1 / 0.1) or a filter ListObjects would
        refuse (`dataset.filter`). AlreadyExists when `dataset_id` is taken.
        """
        checked = _check_new_dataset(new)
        new_id = dataset_id or uuid4()

        async def work(conn: Connection) -> DatasetRecord:
            await _resolve_classes(conn, checked.class_names, at_build=False)
            cursor = await conn.execute(
                "INSERT INTO datasets (id, display_name, filter, class_names, train_ratio, "
                "val_ratio, test_ratio, seed, split_grouping) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                (
                    new_id,
                    checked.display_name,
                    checked.filter,
                    list(checked.class_names),
                    *checked.ratios.as_tuple(),
                    checked.seed,
                    checked.grouping.value,
                ),
            )
            if await cursor.fetchone() is None:
                name = dataset_name(new_id)
                raise AlreadyExists(
                    f"{name} exists", metadata={"field": "dataset_id", "existing": name}
                )
            return await _load(conn, new_id)

        return await self._db.transact(work)

    async def get(self, dataset_id: UUID) -> DatasetRecord:
        """The dataset with its split stats (none before the first build)."""
        return await self._db.transact(lambda conn: _load(conn, dataset_id), snapshot=True)

    async def list(self, *, page_size: int = 0, page_token: str = "") -> Page[DatasetRecord]:
        """Datasets newest first (create_time, then id, descending); page_size 0 means 50, at
        most 1000; tokens are opaque and stay valid while datasets are added or deleted."""
        params = QueryParams()
        plan = plan_page(DATASET_LISTING, params, page_size=page_size, page_token=page_token)

        async def work(conn: Connection) -> Page[DatasetRecord]:
            rows, token = await fetch_page(
                conn, plan, params, columns=_DATASET_COLUMNS, table=sql.SQL("datasets d")
            )
            return Page(tuple(await _records(conn, rows)), token)

        return await self._db.transact(work, snapshot=True)

    async def delete(self, dataset_id: UUID) -> None:
        """Delete the dataset and its membership (the objects are kept). A running build's
        transaction holds the row: the delete waits for it."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "DELETE FROM datasets WHERE id = %s RETURNING id", (dataset_id,)
            )
            if await cursor.fetchone() is None:
                raise _not_found(dataset_id)

    async def begin_build(self, dataset_id: UUID) -> DatasetRecord:
        """Check what can be checked quickly and mark the dataset BUILDING (committed).

        FailedPrecondition when a build is running, when a class name no longer names a
        category (or two name one), or when no object matches; the state is then unchanged.
        """

        async def work(conn: Connection) -> DatasetRecord:
            cursor = await conn.execute(
                "SELECT state, filter, class_names FROM datasets WHERE id = %s FOR UPDATE",
                (dataset_id,),
            )
            row = await cursor.fetchone()
            if row is None:
                raise _not_found(dataset_id)
            state, filter_text, class_names = row
            if state == DatasetState.BUILDING:
                raise FailedPrecondition(
                    f"{dataset_name(dataset_id)} is being built; wait for that build to finish",
                    reason="DATASET_BUILDING",
                )
            category_ids = await _resolve_classes(conn, class_names, at_build=True)
            params = QueryParams()
            condition = _member_condition(filter_text, category_ids, params)
            cursor = await conn.execute(
                sql.SQL("SELECT EXISTS (SELECT 1 FROM objects o WHERE {})").format(condition),
                params.values,
            )
            exists = await cursor.fetchone()
            if exists is None or not exists[0]:
                raise _nothing_matches(dataset_id, filter_text)
            await conn.execute(
                "UPDATE datasets SET state = 'BUILDING', build_start_time = now() WHERE id = %s",
                (dataset_id,),
            )
            return await _load(conn, dataset_id)

        return await self._db.transact(work)

    async def build(self, dataset_id: UUID) -> DatasetRecord:
        """Snapshot the membership and assign splits, in one transaction; READY at commit.

        The dataset must be BUILDING (`begin_build`), else FailedPrecondition. FailedPrecondition
        too when a class name no longer resolves or no object matches; then nothing is written
        and a previous build's membership stays as it was.
        """
        return await self._db.transact(lambda conn: self._build(conn, dataset_id))

    async def _build(self, conn: Connection, dataset_id: UUID) -> DatasetRecord:
        # One snapshot for every statement: the images written are exactly those of the objects
        # written. A concurrent delete of a member object is a serialisation failure, retried.
        await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        async with conn.cursor(row_factory=dict_row) as cursor:
            await cursor.execute(
                sql.SQL("SELECT {} FROM datasets d WHERE d.id = %s FOR UPDATE").format(
                    _DATASET_COLUMNS
                ),
                (dataset_id,),
            )
            row = await cursor.fetchone()
        if row is None:
            raise _not_found(dataset_id)
        dataset = _record_from_row(row, ())
        if dataset.state is not DatasetState.BUILDING:
            raise FailedPrecondition(
                f"{dataset_name(dataset_id)} is {dataset.state.value}, not BUILDING; "
                "call begin_build first",
                reason="DATASET_NOT_BUILDING",
            )
        category_ids = await _resolve_classes(conn, dataset.class_names, at_build=True)
        class_of = {category_id: i for i, category_id in enumerate(category_ids)}
        params = QueryParams()
        condition = _member_condition(dataset.filter, category_ids, params)

        # Objects per frame and class; groups are sources or frames.
        found = await conn.execute(
            sql.SQL(
                "SELECT o.source_id, o.frame_index, o.category_id, count(*) FROM objects o "
                "WHERE {} GROUP BY 1, 2, 3"
            ).format(condition),
            params.values,
        )
        frames: dict[tuple[UUID, int], str] = {}
        counts: dict[str, dict[int, int]] = {}
        for source_id, frame_index, category_id, count in await found.fetchall():
            key = _group_key(source_id, frame_index, dataset.grouping)
            frames[source_id, frame_index] = key
            per_class = counts.setdefault(key, {})
            class_id = class_of[category_id]
            per_class[class_id] = per_class.get(class_id, 0) + count
        if not frames:
            raise _nothing_matches(dataset_id, dataset.filter)
        splits = assign_splits(
            (SplitGroup(key, per_class) for key, per_class in counts.items()),
            dataset.ratios,
            dataset.seed,
        )
        rank = {split: i for i, split in enumerate(SPLITS)}
        ordered = sorted(frames, key=lambda frame: (rank[splits[frames[frame]]], frame))

        await conn.execute("DELETE FROM dataset_objects WHERE dataset_id = %s", (dataset_id,))
        await conn.execute("DELETE FROM dataset_images WHERE dataset_id = %s", (dataset_id,))
        async with (
            conn.cursor() as copy_cursor,
            copy_cursor.copy(
                "COPY dataset_images (dataset_id, image_number, split, source_id, frame_index) "
                "FROM STDIN"
            ) as copy,
        ):
            for number, (source_id, frame_index) in enumerate(ordered, start=1):
                split = splits[frames[source_id, frame_index]]
                await copy.write_row((dataset_id, number, split.value, source_id, frame_index))
        dataset_param = params.add(dataset_id, "uuid")
        classes = sql.SQL("unnest({}::uuid[], {}::int4[]) AS k(category_id, class_id)").format(
            params.add(category_ids), params.add(list(range(len(category_ids))))
        )
        await conn.execute(
            sql.SQL(
                "INSERT INTO dataset_objects "
                "(dataset_id, object_id, image_number, split, class_id) "
                "SELECT di.dataset_id, o.id, di.image_number, di.split, k.class_id "
                "FROM objects o "
                "JOIN dataset_images di ON di.dataset_id = {} AND di.source_id = o.source_id "
                "AND di.frame_index = o.frame_index "
                "JOIN {} ON k.category_id = o.category_id "
                "WHERE {}"
            ).format(dataset_param, classes, condition),
            params.values,
        )
        await conn.execute(
            "UPDATE datasets SET state = 'READY', build_time = now(), "
            "build_generation = build_generation + 1 WHERE id = %s",
            (dataset_id,),
        )
        return await _load(conn, dataset_id)

    async def fail_build(self, dataset_id: UUID) -> DatasetRecord:
        """Mark a BUILDING dataset FAILED (a build that raised); its previous membership, if
        any, stays. A dataset in another state is returned unchanged."""

        async def work(conn: Connection) -> DatasetRecord:
            await conn.execute(
                "UPDATE datasets SET state = 'FAILED' WHERE id = %s AND state = 'BUILDING'",
                (dataset_id,),
            )
            return await _load(conn, dataset_id)

        return await self._db.transact(work)

    async def fail_stale_builds(self, older_than: timedelta) -> int:
        """Mark FAILED the datasets BUILDING for longer than `older_than` (their builder died);
        returns how many. A build still running then finds its dataset not BUILDING and stops."""
        async with self._db.connection() as conn:
            cursor = await conn.execute(
                "UPDATE datasets SET state = 'FAILED' "
                "WHERE state = 'BUILDING' AND build_start_time < now() - %s",
                (older_than,),
            )
            return cursor.rowcount

    async def images(
        self,
        dataset_id: UUID,
        *,
        split: Split | None = None,
        batch_size: int = DEFAULT_IMAGE_BATCH,
    ) -> AsyncIterator[DatasetImage]:
        """The built membership image by image: train, val, test, each in image-number order
        (or one `split`), each image with its objects (by object ID).

        Reads `batch_size` images at a time, each batch in its own short snapshot (keyset on
        the image number; no connection is held between batches). The dataset must be READY
        when the first batch is read (else FailedPrecondition); a build that rewrites the
        membership meanwhile makes the next batch Conflict (start again). Objects deleted
        meanwhile are simply missing. Errors are raised by the iteration, not by this call.
        """
        if not 1 <= batch_size <= MAX_IMAGE_BATCH:
            raise InvalidArgument(
                f"batch_size must be between 1 and {MAX_IMAGE_BATCH}, got {batch_size}",
                field="batch_size",
            )
        generation: int | None = None
        after = 0
        while True:

            async def work(
                conn: Connection, after: int = after, generation: int | None = generation
            ) -> tuple[list[DatasetImage], int]:
                return await _image_batch(conn, dataset_id, split, after, batch_size, generation)

            batch, generation = await self._db.transact(work, snapshot=True)
            for image in batch:
                yield image
            if len(batch) < batch_size:
                return
            after = batch[-1].image_number


async def _image_batch(
    conn: Connection,
    dataset_id: UUID,
    split: Split | None,
    after: int,
    limit: int,
    generation: int | None,
) -> tuple[list[DatasetImage], int]:
    """Up to `limit` images numbered above `after`, with their objects, and the dataset's build
    generation (which must be `generation` when that is given)."""
    cursor = await conn.execute(
        "SELECT state, build_generation FROM datasets WHERE id = %s", (dataset_id,)
    )
    row = await cursor.fetchone()
    if row is None:
        raise _not_found(dataset_id)
    state, current = row
    if generation is None and state != DatasetState.READY:
        raise FailedPrecondition(
            f"{dataset_name(dataset_id)} is {state}; only a READY dataset can be read "
            "(build it first)",
            reason="DATASET_NOT_READY",
        )
    if generation is not None and current != generation:
        raise Conflict(
            f"{dataset_name(dataset_id)} was rebuilt while it was being read; start again",
            reason="DATASET_REBUILT",
        )
    params = QueryParams()
    only_split: sql.Composable = sql.SQL("TRUE")
    if split is not None:
        only_split = sql.SQL("di.split = {}").format(params.add(Split(split).value, "text"))
    dataset = params.add(dataset_id, "uuid")
    async with conn.cursor(row_factory=dict_row) as images_cursor:
        await images_cursor.execute(
            sql.SQL(
                "SELECT di.image_number, di.split, di.source_id, di.frame_index, "
                "s.display_name, s.uri AS source_uri, s.content_sha256 AS source_sha256, "
                "s.width, s.height, f.uri AS frame_uri, f.content_sha256 AS frame_sha256 "
                "FROM dataset_images di "
                "JOIN sources s ON s.id = di.source_id "
                "JOIN frames f ON f.source_id = di.source_id AND f.frame_index = di.frame_index "
                "WHERE di.dataset_id = {dataset} AND {only_split} AND di.image_number > {after} "
                "AND EXISTS (SELECT 1 FROM dataset_objects m WHERE m.dataset_id = di.dataset_id "
                "AND m.image_number = di.image_number) "
                "ORDER BY di.image_number LIMIT {limit}"
            ).format(
                dataset=dataset,
                only_split=only_split,
                after=params.add(after, "int4"),
                limit=params.add(limit, "int4"),
            ),
            params.values,
        )
        image_rows = await images_cursor.fetchall()
    objects: dict[int, list[DatasetObject]] = {row["image_number"]: [] for row in image_rows}
    if image_rows:
        cursor = await conn.execute(
            "SELECT m.image_number, o.id, m.class_id, o.x, o.y, o.width, o.height, o.has_mask "
            "FROM dataset_objects m JOIN objects o ON o.id = m.object_id "
            "WHERE m.dataset_id = %s AND m.image_number = ANY(%s::int4[]) "
            "ORDER BY m.image_number, o.id",
            (dataset_id, list(objects)),
        )
        for number, object_id, class_id, x, y, width, height, has_mask in await cursor.fetchall():
            objects[number].append(
                DatasetObject(object_id, class_id, BoundingBox(x, y, width, height), has_mask)
            )
    images = [
        DatasetImage(
            split=Split(row["split"]),
            image_number=row["image_number"],
            source_id=row["source_id"],
            frame_index=row["frame_index"],
            source_display_name=row["display_name"],
            source_uri=row["source_uri"],
            source_content_sha256=row["source_sha256"],
            frame_uri=row["frame_uri"],
            frame_content_sha256=row["frame_sha256"],
            width=row["width"],
            height=row["height"],
            objects=tuple(objects[row["image_number"]]),
        )
        for row in image_rows
    ]
    return images, current
