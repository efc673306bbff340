"""The bad-input battery for BatchCreateObjects: each mistake gets its precise error class and
names the request field, and nothing at all is written."""

from __future__ import annotations

import math
from dataclasses import replace
from uuid import uuid4

import pytest

from agentic_labeling.errors import (
    AlreadyExists,
    DomainError,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    ResourceExhausted,
)
from agentic_labeling.registry.metadata.object_batches import BatchLimits, create_batch
from agentic_labeling.registry.values.records import BoundingBox, NewObject

# Each case: how to spoil the second object of a good two-object batch, the error, the field.
CASES = {
    "unknown source": (
        lambda o, ctx: replace(o, source_id=uuid4()),
        NotFound,
        "requests[1].object.source",
    ),
    "unknown frame of a video": (
        lambda o, ctx: replace(o, source_id=ctx["video"], frame_index=7),
        NotFound,
        "requests[1].object.frame_index",
    ),
    "frame 1 of an image": (
        lambda o, ctx: replace(o, frame_index=1),
        InvalidArgument,
        "requests[1].object.frame_index",
    ),
    "negative frame": (
        lambda o, ctx: replace(o, frame_index=-1),
        InvalidArgument,
        "requests[1].object.frame_index",
    ),
    "unknown category name": (
        lambda o, ctx: replace(o, category_name="zebra"),
        NotFound,
        "requests[1].object.category_name",
    ),
    "unknown category id": (
        lambda o, ctx: replace(o, category_name="", category_id=uuid4()),
        NotFound,
        "requests[1].object.category",
    ),
    "no category": (
        lambda o, ctx: replace(o, category_name=""),
        InvalidArgument,
        "requests[1].object.category",
    ),
    "name of another category": (
        lambda o, ctx: replace(o, category_id=ctx["dog"]),
        InvalidArgument,
        "requests[1].object.category_name",
    ),
    "blank category name": (
        lambda o, ctx: replace(o, category_name=" cat"),
        InvalidArgument,
        "requests[1].object.category_name",
    ),
    "bbox outside image": (
        lambda o, ctx: replace(o, bbox=BoundingBox(90, 90, 20, 20)),
        InvalidArgument,
        "requests[1].object.bbox",
    ),
    "bbox left of image": (
        lambda o, ctx: replace(o, bbox=BoundingBox(-1, 0, 5, 5)),
        InvalidArgument,
        "requests[1].object.bbox",
    ),
    "zero-width bbox": (
        lambda o, ctx: replace(o, bbox=BoundingBox(0, 0, 0, 5)),
        InvalidArgument,
        "requests[1].object.bbox",
    ),
    "NaN in bbox": (
        lambda o, ctx: replace(o, bbox=BoundingBox(math.nan, 0, 5, 5)),
        InvalidArgument,
        "requests[1].object.bbox",
    ),
    "infinite bbox": (
        lambda o, ctx: replace(o, bbox=BoundingBox(0, 0, math.inf, 5)),
        InvalidArgument,
        "requests[1].object.bbox",
    ),
    "confidence above 1": (
        lambda o, ctx: replace(o, confidence=1.01),
        InvalidArgument,
        "requests[1].object.confidence",
    ),
    "NaN confidence": (
        lambda o, ctx: replace(o, confidence=math.nan),
        InvalidArgument,
        "requests[1].object.confidence",
    ),
    "negative quality": (
        lambda o, ctx: replace(o, quality_score=-0.1),
        InvalidArgument,
        "requests[1].object.quality_score",
    ),
    "wrong embedding dimension": (
        lambda o, ctx: replace(o, embedding=[1.0] * 7),
        InvalidArgument,
        "requests[1].embedding",
    ),
    "non-finite embedding": (
        lambda o, ctx: replace(o, embedding=[math.inf] + [1.0] * 7),
        InvalidArgument,
        "requests[1].embedding",
    ),
    "NaN in an embedding": (
        lambda o, ctx: replace(o, embedding=[1.0] * 7 + [math.nan]),
        InvalidArgument,
        "requests[1].embedding",
    ),
    "embedding beyond float32": (
        lambda o, ctx: replace(o, embedding=[1e39] + [1.0] * 7),
        InvalidArgument,
        "requests[1].embedding",
    ),
    "zero embedding": (
        lambda o, ctx: replace(o, embedding=[0.0] * 8),
        InvalidArgument,
        "requests[1].embedding",
    ),
    "text embedding": (
        lambda o, ctx: replace(o, embedding=["a"] * 8),
        InvalidArgument,
        "requests[1].embedding",
    ),
    "mask larger than image": (
        lambda o, ctx: replace(o, mask_area=100 * 100 + 1),
        InvalidArgument,
        "requests[1].mask",
    ),
    "NaN mask area": (
        lambda o, ctx: replace(o, mask_area=math.nan),
        InvalidArgument,
        "requests[1].mask",
    ),
    "NUL in model": (
        lambda o, ctx: replace(o, detection_model="a\x00"),
        InvalidArgument,
        "requests[1].object.detection_model",
    ),
    "too many attributes": (
        lambda o, ctx: replace(o, attributes={str(i): "" for i in range(65)}),
        InvalidArgument,
        "requests[1].object.attributes",
    ),
    "empty validated_by": (
        lambda o, ctx: replace(o, validated_by=""),
        InvalidArgument,
        "requests[1].validated_by",
    ),
    "track of another source": (
        lambda o, ctx: replace(o, track_id=ctx["video_track"]),
        FailedPrecondition,
        "requests[1].object.track",
    ),
    "object_id repeated": (
        lambda o, ctx: replace(o, object_id=ctx["first_id"]),
        InvalidArgument,
        "requests[1].object_id",
    ),
    "object_id taken": (
        lambda o, ctx: replace(o, object_id=ctx["taken_id"]),
        AlreadyExists,
        "requests[1].object_id",
    ),
}


