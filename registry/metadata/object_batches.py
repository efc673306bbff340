"""BatchCreateObjects: many objects in one transaction, all or nothing, exactly once.

Exactly once: the first statement claims the request_id (`INSERT ... ON CONFLICT DO NOTHING`
on `batch_requests`). A retry of a committed batch finds the claim and gets the stored result;
a retry racing the first attempt waits on the unique index until that one commits (then it
replays) or rolls back (then it proceeds). Nothing else is held while waiting. A request_id
reused for different content is InvalidArgument, not a silent replay.

All or nothing: values are checked in Python first (naming `requests[i]...` fields), then
sources, frames, categories and tracks are resolved and locked, and the objects go in with one
COPY, never an INSERT per object. Any error rolls the whole transaction back, the claim too.

Duplicates: an object whose box overlaps one of the same category in the same frame of the
same source with IoU above the threshold is not inserted; the response names the object it
merged into (an existing one or an earlier one of the same batch) with the IoU. Writers to one
frame are serialised by a transaction advisory lock per (source, frame), so two concurrent
batches cannot both add the same box.

Deadlock freedom with concurrent writers: every batch takes its locks in one order (claim,
sources, categories named in the request, categories given by ID only, tracks, frame locks,
then rows) and within each step in sorted key order; source and category locks are shared
(FOR KEY SHARE), so batches never wait on each other for them. Deadlocks and serialisation
failures that remain possible with other methods are retried from the start by
`Database.transact`, which is safe because of the claim.

The same transaction writes the vector outbox entries for objects with an embedding; the
caller applies them after commit.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID, uuid4

from psycopg import errors as pg_errors
from psycopg.types.json import Jsonb

from agentic_labeling.errors import (
    AlreadyExists,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    ResourceExhausted,
)
from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.metadata.categories import (
    create_missing_categories,
    lock_categories,
    lock_named_categories,
)
from agentic_labeling.registry.metadata.object_rows import fetch_objects
from agentic_labeling.registry.metadata.outbox import enqueue
from agentic_labeling.registry.values.input_checks import (
    MAX_NAME_LENGTH,
    check_attributes,
    check_bbox,
    check_bbox_inside,
    check_embedding,
    check_fraction,
    check_mask_area,
    check_name,
    check_text,
)
from agentic_labeling.registry.values.records import (
    BatchCreateResult,
    BoundingBox,
    MergedObject,
    NewObject,
    ObjectRecord,
    SourceKind,
    category_name_key,
)
from agentic_labeling.registry.values.resource_names import format_name, not_found

__all__ = ["BatchLimits", "create_batch"]

_COPY_COLUMNS = (
    "id",
    "source_id",
    "frame_index",
    "category_id",
    "x",
    "y",
    "width",
    "height",
    "confidence",
    "quality_score",
    "area",
    "has_mask",
    "embedding",
    "detection_model",
    "is_validated",
    "validated_by",
    "validate_time",
    "track_id",
    "attributes",
    # The model's own output, kept apart from later reviews (migration 0006).
    "model_category_id",
    "model_x",
    "model_y",
    "model_width",
    "model_height",
    "model_confidence",
)
_COPY = "COPY objects ({}) FROM STDIN (FORMAT BINARY)".format(", ".join(_COPY_COLUMNS))
# Binary COPY sends each field in its column type's binary format. psycopg has no dumper for
# pgvector's `vector`, so that field is declared bytea: its bytes go through unchanged and the
# server reads them with vector's own binary input (uint16 dimension, uint16 zero, float32s,
# big-endian), which skips formatting and parsing hundreds of floats as text per object.
_COPY_TYPES = [
    "uuid",
    "uuid",
    "int8",
    "uuid",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
    "bool",
    "bytea",
    "text",
    "bool",
    "text",
    "timestamptz",
    "uuid",
    "jsonb",
    "uuid",
    "float8",
    "float8",
    "float8",
    "float8",
    "float8",
]
_VECTOR_HEADER = struct.Struct(">HH")


@dataclass(frozen=True)
class BatchLimits:
    """The registry's configuration for batches."""

    embedding_dim: int | None = None
    default_iou_threshold: float = 0.9
    max_batch_objects: int = 10_000


@dataclass
class _Item:
    """One request after its context-free checks."""

    index: int
    new: NewObject
    object_id: UUID
    bbox: BoundingBox
    category_key: str | None
    embedding: bytes | None  # pgvector's binary format
    attributes: dict[str, str]
    category_id: UUID | None = None

    def field(self, name: str) -> str:
        return f"requests[{self.index}].{name}"


