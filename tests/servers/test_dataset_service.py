"""DatasetService and google.longrunning.Operations on a real registry process: datasets
defined, built, exported as COCO and YOLO, read back by pycocotools and ultralytics' own
checks, imported into a second registry, and bad requests refused before anything is written.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from dataset_mesh import (
    CLASSES,
    Mesh,
    build,
    create_dataset,
    export,
    register,
    start_registry,
)
from google.longrunning import operations_pb2
from label_fixtures import import_ultralytics
from PIL import Image
from pycocotools.coco import COCO

from agentic_labeling.v1 import common_pb2, dataset_pb2, registry_pb2


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    export_root = data_dir / "exports"
    process = start_registry(tmp_path_factory.mktemp("registry"), data_dir, export_root)
    mesh = Mesh(process, export_root)
    yield mesh
    mesh.channel.close()
    assert process.stop() == 0
    next(data_dirs, None)


@pytest.fixture(scope="module")
def built(mesh: Mesh) -> tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]]:
    """Ten validated photos (and two unvalidated ones the filter leaves out), built."""
    stored = dict(register(mesh, seed) for seed in range(10))
    for seed in (100, 101):
        register(mesh, seed, validated=False)
    dataset = create_dataset(
        mesh,
        "shapes",
        filter="is_validated = true",
        split_ratios=dataset_pb2.SplitRatios(train=0.6, val=0.2, test=0.2),
        seed=7,
    )
    return build(mesh, dataset), stored


def test_a_build_snapshots_the_filtered_objects_into_seeded_splits(
    mesh: Mesh, built: tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]]
) -> None:
    dataset, _ = built
    assert dataset.state == dataset_pb2.DATASET_STATE_READY
    stats = {s.split: s for s in dataset.split_stats}
    assert [stats[s].image_count for s in ("train", "val", "test")] == [6, 2, 2]
    assert sum(s.object_count for s in stats.values()) == 20  # the unvalidated two are out
    assert sum(s.objects_per_class["ring"] for s in stats.values()) == 10
    again = build(mesh, dataset)
    assert [(s.split, s.image_count) for s in again.split_stats] == [
        (s.split, s.image_count) for s in dataset.split_stats
    ]
    listed = mesh.datasets.ListDatasets(dataset_pb2.ListDatasetsRequest(), timeout=30)
    assert dataset.name in [d.name for d in listed.datasets]


def _stored_mask(mesh: Mesh, object_name: str) -> np.ndarray:
    found = mesh.registry.GetObjectMask(
        registry_pb2.GetObjectMaskRequest(name=object_name), timeout=30
    )
    return np.asarray(Image.open(io.BytesIO(found.png))).astype(bool)


def test_coco_export_gives_back_the_stored_masks_and_boxes_exactly(
    mesh: Mesh, built: tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]]
) -> None:
    dataset, _ = built
    written = export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_COCO, "shapes-coco")
    root = Path(written.path)
    assert root == (mesh.export_root / "shapes-coco").resolve()
    assert Path(written.entry_point) == root / "annotations"
    assert (written.image_count, written.object_count) == (10, 20)
    checked = 0
    for split in ("train", "val", "test"):
        coco = COCO(str(root / "annotations" / f"instances_{split}.json"))
        names = {c["id"]: c["name"] for c in coco.loadCats(coco.getCatIds())}
        assert [names[i] for i in sorted(names)] == list(CLASSES)  # ids follow the class list
        for image in coco.loadImgs(coco.getImgIds()):
            assert (root / "images" / split / image["file_name"]).is_file()
            for annotation in coco.loadAnns(coco.getAnnIds(imgIds=image["id"])):
                name = f"objects/{annotation['alabel_object_id']}"
                stored = mesh.registry.GetObject(registry_pb2.GetObjectRequest(name=name))
                assert stored.category_name == names[annotation["category_id"]]
                mask = coco.annToMask(annotation).astype(bool)
                assert np.array_equal(mask, _stored_mask(mesh, name))
                box = stored.bbox
                assert annotation["bbox"] == pytest.approx(
                    [box.x, box.y, box.width, box.height], rel=1e-6
                )
                assert annotation["area"] == mask.sum()
                assert annotation["iscrowd"] == 0
                checked += 1
    assert checked == 20


def test_yolo_segment_export_has_one_label_line_per_part_and_loads_in_ultralytics(
    mesh: Mesh,
    built: tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]],
    tmp_path: Path,
) -> None:
    import_ultralytics(tmp_path / "ultralytics")
    from ultralytics.data.utils import check_det_dataset

    dataset, _ = built
    written = export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_YOLO_SEGMENT, "shapes-yolo")
    root = Path(written.path)
    assert Path(written.entry_point) == root / "data.yaml"
    lines = [
        line.split()
        for split in ("train", "val", "test")
        for label in (root / "labels" / split).glob("*.txt")
        for line in label.read_text().splitlines()
    ]
    # Per photo: the ring is one polygon (its hole joined by a cut), the pair two lines.
    assert sorted(int(line[0]) for line in lines) == [0] * 10 + [1] * 20
    checked = check_det_dataset(str(root / "data.yaml"))
    assert checked["nc"] == 2
    assert [checked["names"][i] for i in range(2)] == list(CLASSES)
    for split in ("train", "val", "test"):
        images = list(Path(checked[split]).iterdir())
        assert len(images) == {s.split: s.image_count for s in dataset.split_stats}[split]


def test_an_export_imports_into_another_registry_as_the_same_validated_objects(
    mesh: Mesh,
    built: tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]],
    tmp_path: Path,
) -> None:
    dataset, _ = built
    written = export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_COCO, "shapes-for-import")
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    other = Mesh(start_registry(tmp_path / "other", data_dir, data_dir / "exports"), data_dir)
    try:
        request = dataset_pb2.ImportLabelsRequest(
            format=dataset_pb2.LABEL_FORMAT_COCO,
            path=written.path,
            validated_by="ground truth",
            request_id=str(uuid.uuid4()),
        )
        counts = other.result(
            other.datasets.ImportLabels(request, timeout=30), dataset_pb2.ImportLabelsResponse()
        )
        assert isinstance(counts, dataset_pb2.ImportLabelsResponse)
        assert (counts.sources_created, counts.objects_created, counts.categories_created) == (
            10,
            20,
            2,
        )
        # A retry of the same request creates nothing twice.
        again = other.result(
            other.datasets.ImportLabels(request, timeout=30), dataset_pb2.ImportLabelsResponse()
        )
        assert isinstance(again, dataset_pb2.ImportLabelsResponse)
        assert (again.sources_created, again.objects_created) == (0, 0)
        imported = other.registry.ListObjects(
            registry_pb2.ListObjectsRequest(page_size=100), timeout=30
        ).objects
        assert len(imported) == 20
        assert all(o.is_validated and o.validated_by == "ground truth" for o in imported)
        original = {
            (o.category_name, o.bbox.x, o.bbox.y, o.bbox.width, o.bbox.height): o
            for o in mesh.registry.ListObjects(
                registry_pb2.ListObjectsRequest(filter="is_validated = true", page_size=100),
                timeout=30,
            ).objects
        }
        for obj in imported:
            key = (obj.category_name, obj.bbox.x, obj.bbox.y, obj.bbox.width, obj.bbox.height)
            assert key in original
            assert np.array_equal(
                _stored_mask(other, obj.name), _stored_mask(mesh, original[key].name)
            )
    finally:
        other.channel.close()
        assert other.process.stop() == 0
        next(data_dirs, None)


def _code(call: object) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        call()  # type: ignore[operator]
    return caught.value.code()  # type: ignore[no-any-return]


def test_bad_requests_are_refused_with_precise_codes_and_nothing_is_written(
    mesh: Mesh, built: tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]]
) -> None:
    dataset, _ = built
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    before = sorted(p.name for p in mesh.export_root.iterdir())

    def export_call(**fields: object) -> object:
        fields.setdefault("name", dataset.name)
        fields.setdefault("format", dataset_pb2.EXPORT_FORMAT_COCO)
        fields.setdefault("output_dir", "fresh")
        request = dataset_pb2.ExportDatasetRequest(**fields)  # type: ignore[arg-type]
        return lambda: mesh.datasets.ExportDataset(request, timeout=30)

    assert _code(lambda: create_dataset(mesh, "bad", class_names=["unicorn"])) == invalid
    assert _code(lambda: create_dataset(mesh, "bad", filter="confidence >>= 1")) == invalid
    assert _code(lambda: create_dataset(mesh, "", class_names=["ring"])) == invalid
    assert _code(export_call(output_dir="../outside")) == invalid
    assert _code(export_call(output_dir="/tmp/outside")) == invalid
    assert _code(export_call(format=dataset_pb2.EXPORT_FORMAT_UNSPECIFIED)) == invalid
    assert _code(export_call(name="datasets/not-a-uuid")) == invalid
    assert _code(export_call(name=f"datasets/{uuid.uuid4()}")) == grpc.StatusCode.NOT_FOUND
    export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_COCO, "taken")
    assert _code(export_call(output_dir="taken")) == grpc.StatusCode.ALREADY_EXISTS
    draft = create_dataset(mesh, "never built", class_names=["ring"])
    assert _code(export_call(name=draft.name)) == grpc.StatusCode.FAILED_PRECONDITION
    assert sorted(p.name for p in mesh.export_root.iterdir()) == sorted([*before, "taken"])

    # A build that would find nothing is refused before it starts; the dataset stays a draft.
    empty = create_dataset(mesh, "nothing", class_names=["ring"], filter="confidence > 0.95")
    build = dataset_pb2.BuildDatasetRequest(name=empty.name)
    assert _code(lambda: mesh.datasets.BuildDataset(build, timeout=30)) == (
        grpc.StatusCode.FAILED_PRECONDITION
    )
    state = mesh.datasets.GetDataset(dataset_pb2.GetDatasetRequest(name=empty.name)).state
    assert state == dataset_pb2.DATASET_STATE_DRAFT

    assert (
        _code(
            lambda: mesh.datasets.ImportLabels(
                dataset_pb2.ImportLabelsRequest(
                    format=dataset_pb2.LABEL_FORMAT_COCO,
                    path=str(mesh.export_root / "missing.json"),
                    validated_by="x",
                    request_id=str(uuid.uuid4()),
                ),
                timeout=30,
            )
        )
        == invalid
    )


def test_an_import_by_an_unstorable_reviewer_is_refused_before_an_operation_starts(
    mesh: Mesh, built: tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]]
) -> None:
    dataset, _ = built
    written = export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_COCO, "reviewer-with-nul")
    listing = operations_pb2.ListOperationsRequest(page_size=1000)
    before = len(mesh.operations.ListOperations(listing, timeout=30).operations)
    request = dataset_pb2.ImportLabelsRequest(
        format=dataset_pb2.LABEL_FORMAT_COCO,
        path=written.path,
        validated_by="ali\x00ce",
        request_id=str(uuid.uuid4()),
    )
    assert _code(lambda: mesh.datasets.ImportLabels(request, timeout=30)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert len(mesh.operations.ListOperations(listing, timeout=30).operations) == before


def test_operations_are_listed_waited_on_and_deleted_by_name(
    mesh: Mesh, built: tuple[dataset_pb2.Dataset, dict[str, dict[str, np.ndarray]]]
) -> None:
    dataset, _ = built
    operation = mesh.datasets.BuildDataset(
        dataset_pb2.BuildDatasetRequest(name=dataset.name), timeout=30
    )
    progress = common_pb2.OperationProgress()
    assert operation.metadata.Unpack(progress)
    assert progress.target == dataset.name
    done = mesh.finish(operation)
    done.metadata.Unpack(progress)
    assert progress.done == progress.total == 20
    listed = mesh.operations.ListOperations(operations_pb2.ListOperationsRequest(), timeout=30)
    assert listed.operations[0].name == operation.name  # newest first
    fetched = mesh.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=operation.name), timeout=30
    )
    assert fetched == done
    mesh.operations.DeleteOperation(
        operations_pb2.DeleteOperationRequest(name=operation.name), timeout=30
    )
    gone = operations_pb2.GetOperationRequest(name=operation.name)
    assert _code(lambda: mesh.operations.GetOperation(gone, timeout=30)) == (
        grpc.StatusCode.NOT_FOUND
    )
    bad = operations_pb2.GetOperationRequest(name="jobs/1")
    assert _code(lambda: mesh.operations.GetOperation(bad, timeout=30)) == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