async def table_counts(repo) -> dict[str, int]:
    counts = {}
    async with repo.db.connection() as conn:
        for table in (
            "objects",
            "categories",
            "tracks",
            "frames",
            "vector_outbox",
            "batch_requests",
        ):
            cursor = await conn.execute(f"SELECT count(*) FROM {table}")
            counts[table] = (await cursor.fetchone())[0]
    return counts


def field_of(error: DomainError) -> str:
    if isinstance(error, InvalidArgument):
        return error.violations[0].field
    return error.metadata["field"]


@pytest.mark.parametrize("case", list(CASES))
async def test_a_bad_object_fails_the_batch_with_a_precise_error_and_writes_nothing(
    repo, build, case: str
) -> None:
    spoil, error_class, field = CASES[case]
    image = await build.image(100, 100)
    video = await build.video(frames=1)
    dog = (await build.create(build.obj(image, "dog", bbox=(60, 60, 5, 5)))).objects[0]
    video_track = uuid4()
    taken = (await build.create(build.obj(video, "cat", track_id=video_track))).objects[0]
    first_id = uuid4()
    ctx = {
        "video": video.id,
        "dog": dog.category_id,
        "video_track": video_track,
        "first_id": first_id,
        "taken_id": taken.id,
    }
    good = NewObject(
        source_id=image.id, bbox=BoundingBox(0, 0, 10, 10), category_name="cat", embedding=[1.0] * 8
    )
    # The first object creates a category, unless the case is about missing categories.
    creating = case != "unknown category name"
    new_name = "brand-new" if creating else "cat"
    before = await table_counts(repo)

    with pytest.raises(error_class) as caught:
        await repo.objects.batch_create(
            uuid4(),
            [replace(good, object_id=first_id, category_name=new_name), spoil(good, ctx)],
            create_missing_categories=creating,
        )

    assert type(caught.value) is error_class
    assert field_of(caught.value) == field
    assert await table_counts(repo) == before


async def test_an_empty_batch_is_invalid_argument_naming_requests(repo) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.objects.batch_create(uuid4(), [])
    assert caught.value.violations[0].field == "requests"


async def test_a_batch_over_the_limit_is_resource_exhausted(db, build) -> None:
    image = await build.image()
    objects = [build.obj(image, bbox=(i, 0, 1, 1)) for i in range(3)]
    with pytest.raises(ResourceExhausted):
        await create_batch(db, BatchLimits(max_batch_objects=2), uuid4(), objects)


@pytest.mark.parametrize("threshold", [-0.1, math.nan, math.inf])
async def test_a_bad_duplicate_threshold_is_invalid_argument(repo, build, threshold) -> None:
    image = await build.image()
    with pytest.raises(InvalidArgument) as caught:
        await build.create(build.obj(image), duplicate_iou_threshold=threshold)
    assert caught.value.violations[0].field == "duplicate_iou_threshold"