def _check_item(index: int, new: NewObject, limits: BatchLimits) -> _Item:
    def field(name: str) -> str:
        return f"requests[{index}].{name}"

    if new.frame_index < 0:
        raise InvalidArgument("must not be negative", field=field("object.frame_index"))
    bbox = check_bbox(new.bbox, field("object.bbox"))
    check_fraction(new.confidence, field("object.confidence"))
    check_fraction(new.quality_score, field("object.quality_score"))
    check_text(new.detection_model, field("object.detection_model"), max_length=MAX_NAME_LENGTH)
    attributes = check_attributes(new.attributes, field("object.attributes"))
    if new.category_id is None and not new.category_name:
        raise InvalidArgument("set category or category_name", field=field("object.category"))
    key = None
    if new.category_name:
        key = category_name_key(check_name(new.category_name, field("object.category_name")))
    embedding = None
    if new.embedding is not None:
        vector = check_embedding(new.embedding, limits.embedding_dim, field("embedding"))
        embedding = _VECTOR_HEADER.pack(len(vector), 0) + vector.astype(">f4").tobytes()
    if new.mask_area is not None and not (math.isfinite(new.mask_area) and new.mask_area >= 0):
        raise InvalidArgument("mask area must be a finite count of pixels", field=field("mask"))
    if new.validated_by is not None:
        if not new.validated_by:
            raise InvalidArgument("must not be empty when set", field=field("validated_by"))
        check_text(new.validated_by, field("validated_by"), max_length=MAX_NAME_LENGTH)
    return _Item(
        index=index,
        new=new,
        object_id=new.object_id or uuid4(),
        bbox=bbox,
        category_key=key,
        embedding=embedding,
        attributes=attributes,
    )


def _request_digest(items: Sequence[_Item], create_missing: bool, threshold: float) -> str:
    """SHA-256 of a request's content, to tell a retry from a reused request_id.

    It covers every field a created object's record is made from: a replay rebuilds the
    records from the retried request (see `_stored_result`). Embeddings count as the float32
    values that are stored, in the bytes `_check_item` already made."""
    heads = [
        [
            str(item.new.source_id),
            item.new.frame_index,
            str(item.new.category_id or ""),
            item.new.category_name,
            [item.bbox.x, item.bbox.y, item.bbox.width, item.bbox.height],
            item.new.confidence,
            item.new.detection_model,
            item.new.quality_score,
            str(item.new.track_id or ""),
            sorted(item.attributes.items()),
            str(item.new.object_id or ""),
            item.new.mask_area,
            item.new.validated_by,
            item.embedding is not None,
        ]
        for item in items
    ]
    digest = hashlib.sha256(json.dumps([create_missing, threshold, heads]).encode())
    for item in items:
        if item.embedding is not None:
            digest.update(item.embedding)
    return digest.hexdigest()


def _frame_lock_key(source_id: UUID, frame_index: int) -> int:
    """A signed 64-bit advisory lock key for one frame of one source."""
    raw = hashlib.blake2b(f"frame:{source_id}:{frame_index}".encode(), digest_size=8).digest()
    return int.from_bytes(raw, "big", signed=True)


async def create_batch(
    db: Database,
    limits: BatchLimits,
    request_id: UUID,
    objects: Sequence[NewObject],
    *,
    create_missing_categories: bool = False,
    duplicate_iou_threshold: float | None = None,
) -> BatchCreateResult:
    """Create `objects` all or nothing, once per `request_id` (see the module docstring)."""
    if request_id.int == 0:
        # The nil UUID is what a client that sets none would send: every such client would
        # share it, and the second batch would be refused as "different content" or replayed.
        raise InvalidArgument(
            "must be a UUID chosen by the client for this batch, not the nil UUID",
            field="request_id",
        )
    if not objects:
        raise InvalidArgument("a batch needs at least one object", field="requests")
    if len(objects) > limits.max_batch_objects:
        raise ResourceExhausted(
            f"a batch holds at most {limits.max_batch_objects} objects, got {len(objects)}",
            metadata={"field": "requests", "limit": str(limits.max_batch_objects)},
        )
    threshold = (
        limits.default_iou_threshold if duplicate_iou_threshold is None else duplicate_iou_threshold
    )
    if not (math.isfinite(threshold) and threshold >= 0):
        raise InvalidArgument(
            f"must be a number of at least 0, got {threshold!r}", field="duplicate_iou_threshold"
        )
    items = [_check_item(i, new, limits) for i, new in enumerate(objects)]
    seen_ids: dict[UUID, int] = {}
    for item in items:
        if item.new.object_id is not None:
            if item.object_id in seen_ids:
                raise InvalidArgument(
                    f"object_id repeats requests[{seen_ids[item.object_id]}]",
                    field=item.field("object_id"),
                )
            seen_ids[item.object_id] = item.index
    digest = _request_digest(items, create_missing_categories, threshold)

    async def work(conn: Connection) -> BatchCreateResult:
        for item in items:  # a retried transaction starts from unresolved items
            item.category_id = None
        now = await _claim(conn, request_id, digest, items)
        if not isinstance(now, datetime):
            return now
        return await _write(conn, items, request_id, now, create_missing_categories, threshold)

    return await db.transact(work)


