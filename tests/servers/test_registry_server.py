"""RegistryService on a real registry process: embedded Postgres, qdrant-edge and mask files.

The object life cycle through the generated stubs, a battery of bad inputs answered with
precise codes by a server that stays alive, and a registry killed with SIGKILL in the middle
of a batch stream that comes back with every batch whole or absent.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from conftest import registry_data_dir
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from PIL import Image

from agentic_labeling.local_mesh import ManagedProcess, start_server_process, unused_port
from agentic_labeling.models.mask_codec import masks_to_rle
from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc

DIM = 8
WIDTH, HEIGHT = 64, 48


def _start_registry(workdir: Path, data_dir: Path) -> ManagedProcess:
    return start_server_process(
        "registry",
        workdir,
        ["--data-dir", str(data_dir), "--embedding-dimension", str(DIM)],
    )


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ManagedProcess]:
    data_dirs = registry_data_dir()
    process = _start_registry(tmp_path_factory.mktemp("registry"), next(data_dirs))
    yield process
    assert process.stop() == 0
    next(data_dirs, None)


@pytest.fixture(scope="module")
def stub(registry: ManagedProcess) -> Iterator[registry_pb2_grpc.RegistryServiceStub]:
    with grpc.insecure_channel(registry.address) as channel:
        yield registry_pb2_grpc.RegistryServiceStub(channel)


def _source(stub: registry_pb2_grpc.RegistryServiceStub, key: str) -> registry_pb2.Source:
    return stub.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=WIDTH,
                height=HEIGHT,
                display_name=key,
                content_sha256=hashlib.sha256(key.encode()).hexdigest(),
            ),
            return_existing=True,
        ),
        timeout=30,
    )


def _vector(seed: int) -> list[float]:
    values = np.random.default_rng(seed).normal(size=DIM)
    return [float(v) for v in values / np.linalg.norm(values)]


def _mask(x: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[5:15, x : x + 10] = True
    return mask


def _new_object(
    source: registry_pb2.Source, x: float, category: str = "cat", seed: int = 0
) -> registry_pb2.CreateObjectRequest:
    return registry_pb2.CreateObjectRequest(
        object=registry_pb2.LabeledObject(
            source=source.name,
            category_name=category,
            bbox=common_pb2.BoundingBox(x=x, y=5, width=10, height=10),
            confidence=0.9,
            detection_model="test",
        ),
        mask=common_pb2.Mask(
            rle=common_pb2.RunLengthEncoding(
                height=HEIGHT, width=WIDTH, counts=masks_to_rle(_mask(int(x)))
            )
        ),
        embedding=common_pb2.Embedding(values=_vector(seed)),
    )


def _batch(
    source: registry_pb2.Source, xs: list[float], request_id: str | None = None
) -> registry_pb2.BatchCreateObjectsRequest:
    return registry_pb2.BatchCreateObjectsRequest(
        request_id=request_id or str(uuid.uuid4()),
        requests=[_new_object(source, x, seed=int(x)) for x in xs],
        create_missing_categories=True,
    )


def test_objects_round_trip_with_masks_search_review_and_delete(
    stub: registry_pb2_grpc.RegistryServiceStub,
) -> None:
    source = _source(stub, "life-cycle")
    created = stub.BatchCreateObjects(_batch(source, [0, 20, 40]), timeout=30)
    first, second, third = created.objects
    assert first.has_mask
    assert first.has_embedding
    assert first.area == 100

    mask = stub.GetObjectMask(registry_pb2.GetObjectMaskRequest(name=first.name), timeout=30)
    assert (mask.width, mask.height) == (WIDTH, HEIGHT)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(mask.png))) > 0, _mask(0))

    similar = stub.SearchSimilar(
        registry_pb2.SearchSimilarRequest(object=first.name, filter='category = "cat"'),
        timeout=30,
    )
    assert {r.object.name for r in similar.results} == {second.name, third.name}

    listed = stub.ListObjects(
        registry_pb2.ListObjectsRequest(
            filter=f'source = "{source.name}"', order_by="frame_index", page_size=2
        ),
        timeout=30,
    )
    assert len(listed.objects) == 2
    assert listed.total_size == 3
    assert listed.next_page_token

    reviewed = stub.ValidateObjects(
        registry_pb2.ValidateObjectsRequest(
            names=[second.name], validated_by="alice", is_validated=True
        ),
        timeout=30,
    )
    assert reviewed.objects[0].is_validated
    assert reviewed.objects[0].validated_by == "alice"
    stats = stub.GetStats(
        registry_pb2.GetStatsRequest(filter=f'source = "{source.name}"'), timeout=30
    )
    assert stats.object_count == 3
    assert abs(stats.validated_fraction - 1 / 3) < 1e-9

    stub.DeleteObject(registry_pb2.DeleteObjectRequest(name=third.name), timeout=30)
    with pytest.raises(grpc.RpcError) as caught:
        stub.GetObject(registry_pb2.GetObjectRequest(name=third.name), timeout=30)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    after = stub.SearchSimilar(registry_pb2.SearchSimilarRequest(object=first.name), timeout=30)
    assert third.name not in {r.object.name for r in after.results}


def test_a_retried_batch_creates_nothing_twice(stub: registry_pb2_grpc.RegistryServiceStub) -> None:
    source = _source(stub, "retry")
    request = _batch(source, [0, 30])
    first = stub.BatchCreateObjects(request, timeout=30)
    again = stub.BatchCreateObjects(request, timeout=30)
    assert again.replayed
    assert [o.name for o in again.objects] == [o.name for o in first.objects]
    listed = stub.ListObjects(
        registry_pb2.ListObjectsRequest(filter=f'source = "{source.name}"'), timeout=30
    )
    assert listed.total_size == 2


def _violations(err: grpc.RpcError) -> list[str]:
    status = rpc_status.from_call(err)  # type: ignore[arg-type]
    fields: list[str] = []
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            fields += [v.field for v in bad.field_violations]
        elif detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            if "field" in info.metadata:
                fields.append(info.metadata["field"])
    return fields


def _bad_inputs(source: registry_pb2.Source) -> list[tuple[str, object, grpc.StatusCode, str]]:
    def batch(**changes: object) -> registry_pb2.BatchCreateObjectsRequest:
        request = _batch(source, [0])
        item = request.requests[0]
        for path, value in changes.items():
            target: object = item
            *parents, leaf = path.split(".")
            for parent in parents:
                target = getattr(target, parent)
            if isinstance(value, list):
                getattr(target, leaf)[:] = value
            elif hasattr(getattr(target, leaf), "CopyFrom"):
                getattr(target, leaf).CopyFrom(value)
            else:
                setattr(target, leaf, value)
        return request

    unknown_source = f"sources/{uuid.uuid4()}"
    invalid, not_found = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND
    return [
        (
            "BatchCreateObjects",
            batch(**{"object.source": unknown_source}),
            not_found,
            "requests[0].object.source",
        ),
        (
            "BatchCreateObjects",
            batch(**{"object.source": "sources/not-a-uuid"}),
            invalid,
            "requests[0].object.source",
        ),
        (
            "BatchCreateObjects",
            batch(**{"object.bbox": common_pb2.BoundingBox(x=60, y=40, width=10, height=10)}),
            invalid,
            "requests[0].object.bbox",
        ),
        (
            "BatchCreateObjects",
            batch(**{"object.bbox": common_pb2.BoundingBox(x=0, y=0, width=0, height=5)}),
            invalid,
            "requests[0].object.bbox",
        ),
        (
            "BatchCreateObjects",
            batch(
                **{"object.bbox": common_pb2.BoundingBox(x=float("nan"), y=0, width=5, height=5)}
            ),
            invalid,
            "requests[0].object.bbox",
        ),
        (
            "BatchCreateObjects",
            batch(**{"object.confidence": 1.5}),
            invalid,
            "requests[0].object.confidence",
        ),
        (
            "BatchCreateObjects",
            batch(**{"embedding.values": [0.1, 0.2]}),
            invalid,
            "requests[0].embedding",
        ),
        (
            "BatchCreateObjects",
            batch(**{"embedding.values": [float("inf")] * DIM}),
            invalid,
            "requests[0].embedding",
        ),
        (
            "BatchCreateObjects",
            batch(
                **{
                    "mask": common_pb2.Mask(
                        rle=common_pb2.RunLengthEncoding(height=2, width=2, counts=[4])
                    )
                }
            ),
            invalid,
            "requests[0].mask",
        ),
        (
            "BatchCreateObjects",
            batch(**{"mask": common_pb2.Mask(png=b"not a png")}),
            invalid,
            "requests[0].mask.png",
        ),
        (
            "BatchCreateObjects",
            registry_pb2.BatchCreateObjectsRequest(
                request_id="x", requests=[_new_object(source, 0)]
            ),
            invalid,
            "request_id",
        ),
        (
            "BatchCreateObjects",
            registry_pb2.BatchCreateObjectsRequest(
                request_id=str(uuid.uuid4()),
                requests=[_new_object(source, 0, category="never-seen")],
            ),
            not_found,
            "requests[0].object.category_name",
        ),
        ("GetObject", registry_pb2.GetObjectRequest(name="objects/123"), invalid, "name"),
        (
            "GetObject",
            registry_pb2.GetObjectRequest(name=f"objects/{uuid.uuid4()}"),
            not_found,
            "name",
        ),
        (
            "ListObjects",
            registry_pb2.ListObjectsRequest(filter="confidence >>= 1"),
            invalid,
            "filter",
        ),
        (
            "ListObjects",
            registry_pb2.ListObjectsRequest(page_token="garbage"),
            invalid,
            "page_token",
        ),
        ("ListObjects", registry_pb2.ListObjectsRequest(order_by="colour"), invalid, "order_by"),
        (
            "UpdateObject",
            registry_pb2.UpdateObjectRequest(
                object=registry_pb2.LabeledObject(name=f"objects/{uuid.uuid4()}"),
                update_mask={"paths": ["is_validated"]},
            ),
            invalid,
            "update_mask.paths[0]",
        ),
        (
            "SearchSimilar",
            registry_pb2.SearchSimilarRequest(vector=common_pb2.Embedding(values=[1.0])),
            invalid,
            "vector",
        ),
        (
            "CreateSource",
            registry_pb2.CreateSourceRequest(source=registry_pb2.Source(width=10, height=10)),
            invalid,
            "source.kind",
        ),
        (
            "CreateSource",
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(kind=common_pb2.SOURCE_KIND_IMAGE, width=4, height=4),
                image_data=b"these bytes are no image",
            ),
            invalid,
            "image_data",
        ),
        (
            "CreateSource",
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(
                    kind=common_pb2.SOURCE_KIND_IMAGE, width=4, height=4, content_sha256="0" * 64
                ),
                image_data=_png_bytes(4, 4),
            ),
            invalid,
            "image_data",
        ),
        (
            "ValidateObjects",
            registry_pb2.ValidateObjectsRequest(
                corrections=[
                    registry_pb2.ObjectCorrection(
                        object=f"objects/{uuid.uuid4()}", mask=_new_object(source, 0).mask
                    )
                ],
                validated_by="reviewer",
            ),
            not_found,
            "corrections[0].object",
        ),
    ]


def _png_bytes(width: int, height: int, seed: int = 0) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_source_sent_with_its_image_is_named_by_the_images_hash(
    stub: registry_pb2_grpc.RegistryServiceStub,
) -> None:
    data = _png_bytes(WIDTH, HEIGHT, seed=7)
    request = registry_pb2.CreateSourceRequest(
        source=registry_pb2.Source(kind=common_pb2.SOURCE_KIND_IMAGE, width=WIDTH, height=HEIGHT),
        image_data=data,
        return_existing=True,
    )
    first = stub.CreateSource(request, timeout=30)
    again = stub.CreateSource(request, timeout=30)
    assert first.content_sha256 == hashlib.sha256(data).hexdigest()
    assert again.name == first.name


def test_bad_inputs_get_precise_codes_naming_the_field_and_the_server_stays_up(
    stub: registry_pb2_grpc.RegistryServiceStub,
) -> None:
    source = _source(stub, "bad-inputs")
    before = stub.GetStats(registry_pb2.GetStatsRequest(), timeout=30).object_count
    cases = _bad_inputs(source)
    assert len(cases) >= 15
    wrong: list[str] = []
    for method, request, code, field in cases:
        try:
            getattr(stub, method)(request, timeout=30)
        except grpc.RpcError as err:
            fields = _violations(err)
            if err.code() != code or not any(f.startswith(field) for f in fields):
                wrong.append(f"{method} {field}: got {err.code().name} {fields} {err.details()}")
        else:
            wrong.append(f"{method} {field}: no error")
    assert wrong == []
    # Nothing was half-written, and the server still answers.
    assert stub.GetStats(registry_pb2.GetStatsRequest(), timeout=30).object_count == before


@pytest.mark.slow
def test_a_registry_killed_mid_stream_keeps_every_batch_whole(tmp_path: Path) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    process = _start_registry(tmp_path / "first", data_dir)
    batches: list[tuple[registry_pb2.Source, registry_pb2.BatchCreateObjectsRequest]] = []
    sent = threading.Event()
    try:
        with grpc.insecure_channel(process.address) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            for index in range(40):
                source = _source(stub, f"crash-{index}")
                batches.append(
                    (source, _batch(source, [0, 15, 30, 45], request_id=str(uuid.uuid4())))
                )

            def stream() -> None:
                for count, (_, request) in enumerate(batches):
                    if count == 10:
                        sent.set()
                    try:
                        stub.BatchCreateObjects(request, timeout=30)
                    except grpc.RpcError:
                        return  # the server died under us

            writer = threading.Thread(target=stream)
            writer.start()
            sent.wait(timeout=60)
            process.process.kill()  # SIGKILL, mid-stream
            process.process.wait()
            writer.join(timeout=60)

        restarted = _start_registry(tmp_path / "second", data_dir)
        with grpc.insecure_channel(restarted.address) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)
            counts = [
                stub.ListObjects(
                    registry_pb2.ListObjectsRequest(filter=f'source = "{source.name}"'), timeout=30
                ).total_size
                for source, _ in batches
            ]
            assert set(counts) <= {0, 4}, counts  # every batch whole or absent
            assert 4 in counts  # some landed before the kill
            first = stub.ReconcileStores(registry_pb2.ReconcileStoresRequest(), timeout=120)
            again = stub.ReconcileStores(registry_pb2.ReconcileStoresRequest(), timeout=120)
            assert again == registry_pb2.ReconcileStoresResponse()  # stores agree
            # Retrying every batch finishes the job without creating anything twice.
            for _, request in batches:
                stub.BatchCreateObjects(request, timeout=30)
            totals = [
                stub.ListObjects(
                    registry_pb2.ListObjectsRequest(filter=f'source = "{source.name}"'), timeout=30
                ).total_size
                for source, _ in batches
            ]
            assert totals == [4] * len(batches)
            final = stub.ReconcileStores(
                registry_pb2.ReconcileStoresRequest(dry_run=True), timeout=120
            )
            assert final == registry_pb2.ReconcileStoresResponse()
        assert restarted.stop() == 0
        landed = counts.count(4)
        print(f"after SIGKILL {landed} of {len(counts)} batches had landed; reconcile: {first}")
    finally:
        if process.process.poll() is None:
            process.process.kill()
        next(data_dirs, None)


def test_alabel_registry_reconcile_reports_as_json(registry: ManagedProcess) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentic_labeling",
            "--registry-url",
            registry.address,
            "registry",
            "reconcile",
            "--dry-run",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "dry_run": True,
        "outbox_applied": 0,
        "vectors_restored": 0,
        "vectors_removed": 0,
        "masks_missing": 0,
        "masks_removed": 0,
    }


def test_alabel_registry_reconcile_says_when_the_registry_is_down() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "agentic_labeling",
            "--registry-url",
            f"127.0.0.1:{unused_port()}",
            "registry",
            "reconcile",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1
    assert "UNAVAILABLE" in result.stderr
