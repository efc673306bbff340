"""YOLO exports, read by ultralytics and supervision (their real loaders) and by our reader."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import yaml
from label_fixtures import (
    CLASS_NAMES,
    import_ultralytics,
    sample_images,
    within_one_pixel,
)

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.datasets.label_import import read_yolo
from agentic_labeling.registry.datasets.label_sets import (
    ExportSummary,
    ImageTransfer,
    LabelImage,
    LabelObject,
)
from agentic_labeling.registry.datasets.mask_polygons import mask_to_polygons
from agentic_labeling.registry.datasets.yolo_export import write_yolo


@pytest.fixture(scope="module")
def ultralytics(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    return import_ultralytics(tmp_path_factory.mktemp("ultralytics-config"))


def _export(tmp_path: Path, *, segment: bool) -> tuple[Path, list[LabelImage], ExportSummary]:
    images = sample_images(tmp_path)
    directory = tmp_path / ("seg" if segment else "det")
    directory.mkdir()
    summary = write_yolo(
        iter(images), CLASS_NAMES, directory, segment=segment, transfer=ImageTransfer.COPY
    )
    return directory, images, summary


def _line_counts(directory: Path, images: list[LabelImage], *, segment: bool) -> dict[str, int]:
    """Lines per split we expect: one per object, or one per polygon part when segmenting."""
    counts = {"train": 0, "val": 0}
    for image in images:
        for item in image.objects:
            parts = len(mask_to_polygons(item.mask)) if segment and item.mask is not None else 1
            counts[image.split] += parts
    for split, expected in counts.items():
        written = sum(
            len(path.read_text().splitlines()) for path in (directory / "labels" / split).iterdir()
        )
        assert written == expected
    return counts


def test_layout_names_and_splits_are_written_as_ultralytics_expects(tmp_path: Path) -> None:
    directory, _, summary = _export(tmp_path, segment=False)
    assert summary == ExportSummary(image_count=3, object_count=5, entry_point=Path("data.yaml"))
    data = yaml.safe_load((directory / "data.yaml").read_text())
    assert data == {
        "names": {0: "ring", 1: "pair", 2: "crate"},
        "nc": 3,
        "train": "images/train",
        "val": "images/val",
    }
    assert sorted(str(p.relative_to(directory)) for p in directory.rglob("*.*")) == [
        "data.yaml",
        "images/train/coins-3f2a9c1b.png",  # sniffed: the store file has no extension
        "images/train/empty-0001.png",
        "images/val/desk-77aa.jpg",
        "labels/train/coins-3f2a9c1b.txt",
        "labels/train/empty-0001.txt",
        "labels/val/desk-77aa.txt",
    ]
    assert (directory / "labels/train/empty-0001.txt").read_text() == ""


def test_detection_lines_are_normalised_centre_and_size(tmp_path: Path) -> None:
    directory, _, _ = _export(tmp_path, segment=False)
    lines = (directory / "labels/val/desk-77aa.txt").read_text().splitlines()
    class_id, *values = lines[1].split()
    assert class_id == "2"
    expected = [(60 + 15) / 96, (5.5 + 6.125) / 64, 30 / 96, 12.25 / 64]
    assert [float(v) for v in values] == pytest.approx(expected, rel=1e-9)


def test_streaming_reports_each_image_once(tmp_path: Path) -> None:
    images = sample_images(tmp_path)
    seen: list[int] = []
    consumed: list[str] = []

    def stream() -> Iterator[LabelImage]:
        for image in images:
            consumed.append(image.file_stem)
            yield image

    (tmp_path / "out").mkdir()
    write_yolo(
        stream(),
        CLASS_NAMES,
        tmp_path / "out",
        segment=True,
        transfer=ImageTransfer.SYMLINK,
        on_image=seen.append,
    )
    assert seen == [1, 2, 3]
    assert consumed == [image.file_stem for image in images]
    assert (tmp_path / "out/images/val/desk-77aa.jpg").resolve() == images[1].image_path.resolve()


def test_ultralytics_loads_the_detection_export(tmp_path: Path, ultralytics: ModuleType) -> None:
    directory, images, _ = _export(tmp_path, segment=False)
    expected = _line_counts(directory, images, segment=False)
    for split, count in expected.items():
        assert _ultralytics_label_count(directory, split, "detect") == count


def test_ultralytics_loads_the_segmentation_export(tmp_path: Path, ultralytics: ModuleType) -> None:
    directory, images, _ = _export(tmp_path, segment=True)
    expected = _line_counts(directory, images, segment=True)
    assert expected == {"train": 4, "val": 2}  # the pair's two parts are two lines
    for split, count in expected.items():
        assert _ultralytics_label_count(directory, split, "segment") == count


def _ultralytics_label_count(directory: Path, split: str, task: str) -> int:
    from ultralytics.data import YOLODataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(directory / "data.yaml"))
    dataset = YOLODataset(
        img_path=data[split], data=data, task=task, imgsz=160, augment=False, batch_size=1
    )
    if task == "segment":
        assert all(len(label["segments"]) == len(label["cls"]) for label in dataset.labels), (
            "every segmentation line must come back as a polygon"
        )
    return sum(len(label["cls"]) for label in dataset.labels)


def test_the_export_loads_in_ultralytics_after_being_moved(
    tmp_path: Path, ultralytics: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ultralytics.data.utils import check_det_dataset

    directory, _, _ = _export(tmp_path, segment=False)
    moved = tmp_path / "moved" / "somewhere"
    moved.parent.mkdir()
    directory.rename(moved)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    data = check_det_dataset(str(moved / "data.yaml"))
    assert Path(data["train"]) == (moved / "images/train").resolve()
    assert Path(data["val"]) == (moved / "images/val").resolve()


def test_ultralytics_rasterises_the_ring_with_its_hole(
    tmp_path: Path, ultralytics: ModuleType
) -> None:
    from ultralytics.data.utils import polygon2mask

    directory, images, _ = _export(tmp_path, segment=True)
    first_line = (directory / "labels/train/coins-3f2a9c1b.txt").read_text().splitlines()[0]
    points = np.array([float(v) for v in first_line.split()[1:]]).reshape(-1, 2) * [160, 120]
    mask = polygon2mask((120, 160), [points.ravel()]).astype(bool)
    ring = images[0].objects[0].mask
    assert ring is not None
    assert within_one_pixel(mask, ring)
    assert not mask[60, 50]


def test_supervision_reads_the_detection_and_segmentation_exports(tmp_path: Path) -> None:
    import supervision as sv

    for segment in (False, True):
        directory, images, _ = _export(tmp_path / str(segment), segment=segment)
        expected = _line_counts(directory, images, segment=segment)
        for split, count in expected.items():
            dataset = sv.DetectionDataset.from_yolo(
                images_directory_path=str(directory / "images" / split),
                annotations_directory_path=str(directory / "labels" / split),
                data_yaml_path=str(directory / "data.yaml"),
                force_masks=segment,
            )
            assert dataset.classes == list(CLASS_NAMES)
            assert sum(len(detections) for _, _, detections in dataset) == count


def test_detection_round_trip_gives_back_classes_and_boxes(tmp_path: Path) -> None:
    directory, images, _ = _export(tmp_path, segment=False)
    label_set = read_yolo(directory / "data.yaml")
    assert label_set.class_names == CLASS_NAMES
    read = {image.file_stem: image for image in label_set.images}
    assert set(read) == {image.file_stem for image in images}
    for image in images:
        back = read[image.file_stem]
        assert (back.split, back.width, back.height) == (image.split, image.width, image.height)
        assert [o.class_id for o in back.objects] == [o.class_id for o in image.objects]
        for found, stored in zip(back.objects, image.objects, strict=True):
            assert found.bbox == pytest.approx(stored.bbox, rel=1e-6, abs=1e-6)
            assert found.mask is None


def test_segmentation_round_trip_keeps_masks_within_one_pixel(tmp_path: Path) -> None:
    directory, images, _ = _export(tmp_path, segment=True)
    read = {image.file_stem: image for image in read_yolo(directory / "data.yaml").images}
    for image in images:
        back = read[image.file_stem]
        for class_id in range(len(CLASS_NAMES)):
            stored = [o for o in image.objects if o.class_id == class_id]
            found = [o for o in back.objects if o.class_id == class_id]
            masked = [o.mask for o in stored if o.mask is not None]
            if masked:  # parts come back as objects of their own: compare the union
                union = np.logical_or.reduce([o.mask for o in found if o.mask is not None])
                assert within_one_pixel(union, np.logical_or.reduce(masked))
            for box_only in (o for o in stored if o.mask is None):
                assert any(
                    o.mask is None and o.bbox == pytest.approx(box_only.bbox, rel=1e-6)
                    for o in found
                ), "a box-only object comes back as a box"
    ring_back = read["coins-3f2a9c1b"].objects[0]
    assert ring_back.mask is not None
    assert not ring_back.mask[60, 50]
    assert ring_back.bbox == pytest.approx(images[0].objects[0].bbox, abs=1e-6)


def test_segmentation_drops_mask_fragments_below_the_minimum_area(tmp_path: Path) -> None:
    """One object with a real part and a hundred 2 x 2 specks: one label line, not 101."""
    mask = np.zeros((120, 160), dtype=bool)
    mask[20:60, 30:90] = True
    for index in range(100):
        row, column = 70 + (index // 20) * 10, 4 + (index % 20) * 8
        mask[row : row + 2, column : column + 2] = True
    image = sample_images(tmp_path)[0]
    specked = LabelImage(
        split="train",
        file_stem="specked",
        image_path=image.image_path,
        width=image.width,
        height=image.height,
        objects=(LabelObject(class_id=0, bbox=(4.0, 20.0, 154.0, 92.0), mask=mask),),
    )
    for min_area, lines in ((0, 101), (16, 1)):
        out = tmp_path / f"out-{min_area}"
        out.mkdir()
        write_yolo(
            [specked],
            CLASS_NAMES,
            out,
            segment=True,
            transfer=ImageTransfer.COPY,
            min_fragment_area=min_area,
        )
        assert len((out / "labels/train/specked.txt").read_text().splitlines()) == lines
    back = next(iter(read_yolo(tmp_path / "out-16" / "data.yaml").images)).objects[0].mask
    assert back is not None
    whole = np.zeros_like(mask)
    whole[20:60, 30:90] = True
    assert np.array_equal(back, whole)


def test_images_the_labels_do_not_fit_are_refused(tmp_path: Path) -> None:
    image = sample_images(tmp_path)[0]
    cases = {
        "class id 3": LabelImage(
            "train", "a", image.image_path, 160, 120, (LabelObject(3, (0, 0, 1, 1), None),)
        ),
        "160 x 120": LabelImage("train", "b", image.image_path, 100, 120, ()),
        "mask must be bool": LabelImage(
            "train",
            "c",
            image.image_path,
            160,
            120,
            (LabelObject(0, (0, 0, 1, 1), np.zeros((10, 10), dtype=bool)),),
        ),
        "reaches outside": LabelImage(
            "train", "d", image.image_path, 160, 120, (LabelObject(0, (150, 0, 20, 1), None),)
        ),
        "split": LabelImage("holdout", "e", image.image_path, 160, 120, ()),
        "file stem": LabelImage("train", "../e", image.image_path, 160, 120, ()),
    }
    for number, (message, bad) in enumerate(cases.items()):
        out = tmp_path / f"out{number}"
        out.mkdir()
        with pytest.raises(InvalidArgument, match=message):
            write_yolo([bad], CLASS_NAMES, out, segment=False, transfer=ImageTransfer.COPY)


def test_a_stem_used_twice_in_a_split_is_refused(tmp_path: Path) -> None:
    image = sample_images(tmp_path)[0]
    (tmp_path / "out").mkdir()
    with pytest.raises(InvalidArgument, match="used twice"):
        write_yolo(
            [image, image],
            CLASS_NAMES,
            tmp_path / "out",
            segment=True,
            transfer=ImageTransfer.COPY,
        )


def test_only_splits_with_images_are_named_in_data_yaml(tmp_path: Path) -> None:
    image = sample_images(tmp_path)[1]
    moved = LabelImage("test", image.file_stem, image.image_path, 96, 64, image.objects)
    (tmp_path / "out").mkdir()
    write_yolo([moved], CLASS_NAMES, tmp_path / "out", segment=False, transfer=ImageTransfer.COPY)
    data = yaml.safe_load((tmp_path / "out" / "data.yaml").read_text())
    assert "test" in data
    assert "train" not in data
    assert "val" not in data  # ultralytics needs train and val: honest, not faked