async def _claim(
    conn: Connection, request_id: UUID, digest: str, items: Sequence[_Item]
) -> datetime | BatchCreateResult:
    """Claim request_id (returning the transaction's time), or the stored result of an earlier
    attempt with it."""
    cursor = await conn.execute(
        "INSERT INTO batch_requests (request_id, request_sha256) VALUES (%s, %s) "
        "ON CONFLICT DO NOTHING RETURNING create_time",
        (request_id, digest),
    )
    claimed = await cursor.fetchone()
    if claimed is not None:
        moment: datetime = claimed[0]
        return moment
    cursor = await conn.execute(
        "SELECT request_sha256, response FROM batch_requests WHERE request_id = %s",
        (request_id,),
    )
    stored = await cursor.fetchone()
    if stored is None:  # pragma: no cover - pruned between the two statements
        raise Conflict("the request record changed concurrently; retry")
    if stored[0] != digest:
        raise InvalidArgument(
            "request_id was already used for a batch with different content; use a new "
            "request_id for a new batch",
            field="request_id",
        )
    return _stored_result(stored[1], items)


async def _write(
    conn: Connection,
    items: list[_Item],
    request_id: UUID,
    now: datetime,
    create_missing: bool,
    threshold: float,
) -> BatchCreateResult:
    await _resolve_sources(conn, items)
    category_names = await _resolve_categories(conn, items, create_missing)
    await _resolve_tracks(conn, items)
    await _check_new_ids(conn, items)
    merged, targets = await _find_duplicates(conn, items, threshold)
    fresh = [item for item in items if item.index not in targets]
    try:
        async with conn.cursor() as cursor, cursor.copy(_COPY) as copy:
            copy.set_types(_COPY_TYPES)
            for item in fresh:
                await copy.write_row(_copy_row(item, now))
    except pg_errors.UniqueViolation:  # an object_id taken by a concurrent batch
        raise AlreadyExists("an object_id of this batch was created meanwhile") from None
    embedded = [item.object_id for item in fresh if item.embedding is not None]
    await enqueue(conn, embedded, "upsert")
    # The new rows hold exactly what was just written (the defaults are the transaction's
    # time), so their records are made here rather than read back; only merge targets are read.
    existing = await fetch_objects(conn, set(targets.values())) if targets else {}
    objects = tuple(
        existing[targets[item.index]]
        if item.index in targets
        else _created_record(item, item.object_id, item.category_id, category_names, now)
        for item in items
    )
    await conn.execute(
        "UPDATE batch_requests SET response = %s WHERE request_id = %s",
        (Jsonb(_stored_json(items, objects, merged, targets, now)), request_id),
    )
    return BatchCreateResult(objects, tuple(merged), False, tuple(embedded))


def _created_record(
    item: _Item,
    object_id: UUID,
    category_id: UUID | None,
    category_names: Mapping[UUID, str],
    now: datetime,
) -> ObjectRecord:
    """The record of an object this batch inserted, as `fetch_objects` would read it."""
    new = item.new
    assert category_id is not None
    return ObjectRecord(
        id=object_id,
        source_id=new.source_id,
        frame_index=new.frame_index,
        category_id=category_id,
        category_name=category_names[category_id],
        bbox=item.bbox,
        confidence=float(new.confidence),
        area=_area(item),
        has_mask=new.mask_area is not None,
        has_embedding=item.embedding is not None,
        detection_model=new.detection_model,
        is_validated=new.validated_by is not None,
        validated_by=new.validated_by,
        validate_time=now if new.validated_by is not None else None,
        quality_score=float(new.quality_score),
        track_id=new.track_id,
        attributes=item.attributes,
        create_time=now,
        update_time=now,
    )


