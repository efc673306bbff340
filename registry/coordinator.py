"""The registry: Postgres (the source of truth), Qdrant (embeddings) and mask files, kept in
agreement.

Write order, and why nothing is lost or left disagreeing:

1. Mask files are written first (atomically, under the new objects' ids). A crash after this
   leaves files no row points to; reconcile removes them. A committed row therefore always
   has its mask file.
2. One Postgres transaction writes the objects and, for every embedding, a vector_outbox row.
3. After commit the outbox is applied to the vector store (idempotent upserts and deletes by
   object id): searchable at once. Flushing the vector store to disk and removing the applied
   outbox rows is a group commit: BatchCreateObjects leaves it to a flush at most
   `settings.vector_flush_interval_s` later, shared by every batch applied meanwhile (other
   writes flush at once). A crash before the flush leaves the outbox rows, applied again at
   the next start, so no vector is lost or stored twice.
4. Files written for requests that were merged into existing objects, or for a replayed
   request (its stored objects are the original ones), are removed again.

`reconcile` repairs everything against Postgres: pending outbox, vectors missing or extra,
mask files missing (has_mask is cleared) or extra.

`Registry` is the registry's one front door: the gRPC servicers (servers/) hold it and
nothing else of the registry, and call one of its methods per request. Every method that
changes objects applies the outbox itself, and blocking file work (image and mask files,
hashing, mask decoding) runs in worker threads, never on the event loop. The value types
its methods take and return are re-exported here, so a caller needs this module and the
plain value modules only (records, dataset_records, resource_names, input_checks).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Collection, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Literal
from uuid import UUID

import numpy as np
import numpy.typing as npt

from agentic_labeling.errors import FailedPrecondition, InvalidArgument
from agentic_labeling.registry.database import Database, open_database
from agentic_labeling.registry.datasets.dataset_export import (
    ExportRequest,
    check_exportable,
    export_dataset,
)
from agentic_labeling.registry.datasets.evaluation_sets import (
    EvaluationImage,
    EvaluationSet,
    auto_label_predictions,
    read_evaluation_set,
)
from agentic_labeling.registry.datasets.export_target import (
    find_staging,
    resolve_target,
    sweep_staging,
)
from agentic_labeling.registry.datasets.ground_truth import (
    ImportCounts,
    LabelSetFormat,
    import_label_set,
    open_label_set,
)
from agentic_labeling.registry.datasets.job_progress import JobProgress
from agentic_labeling.registry.datasets.label_import import ImportedLabelSet
from agentic_labeling.registry.datasets.label_sets import ExportFormat, ExportSummary, ImageTransfer
from agentic_labeling.registry.files.encoded_masks import EncodedMask, decode_masks
from agentic_labeling.registry.files.image_store import ImageStore
from agentic_labeling.registry.files.masks import MaskStore, decode_mask_png
from agentic_labeling.registry.metadata.evaluations import EvaluationStore
from agentic_labeling.registry.metadata.review_candidates import (
    MAX_REVIEW_CANDIDATES,
    ReviewCandidates,
    ReviewImage,
    gather_review_candidates,
)
from agentic_labeling.registry.metadata.source_image_reads import read_source_image
from agentic_labeling.registry.metadata.source_images import (
    create_frame_with_image,
    create_source_with_image,
)
from agentic_labeling.registry.metadata.training_runs import TrainingRunStore
from agentic_labeling.registry.operations import OperationRecords, StoredOperation, instance_owner
from agentic_labeling.registry.query.filtering import Comparison, Expr, parse_filter
from agentic_labeling.registry.query.queryable_fields import OBJECT_FILTER
from agentic_labeling.registry.repository import Repository
from agentic_labeling.registry.values.dataset_records import DatasetRecord, NewDataset
from agentic_labeling.registry.values.records import (
    BatchCreateResult,
    Category,
    Correction,
    DeletedObject,
    Frame,
    NewCategory,
    NewFrame,
    NewObject,
    NewSource,
    ObjectChanges,
    ObjectRecord,
    Page,
    Source,
    SplitResult,
    Stats,
    StoredImage,
    Track,
)
from agentic_labeling.registry.values.resource_names import format_name, not_found, parse_name
from agentic_labeling.registry.values.training_records import (
    EvaluationRecord,
    NewEvaluation,
    NewRun,
    RunRecord,
    RunState,
)
from agentic_labeling.registry.vectors.edge_vectors import EdgeVectorStore
from agentic_labeling.registry.vectors.embedding_dimension import (
    choose_dimension,
    record_dimension,
    where_stored,
)
from agentic_labeling.registry.vectors.qdrant_server_vectors import QdrantServerVectorStore
from agentic_labeling.registry.vectors.vector_filters import map_comparisons
from agentic_labeling.registry.vectors.vector_store import (
    ObjectPayload,
    ScalarQuantization,
    VectorPoint,
    VectorStore,
)
from agentic_labeling.settings import Settings
from agentic_labeling.training.evaluation import ScoredBox

__all__ = [
    "EncodedMask",
    "EvaluationImage",
    "EvaluationSet",
    "ExportFormat",
    "ExportSummary",
    "ImageTransfer",
    "ImportCounts",
    "ImportedLabelSet",
    "JobProgress",
    "LabelSetFormat",
    "OperationRecords",
    "ReconcileReport",
    "Registry",
    "ReviewCandidates",
    "ReviewImage",
    "ScoredBox",
    "SimilarObject",
    "StoredMask",
    "StoredOperation",
    "object_payload",
]

logger = logging.getLogger(__name__)

_OUTBOX_CHUNK = 500
_SCAN_CHUNK = 1000
# Build the HNSW graph at start-up and after reconcile once this many points are outside it;
# never on the request path (qdrant-edge's optimize() holds the GIL for its whole duration).
_OPTIMIZE_MIN_UNINDEXED = 10_000


@dataclass(frozen=True)
class SimilarObject:
    object: ObjectRecord
    score: float


@dataclass(frozen=True)
class StoredMask:
    """An object's mask file (PNG) and the size of its source, which the mask has."""

    object_id: UUID
    png: bytes
    width: int
    height: int


