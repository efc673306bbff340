"""A registry process with DatasetService, and registered photos whose objects have a mask
with a hole and a mask in two parts: shared by the DatasetService and `alabel datasets` tests.
"""

from __future__ import annotations

import contextlib
import io
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
from google.longrunning import operations_pb2, operations_pb2_grpc
from google.protobuf import duration_pb2
from google.protobuf.message import Message
from PIL import Image

from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.mask_codec import masks_to_rle
from agentic_labeling.v1 import (
    common_pb2,
    dataset_pb2,
    dataset_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

DIM = 8
WIDTH, HEIGHT = 96, 64
CLASSES = ("ring", "pair")


def start_registry(workdir: Path, data_dir: Path, export_root: Path) -> ManagedProcess:
    return start_server_process(
        "registry",
        workdir,
        [
            "--data-dir",
            str(data_dir),
            "--embedding-dimension",
            str(DIM),
            "--export-root",
            str(export_root),
        ],
    )


class Mesh:
    """Stubs on one registry process, and where it writes exports."""

    def __init__(self, process: ManagedProcess, export_root: Path) -> None:
        self.process = process
        self.export_root = export_root
        self.channel = grpc.insecure_channel(process.address)
        self.registry = registry_pb2_grpc.RegistryServiceStub(self.channel)
        self.datasets = dataset_pb2_grpc.DatasetServiceStub(self.channel)
        self.operations = operations_pb2_grpc.OperationsStub(self.channel)

    def finish(self, operation: operations_pb2.Operation) -> operations_pb2.Operation:
        deadline = time.monotonic() + 120
        while not operation.done and time.monotonic() < deadline:
            operation = self.operations.WaitOperation(
                operations_pb2.WaitOperationRequest(
                    name=operation.name, timeout=duration_pb2.Duration(seconds=5)
                ),
                timeout=30,
            )
        assert operation.done
        return operation

    def result(self, operation: operations_pb2.Operation, response: Message) -> Message:
        done = self.finish(operation)
        assert not done.HasField("error"), done.error
        done.response.Unpack(response)
        return response


def photo(seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def ring(offset: int) -> np.ndarray:
    """A square with a square hole."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[10:40, offset : offset + 30] = True
    mask[20:30, offset + 10 : offset + 20] = False
    return mask


def pair() -> np.ndarray:
    """One object in two separate parts."""
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[45:60, 5:20] = True
    mask[45:60, 70:90] = True
    return mask


def bbox(mask: np.ndarray) -> common_pb2.BoundingBox:
    ys, xs = np.nonzero(mask)
    return common_pb2.BoundingBox(
        x=float(xs.min()),
        y=float(ys.min()),
        width=float(xs.max() + 1 - xs.min()),
        height=float(ys.max() + 1 - ys.min()),
    )


def register(
    mesh: Mesh, seed: int, *, validated: bool = True, with_image: bool = True
) -> tuple[str, dict[str, np.ndarray]]:
    """A source sent with its image (unless not `with_image`), holding a ring and a two-part
    pair; its masks by name."""
    source = mesh.registry.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=WIDTH,
                height=HEIGHT,
                display_name=f"photo {seed}.png",
            ),
            image_data=photo(seed) if with_image else b"",
            return_existing=True,
        ),
        timeout=30,
    )
    masks = {"ring": ring(5 + seed % 30), "pair": pair()}
    created = mesh.registry.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source.name,
                        category_name=name,
                        bbox=bbox(mask),
                        confidence=0.9,
                        detection_model="test",
                    ),
                    mask=common_pb2.Mask(
                        rle=common_pb2.RunLengthEncoding(
                            height=HEIGHT, width=WIDTH, counts=masks_to_rle(mask)
                        )
                    ),
                    embedding=common_pb2.Embedding(values=[1.0] + [0.0] * (DIM - 1)),
                )
                for name, mask in masks.items()
            ],
        ),
        timeout=30,
    )
    if validated:
        mesh.registry.ValidateObjects(
            registry_pb2.ValidateObjectsRequest(
                names=[o.name for o in created.objects], validated_by="tester", is_validated=True
            ),
            timeout=30,
        )
    return source.name, masks


def create_dataset(mesh: Mesh, display_name: str, **fields: object) -> dataset_pb2.Dataset:
    fields.setdefault("class_names", CLASSES)
    return mesh.datasets.CreateDataset(
        dataset_pb2.CreateDatasetRequest(
            dataset=dataset_pb2.Dataset(display_name=display_name, **fields)  # type: ignore[arg-type]
        ),
        timeout=30,
    )


def build(mesh: Mesh, dataset: dataset_pb2.Dataset) -> dataset_pb2.Dataset:
    operation = mesh.datasets.BuildDataset(
        dataset_pb2.BuildDatasetRequest(name=dataset.name), timeout=30
    )
    built = mesh.result(operation, dataset_pb2.Dataset())
    assert isinstance(built, dataset_pb2.Dataset)
    return built


def export(
    mesh: Mesh, dataset: dataset_pb2.Dataset, export_format: int, output_dir: str
) -> dataset_pb2.ExportDatasetResponse:
    operation = mesh.datasets.ExportDataset(
        dataset_pb2.ExportDatasetRequest(
            name=dataset.name,
            format=export_format,  # type: ignore[arg-type]
            output_dir=output_dir,
        ),
        timeout=30,
    )
    written = mesh.result(operation, dataset_pb2.ExportDatasetResponse())
    assert isinstance(written, dataset_pb2.ExportDatasetResponse)
    return written


@contextlib.contextmanager
def running_registry(workdir: Path, data_dir: Path) -> Iterator[Mesh]:
    """A registry process on `data_dir`, exporting under `data_dir/exports`; it must stop
    cleanly (exit status 0) at the end."""
    mesh = Mesh(start_registry(workdir, data_dir, data_dir / "exports"), data_dir / "exports")
    yield mesh
    mesh.channel.close()
    assert mesh.process.stop() == 0
