"""The registry's domain records: plain frozen dataclasses, no protobuf and no SQL.

The repository modules take and return these; the gRPC layer converts them to and from wire
messages in one place. IDs are `uuid.UUID`; resource names (`sources/{id}`) are formatted by
`resource_names`, not stored here. Times are aware datetimes in UTC.

Numbers follow the database: confidence, quality_score, area and box coordinates are float
(Postgres `double precision`), so a value read back compares exactly as it was written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Generic, Literal, TypeVar
from uuid import UUID

__all__ = [
    "BatchCreateResult",
    "BoundingBox",
    "Category",
    "Correction",
    "CountEntry",
    "DeletedObject",
    "Frame",
    "HistogramBin",
    "MergedObject",
    "NewCategory",
    "NewFrame",
    "NewObject",
    "NewSource",
    "ObjectChanges",
    "ObjectRecord",
    "ObjectStorageState",
    "Page",
    "Source",
    "SourceKind",
    "SplitResult",
    "Stats",
    "StoredImage",
    "Track",
    "VectorOp",
    "category_name_key",
]

T = TypeVar("T")


class SourceKind(StrEnum):
    """What a source holds; the values are the ones filters use (`kind = IMAGE`)."""

    IMAGE = "IMAGE"
    VIDEO = "VIDEO"


@dataclass(frozen=True)
class BoundingBox:
    """An axis-aligned box in pixels of the source: top-left corner, width and height."""

    x: float
    y: float
    width: float
    height: float

    @property
    def area(self) -> float:
        return self.width * self.height

    def iou(self, other: BoundingBox) -> float:
        """Intersection over union, in [0, 1]; 0 when the boxes do not overlap."""
        left = max(self.x, other.x)
        top = max(self.y, other.y)
        right = min(self.x + self.width, other.x + other.width)
        bottom = min(self.y + self.height, other.y + other.height)
        if right <= left or bottom <= top:
            return 0.0
        inter = (right - left) * (bottom - top)
        union = self.area + other.area - inter
        return inter / union if union > 0 else 0.0


# --- Sources and frames -------------------------------------------------------------------------


@dataclass(frozen=True)
class NewSource:
    """A source to register. An image source gets its one frame (index 0) with it."""

    kind: SourceKind
    width: int
    height: int
    uri: str = ""
    display_name: str = ""
    # Lower-case hex SHA-256 of the encoded file; "" when unknown (then never deduplicated).
    content_sha256: str = ""
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    id: UUID
    kind: SourceKind
    uri: str
    display_name: str
    width: int
    height: int
    content_sha256: str
    attributes: Mapping[str, str]
    create_time: datetime
    frame_count: int
    object_count: int


@dataclass(frozen=True)
class NewFrame:
    """A frame to add to a video source."""

    frame_index: int
    timestamp: timedelta = timedelta(0)
    uri: str = ""
    content_sha256: str = ""


@dataclass(frozen=True)
class Frame:
    source_id: UUID
    frame_index: int
    timestamp: timedelta
    uri: str
    content_sha256: str
    object_count: int


# --- Categories ---------------------------------------------------------------------------------


def category_name_key(name: str) -> str:
    """The case-insensitive identity of a category name or synonym ("Person" and "PERSON" are
    one name). Folded here, not in SQL, so writes and filters agree whatever the database's
    collation."""
    return name.casefold()


@dataclass(frozen=True)
class NewCategory:
    display_name: str
    synonyms: Sequence[str] = ()


@dataclass(frozen=True)
class Category:
    id: UUID
    display_name: str
    synonyms: tuple[str, ...]
    object_count: int
    create_time: datetime


# --- Objects ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NewObject:
    """One object for `batch_create`.

    The category is `category_id`, or `category_name` (a name or synonym, any case); when both
    are set they must agree. `mask_area` is the number of mask pixels when the caller stores a
    mask (it writes the file; the registry records `has_mask` and the area); without a mask the
    area is the box's. `validated_by` marks imported ground truth as validated on creation.
    """

    source_id: UUID
    bbox: BoundingBox
    frame_index: int = 0
    category_id: UUID | None = None
    category_name: str = ""
    confidence: float = 1.0
    detection_model: str = ""
    quality_score: float = 0.0
    track_id: UUID | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    object_id: UUID | None = None
    embedding: Sequence[float] | None = None
    mask_area: float | None = None
    validated_by: str | None = None


@dataclass(frozen=True)
class ObjectRecord:
    """An object as stored. `validated_by` and `validate_time` are None unless validated."""

    id: UUID
    source_id: UUID
    frame_index: int
    category_id: UUID
    category_name: str
    bbox: BoundingBox
    confidence: float
    area: float
    has_mask: bool
    has_embedding: bool
    detection_model: str
    is_validated: bool
    validated_by: str | None
    validate_time: datetime | None
    quality_score: float
    track_id: UUID | None
    attributes: Mapping[str, str]
    create_time: datetime
    update_time: datetime


@dataclass(frozen=True)
class MergedObject:
    """Request `request_index` duplicated `existing_object_id` (IoU `iou`) and was not added."""

    request_index: int
    existing_object_id: UUID
    iou: float


@dataclass(frozen=True)
class BatchCreateResult:
    """One object per request, in request order (a merged request gives the object it merged
    into). `replayed`: the request_id had been seen; this is the stored result."""

    objects: tuple[ObjectRecord, ...]
    merged: tuple[MergedObject, ...]
    replayed: bool
    # Objects created by this call that carry an embedding: the caller applies their outbox
    # entries to the vector store after commit. Empty on a replay.
    embedded_object_ids: tuple[UUID, ...] = ()


@dataclass(frozen=True)
class ObjectChanges:
    """New values for `update_object`; only the fields named in its paths are read."""

    category_id: UUID | None = None
    category_name: str = ""
    bbox: BoundingBox | None = None
    confidence: float = 0.0
    quality_score: float = 0.0
    track_id: UUID | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Correction:
    """A reviewer's correction for `validate_objects`; empty/None fields keep their value."""

    object_id: UUID
    category_name: str = ""
    bbox: BoundingBox | None = None
    mask_area: float | None = None


