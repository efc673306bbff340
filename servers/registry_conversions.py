"""Between RegistryService messages and the registry's records, in one place.

Handlers convert a request with one call here, call the registry, and convert the result back
with one more; nothing else in the servers reads a registry message field by field. Every
function is pure: no I/O, no gRPC.

Conventions:

- Names. Records hold UUIDs; messages hold resource names (`sources/{id}`, `categories/{id}`,
  `objects/{id}`, `tracks/{id}`), formatted and parsed by `registry.values.resource_names`, and
  frames are `sources/{id}/frames/{frame_index}`. An optional reference (`track`, `category` on
  create) is a name or empty for none. The `*_id` fields of create requests (`source_id`,
  `object_id`) take a bare UUID (AIP-133); the resource's own `name` is ignored unless that
  ID is set, and must then agree with it.
- Times. Records hold aware UTC datetimes and timedeltas; messages google.protobuf.Timestamp
  and Duration, exact to the microsecond. An incoming Duration drops nanoseconds below a
  microsecond (Postgres intervals hold microseconds), as protobuf's own `ToTimedelta` does.
  A missing time (`validate_time` of an unvalidated object) is an unset field.
- Enums. `records.SourceKind` <-> `common_pb2.SourceKind`; UNSPECIFIED or an unknown number in
  a request is InvalidArgument.
- Field paths. Every refusal is InvalidArgument naming the field as the client spells it:
  `requests[3].object.bbox`, `source.kind`, `update_mask.paths[1]`. Only what the wire form
  decides is checked here (presence, names, enums, finite floats, update masks); value checks
  (ranges, lengths, boxes inside the image) are the repository's, which names the same paths.
- Output-only fields in requests (`area`, `is_validated`, `create_time`, ...) are ignored
  (AIP-203); naming one in an update mask is refused.
- Update masks. An empty mask and the wildcard `*` are refused: with proto3 scalars a full
  replacement would silently zero every field the client did not mean to send.
- Masks in requests stay undecoded (`MaskInput`): decoding needs the source's size, which the
  caller fetches; `MaskInput.array` then decodes with `conversions.mask_array`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID

import numpy as np
import numpy.typing as npt
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from google.protobuf.message import Message

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.values.records import (
    BatchCreateResult,
    BoundingBox,
    Category,
    Correction,
    CountEntry,
    Frame,
    NewCategory,
    NewFrame,
    NewObject,
    NewSource,
    ObjectChanges,
    ObjectRecord,
    Page,
    Source,
    SourceKind,
    SplitResult,
    Stats,
    StoredImage,
    Track,
)
from agentic_labeling.registry.values.resource_names import (
    Collection,
    format_name,
    parse_name,
    parse_uuid,
)
from agentic_labeling.servers.conversions import mask_array
from agentic_labeling.v1 import common_pb2, registry_pb2

__all__ = [
    "CATEGORY_UPDATE_PATHS",
    "DEFAULT_TOP_K",
    "MAX_TOP_K",
    "OBJECT_UPDATE_PATHS",
    "BatchOptions",
    "CategoryUpdate",
    "MaskInput",
    "ObjectUpdate",
    "ScoredObject",
    "SimilarityQuery",
    "batch_create_response",
    "batch_options",
    "bbox_message",
    "bbox_record",
    "category_changes",
    "category_message",
    "corrections",
    "duration_message",
    "frame_message",
    "frame_name",
    "list_categories_response",
    "list_frames_response",
    "list_objects_response",
    "list_sources_response",
    "list_tracks_response",
    "new_category",
    "new_frame",
    "new_objects",
    "new_source",
    "new_track",
    "object_changes",
    "object_mask_message",
    "object_message",
    "search_similar_response",
    "similarity_query",
    "source_image_frame_index",
    "source_image_message",
    "source_kind",
    "source_kind_message",
    "source_message",
    "split_track_response",
    "stats_message",
    "timedelta_from",
    "timestamp_message",
    "track_message",
    "uuid_from_name",
    "uuids_from_names",
    "validate_objects_response",
]

# What `ObjectStore.update` and `CategoryStore.update` accept (the tests hold them to it).
OBJECT_UPDATE_PATHS = frozenset(
    {"category", "category_name", "bbox", "confidence", "quality_score", "track", "attributes"}
)
CATEGORY_UPDATE_PATHS = frozenset({"display_name", "synonyms"})
_OBJECT_FIELDS = frozenset(registry_pb2.LabeledObject.DESCRIPTOR.fields_by_name)
_CATEGORY_FIELDS = frozenset(registry_pb2.Category.DESCRIPTOR.fields_by_name)
DEFAULT_TOP_K = 10
MAX_TOP_K = 1000

_KIND_MESSAGES: dict[SourceKind, common_pb2.SourceKind] = {
    SourceKind.IMAGE: common_pb2.SOURCE_KIND_IMAGE,
    SourceKind.VIDEO: common_pb2.SOURCE_KIND_VIDEO,
}
_KINDS: dict[int, SourceKind] = {number: kind for kind, number in _KIND_MESSAGES.items()}


# --- Masks and request-side results -------------------------------------------------------------


@dataclass(frozen=True)
class MaskInput:
    """A request's mask, not decoded yet; `field` is its path (`requests[2].mask`)."""

    message: common_pb2.Mask
    field: str

    def array(self, *, height: int, width: int) -> npt.NDArray[np.bool_]:
        """The mask as bool (height, width); InvalidArgument naming `field` when it is not
        that size or cannot be decoded."""
        return mask_array(self.message, height=height, width=width, field=self.field)


