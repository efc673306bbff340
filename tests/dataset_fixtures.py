"""Helpers for the dataset tests: sources with frames and objects, and reading a build back."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from uuid import UUID, uuid4

from agentic_labeling.registry.repository import Repository
from agentic_labeling.registry.values.dataset_records import DatasetImage, NewDataset, Split
from agentic_labeling.registry.values.records import (
    BoundingBox,
    NewCategory,
    NewFrame,
    NewObject,
    NewSource,
    ObjectRecord,
    Source,
    SourceKind,
)


def sha(n: int) -> str:
    return f"{n:064x}"


def definition(*class_names: str, **fields: Any) -> NewDataset:
    fields.setdefault("display_name", "test set")
    return NewDataset(class_names=class_names, **fields)


async def categories(repo: Repository, *names: str, synonyms: Sequence[str] = ()) -> None:
    """Categories by name; `synonyms` go to the first."""
    for i, name in enumerate(names):
        await repo.categories.create(NewCategory(name, synonyms if i == 0 else ()))


async def objects(repo: Repository, new: Sequence[NewObject]) -> tuple[ObjectRecord, ...]:
    created: list[ObjectRecord] = []
    for start in range(0, len(new), 5000):
        result = await repo.objects.batch_create(
            uuid4(), new[start : start + 5000], create_missing_categories=True
        )
        created.extend(result.objects)
    return tuple(created)


def box(i: int = 0) -> tuple[float, float, float, float]:
    """(x, y, w, h) of the i-th of 165 boxes that never overlap (duplicates would be merged),
    inside the smallest test image (320 x 240)."""
    return (float(10 + 20 * (i % 15)), float(10 + 20 * (i // 15 % 11)), 10.0, 10.0)


async def image(repo: Repository, n: int, **fields: Any) -> Source:
    fields.setdefault("uri", f"file:///images/{n}.jpg")
    fields.setdefault("display_name", f"image {n}")
    fields.setdefault("content_sha256", sha(n))
    return await repo.sources.create(NewSource(SourceKind.IMAGE, 640, 480, **fields))


async def video(repo: Repository, n: int, frames: int) -> Source:
    source = await repo.sources.create(
        NewSource(SourceKind.VIDEO, 320, 240, uri=f"file:///videos/{n}.mp4", display_name=f"v{n}")
    )
    for index in range(frames):
        await repo.sources.create_frame(
            source.id,
            NewFrame(
                index, uri=f"file:///videos/{n}/{index}.jpg", content_sha256=sha(n * 1000 + index)
            ),
        )
    return source


async def images_with_objects(
    repo: Repository, count: int, category: str = "cat", per_image: int = 1, start: int = 0
) -> list[Source]:
    """`count` image sources with `per_image` objects of `category` each."""
    sources = [await image(repo, start + n) for n in range(count)]
    await objects(
        repo,
        [
            NewObject(source_id=s.id, bbox=BoundingBox(*box(i)), category_name=category)
            for s in sources
            for i in range(per_image)
        ],
    )
    return sources


async def read_all(repo: Repository, dataset_id: UUID, **options: Any) -> list[DatasetImage]:
    return [image async for image in repo.datasets.images(dataset_id, **options)]


def splits_by_frame(images: Sequence[DatasetImage]) -> dict[tuple[UUID, int], Split]:
    return {(i.source_id, i.frame_index): i.split for i in images}


async def built(repo: Repository, new: NewDataset, **create: Any) -> UUID:
    """Create and build; the dataset's ID."""
    dataset = await repo.datasets.create(new, **create)
    await repo.datasets.begin_build(dataset.id)
    await repo.datasets.build(dataset.id)
    return dataset.id
