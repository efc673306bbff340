"""What SuggestForReview ranks (training/review_ranking.py), gathered in one read.

- the candidates: unvalidated objects matching the AIP-160 filter (the ListObjects filter),
  at most `MAX_REVIEW_CANDIDATES`, in object-id order: ids are random, so a capped set is a
  fair sample that the same registry gives again;
- their embeddings, from the vector store (the copy search uses; unit length);
- the validated objects' embeddings, which diversity measures distance from, at most
  `MAX_VALIDATED_EXAMPLES` (also in id order);
- each candidate image: its file (for a trained model to predict on) and the boxes of every
  object on it, validated or outside the filter, which a model's box must miss to be "missed".

The rows are read in one snapshot; the vectors after it (an object deleted in between simply
has no embedding).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import numpy as np
import numpy.typing as npt
from psycopg import sql
from psycopg.rows import dict_row

from agentic_labeling.registry.database import Connection
from agentic_labeling.registry.files.image_store import ImageStore
from agentic_labeling.registry.metadata.object_rows import (
    OBJECT_COLUMNS,
    OBJECT_FROM,
    object_from_row,
)
from agentic_labeling.registry.query.filtering import parse_filter
from agentic_labeling.registry.query.sql_filters import OBJECT_FILTER_SQL, QueryParams, where_clause
from agentic_labeling.registry.values.records import BoundingBox, ObjectRecord

if TYPE_CHECKING:
    from agentic_labeling.registry.coordinator import Registry

__all__ = [
    "MAX_REVIEW_CANDIDATES",
    "MAX_VALIDATED_EXAMPLES",
    "ReviewCandidates",
    "ReviewImage",
    "gather_review_candidates",
]

MAX_REVIEW_CANDIDATES = 10_000
"""The most unvalidated objects one SuggestForReview ranks (a k-centre step costs one pass
over them per suggestion)."""

MAX_VALIDATED_EXAMPLES = 2_000
"""The most validated embeddings diversity measures from: every candidate is compared with
each once (10,000 x 2,000 x 768 multiply-adds, about a second on two cores)."""

_VECTOR_CHUNK = 1000

ImageKey = tuple[UUID, int]


@dataclass(frozen=True)
class ReviewImage:
    """An image holding candidates. `path`: its stored bytes (upright) or its readable file
    URI, None when it has neither; `boxes`: every object on it."""

    source_id: UUID
    frame_index: int
    width: int
    height: int
    path: Path | None
    boxes: tuple[BoundingBox, ...]


@dataclass(frozen=True)
class ReviewCandidates:
    """See the module docstring. `truncated`: more objects matched than were taken."""

    objects: tuple[ObjectRecord, ...]
    embeddings: Mapping[UUID, npt.NDArray[np.float32]]
    validated_embeddings: npt.NDArray[np.float32]
    images: Mapping[ImageKey, ReviewImage]
    truncated: bool

    @property
    def image_boxes(self) -> dict[ImageKey, tuple[BoundingBox, ...]]:
        """Every object's box per candidate image (`rank_for_review(image_boxes=...)`)."""
        return {key: image.boxes for key, image in self.images.items()}


@dataclass(frozen=True)
class _ImageRow:
    source_id: UUID
    frame_index: int
    width: int
    height: int
    sha256: tuple[str, str]  # the frame's stored bytes, then the source's
    uris: tuple[str, str]
    boxes: tuple[BoundingBox, ...]


