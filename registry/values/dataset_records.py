"""The records of datasets: plain frozen dataclasses and enums, no protobuf and no SQL.

`datasets.DatasetStore` takes and returns these; the gRPC layer converts them to and from
`agentic_labeling.v1.Dataset` in one place. Enum values are the ones stored in the database
(and, for the splits, the names the API and the export directories use).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from uuid import UUID

from agentic_labeling.registry.values.records import BoundingBox

__all__ = [
    "DEFAULT_SPLIT_RATIOS",
    "SPLITS",
    "DatasetImage",
    "DatasetObject",
    "DatasetRecord",
    "DatasetState",
    "NewDataset",
    "Split",
    "SplitGrouping",
    "SplitRatios",
    "SplitStats",
]


class Split(StrEnum):
    TRAIN = "train"
    VAL = "val"
    TEST = "test"


# The order splits are numbered, read and reported in.
SPLITS: tuple[Split, ...] = (Split.TRAIN, Split.VAL, Split.TEST)


class SplitGrouping(StrEnum):
    """What stays together when splitting."""

    # All frames of a source go to one split: frames of a video never cross splits.
    SOURCE = "SOURCE"
    # Each frame is placed on its own (only sensible for unrelated still images).
    FRAME = "FRAME"


class DatasetState(StrEnum):
    DRAFT = "DRAFT"  # defined, never built
    BUILDING = "BUILDING"  # a build is running
    READY = "READY"  # built: membership and splits fixed until the next build
    FAILED = "FAILED"  # the last build failed (a previous build's membership is kept)


@dataclass(frozen=True)
class SplitRatios:
    """Fractions of the groups in each split. All zero means "unset": 0.8 / 0.1 / 0.1."""

    train: float = 0.0
    val: float = 0.0
    test: float = 0.0

    def of(self, split: Split) -> float:
        return {Split.TRAIN: self.train, Split.VAL: self.val, Split.TEST: self.test}[split]

    def as_tuple(self) -> tuple[float, float, float]:
        return (self.train, self.val, self.test)


DEFAULT_SPLIT_RATIOS = SplitRatios(0.8, 0.1, 0.1)


@dataclass(frozen=True)
class NewDataset:
    """A dataset to define. `class_names` are category names or synonyms (any case) in class-id
    order (id = index); `filter` is an AIP-160 filter over objects as in ListObjects."""

    display_name: str
    class_names: Sequence[str]
    filter: str = ""
    ratios: SplitRatios = SplitRatios()
    seed: int = 0
    grouping: SplitGrouping = SplitGrouping.SOURCE


@dataclass(frozen=True)
class SplitStats:
    """Counts of one split of the stored membership. `objects_per_class` has every class name
    of the dataset, in class-id order, zero included."""

    split: Split
    image_count: int
    object_count: int
    objects_per_class: Mapping[str, int]


@dataclass(frozen=True)
class DatasetRecord:
    """A dataset as stored. `ratios` are normalised to sum to 1. `split_stats` has one entry
    per split (train, val, test) once built, none before."""

    id: UUID
    display_name: str
    filter: str
    class_names: tuple[str, ...]
    ratios: SplitRatios
    seed: int
    grouping: SplitGrouping
    state: DatasetState
    create_time: datetime
    build_time: datetime | None
    split_stats: tuple[SplitStats, ...]


@dataclass(frozen=True)
class DatasetObject:
    """One object of a built dataset: its class id (index in class_names), box in pixels."""

    object_id: UUID
    class_id: int
    bbox: BoundingBox
    has_mask: bool


@dataclass(frozen=True)
class DatasetImage:
    """One image (frame) of a built dataset with its objects.

    `image_number` is unique in the dataset and fixed by the build (a COCO image id). The
    source's and the frame's URI and content hash are both given: a frame of a video has its
    own file, while frame 0 of an image source usually has none (empty) and the source's file is
    the image. `width` and `height` are the source's.
    """

    split: Split
    image_number: int
    source_id: UUID
    frame_index: int
    source_display_name: str
    source_uri: str
    source_content_sha256: str
    frame_uri: str
    frame_content_sha256: str
    width: int
    height: int
    objects: tuple[DatasetObject, ...]
