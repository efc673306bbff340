"""One registry process with TrainingService and a tiny YOLO run trained on it (CPU, 64-pixel
images, two epochs), shared by the TrainingService, SuggestForReview and trained-student tests:
a training is the slowest thing they do, so the session trains once.

tests/servers/conftest.py imports the fixtures (`training_mesh`, `shapes_dataset`,
`trained_run`); the helpers are imported by the test modules.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from conftest import registry_data_dir
from dataset_mesh import Mesh, build, create_dataset, register, start_registry
from google.longrunning import operations_pb2

from agentic_labeling.rpc_status import rpc_error_details
from agentic_labeling.training.yolo_jobs import training_available
from agentic_labeling.v1 import common_pb2, dataset_pb2, training_pb2, training_pb2_grpc

EPOCHS = 2
IMAGE_SIZE = 64


class TrainingMesh(Mesh):
    def __init__(self, mesh: Mesh, data_dir: Path) -> None:
        super().__init__(mesh.process, mesh.export_root)
        self.data_dir = data_dir
        self.training = training_pb2_grpc.TrainingServiceStub(self.channel)

    def start(self, dataset: str, **fields: object) -> operations_pb2.Operation:
        fields.setdefault("model", "yolo11n.yaml")
        fields.setdefault("epochs", EPOCHS)
        fields.setdefault("image_size", IMAGE_SIZE)
        fields.setdefault("batch", 4)
        fields.setdefault("device", "cpu")
        return self.training.StartTraining(
            training_pb2.StartTrainingRequest(dataset=dataset, **fields),  # type: ignore[arg-type]
            timeout=60,
        )

    def run(self, name: str) -> training_pb2.TrainingRun:
        return self.training.GetRun(training_pb2.GetRunRequest(name=name), timeout=30)

    def wait_state(self, name: str, *states: int) -> training_pb2.TrainingRun:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            run = self.run(name)
            if run.state in states:
                return run
            time.sleep(0.2)
        raise AssertionError(f"{name} never reached {states}: {self.run(name)}")


def operation_target(operation: operations_pb2.Operation) -> str:
    """The resource an operation works on (runs/{run} for a training)."""
    progress = common_pb2.OperationProgress()
    operation.metadata.Unpack(progress)
    return progress.target


def error_info(error: grpc.RpcError) -> tuple[str, list[str]]:
    """The reason and the bad fields of a failed call."""
    info = rpc_error_details(error)
    return info.reason, [v.field for v in info.field_violations]


def refused(call: object, *args: object) -> grpc.RpcError:
    """The error of a call that must fail."""
    with pytest.raises(grpc.RpcError) as caught:
        call(*args)  # type: ignore[operator]
    return caught.value


def build_shapes(mesh: Mesh) -> dataset_pb2.Dataset:
    """Twelve validated photos with a ring and a pair each, built 8 / 2 / 2 (validated objects
    only: other tests add unvalidated ones to the same registry)."""
    for seed in range(12):
        register(mesh, seed)
    return build(
        mesh,
        create_dataset(
            mesh,
            "shapes",
            filter="is_validated = true",
            split_ratios=dataset_pb2.SplitRatios(train=0.7, val=0.15, test=0.15),
            seed=1,
        ),
    )


def train(mesh: TrainingMesh, dataset: dataset_pb2.Dataset) -> training_pb2.TrainingRun:
    """A run trained on `dataset` to the end (it must succeed)."""
    operation = mesh.start(dataset.name, request_id=str(uuid.uuid4()))
    run = mesh.result(operation, training_pb2.TrainingRun())
    assert isinstance(run, training_pb2.TrainingRun)
    return run


@pytest.fixture(scope="session")
def training_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TrainingMesh]:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    process = start_registry(tmp_path_factory.mktemp("registry"), data_dir, data_dir / "exports")
    mesh = TrainingMesh(Mesh(process, data_dir / "exports"), data_dir)
    yield mesh
    mesh.channel.close()
    assert process.stop() == 0
    next(data_dirs, None)


@pytest.fixture(scope="session")
def shapes_dataset(training_mesh: TrainingMesh) -> dataset_pb2.Dataset:
    """See `build_shapes`."""
    return build_shapes(training_mesh)


@pytest.fixture(scope="session")
def trained_run(
    training_mesh: TrainingMesh, shapes_dataset: dataset_pb2.Dataset
) -> training_pb2.TrainingRun:
    """A succeeded tiny run (classes ring and pair) on `shapes_dataset`."""
    skip_unless_training_installed()
    return train(training_mesh, shapes_dataset)


def skip_unless_training_installed() -> None:
    """Skip (the module, at module level) where the [train] extra is missing. Never
    `pytest.importorskip("ultralytics")`: importing ultralytics replaces PIL.Image.open for the
    whole test process (see label_fixtures.import_ultralytics), and later tests of bad images
    then fail with ModuleNotFoundError('pi_heif') instead of Pillow's error."""
    if not training_available():
        pytest.skip("needs the [train] extra (ultralytics)", allow_module_level=True)