@dataclass(frozen=True)
class BatchOptions:
    """The batch-wide fields of BatchCreateObjectsRequest, as `batch_create` takes them."""

    request_id: UUID
    create_missing_categories: bool
    duplicate_iou_threshold: float | None  # None: the registry's default


@dataclass(frozen=True)
class ObjectUpdate:
    """UpdateObjectRequest as `ObjectStore.update(object_id, changes, paths)` takes it."""

    object_id: UUID
    changes: ObjectChanges
    paths: frozenset[str]


@dataclass(frozen=True)
class CategoryUpdate:
    """UpdateCategoryRequest as `CategoryStore.update` takes it."""

    category_id: UUID
    paths: frozenset[str]
    display_name: str
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class SimilarityQuery:
    """SearchSimilarRequest with its defaults applied: exactly one of object_id and vector."""

    object_id: UUID | None
    vector: tuple[float, ...] | None
    filter: str
    top_k: int
    hnsw_ef: int | None  # None: the vector store's default
    exact: bool


@dataclass(frozen=True)
class NewTrack:
    """CreateTrackRequest as IDs."""

    source_id: UUID
    object_ids: list[UUID]
    track_id: UUID | None


class ScoredObject(Protocol):
    """A search hit: an object and its cosine similarity."""

    @property
    def object(self) -> ObjectRecord: ...

    @property
    def score(self) -> float: ...


# --- Scalars: names, times, enums, boxes --------------------------------------------------------


def uuid_from_name(name: str, collection: Collection, field: str) -> UUID:
    """The UUID in `collection/{uuid}`; InvalidArgument naming `field` when empty or malformed."""
    if not name:
        raise InvalidArgument(f"is required: {collection}/{{uuid}}", field=field)
    return parse_name(name, collection, field=field)


def uuids_from_names(names: Iterable[str], collection: Collection, field: str) -> list[UUID]:
    """The UUIDs of repeated names; a bad one is named `field[i]`."""
    return [uuid_from_name(name, collection, f"{field}[{i}]") for i, name in enumerate(names)]


def _optional_uuid(name: str, collection: Collection, field: str) -> UUID | None:
    return parse_name(name, collection, field=field) if name else None


def _optional_name(collection: Collection, resource_id: UUID | None) -> str:
    return "" if resource_id is None else format_name(collection, resource_id)


def _new_id(
    id_text: str, name: str, collection: Collection, fields: tuple[str, str]
) -> UUID | None:
    """The ID a create request asks for (`fields`: the ID's path, the name's path), or None."""
    id_field, name_field = fields
    if not id_text:
        return None
    new_id = parse_uuid(id_text, field=id_field)
    if name and parse_name(name, collection, field=name_field) != new_id:
        raise InvalidArgument(
            f"{name!r} disagrees with {id_field} {id_text!r}; leave it empty", field=name_field
        )
    return new_id


def frame_name(source_id: UUID, frame_index: int) -> str:
    """`sources/{source}/frames/{frame_index}`."""
    return f"{format_name('sources', source_id)}/frames/{frame_index}"


