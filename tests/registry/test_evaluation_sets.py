"""Evaluation sets on a real registry (embedded Postgres, qdrant-edge, real image files): the
validated objects of a built split are the ground truth, and a model's auto-labels are scored
as the model produced them, whatever a reviewer changed afterwards."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from uuid import UUID, uuid4

import numpy as np
import psycopg
import pytest
from PIL import Image

from agentic_labeling.errors import FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.coordinator import EvaluationSet, Registry, ScoredBox
from agentic_labeling.registry.database import apply_migrations, load_migrations
from agentic_labeling.registry.values.dataset_records import NewDataset, SplitRatios
from agentic_labeling.registry.values.records import (
    BoundingBox,
    Correction,
    NewCategory,
    NewObject,
    NewSource,
    ObjectChanges,
    ObjectRecord,
    Source,
    SourceKind,
)
from agentic_labeling.settings import Settings
from agentic_labeling.training.evaluation import evaluate_boxes

MODEL = "florence2"
ALL_TRAIN = SplitRatios(1.0, 0.0, 0.0)


@pytest.fixture
async def registry(empty_dsn: str, tmp_path: Path) -> AsyncIterator[Registry]:
    settings = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path / "data", embedding_dimension=8)
    opened = await Registry.open(settings)
    for name in ("cat", "dog"):
        await opened.create_category(NewCategory(name))
    yield opened
    await opened.close()


async def _image(registry: Registry, shade: int) -> Source:
    buffer = io.BytesIO()
    Image.fromarray(np.full((240, 320, 3), shade, np.uint8)).save(buffer, format="PNG")
    return await registry.create_source(
        NewSource(SourceKind.IMAGE, 320, 240, display_name=f"shade {shade}.png"), buffer.getvalue()
    )


async def _objects(registry: Registry, *new: NewObject) -> tuple[ObjectRecord, ...]:
    result = await registry.repository.objects.batch_create(uuid4(), new)
    return result.objects


def _auto(source: Source, name: str, x: float, confidence: float = 0.8) -> NewObject:
    return NewObject(
        source_id=source.id,
        bbox=BoundingBox(x, 10.0, 50.0, 50.0),
        category_name=name,
        confidence=confidence,
        detection_model=MODEL,
    )


async def _built(registry: Registry, ratios: SplitRatios = ALL_TRAIN) -> UUID:
    dataset = await registry.create_dataset(
        NewDataset(display_name="eval", class_names=("cat", "dog"), ratios=ratios)
    )
    await registry.begin_build(dataset.id)
    await registry.build_dataset(dataset.id)
    return dataset.id


async def _validate(
    registry: Registry, *corrections: Correction, ids: tuple[UUID, ...] = ()
) -> None:
    await registry.repository.objects.validate(ids, corrections, validated_by="reviewer")


async def test_a_corrected_box_and_class_are_scored_as_the_model_produced_them(
    registry: Registry,
) -> None:
    source = await _image(registry, 10)
    shifted, wrong_class = await _objects(
        registry, _auto(source, "cat", 20.0, 0.9), _auto(source, "dog", 200.0, 0.6)
    )
    await _validate(
        registry,
        Correction(shifted.id, bbox=BoundingBox(10.0, 10.0, 50.0, 50.0)),
        Correction(wrong_class.id, category_name="cat"),
    )
    evaluation = await registry.evaluation_images(await _built(registry), "train")
    predictions = await registry.auto_label_predictions(evaluation, MODEL)

    image_id = evaluation.images[0].image_id
    assert sorted(evaluation.ground_truth, key=lambda b: b.x) == [
        ScoredBox(image_id, "cat", 10.0, 10.0, 50.0, 50.0),
        ScoredBox(image_id, "cat", 200.0, 10.0, 50.0, 50.0),
    ]
    assert sorted(predictions, key=lambda b: b.x) == [
        ScoredBox(image_id, "cat", 20.0, 10.0, 50.0, 50.0, 0.9),
        ScoredBox(image_id, "dog", 200.0, 10.0, 50.0, 50.0, 0.6),
    ]
    # The model's box overlaps the reviewed one by 40 x 50 of 60 x 50: IoU 2/3; its dog is a cat.
    result = evaluate_boxes(
        evaluation.ground_truth,
        predictions,
        images=[(i.image_id, i.width, i.height) for i in evaluation.images],
        class_names=evaluation.class_names,
    )
    assert result.confusion_counts[1][0] == 1  # predicted dog, truly cat
    # Cat: recall 1/2 at the four thresholds up to 2/3 (COCO: precision 1 on 51 of 101 points).
    assert result.per_class[0].ap50_95 == pytest.approx(4 / 10 * 51 / 101)


async def test_update_object_leaves_the_model_output_as_it_was(registry: Registry) -> None:
    source = await _image(registry, 20)
    (created,) = await _objects(registry, _auto(source, "cat", 20.0, 0.7))
    await registry.repository.objects.update(
        created.id,
        ObjectChanges(
            bbox=BoundingBox(30.0, 30.0, 40.0, 40.0), confidence=1.0, category_name="dog"
        ),
        {"bbox", "confidence", "category_name"},
    )
    await _validate(registry, ids=(created.id,))
    evaluation = await registry.evaluation_images(await _built(registry), "train")
    (prediction,) = await registry.auto_label_predictions(evaluation, MODEL)
    (truth,) = evaluation.ground_truth
    assert (prediction.class_name, prediction.x, prediction.w, prediction.score) == (
        "cat",
        20.0,
        50.0,
        0.7,
    )
    assert (truth.class_name, truth.x, truth.w) == ("dog", 30.0, 40.0)


async def test_a_wrong_auto_label_that_a_reviewer_deleted_still_counts_against_the_model(
    registry: Registry,
) -> None:
    source = await _image(registry, 25)
    right, wrong = await _objects(
        registry, _auto(source, "cat", 20.0, 0.9), _auto(source, "dog", 200.0, 0.95)
    )
    await _validate(registry, ids=(right.id,))
    await registry.delete_object(wrong.id)
    evaluation = await registry.evaluation_images(await _built(registry), "train")
    predictions = await registry.auto_label_predictions(evaluation, MODEL)
    assert sorted((b.class_name, b.x, b.score) for b in predictions) == [
        ("cat", 20.0, 0.9),
        ("dog", 200.0, 0.95),
    ]
    await registry.delete_source(source.id)  # the image goes, and its deleted outputs with it
    async with registry.database.connection() as conn:
        cursor = await conn.execute("SELECT count(*) FROM deleted_model_outputs")
        assert await cursor.fetchone() == (0,)


async def test_objects_created_validated_are_ground_truth_only(registry: Registry) -> None:
    source = await _image(registry, 30)
    human = NewObject(
        source_id=source.id,
        bbox=BoundingBox(5.0, 5.0, 30.0, 30.0),
        category_name="dog",
        detection_model=MODEL,  # even under the model's name: a person validated it at creation
        validated_by="annotator",
    )
    await _objects(registry, human)
    evaluation = await registry.evaluation_images(await _built(registry), "train")
    assert [b.class_name for b in evaluation.ground_truth] == ["dog"]
    assert await registry.auto_label_predictions(evaluation, MODEL) == []


async def test_the_label_importer_is_refused_as_a_detection_model(registry: Registry) -> None:
    source = await _image(registry, 40)
    (created,) = await _objects(registry, _auto(source, "cat", 20.0))
    await _validate(registry, ids=(created.id,))
    evaluation = await registry.evaluation_images(await _built(registry), "train")
    for model in ("import", ""):
        with pytest.raises(InvalidArgument) as raised:
            await registry.auto_label_predictions(evaluation, model)
        assert raised.value.violations[0].field == "detection_model"


async def test_images_without_validated_objects_and_unvalidated_objects_are_left_out(
    registry: Registry,
) -> None:
    reviewed, unreviewed = await _image(registry, 50), await _image(registry, 60)
    kept, pending, _ = await _objects(
        registry,
        _auto(reviewed, "cat", 20.0),
        _auto(reviewed, "dog", 200.0),
        _auto(unreviewed, "cat", 20.0),
    )
    await _validate(registry, ids=(kept.id,))
    evaluation = await registry.evaluation_images(await _built(registry), "train")
    assert [(i.source_id, i.width, i.height) for i in evaluation.images] == [
        (reviewed.id, 320, 240)
    ]
    assert evaluation.images[0].path.is_file()
    assert [(b.class_name, b.x) for b in evaluation.ground_truth] == [("cat", 20.0)]
    # The model's unreviewed dog on the reviewed image is still one of its predictions.
    predictions = await registry.auto_label_predictions(evaluation, MODEL)
    assert sorted((b.class_name, b.x) for b in predictions) == [("cat", 20.0), ("dog", 200.0)]
    assert pending.id != kept.id


async def test_a_category_the_model_once_named_can_still_be_deleted(registry: Registry) -> None:
    await registry.create_category(NewCategory("bird"))
    source = await _image(registry, 70)
    (created,) = await _objects(registry, _auto(source, "bird", 20.0))
    await _validate(registry, Correction(created.id, category_name="cat"))
    bird = await registry.repository.categories.resolve("bird")
    await registry.delete_category(bird.id, force=False)
    evaluation = await registry.evaluation_images(await _built(registry), "train")
    assert [b.class_name for b in evaluation.ground_truth] == ["cat"]
    assert await registry.auto_label_predictions(evaluation, MODEL) == []


async def test_an_unknown_dataset_is_not_found(registry: Registry) -> None:
    with pytest.raises(NotFound):
        await registry.evaluation_images(uuid4(), "val")


async def test_a_dataset_never_built_is_a_failed_precondition(registry: Registry) -> None:
    dataset = await registry.create_dataset(NewDataset(display_name="draft", class_names=("cat",)))
    with pytest.raises(FailedPrecondition) as raised:
        await registry.evaluation_images(dataset.id, "val")
    assert raised.value.reason == "DATASET_NOT_BUILT"


async def test_a_split_without_validated_objects_is_a_failed_precondition(
    registry: Registry,
) -> None:
    source = await _image(registry, 80)
    (created,) = await _objects(registry, _auto(source, "cat", 20.0))
    dataset_id = await _built(registry)
    for split in ("train", "val"):  # train: nothing validated; val: no images at all
        with pytest.raises(FailedPrecondition) as raised:
            await registry.evaluation_images(dataset_id, split)
        assert raised.value.reason == "EVALUATION_SPLIT_EMPTY"
        assert split in raised.value.message
    await _validate(registry, ids=(created.id,))
    assert isinstance(await registry.evaluation_images(dataset_id, "train"), EvaluationSet)


async def test_an_unknown_split_names_the_field(registry: Registry) -> None:
    with pytest.raises(InvalidArgument) as raised:
        await registry.evaluation_images(uuid4(), "validation")
    assert raised.value.violations[0].field == "split"


def test_the_migration_keeps_unreviewed_objects_as_model_outputs_and_not_reviewed_ones(
    empty_dsn: str,
) -> None:
    before = [m for m in load_migrations() if m.version < 6]
    apply_migrations(empty_dsn, before)
    source, category = uuid4(), uuid4()
    pending, reviewed = uuid4(), uuid4()
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO sources (id, kind, width, height) VALUES (%s, 'IMAGE', 64, 64)",
            (source,),
        )
        conn.execute("INSERT INTO frames (source_id, frame_index) VALUES (%s, 0)", (source,))
        conn.execute("INSERT INTO categories (id, display_name) VALUES (%s, 'cat')", (category,))
        for object_id, validated_by in ((pending, None), (reviewed, "reviewer")):
            conn.execute(
                "INSERT INTO objects (id, source_id, frame_index, category_id, x, y, width, "
                "height, confidence, area, detection_model, is_validated, validated_by, "
                "validate_time) VALUES (%s, %s, 0, %s, 1, 2, 3, 4, 0.5, 12, 'florence2', %s, "
                "%s, CASE WHEN %s THEN now() END)",
                (
                    object_id,
                    source,
                    category,
                    validated_by is not None,
                    validated_by,
                    validated_by is not None,
                ),
            )
    assert apply_migrations(empty_dsn) == [m.version for m in load_migrations() if m.version >= 6]
    with psycopg.connect(empty_dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT id, model_category_id, model_x, model_y, model_width, model_height, "
            "model_confidence FROM objects"
        ).fetchall()
    assert {row[0]: row[1:] for row in rows} == {
        pending: (category, 1.0, 2.0, 3.0, 4.0, 0.5),
        reviewed: (None,) * 6,  # what the model said before the review is unknown
    }
