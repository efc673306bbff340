"""The three stores kept in agreement: Postgres rows, Qdrant vectors, mask files.

Real embedded Postgres (a fresh schema per test), real qdrant-edge and real files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from uuid import UUID, uuid4

import numpy as np
import numpy.typing as npt
import pytest

from agentic_labeling.errors import InvalidArgument, NotFound
from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.registry.values.records import (
    BoundingBox,
    NewObject,
    NewSource,
    ObjectChanges,
    Source,
    SourceKind,
)
from agentic_labeling.registry.vectors.vector_store import VectorPoint
from agentic_labeling.servers.conversions import mask_message
from agentic_labeling.servers.registry_conversions import MaskInput
from agentic_labeling.settings import Settings

DIM = 8
WIDTH, HEIGHT = 64, 48


@pytest.fixture
async def registry(empty_dsn: str, tmp_path: Path) -> AsyncIterator[Registry]:
    settings = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=DIM)
    opened = await Registry.open(settings)
    yield opened
    await opened.close()


async def _image(registry: Registry) -> Source:
    return await registry.repository.sources.create(NewSource(SourceKind.IMAGE, WIDTH, HEIGHT))


def _vector(seed: int) -> list[float]:
    values = np.random.default_rng(seed).normal(size=DIM)
    return [float(v) for v in values / np.linalg.norm(values)]


def _mask(x: int, y: int) -> npt.NDArray[np.bool_]:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y : y + 10, x : x + 10] = True
    return mask


def _object(source: Source, x: float, category: str = "cat", seed: int = 0) -> NewObject:
    return NewObject(
        source_id=source.id,
        bbox=BoundingBox(x, 5, 10, 10),
        category_name=category,
        confidence=0.5 + seed / 100,
        embedding=_vector(seed),
    )


async def _vector_ids(registry: Registry) -> set[UUID]:
    return {i async for i in registry.vectors.ids()}


def _mask_ids(registry: Registry) -> set[UUID]:
    return set(registry.masks.iter_ids())


async def test_batch_create_writes_rows_vectors_and_mask_files(registry: Registry) -> None:
    source = await _image(registry)
    result = await registry.batch_create(
        uuid4(),
        [_object(source, 0, seed=1), _object(source, 30, "dog", seed=2)],
        [_mask(0, 5), None],
        create_missing_categories=True,
    )
    first, second = result.objects
    assert first.has_mask
    assert first.area == 100
    assert not second.has_mask
    assert second.area == 100
    assert await _vector_ids(registry) == {first.id, second.id}
    assert _mask_ids(registry) == {first.id}
    assert np.array_equal(registry.masks.read(first.id), _mask(0, 5))
    await registry.flush_vectors()  # the group commit, now (test_vector_group_commit.py)
    assert await registry.repository.outbox.pending_count() == 0


async def test_a_replayed_batch_leaves_no_extra_mask_files(registry: Registry) -> None:
    source = await _image(registry)
    request_id = uuid4()
    first = await registry.batch_create(
        request_id, [_object(source, 0)], [_mask(0, 5)], create_missing_categories=True
    )
    again = await registry.batch_create(
        request_id, [_object(source, 0)], [_mask(0, 5)], create_missing_categories=True
    )
    assert again.replayed
    assert again.objects[0].id == first.objects[0].id
    assert _mask_ids(registry) == {first.objects[0].id}


async def test_a_merged_object_leaves_no_mask_file(registry: Registry) -> None:
    source = await _image(registry)
    kept = await registry.batch_create(
        uuid4(), [_object(source, 0)], [_mask(0, 5)], create_missing_categories=True
    )
    merged = await registry.batch_create(
        uuid4(), [_object(source, 0)], [_mask(0, 5)], create_missing_categories=True
    )
    assert merged.merged
    assert merged.objects[0].id == kept.objects[0].id
    assert _mask_ids(registry) == {kept.objects[0].id}


async def test_a_refused_batch_leaves_nothing_in_any_store(registry: Registry) -> None:
    source = await _image(registry)
    outside = NewObject(source_id=source.id, bbox=BoundingBox(60, 40, 10, 10), category_name="cat")
    with pytest.raises(InvalidArgument):
        await registry.batch_create(
            uuid4(),
            [_object(source, 0), outside],
            [_mask(0, 5), None],
            create_missing_categories=True,
        )
    assert _mask_ids(registry) == set()
    assert await _vector_ids(registry) == set()
    assert (await registry.repository.objects.list()).items == ()


async def test_delete_object_removes_its_vector_and_mask(registry: Registry) -> None:
    source = await _image(registry)
    [created] = (
        await registry.batch_create(
            uuid4(), [_object(source, 0)], [_mask(0, 5)], create_missing_categories=True
        )
    ).objects
    await registry.delete_object(created.id)
    assert await _vector_ids(registry) == set()
    assert _mask_ids(registry) == set()
    with pytest.raises(NotFound):
        await registry.repository.objects.get(created.id)


async def test_search_by_object_excludes_it_and_honours_a_category_filter(
    registry: Registry,
) -> None:
    source = await _image(registry)
    result = await registry.batch_create(
        uuid4(),
        [_object(source, x, "cat" if x < 30 else "dog", seed=x) for x in (0, 12, 24, 36, 48)],
        [None] * 5,
        create_missing_categories=True,
    )
    query = result.objects[0]
    found = await registry.search_similar(object_id=query.id, top_k=10)
    assert query.id not in {f.object.id for f in found}
    assert len(found) == 4
    cats = await registry.search_similar(object_id=query.id, filter_text='category = "cat"')
    assert {f.object.category_name for f in cats} == {"cat"}
    assert len(cats) == 2
    nothing = await registry.search_similar(vector=_vector(0), filter_text='category = "nope"')
    assert nothing == []


async def test_search_by_vector_agrees_with_an_exact_scan(registry: Registry) -> None:
    source = await _image(registry)
    await registry.batch_create(
        uuid4(),
        [_object(source, x, seed=x) for x in range(0, 54, 6)],
        [None] * 9,
        create_missing_categories=True,
    )
    approximate = await registry.search_similar(vector=_vector(99), top_k=5)
    exact = await registry.search_similar(vector=_vector(99), top_k=5, exact=True)
    assert [f.object.id for f in approximate] == [f.object.id for f in exact]
    scores = [f.score for f in exact]
    assert scores == sorted(scores, reverse=True)


async def test_search_for_an_object_without_embedding_is_invalid(registry: Registry) -> None:
    source = await _image(registry)
    plain = NewObject(source_id=source.id, bbox=BoundingBox(0, 0, 5, 5), category_name="cat")
    [created] = (
        await registry.batch_create(uuid4(), [plain], [None], create_missing_categories=True)
    ).objects
    with pytest.raises(InvalidArgument):
        await registry.search_similar(object_id=created.id)
    with pytest.raises(NotFound):
        await registry.search_similar(object_id=uuid4())


async def test_reconcile_repairs_every_kind_of_drift(registry: Registry) -> None:
    source = await _image(registry)
    a, b, c = (
        await registry.batch_create(
            uuid4(),
            [_object(source, 0, seed=1), _object(source, 20, seed=2), _object(source, 40, seed=3)],
            [_mask(0, 5), _mask(20, 5), None],
            create_missing_categories=True,
        )
    ).objects
    # Drift, as crashes and manual damage leave it:
    await registry.vectors.delete([a.id])  # a vector lost
    stray = uuid4()
    await registry.vectors.upsert(
        [VectorPoint(stray, _vector(7), (await _payload_of(registry, c.id)))]
    )  # a vector without a row
    registry.masks.delete(b.id)  # a mask file lost
    registry.masks.write(uuid4(), _mask(5, 5))  # a file without a row
    late = await registry.repository.objects.batch_create(  # committed, outbox not applied
        uuid4(), [_object(source, 50, seed=4)], create_missing_categories=True
    )

    preview = await registry.reconcile(dry_run=True)
    report = await registry.reconcile()

    assert preview == report
    assert report.outbox_applied == 1
    assert report.vectors_restored == 1
    assert report.vectors_removed == 1
    assert report.masks_missing == 1
    assert report.masks_removed == 1
    assert await _vector_ids(registry) == {a.id, b.id, c.id, late.objects[0].id}
    assert _mask_ids(registry) == {a.id}
    assert not (await registry.repository.objects.get(b.id)).has_mask
    assert await registry.reconcile() == type(report)()  # nothing left to fix


async def _payload_of(registry: Registry, object_id: UUID):  # type: ignore[no-untyped-def]
    from agentic_labeling.registry.coordinator import object_payload

    return object_payload(await registry.repository.objects.get(object_id))


# --- the front door: what the servicers call --------------------------------------------------


def _encoded(mask: npt.NDArray[np.bool_], field: str) -> MaskInput:
    return MaskInput(mask_message(mask), field)


async def test_create_objects_decodes_each_mask_at_its_own_sources_size(
    registry: Registry,
) -> None:
    small = await _image(registry)
    large = await registry.create_source(NewSource(SourceKind.IMAGE, WIDTH * 2, HEIGHT * 2))
    wide = np.zeros((HEIGHT * 2, WIDTH * 2), bool)
    wide[60:80, 100:120] = True
    result = await registry.create_objects(
        uuid4(),
        [_object(small, 0, seed=1), replace(_object(large, 0, seed=2), source_id=large.id)],
        [_encoded(_mask(0, 5), "requests[0].mask"), _encoded(wide, "requests[1].mask")],
        create_missing_categories=True,
    )
    first, second = result.objects
    assert (first.area, second.area) == (100, 400)
    stored = await registry.object_mask(second.id)
    assert (stored.width, stored.height) == (WIDTH * 2, HEIGHT * 2)
    assert _mask_ids(registry) == {first.id, second.id}


async def test_create_objects_names_the_first_request_whose_source_is_missing(
    registry: Registry,
) -> None:
    source = await _image(registry)
    gone = replace(_object(source, 0), source_id=uuid4())
    with pytest.raises(NotFound) as caught:
        await registry.create_objects(
            uuid4(),
            [_object(source, 30, seed=1), gone, gone],
            [None, *[_encoded(_mask(0, 5), f"requests[{i}].mask") for i in (1, 2)]],
            create_missing_categories=True,
        )
    assert caught.value.metadata["field"] == "requests[1].object.source"
    assert (await registry.list_objects()).items == ()
    assert _mask_ids(registry) == set()


async def test_update_object_brings_the_vectors_payload_along_without_an_outbox_call(
    registry: Registry,
) -> None:
    source = await _image(registry)
    cat, _ = (
        await registry.batch_create(
            uuid4(),
            [_object(source, 0, seed=1), _object(source, 30, "dog", seed=2)],
            [None, None],
            create_missing_categories=True,
        )
    ).objects
    await registry.update_object(cat.id, ObjectChanges(category_name="dog"), {"category_name"})

    assert await registry.repository.outbox.pending_count() == 0
    assert await registry.search_similar(vector=_vector(1), filter_text='category = "cat"') == []


async def test_object_mask_of_an_object_without_one_is_not_found(registry: Registry) -> None:
    source = await _image(registry)
    (created,) = (
        await registry.batch_create(
            uuid4(), [_object(source, 0, seed=1)], [None], create_missing_categories=True
        )
    ).objects
    with pytest.raises(NotFound) as caught:
        await registry.object_mask(created.id)
    assert caught.value.metadata["field"] == "name"