def timestamp_message(value: datetime) -> timestamp_pb2.Timestamp:
    """An aware datetime as a Timestamp, exact to the microsecond."""
    if value.utcoffset() is None:
        raise ValueError(f"registry times are aware datetimes, got naive {value!r}")
    message = timestamp_pb2.Timestamp()
    message.FromDatetime(value)
    return message


def duration_message(value: timedelta) -> duration_pb2.Duration:
    """A timedelta as a Duration, exact to the microsecond."""
    message = duration_pb2.Duration()
    message.FromTimedelta(value)
    return message


def timedelta_from(message: duration_pb2.Duration, field: str) -> timedelta:
    """A request's Duration as a timedelta (nanoseconds below a microsecond dropped)."""
    nanos, seconds = message.nanos, message.seconds
    if not -1_000_000_000 < nanos < 1_000_000_000 or (nanos < 0 < seconds or seconds < 0 < nanos):
        raise InvalidArgument(
            f"is not a valid Duration: nanos {nanos} must be within ±999999999 and share the "
            f"sign of seconds {seconds}",
            field=field,
        )
    return message.ToTimedelta()


def source_kind_message(kind: SourceKind) -> common_pb2.SourceKind:
    return _KIND_MESSAGES[kind]


def source_kind(value: int, field: str) -> SourceKind:
    """A request's SourceKind; UNSPECIFIED or an unknown number is InvalidArgument."""
    if value not in _KINDS:
        raise InvalidArgument(
            f"must be SOURCE_KIND_IMAGE or SOURCE_KIND_VIDEO, got {value}", field=field
        )
    return _KINDS[value]


def bbox_message(box: BoundingBox) -> common_pb2.BoundingBox:
    return common_pb2.BoundingBox(x=box.x, y=box.y, width=box.width, height=box.height)


def bbox_record(message: common_pb2.BoundingBox) -> BoundingBox:
    return BoundingBox(message.x, message.y, message.width, message.height)


def _floats(values: Iterable[float], field: str) -> tuple[float, ...]:
    vector = tuple(float(v) for v in values)
    if not all(math.isfinite(v) for v in vector):
        raise InvalidArgument("values must be finite numbers", field=field)
    return vector


# --- Records to messages ------------------------------------------------------------------------


def source_message(source: Source) -> registry_pb2.Source:
    return registry_pb2.Source(
        name=format_name("sources", source.id),
        kind=source_kind_message(source.kind),
        uri=source.uri,
        display_name=source.display_name,
        width=source.width,
        height=source.height,
        content_sha256=source.content_sha256,
        frame_count=source.frame_count,
        object_count=source.object_count,
        attributes=dict(source.attributes),
        create_time=timestamp_message(source.create_time),
    )


def source_image_message(image: StoredImage) -> registry_pb2.SourceImage:
    return registry_pb2.SourceImage(
        name=image.owner,
        data=image.data,
        mime_type=image.mime_type,
        content_sha256=image.sha256,
        width=image.width,
        height=image.height,
    )


def source_image_frame_index(request: registry_pb2.GetSourceImageRequest) -> int | None:
    """The requested frame, None when unset; InvalidArgument when negative."""
    if not request.HasField("frame_index"):
        return None
    if request.frame_index < 0:
        raise InvalidArgument("must not be negative", field="frame_index")
    return int(request.frame_index)


def frame_message(frame: Frame) -> registry_pb2.Frame:
    return registry_pb2.Frame(
        name=frame_name(frame.source_id, frame.frame_index),
        frame_index=frame.frame_index,
        timestamp=duration_message(frame.timestamp),
        uri=frame.uri,
        content_sha256=frame.content_sha256,
        object_count=frame.object_count,
    )


def category_message(category: Category) -> registry_pb2.Category:
    return registry_pb2.Category(
        name=format_name("categories", category.id),
        display_name=category.display_name,
        synonyms=category.synonyms,
        object_count=category.object_count,
        create_time=timestamp_message(category.create_time),
    )


def object_message(record: ObjectRecord) -> registry_pb2.LabeledObject:
    """The object with its category's name and display name (the record carries both)."""
    message = registry_pb2.LabeledObject(
        name=format_name("objects", record.id),
        source=format_name("sources", record.source_id),
        frame_index=record.frame_index,
        category=format_name("categories", record.category_id),
        category_name=record.category_name,
        bbox=bbox_message(record.bbox),
        confidence=record.confidence,
        area=record.area,
        has_mask=record.has_mask,
        has_embedding=record.has_embedding,
        detection_model=record.detection_model,
        is_validated=record.is_validated,
        validated_by=record.validated_by or "",
        quality_score=record.quality_score,
        track=_optional_name("tracks", record.track_id),
        attributes=dict(record.attributes),
        create_time=timestamp_message(record.create_time),
        update_time=timestamp_message(record.update_time),
    )
    if record.validate_time is not None:
        message.validate_time.CopyFrom(timestamp_message(record.validate_time))
    return message