def _copy_row(item: _Item, now: datetime) -> tuple[object, ...]:
    new = item.new
    box = item.bbox
    validated = new.validated_by is not None
    return (
        item.object_id,
        new.source_id,
        new.frame_index,
        item.category_id,
        box.x,
        box.y,
        box.width,
        box.height,
        float(new.confidence),
        float(new.quality_score),
        _area(item),
        new.mask_area is not None,
        item.embedding,
        new.detection_model,
        validated,
        new.validated_by,
        now if validated else None,
        new.track_id,
        Jsonb(item.attributes),
        *_model_output(item, validated),
    )


def _model_output(item: _Item, validated: bool) -> tuple[object, ...]:
    """The model_* columns: the object as its model produced it; none for an object created
    validated (imported or drawn by a person), which is ground truth only."""
    if validated:
        return (None,) * 6
    box = item.bbox
    return (item.category_id, box.x, box.y, box.width, box.height, float(item.new.confidence))


def _area(item: _Item) -> float:
    """The mask's pixel count when there is a mask, else the box's area."""
    return float(item.new.mask_area) if item.new.mask_area is not None else item.bbox.area


async def _resolve_sources(conn: Connection, items: Sequence[_Item]) -> None:
    """Sources exist (held against deletion), boxes fit them, frames exist or are made."""
    source_ids = sorted({item.new.source_id for item in items})
    frame_indexes = sorted({item.new.frame_index for item in items})
    # One statement for both: each source (locked, in ID order) with those of the requested
    # frame indexes it has; a pair nobody asked for is harmless.
    cursor = await conn.execute(
        "SELECT s.id, s.kind, s.width, s.height, f.frame_index FROM sources s "
        "LEFT JOIN frames f ON f.source_id = s.id AND f.frame_index = ANY(%s::bigint[]) "
        "WHERE s.id = ANY(%s::uuid[]) ORDER BY s.id FOR KEY SHARE OF s",
        (frame_indexes, source_ids),
    )
    sources: dict[UUID, tuple[str, int, int]] = {}
    present: set[tuple[UUID, int]] = set()
    for source_id, kind, width, height, frame_index in await cursor.fetchall():
        sources[source_id] = (kind, width, height)
        if frame_index is not None:
            present.add((source_id, frame_index))
    for item in items:
        found = sources.get(item.new.source_id)
        if found is None:
            raise not_found(
                "source", format_name("sources", item.new.source_id), item.field("object.source")
            )
        kind, width, height = found
        if kind == SourceKind.IMAGE and item.new.frame_index != 0:
            raise InvalidArgument(
                f"an image source has only frame 0, got {item.new.frame_index}",
                field=item.field("object.frame_index"),
            )
        check_bbox_inside(item.bbox, width, height, item.field("object.bbox"))
        if item.new.mask_area is not None:
            check_mask_area(item.new.mask_area, width, height, item.field("mask"))

    missing_images: list[UUID] = []
    for item in items:
        frame = (item.new.source_id, item.new.frame_index)
        if frame in present:
            continue
        if sources[item.new.source_id][0] == SourceKind.IMAGE:
            missing_images.append(item.new.source_id)  # made with the source; restore it
            continue
        raise not_found(
            "frame",
            f"{format_name('sources', frame[0])}/frames/{frame[1]}",
            item.field("object.frame_index"),
        )
    if missing_images:
        await conn.execute(
            "INSERT INTO frames (source_id, frame_index) SELECT s, 0 FROM "
            "unnest(%s::uuid[]) AS s ORDER BY s ON CONFLICT DO NOTHING",
            (sorted(set(missing_images)),),
        )


