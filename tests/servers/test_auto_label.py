"""AutoLabel end to end: a real orchestrator process, the real tritonserver with the tiny
models, and a real registry process (embedded Postgres, qdrant-edge, mask files), on loopback.

The models have random weights: these tests prove the plumbing (every image answered once,
objects registered with masks and embeddings, batching on Triton, errors, retries, flow
control, cancellation), never label quality. Each test uses class names of its own, so the
objects it registers can be counted by category, and images of its own (different bytes, so
different sources).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import subprocess
import time
import urllib.request
import zlib
from collections.abc import AsyncIterable, AsyncIterator, Iterable, Iterator, Sequence
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2
from PIL import Image
from real_parts import GRPCURL, Mesh

from agentic_labeling.errors import Unavailable
from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.rpc_status import rpc_error_details
from agentic_labeling.servers.auto_label_requests import check_config
from agentic_labeling.servers.labeling_pipeline import batch_request_id
from agentic_labeling.settings import Settings
from agentic_labeling.triton_server import TritonHandle, query_status
from agentic_labeling.v1 import (
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

pytestmark = pytest.mark.slow

WIDTH, HEIGHT = 96, 72
WINDOW = 16
MAX_IMAGE_PIXELS = 200_000  # small, so an oversized image is cheap to make
MAX_OBJECTS = 3  # keeps the random tiny Florence-2 fast


# --- the mesh ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def registry_data() -> Iterator[Path]:
    data_dirs = registry_data_dir()
    yield next(data_dirs)
    next(data_dirs, None)


@pytest.fixture(scope="module")
def registry(
    tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory, registry_data: Path
) -> Iterator[ManagedProcess]:
    dimension = Dinov2Embedder.load(tiny_models_dir / "dinov2").dimension
    process = start_server_process(
        "registry",
        tmp_path_factory.mktemp("auto-label-registry"),
        ["--data-dir", str(registry_data), "--embedding-dimension", str(dimension)],
    )
    yield process
    assert process.stop() == 0, process.log.read_text()[-4000:]


@pytest.fixture(scope="module")
def orchestrator(
    served_triton: TritonHandle,
    registry: ManagedProcess,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ManagedProcess]:
    process = start_server_process(
        "orchestrator",
        tmp_path_factory.mktemp("auto-label-orchestrator"),
        [
            "--triton-url",
            served_triton.address,
            "--registry-url",
            registry.address,
            "--labeling-window",
            str(WINDOW),
            "--max-image-pixels",
            str(MAX_IMAGE_PIXELS),
        ],
    )
    yield process
    assert process.stop() == 0, process.log.read_text()[-4000:]


@pytest.fixture
async def stub(
    orchestrator: ManagedProcess,
) -> AsyncIterator[labeling_pb2_grpc.LabelingServiceStub]:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        yield labeling_pb2_grpc.LabelingServiceStub(channel)


@pytest.fixture
async def registry_stub(
    registry: ManagedProcess,
) -> AsyncIterator[registry_pb2_grpc.RegistryServiceStub]:
    async with grpc.aio.insecure_channel(registry.address) as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel)


# --- messages ---------------------------------------------------------------------------------


def _png(tag: str, index: int, *, width: int = WIDTH, height: int = HEIGHT) -> bytes:
    """A noisy image with a few blocks, different for every (tag, index)."""
    rng = np.random.default_rng([zlib.crc32(tag.encode()), index])
    pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    for _ in range(3):
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        pixels[y : y + 20, x : x + 20] = rng.integers(0, 256, 3, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _config(classes: Sequence[str], **fields: object) -> labeling_pb2.AutoLabelRequest:
    fields.setdefault("max_objects_per_image", MAX_OBJECTS)
    if "min_confidence" not in fields:
        # The tiny Florence-2's confidences are near 0: the default (0.5) would drop them all.
        fields.setdefault("confidence_threshold", 0.0)
    return labeling_pb2.AutoLabelRequest(
        config=labeling_pb2.AutoLabelConfig(class_names=classes, **fields)  # type: ignore[arg-type]
    )


def _item(client_id: str, data: bytes, **fields: object) -> labeling_pb2.AutoLabelRequest:
    return labeling_pb2.AutoLabelRequest(
        item=labeling_pb2.AutoLabelItem(
            client_id=client_id,
            image=common_pb2.Image(data=data),
            **fields,  # type: ignore[arg-type]
        )
    )


def _images(tag: str, count: int) -> list[labeling_pb2.AutoLabelRequest]:
    return [_item(f"{tag}-{i}", _png(tag, i), display_name=f"{tag}-{i}.png") for i in range(count)]


async def _label(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    messages: Iterable[labeling_pb2.AutoLabelRequest],
    *,
    timeout_s: float = 120,
) -> list[labeling_pb2.AutoLabelResponse]:
    async def requests() -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
        for message in messages:
            yield message

    return [response async for response in stub.AutoLabel(requests(), timeout=timeout_s)]


def _by_client_id(
    responses: Sequence[labeling_pb2.AutoLabelResponse],
) -> dict[str, labeling_pb2.AutoLabelResponse]:
    found = {r.client_id: r for r in responses}
    assert len(found) == len(responses), "an image was answered twice"
    return found


def _code(response: labeling_pb2.AutoLabelResponse) -> grpc.StatusCode:
    return next(c for c in grpc.StatusCode if c.value[0] == response.status.code)


def _error_info(response: labeling_pb2.AutoLabelResponse) -> error_details_pb2.ErrorInfo:
    info = error_details_pb2.ErrorInfo()
    for detail in response.status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            detail.Unpack(info)
    return info


def _bad_fields(response: labeling_pb2.AutoLabelResponse) -> list[str]:
    for detail in response.status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            return [v.field for v in bad_request.field_violations]
    return []


async def _objects(
    registry_stub: registry_pb2_grpc.RegistryServiceStub, filter_text: str
) -> list[registry_pb2.LabeledObject]:
    found: list[registry_pb2.LabeledObject] = []
    request = registry_pb2.ListObjectsRequest(filter=filter_text, page_size=1000)
    while True:
        page = await registry_stub.ListObjects(request, timeout=30)
        found.extend(page.objects)
        if not page.next_page_token:
            return found
        request.page_token = page.next_page_token


def _in_category(*names: str) -> str:
    return " OR ".join(f'category = "{name}"' for name in names)


def _triton_counts(triton: TritonHandle) -> dict[str, tuple[int, int]]:
    """Per model: (inference_count, execution_count) so far."""
    return {
        m.name: (m.inference_count, m.execution_count) for m in query_status(triton.address).models
    }


def _rss_mib(process: ManagedProcess) -> float:
    for line in Path(f"/proc/{process.process.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")  # pragma: no cover


async def _images_in_flight(stub: labeling_pb2_grpc.LabelingServiceStub) -> int:
    status = await stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=15)
    assert status.window_size == WINDOW
    return status.images_in_flight


async def _wait_until_idle(stub: labeling_pb2_grpc.LabelingServiceStub) -> None:
    # A hang guard (the window never drains), generous enough for a busy machine.
    deadline = time.monotonic() + 120
    while (in_flight := await _images_in_flight(stub)) != 0:
        assert time.monotonic() < deadline, f"{in_flight} images still in flight"
        await asyncio.sleep(0.1)


# --- the main job -----------------------------------------------------------------------------


async def test_200_images_are_each_answered_once_registered_and_batched_on_triton(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    registry_stub: registry_pb2_grpc.RegistryServiceStub,
    orchestrator: ManagedProcess,
    served_triton: TritonHandle,
) -> None:
    count = 200
    classes = ["e2e cat", "e2e dog"]
    messages = [_config(classes), *_images("e2e", count)]
    before = _triton_counts(served_triton)
    rss_before = _rss_mib(orchestrator)
    in_flight: list[int] = []

    async def watch_the_window() -> None:
        while True:
            in_flight.append(await _images_in_flight(stub))
            await asyncio.sleep(0.05)

    watcher = asyncio.create_task(watch_the_window())
    started = time.perf_counter()
    responses = await _label(stub, messages)
    elapsed = time.perf_counter() - started
    watcher.cancel()
    after = _triton_counts(served_triton)
    rss_after = _rss_mib(orchestrator)

    answers = _by_client_id(responses)
    assert set(answers) == {f"e2e-{i}" for i in range(count)}
    failed = {k: r.status.message for k, r in answers.items() if r.status.code}
    assert not failed
    answered_objects = [o for r in responses for o in r.objects]
    assert answered_objects, "the steered tiny Florence-2 finds boxes"
    assert all(0 < len(r.objects) <= MAX_OBJECTS for r in responses)
    assert all(r.source.startswith("sources/") and r.frame_index == 0 for r in responses)
    assert len({r.source for r in responses}) == count
    assert all(r.timings.total.ToNanoseconds() > 0 for r in responses)

    stored = await _objects(registry_stub, _in_category(*classes))
    assert sorted(o.name for o in stored) == sorted(o.name for o in answered_objects)
    assert all(o.has_mask and o.has_embedding for o in stored)
    assert {o.category_name for o in stored} <= set(classes)
    assert {o.detection_model for o in stored} == {"florence2"}
    assert all(0 <= o.quality_score <= 1 for o in stored)

    batch_sizes = {}
    for model in ("florence2", "sam2", "dinov2"):
        inferences = after[model][0] - before[model][0]
        executions = after[model][1] - before[model][1]
        assert inferences == count, model
        batch_sizes[model] = inferences / executions
    stages = {
        stage: np.mean([getattr(r.timings, stage).ToNanoseconds() / 1e6 for r in responses])
        for stage in ("decode", "detect", "segment", "embed", "register", "total")
    }
    print(
        f"\n{count} images in {elapsed:.1f} s = {count / elapsed:.1f} images/s, "
        f"{len(stored)} objects; mean Triton batch size: "
        + ", ".join(f"{m} {b:.2f}" for m, b in batch_sizes.items())
        + "; mean ms per image: "
        + ", ".join(f"{s} {v:.0f}" for s, v in stages.items())
        + f"; images in flight: at most {max(in_flight)}, on average "
        f"{np.mean(in_flight):.1f}; orchestrator RSS {rss_before:.0f} -> {rss_after:.0f} MiB"
    )
    assert all(size > 1 for size in batch_sizes.values()), batch_sizes
    assert max(in_flight) == WINDOW  # a full window, never more
    await _wait_until_idle(stub)


async def test_flow_control_reads_a_long_stream_only_as_fast_as_it_is_answered(
    orchestrator: ManagedProcess,
) -> None:
    """The server takes an image only while it has fewer than WINDOW unanswered; beyond
    that, only gRPC's HTTP/2 buffers (a few MiB, whatever the stream's length) hold images
    the client has sent. Big images make that visible: 20 kB ones all fit in the buffers.
    HTTP/2's BDP probing grows the window when the machine is loaded (4.8 MiB buffered on
    an idle machine, 25 MiB seen in CI), so the stream is long (140 MiB) next to that.
    A connection of its own: one that earlier tests used may have grown its window."""
    count = 400
    images = [_png("flow", i, width=400, height=300) for i in range(count)]
    size = len(images[0])
    config = _config(["flow cat"], max_objects_per_image=1, skip_masks=True, skip_embeddings=True)
    sent = answered = most_unanswered = 0

    async def requests() -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
        nonlocal sent, most_unanswered
        yield config
        for i, data in enumerate(images):
            yield _item(f"flow-{i}", data)
            sent += 1
            most_unanswered = max(most_unanswered, sent - answered)

    rss_before = _rss_mib(orchestrator)
    async with grpc.aio.insecure_channel(
        orchestrator.address, options=[("grpc.use_local_subchannel_pool", 1)]
    ) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        async for response in stub.AutoLabel(requests(), timeout=120):
            assert response.status.code == 0, response.status.message
            answered += 1
    rss_after = _rss_mib(orchestrator)
    buffered_mib = (most_unanswered - WINDOW) * size / 2**20
    print(
        f"\n{count} images of {size / 1024:.0f} KiB ({count * size / 2**20:.0f} MiB): at most "
        f"{most_unanswered} sent and unanswered, {WINDOW} of them taken by the server, about "
        f"{buffered_mib:.1f} MiB in gRPC's buffers; orchestrator RSS {rss_before:.0f} -> "
        f"{rss_after:.0f} MiB"
    )
    assert answered == count
    assert most_unanswered < count / 2
    assert buffered_mib < 64


async def test_one_corrupt_image_among_50_fails_alone(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    registry_stub: registry_pb2_grpc.RegistryServiceStub,
) -> None:
    images = _images("corrupt", 49)
    broken = _item("corrupt-broken", _png("corrupt", 99)[:200])  # a truncated PNG
    responses = await _label(stub, [_config(["corrupt cat"]), *images[:25], broken, *images[25:]])
    answers = _by_client_id(responses)
    assert len(answers) == 50
    bad = answers.pop("corrupt-broken")
    assert _code(bad) == grpc.StatusCode.INVALID_ARGUMENT
    assert _bad_fields(bad) == ["item.image.data"]
    assert not bad.objects
    assert not bad.source
    assert all(r.status.code == 0 and r.objects for r in answers.values())
    stored = await _objects(registry_stub, _in_category("corrupt cat"))
    assert len({o.source for o in stored}) == 49
    assert len(stored) == sum(len(r.objects) for r in answers.values())


async def test_resent_images_are_registered_once_and_skip_registered_runs_no_model(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    registry_stub: registry_pb2_grpc.RegistryServiceStub,
    served_triton: TritonHandle,
) -> None:
    classes = ["resend cat"]
    images = _images("resend", 20)
    first = _by_client_id(await _label(stub, [_config(classes), *images]))
    stored = await _objects(registry_stub, _in_category(*classes))
    names = {k: sorted(o.name for o in r.objects) for k, r in first.items()}
    assert len(stored) == sum(len(n) for n in names.values()) > 0
    assert not any(r.already_registered for r in first.values())

    again = _by_client_id(await _label(stub, [_config(classes), *images]))
    assert {k: sorted(o.name for o in r.objects) for k, r in again.items()} == names
    assert all(r.already_registered and r.status.code == 0 for r in again.values())
    assert len(await _objects(registry_stub, _in_category(*classes))) == len(stored)

    before = _triton_counts(served_triton)
    skipped = _by_client_id(await _label(stub, [_config(classes, skip_registered=True), *images]))
    assert _triton_counts(served_triton) == before, "no model ran"
    assert {k: sorted(o.name for o in r.objects) for k, r in skipped.items()} == names
    assert all(r.already_registered for r in skipped.values())
    assert all(not r.timings.HasField("detect") for r in skipped.values())
    assert {k: r.source for k, r in skipped.items()} == {k: r.source for k, r in first.items()}


async def test_every_image_is_kept_byte_for_byte_in_the_registrys_image_store(
    stub: labeling_pb2_grpc.LabelingServiceStub, registry_data: Path
) -> None:
    """Exports need the pixels: the orchestrator hands each image's bytes to the registry."""
    images = _images("kept", 3)
    answers = await _label(stub, [_config(["kept cat"]), *images])
    assert all(r.status.code == 0 for r in answers)
    for request in images:
        data = request.item.image.data
        sha256 = hashlib.sha256(data).hexdigest()
        stored = registry_data / "images" / sha256[:2] / sha256[2:4] / sha256
        assert stored.read_bytes() == data