def track_message(track: Track) -> registry_pb2.Track:
    """The track with the objects the record holds (GetTrack's; List's records hold none)."""
    return registry_pb2.Track(
        name=format_name("tracks", track.id),
        source=format_name("sources", track.source_id),
        category=_optional_name("categories", track.category_id),
        first_frame_index=track.first_frame_index,
        last_frame_index=track.last_frame_index,
        object_count=track.object_count,
        objects=[object_message(o) for o in track.objects],
        create_time=timestamp_message(track.create_time),
        average_confidence=track.average_confidence,
        first_frame_time=duration_message(track.first_frame_time),
        last_frame_time=duration_message(track.last_frame_time),
    )


def stats_message(stats: Stats) -> registry_pb2.Stats:
    def entries(counts: Iterable[CountEntry]) -> list[registry_pb2.CountEntry]:
        return [
            registry_pb2.CountEntry(key=c.key, display_name=c.display_name, count=c.count)
            for c in counts
        ]

    return registry_pb2.Stats(
        object_count=stats.object_count,
        source_count=stats.source_count,
        per_category=entries(stats.per_category),
        per_source=entries(stats.per_source),
        per_model=entries(stats.per_model),
        validated_fraction=stats.validated_fraction,
        confidence_histogram=[
            registry_pb2.HistogramBin(lower=b.lower, upper=b.upper, count=b.count)
            for b in stats.confidence_histogram
        ],
    )


def list_sources_response(page: Page[Source]) -> registry_pb2.ListSourcesResponse:
    return registry_pb2.ListSourcesResponse(
        sources=[source_message(s) for s in page.items],
        next_page_token=page.next_page_token,
        total_size=page.total_size or 0,
    )


def list_frames_response(page: Page[Frame]) -> registry_pb2.ListFramesResponse:
    return registry_pb2.ListFramesResponse(
        frames=[frame_message(f) for f in page.items], next_page_token=page.next_page_token
    )


def list_categories_response(page: Page[Category]) -> registry_pb2.ListCategoriesResponse:
    return registry_pb2.ListCategoriesResponse(
        categories=[category_message(c) for c in page.items],
        next_page_token=page.next_page_token,
    )


def list_objects_response(page: Page[ObjectRecord]) -> registry_pb2.ListObjectsResponse:
    return registry_pb2.ListObjectsResponse(
        objects=[object_message(o) for o in page.items],
        next_page_token=page.next_page_token,
        total_size=page.total_size or 0,
    )


def list_tracks_response(page: Page[Track]) -> registry_pb2.ListTracksResponse:
    return registry_pb2.ListTracksResponse(
        tracks=[track_message(t) for t in page.items], next_page_token=page.next_page_token
    )


def batch_create_response(result: BatchCreateResult) -> registry_pb2.BatchCreateObjectsResponse:
    return registry_pb2.BatchCreateObjectsResponse(
        objects=[object_message(o) for o in result.objects],
        merged=[
            registry_pb2.MergedObject(
                request_index=m.request_index,
                existing_object=format_name("objects", m.existing_object_id),
                iou=m.iou,
            )
            for m in result.merged
        ],
        replayed=result.replayed,
    )


def validate_objects_response(
    records: Iterable[ObjectRecord],
) -> registry_pb2.ValidateObjectsResponse:
    return registry_pb2.ValidateObjectsResponse(objects=[object_message(o) for o in records])


def split_track_response(result: SplitResult) -> registry_pb2.SplitTrackResponse:
    return registry_pb2.SplitTrackResponse(
        before=track_message(result.before), after=track_message(result.after)
    )


def search_similar_response(
    results: Iterable[ScoredObject],
) -> registry_pb2.SearchSimilarResponse:
    return registry_pb2.SearchSimilarResponse(
        results=[
            registry_pb2.SimilarObject(object=object_message(r.object), score=r.score)
            for r in results
        ]
    )


