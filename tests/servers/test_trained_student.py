"""The loop closed: a YOLO run trained in this session (tests/training_mesh.py) is exported with
ExportRun into the registry's student repository (DATA_DIR/triton-models, no model_repository
given), served by the real tritonserver as "yolo" beside a copy of the model repository, and
chosen as AutoLabel's detector by a real orchestrator and registry.

Triton's batching is asserted where it can be forced: eight concurrent detect calls made at once
(executions < inferences). Through AutoLabel the images reach Triton as the orchestrator's
window lets them, so there the test asserts that every image was one inference and prints the
batch sizes Triton made (arrival spreads with the machine's load).
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path

import grpc
import pytest
from conftest import registry_data_dir
from dataset_mesh import photo
from google.longrunning import operations_pb2
from training_mesh import TrainingMesh, skip_unless_training_installed

from agentic_labeling.clients.triton_models import TritonModels
from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.triton_server import (
    TritonHandle,
    TritonLaunch,
    default_model_repository,
    query_status,
    start_triton,
)
from agentic_labeling.v1 import (
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
    training_pb2,
)

skip_unless_training_installed()
pytestmark = pytest.mark.slow

IMAGES = 8


@pytest.fixture(scope="module")
def repository(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """SAM2 and DINOv2 from model_repository/ (tiny weights come with Triton's models dir); the
    student is served from the registry's student repository."""
    root = tmp_path_factory.mktemp("trained-student-repository")
    for model in ("sam2", "dinov2"):
        shutil.copytree(
            default_model_repository() / model,
            root / model,
            ignore=shutil.ignore_patterns("__pycache__"),
        )
    return root


@pytest.fixture(scope="module")
def student_repository(training_mesh: TrainingMesh) -> Path:
    """Where ExportRun writes without a model_repository (Settings.student_repository)."""
    return (training_mesh.data_dir / "triton-models").resolve()


@pytest.fixture(scope="module")
def exported(
    training_mesh: TrainingMesh, trained_run: training_pb2.TrainingRun
) -> operations_pb2.Operation:
    """ExportRun's finished operation: the trained run written as "yolo" into the registry's
    student repository (no model_repository given, as `alabel runs export latest` asks)."""
    operation = training_mesh.training.ExportRun(
        training_pb2.ExportRunRequest(name=trained_run.name), timeout=60
    )
    return training_mesh.finish(operation)


@pytest.fixture(scope="module")
def triton(
    exported: operations_pb2.Operation,
    repository: Path,
    student_repository: Path,
    tiny_models_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TritonHandle]:
    handle = start_triton(
        TritonLaunch(
            model_repository=repository,
            student_repository=student_repository,
            grpc_port=0,
            http_port=0,
            metrics_port=0,
            models_dir=tiny_models_dir,
            log_file=tmp_path_factory.mktemp("trained-student-triton") / "tritonserver.log",
            device="cpu",
            ready_timeout_s=180,
        )
    )
    yield handle
    handle.stop()


@pytest.fixture(scope="module")
def labeling_mesh(
    triton: TritonHandle, tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    """An orchestrator on `triton` and a registry of its own (DINOv2's embedding size; the
    training registry keeps 8-d test embeddings): (orchestrator, registry)."""
    data_dirs = registry_data_dir()
    dimension = Dinov2Embedder.load(tiny_models_dir / "dinov2").dimension
    registry = start_server_process(
        "registry",
        tmp_path_factory.mktemp("trained-student-registry"),
        ["--data-dir", str(next(data_dirs)), "--embedding-dimension", str(dimension)],
    )
    try:
        orchestrator = start_server_process(
            "orchestrator",
            tmp_path_factory.mktemp("trained-student-orchestrator"),
            ["--triton-url", triton.address, "--registry-url", registry.address],
        )
    except BaseException:
        registry.stop()
        raise
    yield orchestrator, registry
    statuses = [orchestrator.stop(), registry.stop()]
    next(data_dirs, None)
    assert statuses == [0, 0], orchestrator.log.read_text()[-4000:]


@pytest.fixture
async def labeling(
    labeling_mesh: tuple[ManagedProcess, ManagedProcess],
) -> AsyncIterator[labeling_pb2_grpc.LabelingServiceStub]:
    async with grpc.aio.insecure_channel(labeling_mesh[0].address) as channel:
        yield labeling_pb2_grpc.LabelingServiceStub(channel)


def _counts(triton: TritonHandle, model: str) -> tuple[int, int]:
    """(inference_count, execution_count) of `model` since Triton started."""
    (found,) = [m for m in query_status(triton.address).models if m.name == model]
    return found.inference_count, found.execution_count


def _batch_sizes(triton: TritonHandle, model: str) -> dict[int, int]:
    """How many executions Triton ran at each batch size for `model`."""
    import tritonclient.grpc as triton_grpc

    client = triton_grpc.InferenceServerClient(triton.address)
    try:
        stats = client.get_inference_statistics(model, as_json=True)
    finally:
        client.close()
    (model_stats,) = stats["model_stats"]
    return {
        int(b["batch_size"]): int(b["compute_infer"].get("count", 0))
        for b in model_stats.get("batch_stats", [])
    }


async def _auto_label(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    class_names: Sequence[str],
    images: Sequence[bytes],
) -> list[labeling_pb2.AutoLabelResponse]:
    async def requests() -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
        yield labeling_pb2.AutoLabelRequest(
            config=labeling_pb2.AutoLabelConfig(
                class_names=class_names,
                detector="yolo",
                confidence_threshold=0.0,  # two epochs from scratch: confidences near 0
                max_objects_per_image=3,
            )
        )
        for index, data in enumerate(images):
            yield labeling_pb2.AutoLabelRequest(
                item=labeling_pb2.AutoLabelItem(
                    client_id=f"trained-{index}", image=common_pb2.Image(data=data)
                )
            )

    return [answer async for answer in stub.AutoLabel(requests(), timeout=180)]


def test_export_run_without_a_model_repository_writes_into_the_data_dirs_triton_models(
    exported: operations_pb2.Operation,
    trained_run: training_pb2.TrainingRun,
    student_repository: Path,
) -> None:
    assert exported.done
    assert not exported.HasField("error"), exported.error
    response = training_pb2.ExportRunResponse()
    assert exported.response.Unpack(response)
    assert response.model_name == "yolo"
    assert Path(response.model_dir) == student_repository / "yolo"
    assert list(response.class_names) == list(trained_run.class_names)
    assert (student_repository / "yolo" / "config.pbtxt").is_file()
    assert list((student_repository / "yolo" / "1").glob("*.onnx"))


def test_export_run_into_a_given_model_repository_writes_there(
    training_mesh: TrainingMesh, trained_run: training_pb2.TrainingRun, tmp_path: Path
) -> None:
    operation = training_mesh.finish(
        training_mesh.training.ExportRun(
            training_pb2.ExportRunRequest(
                name=trained_run.name, model_repository=str(tmp_path), model_name="student"
            ),
            timeout=60,
        )
    )
    assert not operation.HasField("error"), operation.error
    response = training_pb2.ExportRunResponse()
    assert operation.response.Unpack(response)
    assert Path(response.model_dir) == tmp_path / "student"
    assert (tmp_path / "student" / "config.pbtxt").is_file()
    assert not (training_mesh.data_dir / "triton-models" / "student").exists()


def test_the_student_is_served_ready_beside_the_project_models(triton: TritonHandle) -> None:
    status = triton.status()
    assert status.all_ready
    assert sorted(m.name for m in status.models) == ["dinov2", "sam2", "yolo"]


async def test_eight_concurrent_detections_on_the_served_student_are_batched(
    triton: TritonHandle, trained_run: training_pb2.TrainingRun
) -> None:
    before = _counts(triton, "yolo")
    async with TritonModels(triton.address) as models:
        found = await asyncio.gather(
            *(
                models.detect(photo(200 + i), list(trained_run.class_names), model="yolo")
                for i in range(IMAGES)
            )
        )
    inferences, executions = (a - b for a, b in zip(_counts(triton, "yolo"), before, strict=True))
    assert len(found) == IMAGES
    assert inferences == IMAGES
    assert executions < inferences, "Triton's dynamic batcher merged no requests"


async def test_auto_label_with_the_trained_student_registers_objects_detected_by_yolo(
    labeling: labeling_pb2_grpc.LabelingServiceStub,
    labeling_mesh: tuple[ManagedProcess, ManagedProcess],
    triton: TritonHandle,
    trained_run: training_pb2.TrainingRun,
) -> None:
    classes = list(trained_run.class_names)
    before = _counts(triton, "yolo")
    answers = await _auto_label(labeling, classes, [photo(300 + i) for i in range(IMAGES)])
    assert sorted(a.client_id for a in answers) == sorted(f"trained-{i}" for i in range(IMAGES))
    assert [a.status.code for a in answers] == [0] * IMAGES
    objects = [o for a in answers for o in a.objects]
    assert objects, "the trained student found nothing at confidence 0"
    assert {o.detection_model for o in objects} == {"yolo"}
    assert {o.category_name for o in objects} <= set(classes)
    assert all(o.has_mask and o.has_embedding for o in objects)  # SAM2, DINOv2 unchanged

    with grpc.insecure_channel(labeling_mesh[1].address) as channel:
        stored = registry_pb2_grpc.RegistryServiceStub(channel).ListObjects(
            registry_pb2.ListObjectsRequest(filter='detection_model = "yolo"', page_size=1000),
            timeout=30,
        )
    assert sorted(o.name for o in stored.objects) == sorted(o.name for o in objects)

    inferences, executions = (a - b for a, b in zip(_counts(triton, "yolo"), before, strict=True))
    assert inferences == IMAGES
    # What the batcher made of the stream (not asserted: arrival spreads with load).
    print(
        f"yolo through AutoLabel: {inferences} inferences in {executions} executions; "
        f"executions by batch size since start: {_batch_sizes(triton, 'yolo')}"
    )