async def test_a_retry_whose_models_computed_other_numbers_answers_the_stored_objects(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    registry_stub: registry_pb2_grpc.RegistryServiceStub,
) -> None:
    """Triton is not bitwise deterministic across batch sizes: a retry may send the registry
    the same request_id with slightly different numbers, which it refuses. The stored objects
    of the image are the answer then, and nothing is registered twice."""
    classes = ["retry cat"]
    data = _png("retry", 0)
    config = check_config(_config(classes).config, Settings())
    sha = hashlib.sha256(data).hexdigest()
    source = await registry_stub.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE, width=WIDTH, height=HEIGHT, content_sha256=sha
            ),
            return_existing=True,
        ),
        timeout=30,
    )
    earlier = await registry_stub.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=batch_request_id("retry-0", sha, source.name, 0, config.fingerprint),
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source.name,
                        category_name="retry cat",
                        bbox=common_pb2.BoundingBox(x=1, y=1, width=5, height=5),
                        confidence=0.5,
                        detection_model="florence2",
                    )
                )
            ],
            create_missing_categories=True,
        ),
        timeout=30,
    )
    [answer] = await _label(stub, [_config(classes), _item("retry-0", data)])
    assert answer.status.code == 0, answer.status.message
    assert answer.already_registered
    assert [o.name for o in answer.objects] == [o.name for o in earlier.objects]
    assert len(await _objects(registry_stub, _in_category(*classes))) == 1