def object_mask_message(
    object_id: UUID, png: bytes, *, width: int, height: int
) -> registry_pb2.ObjectMask:
    return registry_pb2.ObjectMask(
        object=format_name("objects", object_id), png=png, width=width, height=height
    )


# --- Requests to records ------------------------------------------------------------------------


def _require(message: Message, name: str, field: str) -> None:
    if not message.HasField(name):
        raise InvalidArgument("is required", field=field)


def new_track(request: registry_pb2.CreateTrackRequest) -> NewTrack:
    """The source, objects and optional track ID of a CreateTrack request."""
    return NewTrack(
        source_id=uuid_from_name(request.source, "sources", "source"),
        object_ids=uuids_from_names(request.objects, "objects", "objects"),
        track_id=parse_uuid(request.track_id, field="track_id") if request.track_id else None,
    )


def new_source(request: registry_pb2.CreateSourceRequest) -> tuple[NewSource, UUID | None]:
    """The source to create and the ID the request asks for (None: the registry picks)."""
    _require(request, "source", "source")
    source = request.source
    new = NewSource(
        kind=source_kind(source.kind, "source.kind"),
        width=source.width,
        height=source.height,
        uri=source.uri,
        display_name=source.display_name,
        content_sha256=source.content_sha256,
        attributes=dict(source.attributes),
    )
    return new, _new_id(request.source_id, source.name, "sources", ("source_id", "source.name"))


def new_frame(request: registry_pb2.CreateFrameRequest) -> tuple[UUID, NewFrame]:
    """The parent source's ID and the frame to add to it."""
    source_id = uuid_from_name(request.parent, "sources", "parent")
    _require(request, "frame", "frame")
    frame = request.frame
    return source_id, NewFrame(
        frame_index=frame.frame_index,
        timestamp=timedelta_from(frame.timestamp, "frame.timestamp"),
        uri=frame.uri,
        content_sha256=frame.content_sha256,
    )


def new_category(request: registry_pb2.CreateCategoryRequest) -> NewCategory:
    _require(request, "category", "category")
    category = request.category
    return NewCategory(display_name=category.display_name, synonyms=tuple(category.synonyms))


def batch_options(request: registry_pb2.BatchCreateObjectsRequest) -> BatchOptions:
    if not request.request_id:
        raise InvalidArgument("is required: a UUID chosen by the client", field="request_id")
    return BatchOptions(
        request_id=parse_uuid(request.request_id, field="request_id"),
        create_missing_categories=request.create_missing_categories,
        duplicate_iou_threshold=(
            request.duplicate_iou_threshold if request.HasField("duplicate_iou_threshold") else None
        ),
    )


def new_objects(
    request: registry_pb2.BatchCreateObjectsRequest,
) -> list[tuple[NewObject, MaskInput | None]]:
    """One NewObject per request, in order, with its mask undecoded (`mask_area` stays None:
    the caller decodes the mask against its source and fills it in)."""
    return [_new_object(item, f"requests[{i}]") for i, item in enumerate(request.requests)]


def _new_object(
    item: registry_pb2.CreateObjectRequest, field: str
) -> tuple[NewObject, MaskInput | None]:
    _require(item, "object", f"{field}.object")
    obj = item.object
    _require(obj, "bbox", f"{field}.object.bbox")
    new = NewObject(
        source_id=uuid_from_name(obj.source, "sources", f"{field}.object.source"),
        bbox=bbox_record(obj.bbox),
        frame_index=obj.frame_index,
        category_id=_optional_uuid(obj.category, "categories", f"{field}.object.category"),
        category_name=obj.category_name,
        confidence=obj.confidence,
        detection_model=obj.detection_model,
        quality_score=obj.quality_score,
        track_id=_optional_uuid(obj.track, "tracks", f"{field}.object.track"),
        attributes=dict(obj.attributes),
        object_id=_new_id(
            item.object_id, obj.name, "objects", (f"{field}.object_id", f"{field}.object.name")
        ),
        embedding=(
            _floats(item.embedding.values, f"{field}.embedding")
            if item.HasField("embedding")
            else None
        ),
    )
    mask = MaskInput(item.mask, f"{field}.mask") if item.HasField("mask") else None
    return new, mask


