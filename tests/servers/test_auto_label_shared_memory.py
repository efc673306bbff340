"""AutoLabel with `triton_shared_memory` on, end to end: real orchestrator and registry
processes and the real tritonserver with the tiny models, on loopback.

The same images through an orchestrator with the setting off and one with it on (each with a
registry of its own, and a labelling window of one, so every model call is a batch of one and
the numbers are comparable) must register the same objects; the orchestrator with it on must
really use /dev/shm, and leave nothing there, nor registered in Triton, once it stops.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from PIL import Image
from tritonclient.grpc import aio as triton_aio

from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.triton_server import TritonHandle
from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc

pytestmark = pytest.mark.slow

SHM = Path("/dev/shm")
CLASSES = ["cup", "plate"]
IMAGES = 6


def _jpeg(index: int) -> bytes:
    rng = np.random.default_rng([zlib.crc32(b"shm"), index])
    pixels = rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


@pytest.fixture
def registries(
    tiny_models_dir: Path, tmp_path: Path
) -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    dimension = str(Dinov2Embedder.load(tiny_models_dir / "dinov2").dimension)
    dirs = [registry_data_dir(), registry_data_dir()]
    started = [
        start_server_process(
            "registry",
            tmp_path / f"registry-{i}",
            ["--data-dir", str(next(d)), "--embedding-dimension", dimension],
        )
        for i, d in enumerate(dirs)
    ]
    yield started[0], started[1]
    for process, data in zip(started, dirs, strict=True):
        assert process.stop() == 0, process.log.read_text()[-4000:]
        next(data, None)


def _orchestrator(
    triton: TritonHandle, registry: ManagedProcess, workdir: Path, shared_memory: str
) -> ManagedProcess:
    return start_server_process(
        "orchestrator",
        workdir,
        [
            "--triton-url",
            triton.address,
            "--registry-url",
            registry.address,
            "--labeling-window",
            "1",
            "--triton-shared-memory",
            shared_memory,
        ],
    )


async def _label(address: str) -> list[labeling_pb2.AutoLabelResponse]:
    async def requests() -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
        yield labeling_pb2.AutoLabelRequest(
            config=labeling_pb2.AutoLabelConfig(
                class_names=CLASSES, max_objects_per_image=3, confidence_threshold=0.0
            )
        )
        for index in range(IMAGES):
            yield labeling_pb2.AutoLabelRequest(
                item=labeling_pb2.AutoLabelItem(
                    client_id=f"image-{index}", image=common_pb2.Image(data=_jpeg(index))
                )
            )

    async with grpc.aio.insecure_channel(address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        return [r async for r in stub.AutoLabel(requests(), timeout=120)]


def _objects(
    responses: list[labeling_pb2.AutoLabelResponse],
) -> dict[str, list[tuple[Any, ...]]]:
    """Per image, what the models decided for each object (not the registry's names)."""
    found = {}
    for response in responses:
        assert response.status.code == 0, response.status.message
        found[response.client_id] = sorted(
            (
                o.category_name,
                round(o.bbox.x, 3),
                round(o.bbox.y, 3),
                round(o.bbox.width, 3),
                round(o.bbox.height, 3),
                round(o.confidence, 5),
                round(o.quality_score, 5),
                round(o.area, 3),  # the mask's pixels when it has one
                o.has_mask,
                o.has_embedding,
            )
            for o in response.objects
        )
    return found


def _regions_of(process: ManagedProcess) -> set[str]:
    return {path.name for path in SHM.glob(f"alabel-{process.process.pid}-*")}


async def _registered_in_triton(triton: TritonHandle) -> set[str]:
    async with triton_aio.InferenceServerClient(triton.address) as client:
        status = await client.get_system_shared_memory_status(as_json=True)
    return set(status.get("regions", {}))


async def test_shared_memory_registers_the_same_objects_and_leaves_no_region_behind(
    served_triton: TritonHandle,
    registries: tuple[ManagedProcess, ManagedProcess],
    tmp_path: Path,
) -> None:
    over_wire = _orchestrator(served_triton, registries[0], tmp_path / "wire", "off")
    try:
        expected = _objects(await _label(over_wire.address))
    finally:
        assert over_wire.stop() == 0
    assert sum(len(objects) for objects in expected.values()) > 0

    shared = _orchestrator(served_triton, registries[1], tmp_path / "shm", "on")
    try:
        got = _objects(await _label(shared.address))
        in_use = _regions_of(shared)
        # Really used: the regions exist, and Triton has them registered, while it runs.
        assert in_use
        assert in_use <= await _registered_in_triton(served_triton)
    finally:
        assert shared.stop() == 0, shared.log.read_text()[-4000:]
    assert got == expected
    assert _regions_of(shared) == set()
    assert not in_use & await _registered_in_triton(served_triton)
