"""The labeling window counts images in their model stages only; registry calls take a slot of
the registration queue instead, which is bounded (each stream's credits cover both, so the
flow-control test in test_auto_label.py covers the back-pressure).

The end-to-end test runs a real orchestrator, the real tritonserver with the tiny models and a
real registry process, which it freezes with SIGSTOP (a registry that does not answer) and
thaws with SIGCONT.
"""

from __future__ import annotations

import asyncio
import io
import os
import signal
import zlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from PIL import Image

from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.servers.labeling_window import LabelingWindow
from agentic_labeling.triton_server import TritonHandle
from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc

WINDOW = 2
REGISTRATION = 3


# --- the window on its own --------------------------------------------------------------------


async def test_registration_slots_are_bounded_apart_from_the_window() -> None:
    window = LabelingWindow(1, registration=2)
    release = asyncio.Event()
    registering = 0

    async def register() -> None:
        nonlocal registering
        async with window.registration_slot():
            registering += 1
            await release.wait()

    holders = [asyncio.create_task(register()) for _ in range(3)]
    await asyncio.sleep(0.05)
    assert (registering, window.registering) == (2, 2)  # the third waits
    async with window.slot():  # a full registration queue leaves the window free
        assert (window.in_flight, window.registering) == (1, 2)
    release.set()
    await asyncio.gather(*holders)
    assert (registering, window.registering, window.in_flight) == (3, 0, 0)
    assert window.images == 3  # a stream's credits: both filled at once


def test_a_registration_queue_without_slots_is_refused() -> None:
    with pytest.raises(ValueError, match="registration queue needs at least one slot"):
        LabelingWindow(1, registration=0)


# --- through a real orchestrator --------------------------------------------------------------


@pytest.fixture(scope="module")
def registry(
    tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    data_dirs = registry_data_dir()
    dimension = Dinov2Embedder.load(tiny_models_dir / "dinov2").dimension
    process = start_server_process(
        "registry",
        tmp_path_factory.mktemp("queue-registry"),
        ["--data-dir", str(next(data_dirs)), "--embedding-dimension", str(dimension)],
    )
    yield process
    os.kill(process.process.pid, signal.SIGCONT)  # never leave it frozen
    assert process.stop() == 0, process.log.read_text()[-4000:]
    next(data_dirs, None)


@pytest.fixture(scope="module")
def orchestrator(
    served_triton: TritonHandle, registry: ManagedProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    process = start_server_process(
        "orchestrator",
        tmp_path_factory.mktemp("queue-orchestrator"),
        [
            "--triton-url",
            served_triton.address,
            "--registry-url",
            registry.address,
            "--labeling-window",
            str(WINDOW),
            "--registration-queue",
            str(REGISTRATION),
        ],
    )
    yield process
    assert process.stop() == 0, process.log.read_text()[-4000:]


def _png(index: int) -> bytes:
    """A small noise PNG, one per index."""
    rng = np.random.default_rng([zlib.crc32(b"queue"), index])
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (72, 96, 3), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def _item(index: int) -> labeling_pb2.AutoLabelRequest:
    return labeling_pb2.AutoLabelRequest(
        item=labeling_pb2.AutoLabelItem(
            client_id=f"queue-{index}", image=common_pb2.Image(data=_png(index))
        )
    )


@pytest.mark.slow
async def test_images_waiting_for_the_registry_hold_no_window_slot(
    orchestrator: ManagedProcess, registry: ManagedProcess
) -> None:
    count = 30
    first_answered = asyncio.Event()
    sent = 0

    async def requests() -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
        nonlocal sent
        yield labeling_pb2.AutoLabelRequest(
            config=labeling_pb2.AutoLabelConfig(
                class_names=["queue cat"],
                max_objects_per_image=1,
                confidence_threshold=0.0,
                skip_masks=True,
                skip_embeddings=True,
            )
        )
        yield _item(0)
        await first_answered.wait()  # the stream is up: now the registry stops answering
        for index in range(1, count):
            yield _item(index)
            sent += 1

    async with grpc.aio.insecure_channel(
        orchestrator.address, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        call = stub.AutoLabel(requests(), timeout=300)
        answers = [await call.read()]
        assert answers[0].status.code == 0, answers[0].status.message
        os.kill(registry.process.pid, signal.SIGSTOP)
        try:
            first_answered.set()
            # Wait until the client has sent what it can: the server took what it reads.
            previous = -1
            while sent != previous:
                previous = sent
                await asyncio.sleep(2.0)
            status = await stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=30)
        finally:
            os.kill(registry.process.pid, signal.SIGCONT)
        while (answer := await call.read()) is not grpc.aio.EOF:
            answers.append(answer)

    # Every image read is waiting for the frozen registry, none holds a slot for Triton.
    assert (status.window_size, status.images_in_flight) == (WINDOW, 0)
    assert sorted(a.client_id for a in answers) == sorted(f"queue-{i}" for i in range(count))
    assert all(a.status.code == 0 for a in answers)
