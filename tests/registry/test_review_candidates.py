"""What SuggestForReview ranks, gathered by the registry (Registry.review_candidates).

Real embedded Postgres (a fresh schema per test), real qdrant-edge and a real image store.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import numpy as np
import pytest
from PIL import Image

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.registry.values.records import BoundingBox, NewObject, NewSource, SourceKind
from agentic_labeling.settings import Settings
from agentic_labeling.training.review_ranking import (
    ReviewWeights,
    candidates_from_records,
    rank_for_review,
)

DIM = 8
WIDTH, HEIGHT = 64, 48


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _axis(axis: int, tilt: float = 0.0) -> list[float]:
    vector = [0.0] * DIM
    vector[axis] = 1.0
    vector[(axis + 1) % DIM] = tilt
    return vector


def _unit(vector: list[float]) -> list[float]:
    array = np.asarray(vector)
    return [float(v) for v in array / np.linalg.norm(array)]


@pytest.fixture
async def registry(empty_dsn: str, tmp_path: Path) -> AsyncIterator[Registry]:
    opened = await Registry.open(
        Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=DIM)
    )
    yield opened
    await opened.close()


async def _create(registry: Registry, *objects: NewObject) -> list[UUID]:
    result = await registry.batch_create(
        uuid4(), objects, [None] * len(objects), create_missing_categories=True
    )
    return [o.id for o in result.objects]


def _object(source_id: UUID, x: float, category: str = "cat", **fields: object) -> NewObject:
    return NewObject(
        source_id=source_id,
        bbox=BoundingBox(x, 5, 10, 10),
        category_name=category,
        confidence=0.6,
        **fields,  # type: ignore[arg-type]
    )


async def test_candidates_are_the_unvalidated_objects_matching_the_filter_with_embeddings(
    registry: Registry,
) -> None:
    data = _png(1)
    source = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT), data)
    cat, dog, validated, bare = await _create(
        registry,
        _object(source.id, 0, embedding=_axis(0, 0.5)),
        _object(source.id, 12, "dog", embedding=_axis(1)),
        _object(source.id, 24, embedding=_axis(2), validated_by="alice"),
        _object(source.id, 36),
    )

    found = await registry.review_candidates('category = "cat"')

    assert [o.id for o in found.objects] == sorted([cat, bare])
    assert not found.truncated
    assert set(found.embeddings) == {cat}
    np.testing.assert_allclose(found.embeddings[cat], _unit(_axis(0, 0.5)), atol=1e-6)
    assert found.validated_embeddings.shape == (1, DIM)
    np.testing.assert_allclose(found.validated_embeddings[0], _unit(_axis(2)), atol=1e-6)
    image = found.images[(source.id, 0)]
    assert image.path is not None
    assert image.path.read_bytes() == data
    assert (image.width, image.height) == (WIDTH, HEIGHT)
    assert sorted(box.x for box in image.boxes) == [0, 12, 24, 36]
    assert found.image_boxes == {(source.id, 0): image.boxes}
    assert dog not in {o.id for o in found.objects}
    assert validated not in {o.id for o in found.objects}


async def test_candidates_are_capped_at_the_limit_in_id_order(registry: Registry) -> None:
    source = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT), _png(2))
    ids = await _create(registry, *(_object(source.id, 12 * i) for i in range(4)))

    found = await registry.review_candidates(limit=2)

    assert found.truncated
    assert [o.id for o in found.objects] == sorted(ids)[:2]


async def test_an_image_without_stored_bytes_has_no_file(registry: Registry) -> None:
    source = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT))
    await _create(registry, _object(source.id, 0))

    found = await registry.review_candidates()

    assert found.images[(source.id, 0)].path is None
    assert found.validated_embeddings.shape == (0, DIM)


async def test_a_bad_filter_is_refused_naming_the_filter(registry: Registry) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await registry.review_candidates("colour = 3")
    assert raised.value.violations[0].field == "filter"


async def test_gathered_candidates_rank_away_from_validated_examples(registry: Registry) -> None:
    source = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT), _png(3))
    near = await _create(
        registry,
        *(_object(source.id, 10 * i, embedding=_axis(0, 0.1 * i)) for i in range(3)),
    )
    (outlier,) = await _create(registry, _object(source.id, 40, embedding=_axis(4)))
    await _create(registry, _object(source.id, 50, embedding=_axis(0), validated_by="alice"))

    found = await registry.review_candidates()
    ranked = rank_for_review(
        candidates_from_records(found.objects, found.embeddings),
        weights=ReviewWeights(diversity=1),
        count=4,
        validated_embeddings=found.validated_embeddings,
        image_boxes=found.image_boxes,
    )

    assert ranked[0].object_id == outlier
    assert {s.object_id for s in ranked} == {*near, outlier}