# --- config and items -------------------------------------------------------------------------


async def test_an_image_before_any_config_fails_and_the_stream_goes_on(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    responses = await _label(
        stub,
        [
            _item("early", _png("early", 0)),
            _config(["early cat"]),
            _item("later", _png("early", 1)),
        ],
    )
    answers = _by_client_id(responses)
    assert _code(answers["early"]) == grpc.StatusCode.FAILED_PRECONDITION
    assert _error_info(answers["early"]).reason == "CONFIG_REQUIRED"
    assert answers["later"].status.code == 0
    assert answers["later"].objects


async def test_a_later_config_applies_to_the_images_after_it(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    responses = await _label(
        stub,
        [
            _config(["switch cat"]),
            _item("first", _png("switch", 0)),
            _config(["switch dog"], skip_masks=True, skip_embeddings=True),
            _item("second", _png("switch", 1)),
        ],
    )
    answers = _by_client_id(responses)
    assert {o.category_name for o in answers["first"].objects} == {"switch cat"}
    assert all(o.has_mask and o.has_embedding for o in answers["first"].objects)
    second = answers["second"].objects
    assert {o.category_name for o in second} == {"switch dog"}
    assert second
    assert not any(o.has_mask or o.has_embedding for o in second)
    assert not answers["second"].timings.HasField("segment")
    assert not answers["second"].timings.HasField("embed")


@pytest.mark.parametrize(
    ("config", "code", "field"),
    [
        (labeling_pb2.AutoLabelConfig(), grpc.StatusCode.INVALID_ARGUMENT, "config.class_names"),
        (
            labeling_pb2.AutoLabelConfig(class_names=["cat", "Cat"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.class_names[1]",
        ),
        (
            labeling_pb2.AutoLabelConfig(class_names=["categories/cat"]),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.class_names[0]",
        ),
        (
            labeling_pb2.AutoLabelConfig(class_names=["cat"], min_confidence=1.5),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.min_confidence",
        ),
        (
            labeling_pb2.AutoLabelConfig(class_names=["cat"], max_objects_per_image=-1),
            grpc.StatusCode.INVALID_ARGUMENT,
            "config.max_objects_per_image",
        ),
        (None, grpc.StatusCode.INVALID_ARGUMENT, "payload"),
    ],
    ids=["no-classes", "twice", "resource-name", "confidence", "max", "empty"],
)
async def test_a_bad_config_fails_the_stream_after_answering_the_images_before_it(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    config: labeling_pb2.AutoLabelConfig | None,
    code: grpc.StatusCode,
    field: str,
) -> None:
    bad = (
        labeling_pb2.AutoLabelRequest()
        if config is None
        else labeling_pb2.AutoLabelRequest(config=config)
    )
    call = stub.AutoLabel(
        _aiter([_config(["config cat"]), _item("before", _png("config", 0)), bad]), timeout=60
    )
    answers: list[labeling_pb2.AutoLabelResponse] = []
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _collect(call, answers)
    assert [(a.client_id, a.status.code) for a in answers] == [("before", 0)]
    assert caught.value.code() == code
    assert _trailer_fields(caught.value) == [field]


async def _collect(
    call: AsyncIterable[labeling_pb2.AutoLabelResponse],
    into: list[labeling_pb2.AutoLabelResponse],
    *,
    kill_after: tuple[int, ManagedProcess] | None = None,
) -> None:
    """Append the answers to `into`; with `kill_after=(n, process)`, SIGKILL the process
    once n answers have arrived."""
    async for response in call:
        into.append(response)
        if kill_after is not None and len(into) == kill_after[0]:
            kill_after[1].process.kill()


def _trailer_fields(err: grpc.aio.AioRpcError) -> list[str]:
    return [v.field for v in rpc_error_details(err).field_violations]


async def _aiter(
    messages: Iterable[labeling_pb2.AutoLabelRequest],
) -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
    for message in messages:
        yield message


async def test_a_client_id_still_in_flight_fails_the_second_image(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    responses = await _label(
        stub,
        [_config(["twin cat"]), _item("twin", _png("twin", 0)), _item("twin", _png("twin", 1))],
    )
    assert sorted((r.client_id, _code(r).name) for r in responses) == [
        ("twin", "INVALID_ARGUMENT"),
        ("twin", "OK"),
    ]
    failed = next(r for r in responses if r.status.code)
    assert _error_info(failed).reason == "DUPLICATE_CLIENT_ID"
    assert _bad_fields(failed) == ["item.client_id"]


def _gif() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, format="GIF")
    return buffer.getvalue()


async def test_bad_items_fail_alone_naming_their_field(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    too_big = _png("items", 0, width=500, height=401)  # 200,500 pixels > MAX_IMAGE_PIXELS
    responses = await _label(
        stub,
        [
            _config(["items cat"]),
            _item("", _png("items", 1)),
            _item("x" * 5000, _png("items", 2)),
            _item("empty", b""),
            _item("gif", _gif()),
            _item("huge", too_big),
            labeling_pb2.AutoLabelRequest(
                item=labeling_pb2.AutoLabelItem(
                    client_id="uri", image=common_pb2.Image(uri="/etc/passwd")
                )
            ),
            labeling_pb2.AutoLabelRequest(item=labeling_pb2.AutoLabelItem(client_id="no-image")),
            _item("no-key", _png("items", 3), frame=labeling_pb2.FramePosition(frame_index=1)),
            _item(
                "negative",
                _png("items", 4),
                frame=labeling_pb2.FramePosition(video_key="v", frame_index=-1),
            ),
            _item(
                "said-size",
                _png("items", 5),
                frame=labeling_pb2.FramePosition(video_key="v", video_width=10, video_height=10),
            ),
            _item(
                "back-in-time",
                _png("items", 6),
                frame=labeling_pb2.FramePosition(
                    video_key="v", timestamp=duration_pb2.Duration(seconds=-1)
                ),
            ),
            _item("nul", _png("items", 7), display_name="a\x00b"),
            _item("fine", _png("items", 8)),
        ],
    )
    found = {r.client_id: (_code(r).name, _bad_fields(r)) for r in responses}
    assert found == {
        "": ("INVALID_ARGUMENT", ["item.client_id"]),
        "x" * 5000: ("INVALID_ARGUMENT", ["item.client_id"]),
        "empty": ("INVALID_ARGUMENT", ["item.image.data"]),
        "gif": ("INVALID_ARGUMENT", ["item.image.data"]),
        "huge": ("INVALID_ARGUMENT", ["item.image.data"]),
        "uri": ("FAILED_PRECONDITION", []),
        "no-image": ("INVALID_ARGUMENT", ["item.image"]),
        "no-key": ("INVALID_ARGUMENT", ["item.frame.video_key"]),
        "negative": ("INVALID_ARGUMENT", ["item.frame.frame_index"]),
        "said-size": ("INVALID_ARGUMENT", ["item.frame.video_width"]),
        "back-in-time": ("INVALID_ARGUMENT", ["item.frame.timestamp"]),
        "nul": ("INVALID_ARGUMENT", ["item.display_name"]),
        "fine": ("OK", []),
    }
    reasons = {r.client_id: _error_info(r).reason for r in responses}
    assert reasons["huge"] == "IMAGE_TOO_LARGE"
    assert reasons["gif"] == "UNSUPPORTED_IMAGE_FORMAT"


async def test_an_image_without_detections_is_answered_with_its_source_and_no_objects(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    # The random tiny Florence-2 is never confident: nothing passes min_confidence 1.
    [answer] = await _label(
        stub, [_config(["none cat"], min_confidence=1.0), _item("none", _png("none", 0))]
    )
    assert answer.status.code == 0
    assert answer.source.startswith("sources/")
    assert not answer.objects
    assert answer.timings.HasField("detect")
    assert not answer.timings.HasField("segment")


async def test_video_frames_of_one_key_land_in_one_video_source_at_their_indexes(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    registry_stub: registry_pb2_grpc.RegistryServiceStub,
) -> None:
    def frame(key: str, index: int, **sizes: int) -> labeling_pb2.AutoLabelRequest:
        return _item(
            f"{key}#{index}",
            _png(key, index, **sizes),
            frame=labeling_pb2.FramePosition(
                video_key=key,
                frame_index=index,
                timestamp=duration_pb2.Duration(nanos=index * 40_000_000),
            ),
        )

    messages = [
        _config(["video cat"]),
        *[frame("clip-a.mp4", i) for i in (0, 1, 2, 5, 7)],
        *[frame("clip-b.mp4", i) for i in (3, 4)],
        frame("clip-a.mp4", 9, width=64, height=48),  # not the video's size
    ]
    answers = _by_client_id(await _label(stub, messages))
    wrong = answers.pop("clip-a.mp4#9")
    assert _code(wrong) == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(wrong).reason == "FRAME_SIZE_MISMATCH"
    assert all(r.status.code == 0 and r.objects for r in answers.values())
    for key, indexes in (("clip-a.mp4", [0, 1, 2, 5, 7]), ("clip-b.mp4", [3, 4])):
        mine = [r for k, r in answers.items() if k.startswith(key)]
        [source_name] = {r.source for r in mine}
        assert sorted(r.frame_index for r in mine) == indexes
        assert all(o.frame_index == r.frame_index for r in mine for o in r.objects)
        source = await registry_stub.GetSource(
            registry_pb2.GetSourceRequest(name=source_name), timeout=30
        )
        assert source.kind == common_pb2.SOURCE_KIND_VIDEO
        assert (source.display_name, source.width, source.height) == (key, WIDTH, HEIGHT)
        frames = await registry_stub.ListFrames(
            registry_pb2.ListFramesRequest(parent=source_name), timeout=30
        )
        assert [f.frame_index for f in frames.frames] == indexes
        assert frames.frames[1].timestamp.ToNanoseconds() == indexes[1] * 40_000_000
    assert answers["clip-a.mp4#0"].source != answers["clip-b.mp4#3"].source


async def test_a_video_keyed_by_its_hash_resumes_in_a_later_stream(
    stub: labeling_pb2_grpc.LabelingServiceStub,
    registry_stub: registry_pb2_grpc.RegistryServiceStub,
    served_triton: TritonHandle,
) -> None:
    key = hashlib.sha256(b"resume.mp4 contents").hexdigest()

    def frames(video_key: str) -> list[labeling_pb2.AutoLabelRequest]:
        return [
            _item(
                f"resume#{i}",
                _png("resume", i),
                display_name="resume.mp4",
                frame=labeling_pb2.FramePosition(video_key=video_key, frame_index=i),
            )
            for i in range(4)
        ]

    first = _by_client_id(await _label(stub, [_config(["resume cat"]), *frames(key)]))
    again = _by_client_id(await _label(stub, [_config(["resume cat"]), *frames(key)]))
    [source_name] = {r.source for r in [*first.values(), *again.values()]}
    source = await registry_stub.GetSource(
        registry_pb2.GetSourceRequest(name=source_name), timeout=30
    )
    assert (source.content_sha256, source.display_name) == (key, "resume.mp4")
    assert source.frame_count == 4
    names = {k: sorted(o.name for o in r.objects) for k, r in first.items()}
    assert {k: sorted(o.name for o in r.objects) for k, r in again.items()} == names
    assert all(r.already_registered for r in again.values())
    assert source.object_count == sum(len(n) for n in names.values())

    before = _triton_counts(served_triton)
    skipped = await _label(stub, [_config(["resume cat"], skip_registered=True), *frames(key)])
    assert _triton_counts(served_triton) == before, "no model ran"
    assert {r.client_id: sorted(o.name for o in r.objects) for r in skipped} == names

    # Any other key names a new video in each stream.
    plain = [await _label(stub, [_config(["resume cat"]), *frames("resume.mp4")[:1]])]
    plain.append(await _label(stub, [_config(["resume cat"]), *frames("resume.mp4")[:1]]))
    assert plain[0][0].source != plain[1][0].source


async def test_a_video_key_that_is_the_hash_of_an_image_is_refused(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    data = _png("not-video", 0)
    [image] = await _label(stub, [_config(["not video cat"]), _item("image", data)])
    frame = _item(
        "frame",
        _png("not-video", 1),
        frame=labeling_pb2.FramePosition(video_key=hashlib.sha256(data).hexdigest()),
    )
    [answer] = await _label(stub, [_config(["not video cat"]), frame])
    assert image.status.code == 0
    assert _code(answer) == grpc.StatusCode.INVALID_ARGUMENT
    assert _error_info(answer).reason == "NOT_A_VIDEO"


# --- grpcurl ----------------------------------------------------------------------------------


def test_grpcurl_streams_a_config_and_an_image_through_reflection(
    orchestrator: ManagedProcess,
) -> None:
    messages = [
        # confidence_threshold 0: the tiny Florence-2's confidences are near 0.
        {
            "config": {
                "class_names": ["grpcurl cat"],
                "max_objects_per_image": 2,
                "confidence_threshold": 0,
            }
        },
        {
            "item": {
                "client_id": "from-grpcurl",
                "image": {"data": base64.b64encode(_png("grpcurl", 0)).decode()},
                "display_name": "grpcurl.png",
            }
        },
    ]
    result = subprocess.run(
        [
            str(GRPCURL),
            "-plaintext",
            "-max-time",
            "60",
            "-d",
            "@",
            orchestrator.address,
            "agentic_labeling.v1.LabelingService/AutoLabel",
        ],
        input="\n".join(json.dumps(m) for m in messages),
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    response = json.loads(result.stdout)
    assert response["client_id"] == "from-grpcurl"
    assert response["source"].startswith("sources/")
    assert 0 < len(response["objects"]) <= 2
    assert {o["category_name"] for o in response["objects"]} == {"grpcurl cat"}
    assert all(o["has_mask"] and o["has_embedding"] for o in response["objects"])


# --- cancellation and deadlines ---------------------------------------------------------------


async def test_a_cancelled_stream_frees_the_window_and_the_server_goes_on(
    stub: labeling_pb2_grpc.LabelingServiceStub,
) -> None:
    call = stub.AutoLabel(_aiter([_config(["cancel cat"]), *_images("cancel", 100)]), timeout=120)
    received = 0
    async for _ in call:
        received += 1
        if received == 5:
            break
    call.cancel()
    assert await _images_in_flight(stub) <= WINDOW
    await _wait_until_idle(stub)
    [answer] = await _label(stub, [_config(["cancel cat"]), _item("after", _png("cancel", 500))])
    assert answer.status.code == 0


def _label_blocking(
    address: str, messages: Iterable[labeling_pb2.AutoLabelRequest], timeout_s: float
) -> list[labeling_pb2.AutoLabelResponse]:
    with grpc.insecure_channel(address) as channel:
        blocking = labeling_pb2_grpc.LabelingServiceStub(channel)
        return list(blocking.AutoLabel(iter(messages), timeout=timeout_s))


async def test_a_passed_deadline_ends_the_stream_and_frees_the_window(
    stub: labeling_pb2_grpc.LabelingServiceStub, orchestrator: ManagedProcess
) -> None:
    # The synchronous stub: grpc.aio may report a stream that ends while it is still writing
    # requests as INTERNAL "Failed execute_batch" (grpc/grpc#36066) instead of its status.
    messages = [_config(["deadline cat"]), *_images("deadline", 300)]
    with pytest.raises(grpc.RpcError) as caught:
        await asyncio.to_thread(_label_blocking, orchestrator.address, messages, 1.0)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    await _wait_until_idle(stub)


async def test_a_bad_config_after_images_still_being_sent_fails_the_stream(
    stub: labeling_pb2_grpc.LabelingServiceStub, orchestrator: ManagedProcess
) -> None:
    bad = labeling_pb2.AutoLabelRequest(config=labeling_pb2.AutoLabelConfig(class_names=[" "]))
    messages = [_config(["late cat"]), *_images("late", 3), bad, *_images("late-after", 200)]
    with pytest.raises(grpc.RpcError) as caught:
        await asyncio.to_thread(_label_blocking, orchestrator.address, messages, 60)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _trailer_fields(caught.value) == ["config.class_names[0]"]
    await _wait_until_idle(stub)


async def test_with_triton_down_each_image_is_unavailable_and_the_stream_goes_on(
    mesh: Mesh,
) -> None:
    async with grpc.aio.insecure_channel(mesh.orchestrator.address) as channel:
        down = labeling_pb2_grpc.LabelingServiceStub(channel)
        responses = await _label(down, [_config(["down cat"]), *_images("down", 3)])
    assert sorted((r.client_id, _code(r).name) for r in responses) == [
        ("down-0", "UNAVAILABLE"),
        ("down-1", "UNAVAILABLE"),
        ("down-2", "UNAVAILABLE"),
    ]
    assert {_error_info(r).metadata["model"] for r in responses} == {"florence2"}


async def test_a_registry_of_another_embedding_length_stops_the_orchestrator_before_any_image(
    mesh: Mesh, served_triton: TritonHandle, tmp_path: Path
) -> None:
    """The mesh's registry stores 8-d embeddings, the tiny DINOv2 makes 32-d ones: a deployment
    mistake, found at start-up (issue 14.3) instead of image by image; more cases in
    test_mesh_status_with_triton.py."""
    flags = ["--triton-url", served_triton.address, "--registry-url", mesh.registry.address]

    with pytest.raises(Unavailable, match="gives 32-dimensional embeddings"):
        start_server_process("orchestrator", tmp_path, flags)


async def test_an_orchestrator_killed_mid_stream_and_a_rerun_register_every_image_once(
    served_triton: TritonHandle,
    registry: ManagedProcess,
    registry_stub: registry_pb2_grpc.RegistryServiceStub,
    tmp_path: Path,
) -> None:
    classes = ["crash cat"]
    messages = [_config(classes), *_images("crash", 60)]
    flags = ["--triton-url", served_triton.address, "--registry-url", registry.address]

    first = start_server_process("orchestrator", tmp_path / "first", flags)
    before_kill: list[labeling_pb2.AutoLabelResponse] = []
    try:
        async with grpc.aio.insecure_channel(first.address) as channel:
            call = labeling_pb2_grpc.LabelingServiceStub(channel).AutoLabel(
                _aiter(messages), timeout=120
            )
            with pytest.raises(grpc.aio.AioRpcError):  # the server dies under the stream
                await _collect(call, before_kill, kill_after=(10, first))
    finally:
        first.process.kill()
        first.process.wait()
    assert len(before_kill) >= 10

    second = start_server_process("orchestrator", tmp_path / "second", flags)
    try:
        async with grpc.aio.insecure_channel(second.address) as channel:
            rerun = _by_client_id(
                await _label(labeling_pb2_grpc.LabelingServiceStub(channel), messages)
            )
    finally:
        assert second.stop() == 0
    assert len(rerun) == 60
    assert all(r.status.code == 0 and r.objects for r in rerun.values())
    for answered in before_kill:
        assert {o.name for o in rerun[answered.client_id].objects} == {
            o.name for o in answered.objects
        }
    stored = await _objects(registry_stub, _in_category(*classes))
    registered = [o.name for r in rerun.values() for o in r.objects]
    assert len(registered) == len(set(registered))
    assert sorted(o.name for o in stored) == sorted(registered)


def _metric(url: str, line_start: str) -> float:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        text = response.read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(line_start))


async def test_labelled_images_are_counted_on_the_orchestrators_metrics(
    stub: labeling_pb2_grpc.LabelingServiceStub, orchestrator: ManagedProcess
) -> None:
    url = orchestrator.metrics_url
    assert url is not None
    ok = 'alabel_images_labelled_total{outcome="ok"}'
    failed = 'alabel_images_labelled_total{outcome="failed"}'
    before_ok, before_failed = _metric(url, ok), _metric(url, failed)
    before_objects = _metric(url, "alabel_objects_registered_total")
    broken = _item("metrics-broken", b"not an image")
    responses = await _label(stub, [_config(["metrics cat"]), *_images("metrics", 3), broken])
    registered = sum(len(r.objects) for r in responses)
    assert _metric(url, ok) - before_ok == 3
    assert _metric(url, failed) - before_failed == 1
    assert _metric(url, "alabel_objects_registered_total") - before_objects == registered
    assert _metric(url, "alabel_labeling_window_in_flight") == 0