def _mask_paths(
    mask: field_mask_pb2.FieldMask, allowed: frozenset[str], resource_fields: frozenset[str]
) -> frozenset[str]:
    """The paths of an update mask, each one `allowed`; the other `resource_fields` are
    read-only there, anything else unknown."""
    if not mask.paths:
        raise InvalidArgument(
            f"name at least one field to update: {', '.join(sorted(allowed))}", field="update_mask"
        )
    for i, path in enumerate(mask.paths):
        if path in allowed:
            continue
        if path == "*":
            problem = "full replacement ('*') is not supported; name the fields to change"
        elif path in resource_fields:
            problem = f"{path!r} cannot be changed here"
            if path in ("is_validated", "validated_by", "validate_time"):
                problem += "; use ValidateObjects"
        else:
            problem = f"unknown field {path!r}"
        raise InvalidArgument(
            f"{problem}; updatable: {', '.join(sorted(allowed))}", field=f"update_mask.paths[{i}]"
        )
    return frozenset(mask.paths)


def object_changes(request: registry_pb2.UpdateObjectRequest) -> ObjectUpdate:
    """The object's ID, the new values and the paths that say which of them to apply.

    Only the fields named in the mask are read, so a bad value elsewhere in `object` is
    ignored; `category` and `track` are names (an empty `track` detaches the object)."""
    _require(request, "object", "object")
    obj = request.object
    object_id = uuid_from_name(obj.name, "objects", "object.name")
    paths = _mask_paths(request.update_mask, OBJECT_UPDATE_PATHS, _OBJECT_FIELDS)
    changes = ObjectChanges(
        category_id=(
            _optional_uuid(obj.category, "categories", "object.category")
            if "category" in paths
            else None
        ),
        category_name=obj.category_name,
        bbox=bbox_record(obj.bbox) if obj.HasField("bbox") else None,
        confidence=obj.confidence,
        quality_score=obj.quality_score,
        track_id=_optional_uuid(obj.track, "tracks", "object.track") if "track" in paths else None,
        attributes=dict(obj.attributes),
    )
    return ObjectUpdate(object_id, changes, paths)


def category_changes(request: registry_pb2.UpdateCategoryRequest) -> CategoryUpdate:
    """The category's ID, the paths to change and their values (synonyms are replaced)."""
    _require(request, "category", "category")
    category = request.category
    return CategoryUpdate(
        category_id=uuid_from_name(category.name, "categories", "category.name"),
        paths=_mask_paths(request.update_mask, CATEGORY_UPDATE_PATHS, _CATEGORY_FIELDS),
        display_name=category.display_name,
        synonyms=tuple(category.synonyms),
    )


def corrections(
    request: registry_pb2.ValidateObjectsRequest,
) -> list[tuple[Correction, MaskInput | None]]:
    """One Correction per `corrections[i]`, with its mask undecoded (`mask_area` stays None).
    The plain `names` convert with `uuids_from_names(request.names, "objects", "names")`."""
    found: list[tuple[Correction, MaskInput | None]] = []
    for i, item in enumerate(request.corrections):
        field = f"corrections[{i}]"
        correction = Correction(
            object_id=uuid_from_name(item.object, "objects", f"{field}.object"),
            category_name=item.category_name,
            bbox=bbox_record(item.bbox) if item.HasField("bbox") else None,
        )
        found.append(
            (correction, MaskInput(item.mask, f"{field}.mask") if item.HasField("mask") else None)
        )
    return found


def similarity_query(request: registry_pb2.SearchSimilarRequest) -> SimilarityQuery:
    """The query object or vector, with top_k (default 10, at most 1000) and hnsw_ef (0: the
    store's default) checked."""
    kind = request.WhichOneof("query")
    if kind is None:
        raise InvalidArgument("set object or vector", field="query")
    if not 0 <= request.top_k <= MAX_TOP_K:
        raise InvalidArgument(f"must be between 0 and {MAX_TOP_K}", field="top_k")
    if request.hnsw_ef < 0:
        raise InvalidArgument("must not be negative", field="hnsw_ef")
    vector = None
    if kind == "vector":
        vector = _floats(request.vector.values, "vector")
        if not vector:
            raise InvalidArgument("must not be empty", field="vector")
    return SimilarityQuery(
        object_id=uuid_from_name(request.object, "objects", "object") if kind == "object" else None,
        vector=vector,
        filter=request.filter,
        top_k=request.top_k or DEFAULT_TOP_K,
        hnsw_ef=request.hnsw_ef or None,
        exact=request.exact,
    )
