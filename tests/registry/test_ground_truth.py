"""Importing a label set into a real registry (embedded Postgres, qdrant-edge, real files):
each image is all or nothing, and what the importer is told is checked before anything is
written."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest
from PIL import Image

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.coordinator import Registry
from agentic_labeling.registry.datasets.ground_truth import (
    LabelSetFormat,
    import_label_set,
    open_label_set,
)
from agentic_labeling.registry.datasets.label_import import ImportedLabelSet
from agentic_labeling.registry.datasets.label_sets import LabelImage, LabelObject
from agentic_labeling.settings import Settings


class _Progress:
    def update(self, **_: object) -> None:
        pass

    def check_cancelled(self) -> None:
        pass


@pytest.fixture
async def registry(empty_dsn: str, tmp_path: Path) -> AsyncIterator[Registry]:
    settings = Settings(postgres_dsn=empty_dsn, data_dir=tmp_path / "data", embedding_dimension=8)
    opened = await Registry.open(settings)
    yield opened
    await opened.close()


def _image(folder: Path, name: str, shade: int, class_id: int) -> LabelImage:
    path = folder / name
    Image.fromarray(np.full((20, 30, 3), shade, np.uint8)).save(path)
    return LabelImage(
        split="train",
        file_stem=path.stem,
        image_path=path,
        width=30,
        height=20,
        objects=(LabelObject(class_id=class_id, bbox=(1.0, 1.0, 5.0, 5.0), mask=None),),
    )


def _stored_files(registry: Registry) -> list[Path]:
    return [p for p in registry.images.directory.rglob("*") if p.is_file()]


async def test_an_image_whose_objects_are_refused_leaves_no_source_and_no_file(
    registry: Registry, tmp_path: Path
) -> None:
    # Class 1 has a name no category can have: refused by the batch, after the image's
    # source and file were written (a label set built in code skips the reader's checks).
    label_set = ImportedLabelSet(
        class_names=("ring", " padded"),
        images=iter([_image(tmp_path, "good.png", 10, 0), _image(tmp_path, "bad.png", 20, 1)]),
    )
    with pytest.raises(InvalidArgument) as caught:
        await import_label_set(
            registry,
            [label_set],
            validated_by="importer",
            request_id=uuid4(),
            progress=_Progress(),
        )
    assert caught.value.violations[0].field == "requests[0].object.category_name"
    sources = (await registry.repository.sources.list()).items
    assert [s.display_name for s in sources] == ["good.png"]  # the image before stays whole
    assert [p.name for p in _stored_files(registry)] == [sources[0].content_sha256]


@pytest.mark.parametrize("validated_by", ["a\x00b", "a\ud800"])
async def test_an_unstorable_reviewer_is_refused_before_any_image_is_written(
    registry: Registry, tmp_path: Path, validated_by: str
) -> None:
    label_set = ImportedLabelSet(
        class_names=("ring",), images=iter([_image(tmp_path, "a.png", 10, 0)])
    )
    with pytest.raises(InvalidArgument) as caught:
        await import_label_set(
            registry,
            [label_set],
            validated_by=validated_by,
            request_id=uuid4(),
            progress=_Progress(),
        )
    assert caught.value.violations[0].field == "validated_by"
    assert (await registry.repository.sources.list()).items == ()
    assert _stored_files(registry) == []


def test_a_path_with_a_nul_is_invalid_argument_naming_path() -> None:
    with pytest.raises(InvalidArgument) as caught:
        open_label_set(LabelSetFormat.COCO, Path("/tmp/a\x00b.json"))
    assert caught.value.violations[0].field == "path"
