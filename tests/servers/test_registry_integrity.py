"""Integrity of input on a real registry process: text the stores cannot hold, images that lie
about their size or orientation, decompression bombs, batches without a request id, and label
imports that fail half-way. Every refusal is INVALID_ARGUMENT naming the field, and leaves no
row and no file behind.
"""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import cv2
import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from dataset_mesh import Mesh, build, create_dataset, export, running_registry
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from image_samples import declared_png, oriented_jpeg, upright_test_image
from PIL import Image

from agentic_labeling.v1 import common_pb2, dataset_pb2, registry_pb2


@pytest.fixture(scope="module")
def data_dir() -> Iterator[Path]:
    directories = registry_data_dir()
    yield next(directories)
    next(directories, None)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Iterator[Mesh]:
    with running_registry(tmp_path_factory.mktemp("registry"), data_dir) as mesh:
        yield mesh


def _refusal(call: object, *args: object) -> tuple[grpc.StatusCode, list[str], str]:
    """Code, field violations and reason of a call that must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args, timeout=30)  # type: ignore[operator]
    error = caught.value
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    fields: list[str] = []
    reason = ""
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            reason = info.reason
    return error.code(), fields, reason  # type: ignore[attr-defined]


def _files(directory: Path) -> set[Path]:
    return {p for p in directory.rglob("*") if p.is_file()} if directory.exists() else set()


def _source_count(mesh: Mesh) -> int:
    return mesh.registry.ListSources(registry_pb2.ListSourcesRequest(), timeout=30).total_size


def _png(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _create_source(width: int, height: int, data: bytes, **fields: str) -> object:
    return registry_pb2.CreateSourceRequest(
        source=registry_pb2.Source(
            kind=common_pb2.SOURCE_KIND_IMAGE, width=width, height=height, **fields
        ),
        image_data=data,
    )


@pytest.mark.parametrize(
    ("method", "request_message"),
    [
        ("ListObjects", registry_pb2.ListObjectsRequest(filter='category = "c\x00t"')),
        ("ListSources", registry_pb2.ListSourcesRequest(filter='display_name = "a\x00"')),
        ("GetStats", registry_pb2.GetStatsRequest(filter='detection_model = "\x00"')),
        ("ListCategories", registry_pb2.ListCategoriesRequest(filter='display_name = "\x00"')),
        ("ListTracks", registry_pb2.ListTracksRequest(filter='category = "a\x00"')),
        (
            "SearchSimilar",
            registry_pb2.SearchSimilarRequest(
                vector=common_pb2.Embedding(values=[1.0] * 8), filter='category = "a\x00"'
            ),
        ),
    ],
)
def test_a_nul_inside_a_filter_string_is_invalid_argument_naming_the_filter(
    mesh: Mesh, method: str, request_message: object
) -> None:
    code, fields, reason = _refusal(getattr(mesh.registry, method), request_message)
    assert (code, fields, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["filter"],
        "INVALID_FILTER",
    )


def test_a_nul_in_a_dataset_filter_is_invalid_argument(mesh: Mesh) -> None:
    code, fields, _ = _refusal(
        mesh.datasets.CreateDataset,
        dataset_pb2.CreateDatasetRequest(
            dataset=dataset_pb2.Dataset(
                display_name="nul", class_names=["ring"], filter='category = "\x00"'
            )
        ),
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert fields == ["dataset.filter"] or fields == ["filter"]


def test_a_refused_display_name_leaves_no_image_file_and_no_source(
    mesh: Mesh, data_dir: Path
) -> None:
    files, sources = _files(data_dir / "images"), _source_count(mesh)
    code, fields, _ = _refusal(
        mesh.registry.CreateSource, _create_source(20, 10, _png(20, 10, 1), display_name="a\x00")
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["source.display_name"])
    assert _files(data_dir / "images") == files
    assert _source_count(mesh) == sources


@pytest.mark.parametrize(
    ("width", "height", "named"),
    [
        (10, 10, ["source.width", "source.height"]),
        (100, 10, ["source.height"]),
        (80, 100, ["source.width", "source.height"]),
    ],
)
def test_a_size_that_contradicts_the_image_is_refused_and_nothing_is_stored(
    mesh: Mesh, data_dir: Path, width: int, height: int, named: list[str]
) -> None:
    files, sources = _files(data_dir / "images"), _source_count(mesh)
    code, fields, reason = _refusal(
        mesh.registry.CreateSource, _create_source(width, height, _png(100, 80, 2))
    )
    assert (code, fields, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        named,
        "IMAGE_SIZE_MISMATCH",
    )
    assert _files(data_dir / "images") == files
    assert _source_count(mesh) == sources


@pytest.mark.parametrize(
    ("width", "height"),
    [(20_000, 20_000), (60_000, 60_000), (10_000, 5_000)],  # the last: over 40M, not a bomb
)
def test_an_image_over_the_pixel_limit_is_image_too_large_and_nothing_is_stored(
    mesh: Mesh, data_dir: Path, width: int, height: int
) -> None:
    files = _files(data_dir / "images")
    code, fields, reason = _refusal(
        mesh.registry.CreateSource, _create_source(width, height, declared_png(width, height))
    )
    assert (code, fields, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["image_data"],
        "IMAGE_TOO_LARGE",
    )
    assert _files(data_dir / "images") == files


def test_a_float_tiff_is_refused_naming_its_mode(mesh: Mesh) -> None:
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.float32)).save(buffer, format="TIFF")
    code, fields, reason = _refusal(
        mesh.registry.CreateSource, _create_source(8, 8, buffer.getvalue())
    )
    assert (code, fields, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["image_data"],
        "UNSUPPORTED_IMAGE_MODE",
    )


def _one_object_batch(source: str, request_id: str) -> registry_pb2.BatchCreateObjectsRequest:
    return registry_pb2.BatchCreateObjectsRequest(
        request_id=request_id,
        create_missing_categories=True,
        requests=[
            registry_pb2.CreateObjectRequest(
                object=registry_pb2.LabeledObject(
                    source=source,
                    category_name="ring",
                    bbox=common_pb2.BoundingBox(x=1, y=1, width=5, height=5),
                    confidence=0.5,
                    detection_model="request-id-test",
                )
            )
        ],
    )


@pytest.mark.parametrize("request_id", ["", str(uuid.UUID(int=0))])
def test_a_batch_without_a_request_id_is_refused_and_creates_nothing(
    mesh: Mesh, request_id: str
) -> None:
    request = _create_source(20, 10, _png(20, 10, 3))
    request.return_existing = True  # type: ignore[attr-defined]
    source = mesh.registry.CreateSource(request, timeout=30)
    code, fields, _ = _refusal(
        mesh.registry.BatchCreateObjects, _one_object_batch(source.name, request_id)
    )
    assert (code, fields) == (grpc.StatusCode.INVALID_ARGUMENT, ["request_id"])
    listed = mesh.registry.ListObjects(
        registry_pb2.ListObjectsRequest(filter=f'source = "{source.name}"'), timeout=30
    )
    assert listed.total_size == 0


def test_oriented_jpegs_are_stored_upright_and_exported_labels_land_on_the_same_pixels(
    mesh: Mesh,
) -> None:
    width, height = 96, 64
    upright = upright_test_image(width, height)
    white = common_pb2.BoundingBox(x=0, y=0, width=width // 4, height=height // 4)
    for orientation in range(1, 9):
        data = oriented_jpeg(orientation, upright)
        if orientation >= 5:  # the stored grid is turned: its own size is refused
            code, fields, _ = _refusal(
                mesh.registry.CreateSource, _create_source(height, width, data)
            )
            assert (code, fields) == (
                grpc.StatusCode.INVALID_ARGUMENT,
                ["source.width", "source.height"],
            )
        source = mesh.registry.CreateSource(
            _create_source(width, height, data, display_name=f"exif{orientation}.jpg"),
            timeout=30,
        )
        assert (source.width, source.height) == (width, height)
        request = _one_object_batch(source.name, str(uuid.uuid4()))
        request.requests[0].object.bbox.CopyFrom(white)
        request.requests[0].object.detection_model = "exif-test"
        mesh.registry.BatchCreateObjects(request, timeout=30)
    dataset = create_dataset(
        mesh, "exif", class_names=["ring"], filter='detection_model = "exif-test"'
    )
    build(mesh, dataset)
    written = export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_YOLO_DETECT, "exif-yolo")
    root = Path(written.path)
    labels = sorted(root.glob("labels/*/exif*.txt"))
    assert len(labels) == 8
    for label in labels:
        image_file = next(label.parent.parent.parent.glob(f"images/*/{label.stem}.*"))
        pixels = cv2.imread(str(image_file))
        assert pixels.shape[:2] == (height, width), image_file
        _, cx, cy, w, h = (float(v) for v in label.read_text().split())
        left, top = round((cx - w / 2) * width), round((cy - h / 2) * height)
        right, bottom = round((cx + w / 2) * width), round((cy + h / 2) * height)
        inside = pixels[top:bottom, left:right]
        assert inside.mean() > 200, label.stem  # the white block, not a turned image's corner
        assert pixels[-height // 4 :, -width // 4 :].mean() == pytest.approx(128, abs=10)


def _coco_set(root: Path, category_name: str) -> Path:
    images = root / "images"
    images.mkdir(parents=True)
    Image.fromarray(np.full((20, 30, 3), 90, np.uint8)).save(images / "a.png")
    annotations = root / "instances.json"
    annotations.write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "a.png", "width": 30, "height": 20}],
                "categories": [
                    {"id": 1, "name": "ring"},
                    {"id": 2, "name": category_name},
                ],
                "annotations": [
                    {"id": 1, "image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5]},
                ],
            }
        )
    )
    return annotations


@pytest.mark.parametrize("category_name", ["", " padded", "tab\there"])
def test_a_coco_import_with_a_bad_category_name_points_at_the_entry_in_the_file(
    mesh: Mesh, data_dir: Path, tmp_path: Path, category_name: str
) -> None:
    annotations = _coco_set(data_dir / f"import-{uuid.uuid4().hex}", category_name)
    files, sources = _files(data_dir / "images"), _source_count(mesh)
    request = dataset_pb2.ImportLabelsRequest(
        format=dataset_pb2.LABEL_FORMAT_COCO,
        path=str(annotations),
        validated_by="importer",
        request_id=str(uuid.uuid4()),
    )
    with pytest.raises(grpc.RpcError) as caught:
        mesh.datasets.ImportLabels(request, timeout=30)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    assert "categories[1].name" in caught.value.details()  # type: ignore[attr-defined]
    assert str(annotations) in caught.value.details()  # type: ignore[attr-defined]
    assert "BatchCreateObjects" not in caught.value.details()  # type: ignore[attr-defined]
    assert _files(data_dir / "images") == files
    assert _source_count(mesh) == sources


def test_an_import_refused_at_the_object_stage_leaves_no_source_and_no_image(
    mesh: Mesh, data_dir: Path
) -> None:
    # One image with more objects than one batch may hold (the registry's default 10,000):
    # the file reads fine, the source and image are stored, then BatchCreateObjects refuses.
    annotations = _coco_set(data_dir / f"import-{uuid.uuid4().hex}", "pair")
    data = json.loads(annotations.read_text())
    data["annotations"] = [
        {"id": i, "image_id": 1, "category_id": 2, "bbox": [1, 1, 5, 5]} for i in range(10_001)
    ]
    annotations.write_text(json.dumps(data))
    (annotations.parent / "images" / "a.png").rename(annotations.parent / "a.png")
    files, sources = _files(data_dir / "images"), _source_count(mesh)
    operation = mesh.datasets.ImportLabels(
        dataset_pb2.ImportLabelsRequest(
            format=dataset_pb2.LABEL_FORMAT_COCO,
            path=str(annotations),
            validated_by="importer",
            request_id=str(uuid.uuid4()),
        ),
        timeout=30,
    )
    done = mesh.finish(operation)
    assert done.error.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert _files(data_dir / "images") == files
    assert _source_count(mesh) == sources


def test_a_frame_image_of_another_size_than_its_video_is_refused_and_nothing_is_stored(
    mesh: Mesh, data_dir: Path
) -> None:
    video = mesh.registry.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(kind=common_pb2.SOURCE_KIND_VIDEO, width=96, height=64)
        ),
        timeout=30,
    )
    files = _files(data_dir / "images")
    code, fields, reason = _refusal(
        mesh.registry.CreateFrame,
        registry_pb2.CreateFrameRequest(
            parent=video.name, frame=registry_pb2.Frame(frame_index=0), image_data=_png(20, 10, 4)
        ),
    )
    assert (code, fields, reason) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        ["image_data"],
        "IMAGE_SIZE_MISMATCH",
    )
    assert _files(data_dir / "images") == files
    frames = mesh.registry.ListFrames(registry_pb2.ListFramesRequest(parent=video.name), timeout=30)
    assert list(frames.frames) == []
