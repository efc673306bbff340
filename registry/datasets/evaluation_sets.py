"""What a model is scored on: a built dataset's split, its human-validated labels as ground
truth, and the auto-labels a detection model produced on the same images.

- Images: the split's images (as the export reads them, `DatasetStore.images`) that hold at
  least one validated object; an image nobody has reviewed has no ground truth to score on.
  Each image's id is its image number in the dataset.
- Ground truth: the validated objects of the split's membership, with their class ids from the
  build (as the export writes them) and their boxes as reviewed.
- Auto-label predictions: the model's own output on those images (`metadata.model_outputs`),
  not the reviewed objects: a corrected box is compared with what the model said, never with
  itself. Objects created validated (imports, boxes a person drew) are never predictions. A
  prediction of a category that is not one of the dataset's classes is left out: it cannot
  match any ground truth of the dataset, and evaluation scores the dataset's classes only.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

from agentic_labeling.errors import FailedPrecondition, InvalidArgument
from agentic_labeling.registry.database import Database
from agentic_labeling.registry.datasets.dataset_export import check_exportable, image_file
from agentic_labeling.registry.datasets.datasets import DatasetStore, dataset_name
from agentic_labeling.registry.datasets.ground_truth import IMPORTED_MODEL
from agentic_labeling.registry.files.image_store import ImageStore
from agentic_labeling.registry.metadata.categories import resolve_category_names
from agentic_labeling.registry.metadata.model_outputs import model_outputs
from agentic_labeling.registry.values.dataset_records import SPLITS, DatasetImage, Split
from agentic_labeling.registry.values.input_checks import MAX_NAME_LENGTH, check_text
from agentic_labeling.registry.values.records import category_name_key
from agentic_labeling.training.evaluation import ScoredBox

__all__ = ["EvaluationImage", "EvaluationSet", "auto_label_predictions", "read_evaluation_set"]


@dataclass(frozen=True)
class EvaluationImage:
    """One image scored on: `image_id` is its image number in the dataset, `path` the file
    holding its pixels (upright), `width` x `height` its size in pixels."""

    image_id: int
    source_id: UUID
    frame_index: int
    width: int
    height: int
    path: Path


@dataclass(frozen=True)
class EvaluationSet:
    """A split's images with validated objects, their validated boxes (score 1.0) and the
    dataset's class names (a box's class_name is one of them)."""

    dataset_id: UUID
    split: Split
    images: tuple[EvaluationImage, ...]
    ground_truth: tuple[ScoredBox, ...]
    class_names: tuple[str, ...]


def _check_split(split: str) -> Split:
    try:
        return Split(split)
    except ValueError:
        raise InvalidArgument(
            f"split must be one of {', '.join(SPLITS)}, got {split!r}", field="split"
        ) from None


async def read_evaluation_set(
    datasets: DatasetStore, db: Database, images: ImageStore, dataset_id: UUID, split: str
) -> EvaluationSet:
    """The evaluation set of `split` of a built dataset.

    InvalidArgument (field `split`) for a split that is not train, val or test; NotFound for
    an unknown dataset; FailedPrecondition DATASET_NOT_BUILT for one that is not READY, and
    EVALUATION_SPLIT_EMPTY when no image of the split has a validated object.
    """
    wanted = _check_split(split)
    dataset = await datasets.get(dataset_id)
    check_exportable(dataset)
    members = [image async for image in datasets.images(dataset_id, split=wanted)]
    validated = await _validated(db, [o.object_id for image in members for o in image.objects])
    scored = [image for image in members if any(o.object_id in validated for o in image.objects)]
    if not scored:
        held = f"its {len(members)} images have" if members else "it has no images, so it has"
        raise FailedPrecondition(
            f"the {wanted} split of {dataset_name(dataset_id)} has nothing to score on: {held} "
            "no validated object; review some of its objects (or build with another split "
            "ratio) first",
            reason="EVALUATION_SPLIT_EMPTY",
            metadata={"split": str(wanted)},
        )
    paths = await asyncio.to_thread(lambda: [image_file(image, images) for image in scored])
    return EvaluationSet(
        dataset_id=dataset_id,
        split=wanted,
        images=tuple(
            _evaluation_image(image, path) for image, path in zip(scored, paths, strict=True)
        ),
        ground_truth=tuple(
            ScoredBox(
                image.image_number,
                dataset.class_names[o.class_id],
                o.bbox.x,
                o.bbox.y,
                o.bbox.width,
                o.bbox.height,
            )
            for image in scored
            for o in image.objects
            if o.object_id in validated
        ),
        class_names=dataset.class_names,
    )


def _evaluation_image(image: DatasetImage, path: Path) -> EvaluationImage:
    return EvaluationImage(
        image_id=image.image_number,
        source_id=image.source_id,
        frame_index=image.frame_index,
        width=image.width,
        height=image.height,
        path=path,
    )


async def _validated(db: Database, object_ids: list[UUID]) -> set[UUID]:
    """Which of `object_ids` are validated now."""
    if not object_ids:
        return set()
    async with db.connection() as conn:
        cursor = await conn.execute(
            "SELECT id FROM objects WHERE id = ANY(%s::uuid[]) AND is_validated",
            (object_ids,),
        )
        return {row[0] for row in await cursor.fetchall()}


async def auto_label_predictions(
    db: Database, evaluation: EvaluationSet, detection_model: str
) -> list[ScoredBox]:
    """What `detection_model` itself produced on the evaluation set's images, as scored boxes
    of the dataset's classes (confidence as score); see the module docstring.

    InvalidArgument (field `detection_model`) when it is empty or names the label importer,
    whose objects are ground truth. FailedPrecondition DATASET_CLASS_UNRESOLVED when a class
    name no longer names a category (rebuild the dataset).
    """
    if not detection_model:
        raise InvalidArgument(
            "name the detection model whose labels to score", field="detection_model"
        )
    check_text(detection_model, "detection_model", max_length=MAX_NAME_LENGTH)
    if detection_model == IMPORTED_MODEL:
        raise InvalidArgument(
            f"{IMPORTED_MODEL!r} marks imported labels, which are ground truth, not a model's "
            "output; name the model that auto-labelled the images (e.g. florence2)",
            field="detection_model",
        )
    async with db.connection() as conn:
        found = await resolve_category_names(
            conn, {category_name_key(name) for name in evaluation.class_names}
        )
    class_of: dict[UUID, str] = {}
    for name in evaluation.class_names:
        category_id = found.get(category_name_key(name))
        if category_id is None:
            raise FailedPrecondition(
                f"class {name!r} of {dataset_name(evaluation.dataset_id)} no longer names a "
                "category; rebuild the dataset",
                reason="DATASET_CLASS_UNRESOLVED",
                metadata={"class_name": name},
            )
        class_of.setdefault(category_id, name)
    image_of = {(i.source_id, i.frame_index): i.image_id for i in evaluation.images}
    outputs = await model_outputs(db, list(image_of), detection_model, class_of)
    return [
        ScoredBox(
            image_of[o.source_id, o.frame_index],
            class_of[o.category_id],
            o.bbox.x,
            o.bbox.y,
            o.bbox.width,
            o.bbox.height,
            o.confidence,
        )
        for o in outputs
    ]