async def _resolve_categories(
    conn: Connection, items: Sequence[_Item], create: bool
) -> dict[UUID, str]:
    """Every item gets its category ID; categories are held against deletion. Returns their
    display names by ID."""
    names: dict[str, str] = {}  # the first spelling in the request names a new category
    for item in items:
        if item.category_key is not None:
            names.setdefault(item.category_key, item.new.category_name)
    locked = await lock_named_categories(conn, names.keys())
    missing = {key: name for key, name in names.items() if key not in locked}
    if missing and create:
        await create_missing_categories(conn, missing)
        locked = await lock_named_categories(conn, names.keys())
    display_names = dict(locked.values())
    for item in items:
        if item.category_key is None:
            item.category_id = item.new.category_id
            continue
        by_name = locked.get(item.category_key)
        if by_name is None:
            raise not_found("category", item.new.category_name, item.field("object.category_name"))
        if item.new.category_id is not None and item.new.category_id != by_name[0]:
            raise InvalidArgument(
                f"{item.new.category_name!r} is not the category "
                f"{format_name('categories', item.new.category_id)}",
                field=item.field("object.category_name"),
            )
        item.category_id = by_name[0]
    # Categories given by ID only are locked here (named ones already are).
    display_names |= await lock_categories(
        conn, {i.category_id for i in items if i.category_id and i.category_id not in display_names}
    )
    for item in items:
        if item.category_id not in display_names:
            assert item.category_id is not None
            raise not_found(
                "category",
                format_name("categories", item.category_id),
                item.field("object.category"),
            )
    return display_names


async def _resolve_tracks(conn: Connection, items: Sequence[_Item]) -> None:
    """Named tracks exist (made for the object's source when new) and belong to its source."""
    wanted: dict[UUID, UUID] = {}
    for item in items:
        if item.new.track_id is not None:
            wanted.setdefault(item.new.track_id, item.new.source_id)
    if not wanted:
        return
    ids = sorted(wanted)
    await conn.execute(
        "INSERT INTO tracks (id, source_id) SELECT * FROM unnest(%s::uuid[], %s::uuid[]) "
        "ORDER BY 1 ON CONFLICT DO NOTHING",
        (ids, [wanted[i] for i in ids]),
    )
    cursor = await conn.execute(
        "SELECT id, source_id FROM tracks WHERE id = ANY(%s::uuid[]) ORDER BY id FOR KEY SHARE",
        (ids,),
    )
    owners: dict[UUID, UUID] = dict(await cursor.fetchall())
    for item in items:
        track_id = item.new.track_id
        if track_id is not None and owners.get(track_id) != item.new.source_id:
            raise FailedPrecondition(
                f"{format_name('tracks', track_id)} belongs to another source",
                metadata={"field": item.field("object.track")},
            )


async def _check_new_ids(conn: Connection, items: Sequence[_Item]) -> None:
    chosen = {item.object_id: item for item in items if item.new.object_id is not None}
    if not chosen:
        return
    cursor = await conn.execute(
        "SELECT id FROM objects WHERE id = ANY(%s::uuid[])", (list(chosen),)
    )
    taken = sorted((chosen[row[0]] for row in await cursor.fetchall()), key=lambda i: i.index)
    if taken:
        raise AlreadyExists(
            f"{format_name('objects', taken[0].object_id)} exists",
            metadata={"field": taken[0].field("object_id")},
        )


async def _find_duplicates(
    conn: Connection, items: Sequence[_Item], threshold: float
) -> tuple[list[MergedObject], dict[int, UUID]]:
    """Which items merge into which objects: (report, request index -> object ID)."""
    if threshold >= 1.0:  # IoU never exceeds 1: nothing can merge
        return [], {}
    frames = sorted({(item.new.source_id, item.new.frame_index) for item in items})
    await conn.execute(
        "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(%s::bigint[]) AS k ORDER BY 1) s",
        (sorted({_frame_lock_key(*frame) for frame in frames}),),
    )
    triples = sorted(
        {(item.new.source_id, item.new.frame_index, item.category_id) for item in items},
        key=str,
    )
    cursor = await conn.execute(
        "SELECT id, source_id, frame_index, category_id, x, y, width, height FROM objects "
        "WHERE (source_id, frame_index, category_id) IN "
        "(SELECT * FROM unnest(%s::uuid[], %s::bigint[], %s::uuid[]))",
        ([t[0] for t in triples], [t[1] for t in triples], [t[2] for t in triples]),
    )
    groups: dict[tuple[UUID, int, UUID], list[tuple[UUID, BoundingBox]]] = defaultdict(list)
    for object_id, source_id, frame_index, category_id, x, y, w, h in await cursor.fetchall():
        groups[(source_id, frame_index, category_id)].append((object_id, BoundingBox(x, y, w, h)))
    merged: list[MergedObject] = []
    targets: dict[int, UUID] = {}
    for item in items:
        assert item.category_id is not None
        group = groups[(item.new.source_id, item.new.frame_index, item.category_id)]
        best_id, best_iou = None, -1.0
        for object_id, box in group:
            iou = item.bbox.iou(box)
            if iou > best_iou:
                best_id, best_iou = object_id, iou
        if best_id is not None and best_iou > threshold:
            merged.append(MergedObject(item.index, best_id, best_iou))
            targets[item.index] = best_id
        else:
            group.append((item.object_id, item.bbox))
    return merged, targets


