"""The export job on a real Postgres: images from the image store, progress to the last image,
and an export that fails or is cancelled half-way leaves nothing in the export root."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path
from uuid import uuid4

import numpy as np
import pytest
from dataset_fixtures import box, built, definition, images_with_objects, objects, sha, video
from PIL import Image

from agentic_labeling.errors import Cancelled, FailedPrecondition, InvalidArgument
from agentic_labeling.registry.datasets.dataset_export import (
    ExportRequest,
    export_dataset,
    image_file,
)
from agentic_labeling.registry.datasets.ground_truth import LabelSetFormat, open_label_set
from agentic_labeling.registry.datasets.label_sets import ExportFormat, ImageTransfer
from agentic_labeling.registry.files.image_store import ImageStore
from agentic_labeling.registry.files.masks import MaskStore
from agentic_labeling.registry.repository import Repository
from agentic_labeling.registry.values.dataset_records import DatasetImage, Split
from agentic_labeling.registry.values.records import BoundingBox, NewObject


class RecordedProgress:
    """Keeps every update; asks to stop once `cancel_after` images are done."""

    def __init__(self, cancel_after: int | None = None) -> None:
        self.done = self.total = 0
        self.stages: list[str] = []
        self.cancel_after = cancel_after

    def update(
        self,
        *,
        stage: str | None = None,
        done: int | None = None,
        total: int | None = None,
        unit: str | None = None,
    ) -> None:
        if stage is not None:
            self.stages.append(stage)
        self.done = self.done if done is None else done
        self.total = self.total if total is None else total

    def check_cancelled(self) -> None:
        if self.cancel_after is not None and self.done >= self.cancel_after:
            raise Cancelled("asked to stop")


def _png(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


async def _dataset_with_stored_images(
    repo: Repository, images: ImageStore, count: int, *, store: bool = True
) -> ExportRequest:
    sources = await images_with_objects(repo, count, per_image=2)
    for seed, source in enumerate(sources):
        if store:
            # The fixture's sources carry made-up hashes: store real bytes under them.
            path = images.path(source.content_sha256)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(_png(seed))
    dataset_id = await built(repo, definition("cat"))
    dataset = await repo.datasets.get(dataset_id)
    return ExportRequest(dataset, ExportFormat.COCO, Path(), ImageTransfer.COPY, False)


async def test_an_export_counts_every_image_and_lands_whole(
    repo: Repository, tmp_path: Path
) -> None:
    images, masks = ImageStore(tmp_path / "images"), MaskStore(tmp_path / "data")
    request = await _dataset_with_stored_images(repo, images, 6)
    target = tmp_path / "exports" / "cats"
    request = ExportRequest(
        request.dataset, ExportFormat.YOLO_DETECT, target, request.transfer, False
    )
    progress = RecordedProgress()
    summary = await export_dataset(
        request, repo.datasets.images(request.dataset.id), images, masks, progress
    )
    assert (summary.image_count, summary.object_count) == (6, 12)
    assert summary.entry_point == target / "data.yaml"
    assert (progress.done, progress.total) == (6, 6)
    written = sorted(p.name for p in (target / "images").rglob("*.png"))
    assert len(written) == 6
    assert written[0].startswith("image-")  # display name "image N", without an extension
    assert sorted(p.name for p in target.parent.iterdir()) == ["cats"]


async def test_a_cancelled_export_leaves_nothing_behind(repo: Repository, tmp_path: Path) -> None:
    images, masks = ImageStore(tmp_path / "images"), MaskStore(tmp_path / "data")
    request = await _dataset_with_stored_images(repo, images, 6)
    exports = tmp_path / "exports"
    exports.mkdir()
    request = ExportRequest(
        request.dataset, ExportFormat.COCO, exports / "cats", request.transfer, False
    )
    with pytest.raises(Cancelled):
        await export_dataset(
            request,
            repo.datasets.images(request.dataset.id),
            images,
            masks,
            RecordedProgress(cancel_after=3),
        )
    assert list(exports.iterdir()) == []


async def test_an_image_the_registry_never_received_fails_the_export_by_name(
    repo: Repository, tmp_path: Path
) -> None:
    images, masks = ImageStore(tmp_path / "images"), MaskStore(tmp_path / "data")
    request = await _dataset_with_stored_images(repo, images, 2, store=False)
    exports = tmp_path / "exports"
    exports.mkdir()
    request = ExportRequest(
        request.dataset, ExportFormat.COCO, exports / "x", request.transfer, False
    )
    with pytest.raises(FailedPrecondition, match="not in the registry's image store") as caught:
        await export_dataset(
            request, repo.datasets.images(request.dataset.id), images, masks, RecordedProgress()
        )
    assert caught.value.reason == "IMAGE_NOT_STORED"
    assert list(exports.iterdir()) == []


def test_a_label_set_path_must_be_absolute_existing_and_hold_labels(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="must be absolute"):
        open_label_set(LabelSetFormat.COCO, Path("relative/instances.json"))
    with pytest.raises(InvalidArgument, match="does not exist"):
        open_label_set(LabelSetFormat.COCO, tmp_path / "missing.json")
    with pytest.raises(InvalidArgument, match="instances_"):
        open_label_set(LabelSetFormat.COCO, tmp_path)


def test_a_video_frame_is_exported_from_its_own_stored_bytes(tmp_path: Path) -> None:
    images = ImageStore(tmp_path / "images")
    frame_sha = images.put(_png(1))
    source_sha = images.put(_png(2))
    frame = DatasetImage(
        split=Split.TRAIN,
        image_number=1,
        source_id=uuid4(),
        frame_index=3,
        source_display_name="drive.mp4",
        source_uri="",
        source_content_sha256=source_sha,
        frame_uri="",
        frame_content_sha256=frame_sha,
        width=640,
        height=480,
        objects=(),
    )
    assert image_file(frame, images) == images.path(frame_sha)
    still = replace(frame, frame_content_sha256="")
    assert image_file(still, images) == images.path(source_sha)
    on_disk = tmp_path / "frame.png"
    on_disk.write_bytes(_png(3))
    by_uri = replace(still, source_content_sha256="", frame_uri=f"file://{on_disk}")
    assert image_file(by_uri, images) == on_disk


async def test_a_videos_frames_are_exported_each_as_an_image_all_in_one_split(
    repo: Repository, tmp_path: Path
) -> None:
    images, masks = ImageStore(tmp_path / "images"), MaskStore(tmp_path / "data")
    clips = [await video(repo, n, frames=3) for n in range(5)]
    for n in range(len(clips)):
        for index in range(3):
            # The fixture's frames carry made-up hashes: store real bytes under them.
            path = images.path(sha(n * 1000 + index))
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = np.random.default_rng(n * 10 + index).integers(0, 256, (240, 320, 3))
            buffer = io.BytesIO()
            Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="PNG")
            path.write_bytes(buffer.getvalue())
    await objects(
        repo,
        [
            NewObject(
                source_id=clip.id, frame_index=f, bbox=BoundingBox(*box(f)), category_name="cat"
            )
            for clip in clips
            for f in range(3)
        ],
    )
    dataset = await repo.datasets.get(await built(repo, definition("cat")))
    target = tmp_path / "exports" / "clips"
    summary = await export_dataset(
        ExportRequest(dataset, ExportFormat.YOLO_DETECT, target, ImageTransfer.COPY, False),
        repo.datasets.images(dataset.id),
        images,
        masks,
        RecordedProgress(),
    )
    assert (summary.image_count, summary.object_count) == (15, 15)
    splits_of: dict[str, set[str]] = {}
    for path in (target / "images").rglob("*.png"):
        clip = path.stem.split("-")[0]  # "v3-7": the video's display name, the image number
        splits_of.setdefault(clip, set()).add(path.parent.name)
        assert (target / "labels" / path.parent.name / f"{path.stem}.txt").is_file()
    assert sorted(splits_of) == [f"v{n}" for n in range(5)]
    assert all(len(splits) == 1 for splits in splits_of.values()), splits_of
    assert len(list((target / "images").rglob("*.png"))) == 15