@dataclass(frozen=True)
class DeletedObject:
    """What a delete removed, so the caller can remove the mask file (vectors go through the
    outbox, written in the same transaction)."""

    id: UUID
    had_embedding: bool
    had_mask: bool


# --- Tracks -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Track:
    """Objects of one source across frames. `category_id` is the most common category (None
    only for a track without objects); `average_confidence` is the mean of its objects';
    `first_frame_time` and `last_frame_time` are the presentation times of its first and last
    frames; `objects` is filled by `get_track` only."""

    id: UUID
    source_id: UUID
    category_id: UUID | None
    category_name: str
    first_frame_index: int
    last_frame_index: int
    object_count: int
    create_time: datetime
    objects: tuple[ObjectRecord, ...] = ()
    average_confidence: float = 0.0
    first_frame_time: timedelta = timedelta(0)
    last_frame_time: timedelta = timedelta(0)


@dataclass(frozen=True)
class SplitResult:
    before: Track
    after: Track


# --- Listing and stats --------------------------------------------------------------------------


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of a List. `next_page_token` is "" on the last page; `total_size` is the number
    of items matching the filter, where the method reports it."""

    items: tuple[T, ...]
    next_page_token: str
    total_size: int | None = None


@dataclass(frozen=True)
class CountEntry:
    """`key` is a resource name (`categories/{id}`, `sources/{id}`) or a model name."""

    key: str
    display_name: str
    count: int


@dataclass(frozen=True)
class HistogramBin:
    """Values in [lower, upper); the last bin also holds `upper`."""

    lower: float
    upper: float
    count: int


@dataclass(frozen=True)
class Stats:
    object_count: int
    source_count: int
    per_category: tuple[CountEntry, ...]
    per_source: tuple[CountEntry, ...]
    per_model: tuple[CountEntry, ...]
    validated_fraction: float
    confidence_histogram: tuple[HistogramBin, ...]


# --- Vector outbox and reconcile ----------------------------------------------------------------


@dataclass(frozen=True)
class VectorOp:
    """What the vector store must do for one object, from the outbox.

    Several outbox entries for one object collapse into one op with the object's current state:
    `upsert` carries the stored object and its embedding; `delete` means the object or its
    embedding is gone. Applying is idempotent; pass `outbox_ids` to `mark_applied` afterwards.
    """

    outbox_ids: tuple[int, ...]
    object_id: UUID
    op: Literal["upsert", "delete"]
    object: ObjectRecord | None = None
    embedding: tuple[float, ...] | None = None


@dataclass(frozen=True)
class ObjectStorageState:
    """Which side stores an object has, for reconcile scans."""

    id: UUID
    has_embedding: bool
    has_mask: bool


@dataclass(frozen=True)
class StoredImage:
    """The encoded bytes of a source's or frame's image, and what the registry knows of it."""

    owner: str  # sources/{source} or sources/{source}/frames/{frame_index}
    data: bytes
    mime_type: str
    sha256: str
    width: int
    height: int