# --- The stored result --------------------------------------------------------------------------
#
# A created object's record is made of the request's own fields plus what the transaction
# chose: its ID, its category's ID and display name, and the time. The request digest covers
# every request field, so the stored result keeps only those choices and a replay rebuilds the
# records from the retried request; records of merge targets are stored whole. (Results stored
# before this format cannot be replayed: their digests were computed another way, so a retry
# across the upgrade is refused as a reused request_id.)


def _stored_json(
    items: Sequence[_Item],
    objects: Sequence[ObjectRecord],
    merged: Sequence[MergedObject],
    targets: Mapping[int, UUID],
    now: datetime,
) -> dict[str, Any]:
    created = [
        (item.index, record)
        for item, record in zip(items, objects, strict=True)
        if item.index not in targets
    ]
    merge_targets = {objects[index].id: objects[index] for index in targets}
    return {
        "time": now.isoformat(),
        "created": [[index, str(r.id), str(r.category_id)] for index, r in created],
        "categories": {str(r.category_id): r.category_name for _, r in created},
        "targets": [_object_to_json(record) for record in merge_targets.values()],
        "merged": [
            {"request_index": m.request_index, "object": str(m.existing_object_id), "iou": m.iou}
            for m in merged
        ],
    }


def _stored_result(document: Mapping[str, Any], items: Sequence[_Item]) -> BatchCreateResult:
    """The stored result of an earlier attempt, for the retried request `items` (whose digest
    equals the stored one)."""
    merged = tuple(
        MergedObject(m["request_index"], UUID(m["object"]), m["iou"]) for m in document["merged"]
    )
    now = datetime.fromisoformat(document["time"])
    names = {UUID(key): name for key, name in document["categories"].items()}
    records: dict[int, ObjectRecord] = {}
    for index, object_id, category_id in document["created"]:
        records[index] = _created_record(
            items[index], UUID(object_id), UUID(category_id), names, now
        )
    targets = {UUID(record["id"]): _object_from_json(record) for record in document["targets"]}
    for m in merged:
        records[m.request_index] = targets[m.existing_object_id]
    return BatchCreateResult(tuple(records[i] for i in range(len(items))), merged, replayed=True)


def _object_to_json(record: ObjectRecord) -> dict[str, Any]:
    def time(value: datetime | None) -> str | None:
        return value.isoformat() if value is not None else None

    return {
        "id": str(record.id),
        "source_id": str(record.source_id),
        "frame_index": record.frame_index,
        "category_id": str(record.category_id),
        "category_name": record.category_name,
        "bbox": [record.bbox.x, record.bbox.y, record.bbox.width, record.bbox.height],
        "confidence": record.confidence,
        "area": record.area,
        "has_mask": record.has_mask,
        "has_embedding": record.has_embedding,
        "detection_model": record.detection_model,
        "is_validated": record.is_validated,
        "validated_by": record.validated_by,
        "validate_time": time(record.validate_time),
        "quality_score": record.quality_score,
        "track_id": str(record.track_id) if record.track_id else None,
        "attributes": dict(record.attributes),
        "create_time": time(record.create_time),
        "update_time": time(record.update_time),
    }


def _object_from_json(item: Mapping[str, Any]) -> ObjectRecord:
    def time(value: str | None) -> datetime | None:
        return datetime.fromisoformat(value) if value is not None else None

    create_time = time(item["create_time"])
    update_time = time(item["update_time"])
    assert create_time is not None
    assert update_time is not None
    return ObjectRecord(
        id=UUID(item["id"]),
        source_id=UUID(item["source_id"]),
        frame_index=item["frame_index"],
        category_id=UUID(item["category_id"]),
        category_name=item["category_name"],
        bbox=BoundingBox(*item["bbox"]),
        confidence=item["confidence"],
        area=item["area"],
        has_mask=item["has_mask"],
        has_embedding=item["has_embedding"],
        detection_model=item["detection_model"],
        is_validated=item["is_validated"],
        validated_by=item["validated_by"],
        validate_time=time(item["validate_time"]),
        quality_score=item["quality_score"],
        track_id=UUID(item["track_id"]) if item["track_id"] else None,
        attributes=item["attributes"],
        create_time=create_time,
        update_time=update_time,
    )