async def gather_review_candidates(
    registry: Registry, filter_text: str, *, limit: int = MAX_REVIEW_CANDIDATES
) -> ReviewCandidates:
    """The candidates for review matching `filter_text` (InvalidArgument naming `filter` when
    it does not parse), at most `limit` of them."""
    if not 1 <= limit <= MAX_REVIEW_CANDIDATES:
        raise ValueError(f"limit must be between 1 and {MAX_REVIEW_CANDIDATES}, got {limit}")
    params = QueryParams()
    condition = where_clause(
        parse_filter(filter_text, OBJECT_FILTER_SQL.schema), OBJECT_FILTER_SQL, params
    )

    async def read(conn: Connection) -> tuple[list[ObjectRecord], list[UUID], list[_ImageRow]]:
        query = sql.SQL(
            "SELECT {columns} FROM {source} WHERE NOT o.is_validated AND ({condition}) "
            "ORDER BY o.id LIMIT {limit}"
        ).format(
            columns=OBJECT_COLUMNS,
            source=OBJECT_FROM,
            condition=condition,
            limit=sql.Literal(limit + 1),
        )
        async with conn.cursor(row_factory=dict_row) as rows:
            await rows.execute(query, params.values)
            objects = [object_from_row(row) for row in await rows.fetchall()]
        cursor = await conn.execute(
            "SELECT id FROM objects WHERE is_validated AND has_embedding ORDER BY id LIMIT %s",
            (MAX_VALIDATED_EXAMPLES,),
        )
        validated = [row[0] for row in await cursor.fetchall()]
        keys = list(dict.fromkeys((o.source_id, o.frame_index) for o in objects[:limit]))
        return objects, validated, await _image_rows(conn, keys)

    objects, validated_ids, image_rows = await registry.database.transact(read, snapshot=True)
    truncated = len(objects) > limit
    objects = objects[:limit]
    embeddings = await _vectors(registry, [o.id for o in objects if o.has_embedding])
    validated = await _vectors(registry, validated_ids)
    dimension = registry.embedding_dimension
    validated_matrix = (
        np.stack([validated[i] for i in validated_ids if i in validated])
        if validated
        else np.zeros((0, dimension), dtype=np.float32)
    )
    images = await asyncio.to_thread(_resolve_images, image_rows, registry.images)
    return ReviewCandidates(
        objects=tuple(objects),
        embeddings=embeddings,
        validated_embeddings=validated_matrix,
        images=images,
        truncated=truncated,
    )


async def _image_rows(conn: Connection, keys: Sequence[ImageKey]) -> list[_ImageRow]:
    """The images `keys` with their files' hashes and URIs and every object's box."""
    if not keys:
        return []
    wanted = ([k[0] for k in keys], [k[1] for k in keys])
    cursor = await conn.execute(
        "SELECT f.source_id, f.frame_index, s.width, s.height, f.content_sha256, "
        "s.content_sha256, f.uri, s.uri "
        "FROM unnest(%s::uuid[], %s::int8[]) AS k(source_id, frame_index) "
        "JOIN frames f ON f.source_id = k.source_id AND f.frame_index = k.frame_index "
        "JOIN sources s ON s.id = f.source_id",
        wanted,
    )
    found = await cursor.fetchall()
    cursor = await conn.execute(
        "SELECT o.source_id, o.frame_index, o.x, o.y, o.width, o.height "
        "FROM unnest(%s::uuid[], %s::int8[]) AS k(source_id, frame_index) "
        "JOIN objects o ON o.source_id = k.source_id AND o.frame_index = k.frame_index "
        "ORDER BY o.id",
        wanted,
    )
    boxes: dict[ImageKey, list[BoundingBox]] = {}
    for source_id, frame_index, x, y, width, height in await cursor.fetchall():
        boxes.setdefault((source_id, frame_index), []).append(BoundingBox(x, y, width, height))
    return [
        _ImageRow(
            source_id,
            frame_index,
            width,
            height,
            (frame_sha, source_sha),
            (frame_uri, source_uri),
            tuple(boxes.get((source_id, frame_index), ())),
        )
        for source_id, frame_index, width, height, frame_sha, source_sha, frame_uri, source_uri in (
            found
        )
    ]


async def _vectors(registry: Registry, ids: Sequence[UUID]) -> dict[UUID, npt.NDArray[np.float32]]:
    """The stored vectors of `ids` that have one."""
    found: dict[UUID, npt.NDArray[np.float32]] = {}
    for start in range(0, len(ids), _VECTOR_CHUNK):
        records = await registry.vectors.retrieve(
            ids[start : start + _VECTOR_CHUNK], with_vectors=True
        )
        for object_id, record in records.items():
            if record.vector is not None:
                found[object_id] = np.asarray(record.vector, dtype=np.float32)
    return found


def _resolve_images(rows: Sequence[_ImageRow], images: ImageStore) -> dict[ImageKey, ReviewImage]:
    return {
        (row.source_id, row.frame_index): ReviewImage(
            row.source_id, row.frame_index, row.width, row.height, _file(row, images), row.boxes
        )
        for row in rows
    }


def _file(row: _ImageRow, images: ImageStore) -> Path | None:
    """The frame's stored bytes, else its source's, else a readable file URI (the order
    datasets/dataset_export.image_file exports by); upright."""
    for sha256 in row.sha256:
        stored = images.find(sha256) if sha256 else None
        if stored is not None:
            return images.upright(stored)
    for uri in row.uris:
        path = Path(uri.removeprefix("file://")) if uri else None
        if path is not None and path.is_absolute() and path.is_file():
            return images.upright(path)
    return None
