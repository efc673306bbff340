"""COCO exports, read by pycocotools and supervision (their real loaders) and by our reader."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pycocotools.mask as mask_utils  # type: ignore[import-untyped]
import pytest
from label_fixtures import CLASS_NAMES, sample_images
from PIL import Image
from pycocotools.coco import COCO

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.datasets.coco_export import write_coco
from agentic_labeling.registry.datasets.label_import import read_coco
from agentic_labeling.registry.datasets.label_sets import (
    ExportSummary,
    ImageTransfer,
    LabelImage,
    LabelObject,
)


def _export(tmp_path: Path) -> tuple[Path, list[LabelImage], ExportSummary]:
    images = sample_images(tmp_path)
    directory = tmp_path / "coco"
    directory.mkdir()
    summary = write_coco(iter(images), CLASS_NAMES, directory, transfer=ImageTransfer.COPY)
    return directory, images, summary


def test_layout_ids_and_categories_are_stable(tmp_path: Path) -> None:
    directory, _, summary = _export(tmp_path)
    assert summary == ExportSummary(image_count=3, object_count=5, entry_point=Path("annotations"))
    assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*.*")) == [
        "annotations/instances_train.json",
        "annotations/instances_val.json",
        "images/train/coins-3f2a9c1b.png",
        "images/train/empty-0001.png",
        "images/val/desk-77aa.jpg",
    ]
    train = json.loads((directory / "annotations/instances_train.json").read_text())
    val = json.loads((directory / "annotations/instances_val.json").read_text())
    assert train["categories"] == [
        {"id": 1, "name": "ring"},
        {"id": 2, "name": "pair"},
        {"id": 3, "name": "crate"},
    ]
    # Image ids count input order across splits (train, val, train); annotation ids likewise.
    assert [(i["id"], i["file_name"]) for i in train["images"]] == [
        (1, "coins-3f2a9c1b.png"),
        (3, "empty-0001.png"),
    ]
    assert [(i["id"], i["file_name"]) for i in val["images"]] == [(2, "desk-77aa.jpg")]
    assert [a["id"] for a in train["annotations"]] == [1, 2, 3]
    assert [a["id"] for a in val["annotations"]] == [4, 5]
    assert [a["alabel_object_id"] for a in train["annotations"]] == [
        "obj-ring",
        "obj-pair",
        "obj-crate",
    ]
    assert all(a["iscrowd"] == 0 for a in train["annotations"] + val["annotations"])


def test_pycocotools_gives_back_the_masks_exactly(tmp_path: Path) -> None:
    directory, images, _ = _export(tmp_path)
    coco = COCO(str(directory / "annotations/instances_train.json"))
    ring, pair, crate = images[0].objects
    annotations = coco.loadAnns(coco.getAnnIds(imgIds=[1]))
    assert [a["category_id"] for a in annotations] == [1, 2, 3]
    for annotation, stored in zip(annotations[:2], (ring, pair), strict=True):
        assert stored.mask is not None
        assert np.array_equal(coco.annToMask(annotation).astype(bool), stored.mask)
        assert annotation["area"] == int(stored.mask.sum())
        assert annotation["bbox"] == pytest.approx(stored.bbox, rel=1e-6)
    box_only = annotations[2]
    assert box_only["bbox"] == pytest.approx(crate.bbox, rel=1e-6)
    assert box_only["area"] == pytest.approx(40.125 * 20.75)
    assert box_only["segmentation"] == [[3.25, 90.5, 43.375, 90.5, 43.375, 111.25, 3.25, 111.25]]


def test_bbox_is_the_masks_tight_box_and_the_detectors_box_is_kept_beside_it(
    tmp_path: Path,
) -> None:
    """A mask that leaves its prompt box: `bbox` and `segmentation` agree (COCO's rule, as
    pycocotools computes a result's box), the detector's box is in alabel_detector_bbox."""
    mask = np.zeros((48, 64), bool)
    mask[10:30, 5:40] = True  # pixels x 5..39, y 10..29
    detector = (8.25, 12.5, 20.0, 10.75)  # the prompt box, inside the mask's extent
    path = tmp_path / "wide.png"
    Image.new("RGB", (64, 48)).save(path)
    wide = LabelImage(
        split="train",
        file_stem="wide",
        image_path=path,
        width=64,
        height=48,
        objects=(
            LabelObject(class_id=0, bbox=detector, mask=mask, object_id="a"),
            LabelObject(class_id=1, bbox=detector, mask=None, object_id="b"),
        ),
    )
    directory = tmp_path / "coco"
    directory.mkdir()
    write_coco(iter([wide]), CLASS_NAMES, directory, transfer=ImageTransfer.COPY)
    coco = COCO(str(directory / "annotations/instances_train.json"))
    masked, box_only = coco.loadAnns(coco.getAnnIds())
    assert masked["bbox"] == [5.0, 10.0, 35.0, 20.0]
    assert masked["bbox"] == list(mask_utils.toBbox(coco.annToRLE(masked)))
    assert masked["alabel_detector_bbox"] == list(detector)
    assert box_only["bbox"] == box_only["alabel_detector_bbox"] == list(detector)


def test_supervision_reads_every_object_with_its_mask(tmp_path: Path) -> None:
    import supervision as sv

    directory, images, _ = _export(tmp_path)
    for split in ("train", "val"):
        dataset = sv.DetectionDataset.from_coco(
            images_directory_path=str(directory / "images" / split),
            annotations_path=str(directory / "annotations" / f"instances_{split}.json"),
            force_masks=True,
        )
        assert dataset.classes == list(CLASS_NAMES)
        stored = {image.file_stem: image for image in images if image.split == split}
        for path, _, detections in dataset:
            image = stored[Path(path).stem]
            assert len(detections) == len(image.objects)
            if not image.objects:
                continue
            assert detections.mask is not None
            for found, item in zip(detections.mask, image.objects, strict=True):
                if item.mask is not None:  # RLE with iscrowd 0 is decoded as is
                    assert np.array_equal(found, item.mask)


def test_round_trip_gives_back_images_boxes_and_exact_masks(tmp_path: Path) -> None:
    directory, images, _ = _export(tmp_path)
    read: list[LabelImage] = []
    for split in ("train", "val"):
        label_set = read_coco(directory / "annotations" / f"instances_{split}.json")
        assert label_set.class_names == CLASS_NAMES
        read.extend(label_set.images)
    by_stem = {image.file_stem: image for image in read}
    assert set(by_stem) == {image.file_stem for image in images}
    for image in images:
        back = by_stem[image.file_stem]
        assert (back.split, back.width, back.height) == (image.split, image.width, image.height)
        assert back.image_path.read_bytes() == image.image_path.read_bytes()
        assert len(back.objects) == len(image.objects)
        for found, stored in zip(back.objects, image.objects, strict=True):
            assert (found.class_id, found.object_id) == (stored.class_id, stored.object_id)
            assert found.bbox == pytest.approx(stored.bbox, rel=1e-6)
            if stored.mask is None:
                assert found.mask is None
            else:
                assert found.mask is not None
                assert np.array_equal(found.mask, stored.mask)


def test_records_are_streamed_not_held(tmp_path: Path) -> None:
    """Many objects: the instances file holds them all, and no temporary file is left."""
    image = sample_images(tmp_path)[0]
    mask = np.zeros((120, 160), dtype=bool)
    mask[10:20, 10:30] = True
    many = [
        LabelImage(
            split=("train", "val", "test")[number % 3],
            file_stem=f"copy-{number}",
            image_path=image.image_path,
            width=160,
            height=120,
            objects=tuple(LabelObject(number % 3, (10, 10, 20, 10), mask) for _ in range(50)),
        )
        for number in range(30)
    ]
    out = tmp_path / "many"
    out.mkdir()
    summary = write_coco(iter(many), CLASS_NAMES, out, transfer=ImageTransfer.HARDLINK)
    assert (summary.image_count, summary.object_count) == (30, 1500)
    assert sorted(p.name for p in (out / "annotations").iterdir()) == [
        "instances_test.json",
        "instances_train.json",
        "instances_val.json",
    ]
    total = 0
    for split in ("train", "val", "test"):
        data = json.loads((out / "annotations" / f"instances_{split}.json").read_text())
        assert len(data["images"]) == 10
        total += len(data["annotations"])
    assert total == 1500


def test_a_stem_used_twice_in_a_split_is_refused(tmp_path: Path) -> None:
    image = sample_images(tmp_path)[0]
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidArgument, match="used twice"):
        write_coco([image, image], CLASS_NAMES, tmp_path / "out", transfer=ImageTransfer.COPY)


def test_a_file_that_is_not_an_image_is_refused(tmp_path: Path) -> None:
    text = tmp_path / "notes"
    text.write_text("not an image")
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidArgument, match="not a readable image"):
        write_coco(
            [LabelImage("train", "a", text, 10, 10, ())],
            CLASS_NAMES,
            tmp_path / "out",
            transfer=ImageTransfer.COPY,
        )
