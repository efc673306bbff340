"""The registry's embedding dimension is decided once, recorded in Postgres, and agreed on at
every later start (issue 12, item 1). Real embedded Postgres and a real qdrant-edge store."""

from __future__ import annotations

import json
from pathlib import Path
from uuid import uuid4

import psycopg
import pytest

from agentic_labeling.errors import FailedPrecondition
from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.registry.values.records import BoundingBox, NewObject, NewSource, SourceKind
from agentic_labeling.registry.vectors.edge_vectors import EdgeVectorStore
from agentic_labeling.settings import Settings


async def _opened_dimension(settings: Settings) -> int:
    registry = await Registry.open(settings)
    try:
        return registry.embedding_dimension
    finally:
        await registry.close()


def _recorded(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT key, value FROM registry_settings").fetchall()


def _models_dir(root: Path, hidden_size: int) -> Path:
    (root / "dinov2").mkdir(parents=True)
    config = {"model_type": "dinov2", "hidden_size": hidden_size}
    (root / "dinov2" / "config.json").write_text(json.dumps(config))
    return root


async def test_a_new_registry_without_models_dir_records_dinov2_base_768(
    empty_dsn: str, tmp_path: Path
) -> None:
    settings = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path)
    assert await _opened_dimension(settings) == 768
    assert _recorded(empty_dsn) == [("embedding_dimension", "768")]


async def test_a_new_registry_takes_the_dimension_of_the_models_dirs_dinov2(
    empty_dsn: str, tmp_path: Path
) -> None:
    models = _models_dir(tmp_path / "models", hidden_size=32)
    settings = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path / "data", models_dir=models)
    assert await _opened_dimension(settings) == 32
    assert _recorded(empty_dsn) == [("embedding_dimension", "32")]


async def test_a_later_start_without_the_setting_reads_the_recorded_dimension(
    empty_dsn: str, tmp_path: Path
) -> None:
    first = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=32)
    assert await _opened_dimension(first) == 32
    # No setting, and a models_dir that would say otherwise: the record wins.
    later = Settings(
        postgres_dsn=empty_dsn,
        data_dir=tmp_path,
        models_dir=_models_dir(tmp_path / "models", hidden_size=768),
    )
    assert await _opened_dimension(later) == 32


async def test_a_setting_that_contradicts_the_recorded_dimension_stops_the_start(
    empty_dsn: str, tmp_path: Path
) -> None:
    await _opened_dimension(
        Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=32)
    )
    with pytest.raises(FailedPrecondition) as caught:
        await Registry.open(
            Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=768)
        )
    assert caught.value.reason == "EMBEDDING_DIMENSION_MISMATCH"
    assert caught.value.message == (
        "the registry's database (--postgres-dsn) holds 32-dimensional embeddings;"
        " --embedding-dimension 768 contradicts it: leave the flag out, or use another"
        " --postgres-dsn"
    )
    assert _recorded(empty_dsn) == [("embedding_dimension", "32")]


async def test_a_setting_equal_to_the_recorded_dimension_is_accepted(
    empty_dsn: str, tmp_path: Path
) -> None:
    settings = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=16)
    assert await _opened_dimension(settings) == 16
    assert await _opened_dimension(settings) == 16


async def test_a_vector_store_of_another_dimension_is_one_clear_error_and_nothing_is_recorded(
    empty_dsn: str, tmp_path: Path
) -> None:
    store = await EdgeVectorStore.open(tmp_path / "qdrant", dimension=16)
    await store.close()
    with pytest.raises(FailedPrecondition) as caught:
        await Registry.open(
            Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=32)
        )
    assert caught.value.reason == "EMBEDDING_DIMENSION_MISMATCH"
    assert caught.value.message.startswith(
        f"the vector store at {tmp_path / 'qdrant'} holds 16-dimensional embeddings, not the"
        " registry's 32: "
    )
    assert _recorded(empty_dsn) == []


async def test_a_registry_from_before_the_record_keeps_the_dimension_of_its_embeddings(
    empty_dsn: str, tmp_path: Path
) -> None:
    settings = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path, embedding_dimension=8)
    registry = await Registry.open(settings)
    try:
        source = await registry.repository.sources.create(NewSource(SourceKind.IMAGE, 32, 32))
        new = NewObject(
            source_id=source.id,
            bbox=BoundingBox(1, 1, 5, 5),
            category_name="cat",
            confidence=0.5,
            embedding=[1.0] + [0.0] * 7,
        )
        await registry.batch_create(uuid4(), [new], [None], create_missing_categories=True)
    finally:
        await registry.close()
    with psycopg.connect(empty_dsn) as conn:
        conn.execute("DELETE FROM registry_settings")  # as a registry of the earlier version
    assert await _opened_dimension(Settings(postgres_dsn=empty_dsn, data_dir=tmp_path)) == 8
    assert _recorded(empty_dsn) == [("embedding_dimension", "8")]
