"""Reading label sets for import: other tools' files, and bad input named precisely."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pycocotools.mask as mask_utils
import pytest
import yaml
from image_samples import oriented_jpeg, upright_test_image
from PIL import Image

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.datasets.label_import import read_coco, read_yolo


def _image(path: Path, width: int = 40, height: int = 30) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (width, height), (90, 120, 30)).save(path)
    return path


# --- COCO -------------------------------------------------------------------------------


def _coco(tmp_path: Path, **changes: Any) -> Path:
    """A foreign-style COCO file: sparse category ids, images beside the JSON."""
    _image(tmp_path / "pics" / "a.png")
    mask = np.zeros((30, 40), dtype=np.uint8)
    mask[5:15, 10:30] = 1
    counts = mask_utils.encode(np.asfortranarray(mask))["counts"].decode()
    data: dict[str, Any] = {
        "categories": [{"id": 7, "name": "dog"}, {"id": 3, "name": "cat"}],
        "images": [{"id": 11, "file_name": "pics/a.png", "width": 40, "height": 30}],
        "annotations": [
            {
                "id": 1,
                "image_id": 11,
                "category_id": 7,
                "bbox": [10, 5, 20, 10],
                "segmentation": {"size": [30, 40], "counts": counts},
            },
            {
                "id": 2,
                "image_id": 11,
                "category_id": 3,
                "bbox": [0, 0, 8, 8],
                "segmentation": [[0, 0, 8, 0, 8, 8]],
            },
            {"id": 3, "image_id": 11, "category_id": 3, "bbox": [20, 20, 5, 5]},
        ],
    }
    data.update(changes)
    path = tmp_path / "labels.json"
    path.write_text(json.dumps(data))
    return path


def test_coco_from_another_tool_is_read_with_classes_in_category_id_order(tmp_path: Path) -> None:
    label_set = read_coco(_coco(tmp_path))
    assert label_set.class_names == ("cat", "dog")  # ids 3 and 7
    (image,) = list(label_set.images)
    assert (image.split, image.file_stem, image.width, image.height) == ("train", "pics-a", 40, 30)
    assert image.image_path == tmp_path / "pics" / "a.png"
    rle, polygon, box = image.objects
    assert (rle.class_id, polygon.class_id, box.class_id) == (1, 0, 0)
    assert rle.mask is not None
    assert int(rle.mask.sum()) == 200
    assert rle.mask[5:15, 10:30].all()
    assert polygon.mask is not None
    assert polygon.mask.any()  # a triangle, not the box
    assert box.mask is None
    assert box.bbox == (20.0, 20.0, 5.0, 5.0)


def test_our_coco_export_imports_with_the_detector_box_it_kept(tmp_path: Path) -> None:
    # Our export writes the mask's tight box as `bbox` and the detector's as
    # `alabel_detector_bbox`; the import takes the detector's, so a round trip changes nothing.
    path = _coco(tmp_path)
    data = json.loads(path.read_text())
    data["annotations"][2]["alabel_detector_bbox"] = [18.5, 19.0, 7.0, 6.0]
    path.write_text(json.dumps(data))
    (image,) = list(read_coco(path).images)
    assert image.objects[2].bbox == (18.5, 19.0, 7.0, 6.0)
    assert image.objects[0].bbox == (10.0, 5.0, 20.0, 10.0)  # a foreign file: its `bbox`


def test_coco_split_comes_from_the_file_name(tmp_path: Path) -> None:
    source = _coco(tmp_path)
    named = source.with_name("instances_val.json")
    source.rename(named)
    (image,) = list(read_coco(named).images)
    assert image.split == "val"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"images": [{"id": 11, "file_name": "../a.png", "width": 40, "height": 30}]},
            r"images\[0\]: '../a.png' must be a relative path without '..'",
        ),
        (
            {"images": [{"id": 11, "file_name": "/etc/passwd", "width": 40, "height": 30}]},
            r"images\[0\]: '/etc/passwd'",
        ),
        (
            {"images": [{"id": 11, "file_name": "pics/b.png", "width": 40, "height": 30}]},
            r"images\[0\] \('pics/b.png'\): image file .* is missing",
        ),
        (
            {"images": [{"id": 11, "file_name": "pics/a.png", "width": 41, "height": 30}]},
            r"images\[0\] \('pics/a.png'\): the image is 40 x 30, declared 41 x 30",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 11, "category_id": 5, "bbox": [0, 0, 1, 1]}]},
            r"annotations\[0\]: category_id 5 is not in 'categories'",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 12, "category_id": 3, "bbox": [0, 0, 1, 1]}]},
            r"annotations\[0\]: image_id 12 is not in 'images'",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 11, "category_id": 3, "bbox": [0, 0, 1]}]},
            r"annotations\[0\]: 'bbox' must be 4 finite numbers",
        ),
        (
            {"annotations": [{"id": 1, "image_id": 11, "category_id": 3, "bbox": [30, 0, 20, 5]}]},
            r"annotations\[0\]: 'bbox' .* reaches outside the 40 x 30 image",
        ),
        (
            {
                "annotations": [
                    {
                        "id": 1,
                        "image_id": 11,
                        "category_id": 3,
                        "bbox": [0, 0, 4, 4],
                        "segmentation": [[0, 0, 4, 0, 4]],
                    }
                ]
            },
            r"annotations\[0\]: each polygon needs an even number",
        ),
        (
            {
                "annotations": [
                    {
                        "id": 1,
                        "image_id": 11,
                        "category_id": 3,
                        "bbox": [0, 0, 4, 4],
                        "segmentation": {"size": [20, 40], "counts": "abc"},
                    }
                ]
            },
            r"annotations\[0\]: RLE size \[20, 40\] is not the image's",
        ),
        (
            {
                "annotations": [
                    {
                        "id": 1,
                        "image_id": 11,
                        "category_id": 3,
                        "bbox": [0, 0, 4, 4],
                        "segmentation": {"size": [30, 40], "counts": [5, 3]},
                    }
                ]
            },
            r"annotations\[0\]: RLE counts do not add up to 1200 pixels",
        ),
        ({"categories": []}, "has no categories"),
        (
            {"categories": [{"id": 1, "name": "a"}, {"id": 1, "name": "b"}]},
            r"categories\[1\]: id 1 is used twice",
        ),
    ],
)
def test_bad_coco_input_is_invalid_argument_naming_file_and_entry(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = _coco(tmp_path, **changes)
    with pytest.raises(InvalidArgument, match=message) as raised:
        list(read_coco(path).images)
    assert str(path) in raised.value.message
    assert raised.value.violations[0].field == "annotations_json"


def test_coco_that_is_not_json_names_the_file_and_position(tmp_path: Path) -> None:
    path = tmp_path / "instances_train.json"
    path.write_text('{"images": [}')
    with pytest.raises(InvalidArgument, match=r"instances_train.json: not valid JSON: .*line 1"):
        read_coco(path)


def test_uncompressed_rle_is_decoded(tmp_path: Path) -> None:
    # Column-major runs: 5 off, 3 on, then the rest off.
    annotation = {
        "id": 1,
        "image_id": 11,
        "category_id": 3,
        "bbox": [0, 5, 1, 3],
        "segmentation": {"size": [30, 40], "counts": [5, 3, 1192]},
    }
    (image,) = list(read_coco(_coco(tmp_path, annotations=[annotation])).images)
    mask = image.objects[0].mask
    assert mask is not None
    assert mask[5:8, 0].all()
    assert int(mask.sum()) == 3


# --- YOLO -------------------------------------------------------------------------------


def _yolo(tmp_path: Path, lines: str, **changes: Any) -> Path:
    _image(tmp_path / "ds" / "images" / "train" / "a.jpg")
    _image(tmp_path / "ds" / "images" / "train" / "nested" / "b.png")  # no label file
    label = tmp_path / "ds" / "labels" / "train" / "a.txt"
    label.parent.mkdir(parents=True)
    label.write_text(lines)
    data: dict[str, Any] = {"names": ["cat", "dog"], "train": "images/train", "val": None}
    data.update(changes)
    path = tmp_path / "ds" / "data.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_yolo_boxes_polygons_and_unlabelled_images_are_read(tmp_path: Path) -> None:
    lines = "0 0.5 0.5 0.5 0.2\n\n1 0.1 0.1 0.6 0.1 0.6 0.5 0.1 0.7\n"
    label_set = read_yolo(_yolo(tmp_path, lines))
    assert label_set.class_names == ("cat", "dog")
    a, b = list(label_set.images)
    assert (a.split, a.file_stem, b.file_stem) == ("train", "a", "nested-b")
    assert b.objects == ()
    box, polygon = a.objects
    assert box.mask is None
    assert box.bbox == pytest.approx((10.0, 12.0, 20.0, 6.0))
    assert polygon.class_id == 1
    assert polygon.mask is not None
    assert polygon.mask.shape == (30, 40)
    # Vertices are pixel centres: x 4..24 and y 3..21 are the extent of the pixels around them.
    assert polygon.bbox == pytest.approx((3.5, 2.5, 21.0, 19.0))


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ("2 0.5 0.5 0.1 0.1\n", r"a.txt:1: class 2 is not one of the 2 class ids"),
        ("0 0.5 0.5 0.1 0.1\n0 0.1 0.1 0.2 0.2 0.3\n", r"a.txt:2: 5 coordinates"),
        ("0 0.1 0.1 0.2 0.2 0.3 1.2\n", r"a.txt:1: coordinates must be within \[0, 1\]"),
        ("0 0.5 0.5 0.1 x\n", r"a.txt:1: not all numbers"),
        ("0 0.5 0.5 0 0.1\n", r"a.txt:1: the box is empty"),
    ],
)
def test_bad_yolo_lines_are_invalid_argument_naming_file_and_line(
    tmp_path: Path, lines: str, message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        list(read_yolo(_yolo(tmp_path, lines)).images)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"train": "../../elsewhere"}, r"'train': '../../elsewhere' must be a relative path"),
        ({"path": "/data/coco"}, r"'path': '/data/coco' must be a relative path"),
        ({"train": "images/missing"}, r"'train': 'images/missing' is not a directory"),
        ({"names": {0: "cat", 2: "dog"}}, r"'names' keys must be the class ids"),
        ({"nc": 3}, r"'nc' is 3 but 'names' has 2"),
        ({"names": None}, r"'names' must be a non-empty list"),
        ({"train": None}, r"names no split"),
    ],
)
def test_bad_data_yaml_is_invalid_argument_naming_the_file(
    tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    path = _yolo(tmp_path, "", **changes)
    with pytest.raises(InvalidArgument, match=message) as raised:
        read_yolo(path)
    assert str(path) in raised.value.message


def test_data_yaml_that_is_not_yaml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "data.yaml"
    path.write_text("names: [a, b\ntrain: x\n")
    with pytest.raises(InvalidArgument, match=r"data.yaml: not valid YAML"):
        read_yolo(path)


# --- what both readers share ----------------------------------------------------------------


@pytest.mark.parametrize("orientation", [1, 6, 8])
def test_an_oriented_photo_is_read_at_its_upright_size(tmp_path: Path, orientation: int) -> None:
    photo = tmp_path / "pics" / "a.jpg"
    photo.parent.mkdir(parents=True)
    photo.write_bytes(oriented_jpeg(orientation, upright_test_image(80, 40)))
    path = _coco(
        tmp_path,
        images=[{"id": 11, "file_name": "pics/a.jpg", "width": 80, "height": 40}],
        annotations=[{"id": 1, "image_id": 11, "category_id": 7, "bbox": [60, 10, 20, 20]}],
    )
    (image,) = read_coco(path).images
    assert (image.width, image.height) == (80, 40)


@pytest.mark.parametrize("name", ["", "a\x00b", "x\ud800", " cat", "tab\tcat"])
def test_a_class_name_no_category_can_have_names_its_entry_in_the_file(
    tmp_path: Path, name: str
) -> None:
    path = _coco(tmp_path, categories=[{"id": 7, "name": "dog"}, {"id": 3, "name": name}])
    with pytest.raises(InvalidArgument) as caught:
        read_coco(path)
    assert "categories[1].name" in caught.value.message
    assert [v.field for v in caught.value.violations] == ["annotations_json"]
    data_yaml = tmp_path / "data.yaml"
    (tmp_path / "images" / "train").mkdir(parents=True)
    data_yaml.write_text(yaml.safe_dump({"train": "images/train", "names": ["dog", name]}))
    with pytest.raises(InvalidArgument) as caught:
        read_yolo(data_yaml)
    assert "'names'[1]" in caught.value.message