@dataclass(frozen=True)
class ReconcileReport:
    outbox_applied: int = 0
    vectors_restored: int = 0
    vectors_removed: int = 0
    masks_missing: int = 0
    masks_removed: int = 0


def object_payload(record: ObjectRecord) -> ObjectPayload:
    """What filtered search needs about an object, in the ids the payload holds."""
    return ObjectPayload(
        category=str(record.category_id),
        source=str(record.source_id),
        frame_index=record.frame_index,
        confidence=record.confidence,
        area=record.area,
        is_validated=record.is_validated,
        detection_model=record.detection_model,
        create_time=record.create_time,
        update_time=record.update_time,
        quality_score=record.quality_score,
        validated_by=record.validated_by,
        track=None if record.track_id is None else str(record.track_id),
    )


class Registry:
    """The three stores behind RegistryService. Open with `await Registry.open(settings)`."""

    def __init__(
        self, database: Database, vectors: VectorStore, masks: MaskStore, settings: Settings
    ) -> None:
        self.database = database
        self.vectors = vectors
        self.masks = masks
        # The orchestrator's pixel limit: an image it would refuse is not stored either.
        self.images = ImageStore(settings.data_dir / "images", max_pixels=settings.max_image_pixels)
        # The vector store was opened with the dimension the registry recorded (see open).
        self.embedding_dimension = vectors.dimension
        self.repository = Repository(
            database,
            embedding_dim=vectors.dimension,
            duplicate_iou_threshold=settings.duplicate_iou_threshold,
            max_batch_objects=settings.max_batch_objects,
        )
        # google.longrunning operations live in the registry's Postgres, marked with the
        # instance that runs them (so a restart can tell its own crashed operations).
        self.operation_records = OperationRecords(database)
        self.operation_owner = instance_owner(settings.data_dir)
        # Training runs and evaluations (issue 18); a run's files live under runs_directory.
        self._training_runs = TrainingRunStore(database)
        self._evaluations = EvaluationStore(database)
        self.runs_directory = settings.data_dir / "runs"
        self._exports_root = settings.exports_directory
        self._min_fragment_area = settings.min_fragment_area
        # GetSourceImage refuses a stored file that would not fit in one reply.
        self._max_message_bytes = settings.max_message_bytes
        # The outbox is applied by one task at a time: ops of one object must stay in order.
        self._outbox_lock = asyncio.Lock()
        # Outbox entries applied to the vector store but not flushed yet (group commit).
        self._unflushed: list[int] = []
        self._flush_interval_s = settings.vector_flush_interval_s
        self._flusher: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, settings: Settings) -> Registry:
        """Start or connect to the stores and reconcile them."""
        database = await open_database(settings.postgres_dsn, settings.data_dir)
        vectors: VectorStore
        try:
            dimension, recorded = await choose_dimension(database, settings)
            vectors = await _open_vectors(settings, dimension)
            if not recorded:
                try:
                    await record_dimension(database, settings, dimension)
                except BaseException:
                    await vectors.close()
                    raise
        except BaseException:
            await database.close()
            raise
        registry = cls(database, vectors, MaskStore(settings.data_dir), settings)
        # Repair whatever a crash of an earlier run left (pending outbox, lost files, ...)
        # before the first request; this also builds the vector index when it is due.
        report = await registry.reconcile()
        if report != ReconcileReport():
            logger.info("repaired the stores at start-up", extra=asdict(report))
        return registry

    async def close(self, *, drain_outbox_s: float = 0.0) -> None:
        """Close the stores; first apply the pending outbox for up to `drain_outbox_s`.

        A graceful stop cancels RPCs whose batch committed but had not yet applied its
        outbox (a client that went away, the end of the shutdown grace); draining here puts
        their vectors into Qdrant now instead of at the next start. What the bound cuts off
        stays in the outbox, which the next start applies."""
        if drain_outbox_s > 0:
            try:
                applied = await asyncio.wait_for(self.apply_outbox(), drain_outbox_s)
            except TimeoutError:
                logger.warning(
                    "the outbox was not drained before the stop; the next start applies the rest",
                    extra={"drain_outbox_s": drain_outbox_s},
                )
            except Exception:  # a store that is already down: the next start applies it
                logger.exception("could not drain the outbox before the stop")
            else:
                if applied:
                    logger.info("drained the outbox before the stop", extra={"applied": applied})
        if self._flusher is not None:
            self._flusher.cancel()
        try:
            await self.flush_vectors()
        except Exception:  # a store that is already down: the next start applies them again
            logger.exception("could not flush the vector store before the stop")
        await self.vectors.close()
        await self.database.close()

    # --- sources and frames -------------------------------------------------------------------

    async def create_source(
        self,
        new: NewSource,
        image_data: bytes = b"",
        *,
        source_id: UUID | None = None,
        return_existing: bool = False,
    ) -> Source:
        """Create a source, storing its encoded image when given (see source_images.py)."""
        return await create_source_with_image(
            self, new, image_data, source_id=source_id, return_existing=return_existing
        )

    async def get_source(self, source_id: UUID) -> Source:
        return await self.repository.sources.get(source_id)

    async def list_sources(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Source]:
        return await self.repository.sources.list(
            filter=filter, order_by=order_by, page_size=page_size, page_token=page_token
        )

    async def create_frame(self, source_id: UUID, new: NewFrame, image_data: bytes = b"") -> Frame:
        """Add a frame to a video source, storing its encoded image when given."""
        return await create_frame_with_image(self, source_id, new, image_data)

    async def list_frames(
        self, source_id: UUID, *, page_size: int = 0, page_token: str = ""
    ) -> Page[Frame]:
        return await self.repository.sources.list_frames(
            source_id, page_size=page_size, page_token=page_token
        )

    async def get_source_image(self, source_id: UUID, frame_index: int | None) -> StoredImage:
        """The encoded image stored with a source (`frame_index` None) or one of its frames,
        read off the event loop (see metadata/source_image_reads.py)."""
        return await read_source_image(
            self, source_id, frame_index, max_message_bytes=self._max_message_bytes
        )

    # --- categories ---------------------------------------------------------------------------

    async def create_category(self, new: NewCategory) -> Category:
        return await self.repository.categories.create(new)

    async def get_category(self, category_id: UUID) -> Category:
        return await self.repository.categories.get(category_id)

    async def list_categories(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Category]:
        return await self.repository.categories.list(
            filter=filter, order_by=order_by, page_size=page_size, page_token=page_token
        )

    async def update_category(
        self,
        category_id: UUID,
        *,
        paths: Collection[str],
        display_name: str,
        synonyms: Sequence[str],
    ) -> Category:
        return await self.repository.categories.update(
            category_id, paths=paths, display_name=display_name, synonyms=synonyms
        )

    # --- objects and tracks -------------------------------------------------------------------

    async def create_objects(
        self,
        request_id: UUID,
        objects: Sequence[NewObject],
        masks: Sequence[EncodedMask | None],
        *,
        create_missing_categories: bool = False,
        duplicate_iou_threshold: float | None = None,
    ) -> BatchCreateResult:
        """`batch_create` with each mask as the request carried it, decoded at its source's
        size. The sources are read in one query; NotFound names `requests[i].object.source`
        of the first object with a mask whose source does not exist."""
        if len(masks) != len(objects):
            raise ValueError("one mask entry per object is required")
        fields: dict[UUID, str] = {}
        for i, (new, mask) in enumerate(zip(objects, masks, strict=True)):
            if mask is not None:
                fields.setdefault(new.source_id, f"requests[{i}].object.source")
        sources = await self.repository.sources.get_many(fields) if fields else {}
        for source_id, field in fields.items():
            if source_id not in sources:
                raise not_found("source", format_name("sources", source_id), field)
        sizes = [
            None if m is None else _size(sources[o.source_id])
            for o, m in zip(objects, masks, strict=True)
        ]
        arrays = await asyncio.to_thread(decode_masks, masks, sizes)
        return await self.batch_create(
            request_id,
            objects,
            arrays,
            create_missing_categories=create_missing_categories,
            duplicate_iou_threshold=duplicate_iou_threshold,
        )

    async def get_object(self, object_id: UUID) -> ObjectRecord:
        return await self.repository.objects.get(object_id)

    async def list_objects(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[ObjectRecord]:
        return await self.repository.objects.list(
            filter=filter, order_by=order_by, page_size=page_size, page_token=page_token
        )

    async def update_object(
        self, object_id: UUID, changes: ObjectChanges, paths: Collection[str]
    ) -> ObjectRecord:
        updated = await self.repository.objects.update(object_id, changes, paths)
        await self.apply_outbox()  # the vector's payload follows the row
        return updated

    async def object_mask(self, object_id: UUID) -> StoredMask:
        """The object's mask file; NotFound when the object has none."""
        record = await self.repository.objects.get(object_id)
        if not record.has_mask:
            raise not_found("mask", f"{format_name('objects', object_id)}/mask", "name")
        source = await self.repository.sources.get(record.source_id)
        png = await asyncio.to_thread(self.masks.read_png, object_id)
        return StoredMask(object_id, png, width=source.width, height=source.height)

    async def validate_objects(
        self,
        object_ids: Sequence[UUID],
        corrections: Sequence[Correction],
        masks: Sequence[EncodedMask | None],
        *,
        validated_by: str,
        is_validated: bool,
        track_ids: Sequence[UUID] = (),
    ) -> tuple[ObjectRecord, ...]:
        """`validate` with each corrected mask as the request carried it, decoded at its
        object's source's size; the objects and sources are read in one query each."""
        corrected = {c.object_id for c, m in zip(corrections, masks, strict=True) if m is not None}
        records = await self.repository.objects.get_many(corrected) if corrected else {}
        wanted = {r.source_id for r in records.values()}
        sources = await self.repository.sources.get_many(wanted) if wanted else {}
        sizes: list[tuple[int, int] | None] = []
        for i, (correction, mask) in enumerate(zip(corrections, masks, strict=True)):
            record = records.get(correction.object_id)
            # A source deleted meanwhile took its objects with it.
            if mask is not None and (record is None or record.source_id not in sources):
                name = format_name("objects", correction.object_id)
                raise not_found("object", name, f"corrections[{i}].object")
            sizes.append(None if record is None else _size(sources[record.source_id]))
        arrays = await asyncio.to_thread(decode_masks, masks, sizes)
        return await self.validate(
            object_ids,
            corrections,
            arrays,
            validated_by=validated_by,
            is_validated=is_validated,
            track_ids=track_ids,
        )

    async def stats(self, *, filter: str = "", histogram_bins: int = 0) -> Stats:
        return await self.repository.objects.stats(filter=filter, histogram_bins=histogram_bins)

    async def list_tracks(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Track]:
        return await self.repository.tracks.list(
            filter=filter, order_by=order_by, page_size=page_size, page_token=page_token
        )

    async def get_track(self, track_id: UUID) -> Track:
        return await self.repository.tracks.get(track_id)

    async def create_track(
        self, source_id: UUID, object_ids: Sequence[UUID], *, track_id: UUID | None = None
    ) -> Track:
        created = await self.repository.tracks.create(source_id, object_ids, track_id=track_id)
        await self.apply_outbox()  # the objects' vectors carry their new track
        return created

    async def merge_tracks(self, track_ids: Sequence[UUID]) -> Track:
        merged = await self.repository.tracks.merge(track_ids)
        await self.apply_outbox()  # moved objects' vectors carry their new track
        return merged

    async def split_track(self, track_id: UUID, frame_index: int) -> SplitResult:
        result = await self.repository.tracks.split(track_id, frame_index)
        await self.apply_outbox()  # the later objects' vectors carry the new track
        return result

    # --- writes -------------------------------------------------------------------------------

    async def batch_create(
        self,
        request_id: UUID,
        objects: Sequence[NewObject],
        masks: Sequence[npt.NDArray[np.bool_] | None],
        *,
        create_missing_categories: bool = False,
        duplicate_iou_threshold: float | None = None,
    ) -> BatchCreateResult:
        """All or nothing; `masks[i]` (bool, the source's size) belongs to `objects[i]`."""
        if len(masks) != len(objects):
            raise ValueError("one mask entry per object is required")
        # Ids derived from the request: a retry writes the same mask files under the same ids
        # and sends the repository the same batch, which it then recognises as a replay.
        with_ids = [
            o if o.object_id is not None else replace(o, object_id=_object_id(request_id, i))
            for i, o in enumerate(objects)
        ]
        areas = [None if m is None else float(m.sum()) for m in masks]
        with_masks = [
            (new.object_id, mask)
            for new, mask in zip(with_ids, masks, strict=True)
            if mask is not None and new.object_id is not None
        ]
        written: list[UUID] = []
        try:
            if with_masks:
                # One worker hop and one round of fsyncs for the whole batch. (A write that
                # fails half-way leaves files no row points to: reconcile removes them.)
                await asyncio.to_thread(self.masks.write_many, with_masks)
                written = [object_id for object_id, _ in with_masks]
            result = await self.repository.objects.batch_create(
                request_id,
                [
                    o if a is None else replace(o, mask_area=a)
                    for o, a in zip(with_ids, areas, strict=False)
                ],
                create_missing_categories=create_missing_categories,
                duplicate_iou_threshold=duplicate_iou_threshold,
            )
        except BaseException:
            # Nothing was committed. (A file that a concurrent retry of the same request has
            # committed meanwhile is restored by reconcile, which clears has_mask otherwise.)
            await self._remove_masks(written)
            raise
        # Requests merged into existing objects keep no file of their own.
        kept = {o.id for o in result.objects}
        await self._remove_masks([i for i in written if i not in kept])
        if result.embedded_object_ids:
            await self.apply_outbox(flush=False)  # searchable now, flushed by the group commit
        return result

    async def validate(
        self,
        object_ids: Sequence[UUID],
        corrections: Sequence[Correction],
        masks: Sequence[npt.NDArray[np.bool_] | None],
        *,
        validated_by: str,
        is_validated: bool,
        track_ids: Sequence[UUID] = (),
    ) -> tuple[ObjectRecord, ...]:
        """Mark objects reviewed, applying corrections (`masks[i]` replaces the mask of
        `corrections[i]`), and every object of the tracks `track_ids`, all or nothing:
        replaced mask files are restored on failure."""
        previous: dict[UUID, bytes | None] = {}
        try:
            for correction, mask in zip(corrections, masks, strict=True):
                if mask is not None:
                    object_id = correction.object_id
                    if object_id not in previous:
                        previous[object_id] = await asyncio.to_thread(self._png_or_none, object_id)
                    await asyncio.to_thread(self.masks.write, object_id, mask)
            records = await self.repository.objects.validate(
                object_ids,
                [
                    c if m is None else replace(c, mask_area=float(m.sum()))
                    for c, m in zip(corrections, masks, strict=True)
                ],
                validated_by=validated_by,
                is_validated=is_validated,
                track_ids=track_ids,
            )
        except BaseException:
            for object_id, png in previous.items():
                await asyncio.to_thread(self._restore_png, object_id, png)
            raise
        await self.apply_outbox()  # validation changes the vectors' payload
        return records

    def _png_or_none(self, object_id: UUID) -> bytes | None:
        return self.masks.read_png(object_id) if self.masks.exists(object_id) else None

    def _restore_png(self, object_id: UUID, png: bytes | None) -> None:
        if png is None:
            self.masks.delete(object_id)
        else:
            self.masks.write(object_id, decode_mask_png(png))

    async def delete_object(self, object_id: UUID) -> DeletedObject:
        deleted = await self.repository.objects.delete(object_id)
        await self._after_deletes([deleted])
        return deleted

    async def delete_source(self, source_id: UUID) -> None:
        await self._after_deletes(await self.repository.sources.delete(source_id))

    async def delete_category(self, category_id: UUID, *, force: bool) -> None:
        await self._after_deletes(await self.repository.categories.delete(category_id, force=force))

    async def _after_deletes(self, deleted: Sequence[DeletedObject]) -> None:
        await self._remove_masks([d.id for d in deleted if d.had_mask])
        if any(d.had_embedding for d in deleted):
            await self.apply_outbox()

    async def _remove_masks(self, object_ids: Sequence[UUID]) -> None:
        for object_id in object_ids:
            await asyncio.to_thread(self.masks.delete, object_id)

    async def apply_outbox(self, *, flush: bool = True) -> int:
        """Apply pending vector upserts and deletes to the vector store; the count applied.

        With `flush`, the vector store is flushed and the applied entries are removed from the
        outbox before returning; without it (BatchCreateObjects), a group commit does both
        within `vector_flush_interval_s`, for every batch applied meanwhile."""
        applied = 0
        async with self._outbox_lock:
            while ops := await self.repository.outbox.pending(
                limit=_OUTBOX_CHUNK, skip=self._unflushed
            ):
                points = [
                    VectorPoint(op.object_id, list(op.embedding), object_payload(op.object))
                    for op in ops
                    if op.op == "upsert" and op.object is not None and op.embedding is not None
                ]
                gone = [op.object_id for op in ops if op.op == "delete"]
                if points:
                    await self.vectors.upsert(points)
                if gone:
                    await self.vectors.delete(gone)
                self._unflushed.extend(outbox_id for op in ops for outbox_id in op.outbox_ids)
                applied += len(ops)
            if flush or self._flush_interval_s <= 0:
                await self._flush_applied()
            elif self._unflushed and (self._flusher is None or self._flusher.done()):
                self._flusher = asyncio.create_task(self._flush_later())
        return applied

    async def flush_vectors(self) -> None:
        """Flush the vector store and remove the outbox entries it now holds (the group
        commit, done now)."""
        async with self._outbox_lock:
            await self._flush_applied()

    async def _flush_applied(self) -> None:
        """Under the outbox lock: the flush, then the applied entries are marked. A crash
        between the two re-applies entries that are already stored: idempotent."""
        if not self._unflushed:
            return
        await self.vectors.flush()
        await self.repository.outbox.mark_applied(self._unflushed)
        self._unflushed = []

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._flush_interval_s)
        try:
            await self.flush_vectors()
        except Exception:  # the entries stay in the outbox: the next write or start retries
            logger.exception("could not flush the vector store; the outbox keeps the entries")

    # --- search -------------------------------------------------------------------------------

    async def search_similar(
        self,
        *,
        object_id: UUID | None = None,
        vector: Sequence[float] | None = None,
        filter_text: str = "",
        top_k: int = 10,
        hnsw_ef: int | None = None,
        exact: bool = False,
    ) -> list[SimilarObject]:
        """Objects most similar to an object's embedding or to a vector, within a filter."""
        query: Sequence[float]
        if object_id is not None:
            embeddings = await self.repository.scans.embeddings_for([object_id])
            if object_id not in embeddings:
                await self.repository.objects.get(object_id)  # NotFound when there is none
                raise InvalidArgument("the object has no embedding to search with", field="object")
            query = embeddings[object_id]
        elif vector is not None:
            query = vector
        else:
            raise InvalidArgument("set object or vector", field="query")
        expr = await self._payload_filter(parse_filter(filter_text, OBJECT_FILTER))
        wanted = top_k + (1 if object_id is not None else 0)
        hits = await self.vectors.search(
            query, filter=expr, top_k=wanted, hnsw_ef=hnsw_ef, exact=exact
        )
        hits = [h for h in hits if h.id != object_id][:top_k]
        records = await self.repository.objects.get_many([h.id for h in hits])
        # A vector whose row is gone (before reconcile) is skipped, never shown.
        return [SimilarObject(records[h.id], h.score) for h in hits if h.id in records]

    async def _payload_filter(self, expr: Expr | None) -> Expr | None:
        """Rewrite names in a filter to the ids the vector payload holds."""
        if expr is None:
            return None
        names = {
            str(c.value)
            for c in _comparisons(expr)
            if c.field == "category" and isinstance(c.value, str)
        }
        category_ids = await self.repository.categories.ids_for_names(sorted(names))

        def to_ids(comparison: Comparison) -> Comparison:
            if not isinstance(comparison.value, str):
                return comparison
            if comparison.field == "category":
                found = category_ids.get(comparison.value)
                return replace(comparison, value="" if found is None else str(found))
            if comparison.field in ("source", "track"):
                collection: Literal["sources", "tracks"] = (
                    "sources" if comparison.field == "source" else "tracks"
                )
                return replace(
                    comparison, value=str(parse_name(comparison.value, collection, field="filter"))
                )
            return comparison

        return map_comparisons(expr, to_ids)

    # --- active learning ----------------------------------------------------------------------

    async def review_candidates(
        self, filter: str = "", limit: int = MAX_REVIEW_CANDIDATES
    ) -> ReviewCandidates:
        """What SuggestForReview ranks: the unvalidated objects matching `filter` (at most
        `limit`), their embeddings, validated objects' embeddings and the candidates' images
        (see metadata/review_candidates.py)."""
        return await gather_review_candidates(self, filter, limit=limit)

    # --- datasets, exports and imports ------------------------------------------------------

    async def create_dataset(
        self, new: NewDataset, *, dataset_id: UUID | None = None
    ) -> DatasetRecord:
        return await self.repository.datasets.create(new, dataset_id=dataset_id)

    async def get_dataset(self, dataset_id: UUID) -> DatasetRecord:
        return await self.repository.datasets.get(dataset_id)

    async def list_datasets(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> Page[DatasetRecord]:
        return await self.repository.datasets.list(page_size=page_size, page_token=page_token)

    async def delete_dataset(self, dataset_id: UUID) -> None:
        await self.repository.datasets.delete(dataset_id)

    async def begin_build(self, dataset_id: UUID) -> DatasetRecord:
        """Mark the dataset BUILDING (refused when it cannot be built now)."""
        return await self.repository.datasets.begin_build(dataset_id)

    async def build_dataset(self, dataset_id: UUID) -> DatasetRecord:
        """Snapshot the membership and split it; a build that fails or is cancelled leaves
        the dataset FAILED, never BUILDING."""
        try:
            return await self.repository.datasets.build(dataset_id)
        except BaseException:
            await asyncio.shield(self.repository.datasets.fail_build(dataset_id))
            raise

    async def fail_build(self, dataset_id: UUID) -> DatasetRecord:
        return await self.repository.datasets.fail_build(dataset_id)

    async def fail_stale_builds(self, older_than: timedelta) -> int:
        """End builds left BUILDING for longer than `older_than` (their server died)."""
        return await self.repository.datasets.fail_stale_builds(older_than)

    async def export_target(
        self, dataset_id: UUID, output_dir: str, *, overwrite: bool
    ) -> tuple[DatasetRecord, Path]:
        """The built dataset and the checked directory under the export root to write it
        to; nothing is written yet."""
        dataset = await self.repository.datasets.get(dataset_id)
        check_exportable(dataset)
        target = await asyncio.to_thread(
            resolve_target, self._exports_root, output_dir, overwrite=overwrite
        )
        return dataset, target

    async def export_dataset(
        self,
        dataset: DatasetRecord,
        export_format: ExportFormat,
        target: Path,
        transfer: ImageTransfer,
        *,
        overwrite: bool,
        staging_token: str,
        progress: JobProgress,
    ) -> ExportSummary:
        """Write the dataset to `target` (from `export_target`), through a staging directory
        named by `staging_token`."""
        export = ExportRequest(
            dataset,
            export_format,
            target,
            transfer,
            overwrite,
            staging_token=staging_token,
            min_fragment_area=self._min_fragment_area,
        )
        return await export_dataset(
            export, self.repository.datasets.images(dataset.id), self.images, self.masks, progress
        )

    async def sweep_export_staging(
        self, live_tokens: Callable[[], Awaitable[Collection[str]]]
    ) -> list[Path]:
        """Remove the staging directories that interrupted exports left under the export
        root, except those whose token `live_tokens` names (asked only when there are any)."""
        found = await asyncio.to_thread(find_staging, self._exports_root)
        if not found:
            return []
        return await asyncio.to_thread(sweep_staging, found, await live_tokens())

    async def open_label_sets(
        self, label_format: LabelSetFormat, path: Path
    ) -> list[ImportedLabelSet]:
        """The label sets at `path` on this host, checked and read (see ground_truth.py)."""
        return await asyncio.to_thread(open_label_set, label_format, path)

    async def import_labels(
        self,
        label_sets: list[ImportedLabelSet],
        *,
        validated_by: str,
        request_id: UUID,
        progress: JobProgress,
    ) -> ImportCounts:
        """Import the label sets as validated objects, image by image (see ground_truth.py)."""
        return await import_label_set(
            self, label_sets, validated_by=validated_by, request_id=request_id, progress=progress
        )

    async def evaluation_images(self, dataset_id: UUID, split: str) -> EvaluationSet:
        """A built dataset's split as evaluation scores it: its images with validated objects
        (files and sizes), those objects as ground truth, the class names (see
        evaluation_sets.py)."""
        return await read_evaluation_set(
            self.repository.datasets, self.database, self.images, dataset_id, split
        )

    async def auto_label_predictions(
        self, evaluation: EvaluationSet, detection_model: str
    ) -> list[ScoredBox]:
        """What `detection_model` itself produced on the evaluation set's images, before any
        review changed it (see evaluation_sets.py)."""
        return await auto_label_predictions(self.database, evaluation, detection_model)

    # --- training runs and evaluations ---------------------------------------------------------

    async def create_run(
        self, new: NewRun, *, run_id: UUID, request_id: UUID | None
    ) -> tuple[RunRecord, bool]:
        """The new run QUEUED and True, or the run of an earlier request with `request_id`
        and False. The run is marked as this instance's (see `fail_unfinished_runs`)."""
        return await self._training_runs.create(
            new, run_id=run_id, request_id=request_id, owner=self.operation_owner
        )

    async def get_run(self, run_id: UUID) -> RunRecord:
        return await self._training_runs.get(run_id)

    async def list_runs(self, *, page_size: int = 0, page_token: str = "") -> Page[RunRecord]:
        return await self._training_runs.list(page_size=page_size, page_token=page_token)

    async def set_run_operation(self, run_id: UUID, operation: str) -> None:
        await self._training_runs.set_operation(run_id, operation)

    async def start_run(self, run_id: UUID) -> RunRecord:
        return await self._training_runs.start(run_id)

    async def set_run_mlflow(self, run_id: UUID, mlflow_run_id: str) -> None:
        await self._training_runs.set_mlflow_run(run_id, mlflow_run_id)

    async def record_run_epoch(
        self, run_id: UUID, epochs_completed: int, metrics: dict[str, float]
    ) -> None:
        await self._training_runs.record_epoch(run_id, epochs_completed, metrics)

    async def finish_run(
        self,
        run_id: UUID,
        state: RunState,
        *,
        metrics: dict[str, float] | None = None,
        weights_path: str = "",
        epochs_completed: int | None = None,
        error_message: str = "",
    ) -> RunRecord:
        return await self._training_runs.finish(
            run_id,
            state,
            metrics=metrics,
            weights_path=weights_path,
            epochs_completed=epochs_completed,
            error_message=error_message,
        )

    async def fail_unfinished_runs(self, message: str) -> tuple[UUID, ...]:
        """End the runs this instance's predecessor left QUEUED or RUNNING (it stopped)."""
        return await self._training_runs.fail_unfinished(self.operation_owner, message)

    async def export_training_data(
        self,
        dataset: DatasetRecord,
        target: Path,
        *,
        segment: bool,
        staging_token: str,
        progress: JobProgress,
    ) -> ExportSummary:
        """Write the built dataset as YOLO into `target` (a run's directory, not under the
        export root), images linked rather than copied: they stay in the image store."""
        export = ExportRequest(
            dataset,
            ExportFormat.YOLO_SEGMENT if segment else ExportFormat.YOLO_DETECT,
            target,
            ImageTransfer.SYMLINK,
            overwrite=True,
            staging_token=staging_token,
            min_fragment_area=self._min_fragment_area,
        )
        return await export_dataset(
            export, self.repository.datasets.images(dataset.id), self.images, self.masks, progress
        )

    async def create_evaluation(
        self, new: NewEvaluation, *, evaluation_id: UUID, request_id: UUID | None
    ) -> EvaluationRecord:
        return await self._evaluations.create(
            new, evaluation_id=evaluation_id, request_id=request_id
        )

    async def evaluation_by_request(self, request_id: UUID) -> EvaluationRecord | None:
        return await self._evaluations.by_request(request_id)

    async def list_evaluations(
        self, *, run_id: UUID | None = None, page_size: int = 0, page_token: str = ""
    ) -> Page[EvaluationRecord]:
        return await self._evaluations.list(
            run_id=run_id, page_size=page_size, page_token=page_token
        )

    # --- repair -------------------------------------------------------------------------------

    async def reconcile(self, *, dry_run: bool = False) -> ReconcileReport:
        """Make Qdrant and the mask files match Postgres; say what was (or would be) fixed."""
        await self.flush_vectors()  # what is applied already is not pending
        if dry_run:
            # Objects the pending outbox will write are not missing: the real run applies it.
            outbox = await self.repository.outbox.pending_count()
            queued = {op.object_id for op in await self.repository.outbox.pending(limit=outbox)}
        else:
            outbox, queued = await self.apply_outbox(), set()
        restored = missing = 0
        want_vector: set[UUID] = set()
        after: UUID | None = None
        while states := await self.repository.scans.scan_objects(after=after, limit=_SCAN_CHUNK):
            after = states[-1].id
            embedded = [s.id for s in states if s.has_embedding]
            want_vector.update(embedded)
            present = await self.vectors.retrieve(embedded)
            lacking = [i for i in embedded if i not in present and i not in queued]
            restored += len(lacking)
            if lacking and not dry_run:
                await self._restore_vectors(lacking)
            without_file = [
                s.id
                for s in states
                if s.has_mask and not await asyncio.to_thread(self.masks.exists, s.id)
            ]
            missing += len(without_file)
            if without_file and not dry_run:
                await self.repository.scans.clear_masks(without_file)
        extra_vectors = [i async for i in self.vectors.ids() if i not in want_vector]
        if extra_vectors and not dry_run:
            await self.vectors.delete(extra_vectors)
        file_ids = list(await asyncio.to_thread(lambda: list(self.masks.iter_ids())))
        with_mask = await self._ids_with_mask(file_ids)
        extra_files = [i for i in file_ids if i not in with_mask]
        if not dry_run:
            await self._remove_masks(extra_files)
            await asyncio.to_thread(self.masks.remove_stale_temp_files)
            await self.vectors.flush()
            await self._optimize_if_needed()
        return ReconcileReport(
            outbox_applied=outbox,
            vectors_restored=restored,
            vectors_removed=len(extra_vectors),
            masks_missing=missing,
            masks_removed=len(extra_files),
        )

    async def _restore_vectors(self, object_ids: Sequence[UUID]) -> None:
        embeddings = await self.repository.scans.embeddings_for(object_ids)
        records = await self.repository.objects.get_many(object_ids)
        await self.vectors.upsert(
            [
                VectorPoint(r.id, list(embeddings[r.id]), object_payload(r))
                for r in records.values()
                if r.id in embeddings
            ]
        )

    async def _ids_with_mask(self, object_ids: Sequence[UUID]) -> set[UUID]:
        """Which of these ids are objects whose row says they have a mask."""
        found: set[UUID] = set()
        for start in range(0, len(object_ids), _SCAN_CHUNK):
            chunk = object_ids[start : start + _SCAN_CHUNK]
            records = await self.repository.objects.get_many(chunk)
            found.update(r.id for r in records.values() if r.has_mask)
        return found

    async def _optimize_if_needed(self) -> None:
        if isinstance(self.vectors, EdgeVectorStore):
            await self.vectors.optimize_if_needed(_OPTIMIZE_MIN_UNINDEXED)


async def _open_vectors(settings: Settings, dimension: int) -> VectorStore:
    """The vector store, which must hold vectors of `dimension` if it holds any."""
    try:
        quantization = ScalarQuantization(enabled=settings.vector_quantization)
        if settings.qdrant_url:
            return await QdrantServerVectorStore.connect(
                settings.qdrant_url, dimension=dimension, quantization=quantization
            )
        return await EdgeVectorStore.open(
            settings.data_dir / "qdrant", dimension=dimension, quantization=quantization
        )
    except FailedPrecondition as error:
        if error.reason != "EMBEDDING_DIMENSION_MISMATCH":
            raise
        where = settings.qdrant_url or settings.data_dir / "qdrant"
        raise FailedPrecondition(
            f"the vector store at {where} holds {error.metadata.get('stored')}-dimensional"
            f" embeddings, not the registry's {dimension}: use the vector store that"
            f" {where_stored(settings)} was created with, or another --data-dir",
            reason="EMBEDDING_DIMENSION_MISMATCH",
            metadata={"recorded": str(dimension), "stored": error.metadata.get("stored", "")},
        ) from None


def _size(source: Source) -> tuple[int, int]:
    return (source.height, source.width)


def _object_id(request_id: UUID, index: int) -> UUID:
    return uuid.uuid5(request_id, f"object/{index}")


def _comparisons(expr: Expr) -> list[Comparison]:
    found: list[Comparison] = []

    def collect(comparison: Comparison) -> Comparison:
        found.append(comparison)
        return comparison

    map_comparisons(expr, collect)
    return found
