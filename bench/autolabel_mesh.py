"""AutoLabel through the whole mesh against the models alone: what the orchestrator and the
registry cost on top of Triton.

One tritonserver serves model_repository/ for the whole run. For each level K of
`--concurrency`, side by side on the same images (`bench.models_gpu.synthetic_images`: the
same seed, size and shapes per image as the models_gpu tables) and the same workload (detect
`--classes`, at most `--max-detections` boxes, segment every box, embed every masked box):

1. `triton_only_K`: the models alone, driven as `bench.models_gpu` drives them (its
   `run_streams`): K concurrent client loops, each labelling one image at a time through
   Triton. No decoding check, no duplicate suppression, no registry.
2. `orchestrator_K`: a real `alabel serve orchestrator` process and a real `alabel serve
   registry` process (embedded PostgreSQL, qdrant-edge, mask files, image store), both fresh
   for this K, on loopback. The images go through one AutoLabel bidirectional stream, which is
   what a user runs: `alabel label DIR --in-flight K`. K images in flight means the client
   keeps at most K images unanswered, and the orchestrator's labelling window
   (`--labeling-window K`) holds K images at once. Each image is decoded and checked, its
   source is created with the image's bytes, the models run on Triton, duplicates are
   suppressed, and its objects (box, mask, embedding) are registered in one
   BatchCreateObjects.
   With `--triton-shared-memory on,off`, both settings of the orchestrator's
   `triton_shared_memory` run side by side at each K (`orchestrator_shm_K` is the one with it
   on: the images reach Triton through /dev/shm instead of inside the gRPC messages).

The orchestrator's `max_objects_per_image` is `--max-detections`, the detector's budget, as
in Triton-only. Its duplicate suppression (IoU above 0.9, same class) may keep fewer objects
than Triton-only's boxes. Objects/image is reported for both.

Before each measurement, `--warmup` other images (the next seed) go through the same path
and are not counted. Latency per image is measured on the client, from sending an image to
its answer. For the orchestrator, the mean time per stage that the server reports is kept
too (decode, register, detect, segment, embed, total), to show where the time goes.

The registry is checked after every orchestrator run, and the run fails (exit status 1) when
the check fails. It must hold exactly the objects that AutoLabel reported: ListObjects'
total_size after the run, less its value after the warm-up, equals the objects answered, and
the object names match. Every object must have a mask and an embedding, and every image's
bytes must be in the registry's image store. Every image must be answered OK once. Each K
gets a fresh registry (a new data directory) and a fresh orchestrator, so the counts are
exact and no image finds itself already registered.

Reported per variant: images/s, objects/s, objects per image, per-image latency p50/p95,
Triton's average batch size per model (inference_count / execution_count, deltas around the
run), the CPU time per image of each process (tritonserver with its model stubs, the
orchestrator, the registry, its PostgreSQL, this benchmark's client; bench/process_cpu.py),
and for the orchestrator its images/s over Triton-only's at the same K. A JSON of
everything goes to `--out`; a markdown table goes to stdout.

On this 2-core CPU machine, with the tiny random-weight models:

    alabel models make-tiny /tmp/tiny-models
    python -m bench.autolabel_mesh --models-dir /tmp/tiny-models --images 200 \\
        --concurrency 1,4,16 --max-detections 4 --out autolabel_mesh.json

Without `--models-dir`, tiny models are built in the work directory. The tiny models' passes
are cheap, so the figures compare serving paths (what the orchestrator and the registry add
per image). They are not model throughput, and random weights say nothing about label
quality; the output says so. With real weights on a GPU (`--device cuda`), the same command
measures the real thing.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import grpc
import numpy as np

from agentic_labeling.clients.triton_models import TritonModels
from agentic_labeling.errors import DomainError
from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.models.tiny import make_tiny_models
from agentic_labeling.registry.files.image_store import ImageStore
from agentic_labeling.triton_server import TritonLaunch, default_model_repository, start_triton
from agentic_labeling.v1 import (
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)
from bench.models_gpu import (
    DEFAULT_CLASSES,
    Workload,
    batch_deltas,
    image_size,
    machine,
    positive_int_list,
    run_streams,
    synthetic_images,
    triton_counts,
)
from bench.process_cpu import CpuGroup, cpu_seconds, cpu_used

__all__ = ["MeshCheckFailed", "StreamRun", "VariantResult", "check_registry", "main"]

MODELS = ("florence2", "sam2", "dinov2")
STAGES = ("decode", "register", "detect", "segment", "embed", "total")
CPU_GROUPS = ("tritonserver", "orchestrator", "registry", "postgres", "benchmark client")
# Fewer parameters than this: a tiny random test model (DINOv2-small, the smallest real
# one, has 22M).
_TINY_PARAMETERS = 5_000_000
_STREAM_TIMEOUT_S = 3600.0
_SERVER_START_TIMEOUT_S = 120.0
_PAGE = 1000  # ListObjects' largest page

Kind = Literal["triton_only", "orchestrator"]


class MeshCheckFailed(Exception):
    """AutoLabel's answers and what the registry holds disagree, or an image failed."""


@dataclass
class VariantResult:
    """One path's run over every image at one level of concurrency."""

    name: str
    kind: Kind
    description: str
    in_flight: int
    images: int
    seconds: float
    images_per_s: float
    objects: int  # Triton only: boxes segmented and embedded; orchestrator: objects registered
    objects_per_s: float
    objects_per_image: float
    latency_ms_p50: float
    latency_ms_p95: float
    # Per model: inferences, executions and their ratio, the average batch Triton formed.
    triton_batches: dict[str, dict[str, float | None]] = field(default_factory=dict)
    # CPU milliseconds per image of each process group (bench/process_cpu.py) during the run.
    cpu_ms_per_image: dict[str, float] = field(default_factory=dict)
    # Orchestrator only.
    over_triton_only: float | None = None
    registry_objects: int | None = None  # ListObjects total_size after, less before
    registry_images_stored: int | None = None  # images found in the registry's image store
    server_stage_ms_mean: dict[str, float] = field(default_factory=dict)
    server_exit_status: dict[str, int] = field(default_factory=dict)
    triton_shared_memory: bool | None = None  # the orchestrator's setting


def _variant(
    name: str,
    kind: Kind,
    description: str,
    in_flight: int,
    seconds: float,
    latencies_s: Sequence[float],
    objects_per_image: Sequence[int],
    **extra: Any,
) -> VariantResult:
    latencies_ms = np.asarray(latencies_s, dtype=np.float64) * 1000.0
    objects = int(sum(objects_per_image))
    if "cpu_s" in extra:
        extra["cpu_ms_per_image"] = {
            name: 1000.0 * seconds / len(objects_per_image)
            for name, seconds in extra.pop("cpu_s").items()
        }
    return VariantResult(
        name=name,
        kind=kind,
        description=description,
        in_flight=in_flight,
        images=len(objects_per_image),
        seconds=seconds,
        images_per_s=len(objects_per_image) / seconds,
        objects=objects,
        objects_per_s=objects / seconds,
        objects_per_image=float(np.mean(objects_per_image)),
        latency_ms_p50=float(np.percentile(latencies_ms, 50)),
        latency_ms_p95=float(np.percentile(latencies_ms, 95)),
        **extra,
    )


# --- the servers ------------------------------------------------------------------------------


@dataclass
class Mesh:
    """A fresh registry (its own data directory) and an orchestrator in front of it."""

    registry: ManagedProcess
    orchestrator: ManagedProcess
    data_dir: Path
    # Each server's exit status on SIGTERM, filled in as they stop.
    exit_status: dict[str, int]


@contextlib.contextmanager
def running_mesh(
    triton_address: str,
    run_dir: Path,
    in_flight: int,
    embedding_dimension: int,
    *,
    shared_memory: bool = False,
) -> Iterator[Mesh]:
    """Start a registry and an orchestrator on loopback; stop both, and remove the registry's
    data, on the way out (on error too)."""
    # Outside the work dir: the embedded Postgres may run as another user, and pytest resets
    # its own tmp directories to 0700 (tests/conftest.py, registry_data_dir).
    data_dir = Path(tempfile.mkdtemp(prefix="autolabel_mesh-registry-"))
    try:
        registry = start_server_process(
            "registry",
            run_dir,
            [
                "--data-dir",
                str(data_dir),
                "--embedding-dimension",
                str(embedding_dimension),
                "--shutdown-grace-s",
                "5",
            ],
            timeout_s=_SERVER_START_TIMEOUT_S,
        )
        exit_status: dict[str, int] = {}
        try:
            orchestrator = start_server_process(
                "orchestrator",
                run_dir,
                [
                    "--triton-url",
                    triton_address,
                    "--registry-url",
                    registry.address,
                    "--labeling-window",
                    str(in_flight),
                    "--triton-shared-memory",
                    "on" if shared_memory else "off",
                    "--shutdown-grace-s",
                    "5",
                ],
                timeout_s=_SERVER_START_TIMEOUT_S,
            )
            try:
                yield Mesh(registry, orchestrator, data_dir, exit_status)
            finally:
                exit_status["orchestrator"] = orchestrator.stop()
        finally:
            exit_status["registry"] = registry.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def _cpu_groups(triton_pid: int, mesh: Mesh | None = None) -> list[CpuGroup]:
    """Triton, the mesh's servers (Postgres apart from the registry) and this process."""
    groups = [CpuGroup("tritonserver", roots=[triton_pid])]
    if mesh is not None:
        groups += [
            CpuGroup("orchestrator", roots=[mesh.orchestrator.process.pid]),
            # The postmaster runs with `-D DATA_DIR/postgres`; its backends are its children.
            CpuGroup("postgres", marker=str(mesh.data_dir / "postgres")),
            CpuGroup("registry", roots=[mesh.registry.process.pid]),
        ]
    return [*groups, CpuGroup("benchmark client", roots=[os.getpid()])]


# --- Triton only ------------------------------------------------------------------------------


async def measure_triton_only(
    address: str,
    triton_pid: int,
    images: Sequence[bytes],
    warmup_images: Sequence[bytes],
    workload: Workload,
    in_flight: int,
) -> VariantResult:
    """`in_flight` client loops straight to Triton, as bench.models_gpu measures them."""
    groups = _cpu_groups(triton_pid)
    async with TritonModels(address, deadline_s=600.0) as models:
        if warmup_images:
            await run_streams(models, warmup_images, workload, in_flight)
        before = await asyncio.to_thread(triton_counts, address)
        cpu_before = cpu_seconds(groups)
        seconds, latencies, boxes = await run_streams(models, images, workload, in_flight)
        cpu_after = cpu_seconds(groups)
        after = await asyncio.to_thread(triton_counts, address)
    return _variant(
        f"triton_only_{in_flight}",
        "triton_only",
        f"Triton only, {in_flight} in flight",
        in_flight,
        seconds,
        latencies,
        boxes,
        triton_batches=batch_deltas(before, after),
        cpu_s=cpu_used(cpu_before, cpu_after),
    )


# --- orchestrator + registry ------------------------------------------------------------------


@dataclass
class StreamRun:
    """One AutoLabel stream's wall time, and each image's latency and answer."""

    seconds: float
    latencies_s: list[float]
    responses: list[labeling_pb2.AutoLabelResponse]  # in the images' order


async def auto_label(
    address: str,
    images: Sequence[bytes],
    workload: Workload,
    in_flight: int,
    client_prefix: str,
) -> StreamRun:
    """One AutoLabel stream with at most `in_flight` images unanswered (as `alabel label
    --in-flight`); each image's latency runs from its sending to its answer."""
    sent = [0.0] * len(images)
    latencies = [0.0] * len(images)
    answers: dict[int, labeling_pb2.AutoLabelResponse] = {}
    credits = asyncio.Semaphore(in_flight)
    config = labeling_pb2.AutoLabelConfig(
        class_names=list(workload.classes),
        max_objects_per_image=workload.max_detections,
        confidence_threshold=0.0,  # every box the detector writes is worked on and registered
    )

    async def requests() -> AsyncIterator[labeling_pb2.AutoLabelRequest]:
        yield labeling_pb2.AutoLabelRequest(config=config)
        for index, data in enumerate(images):
            await credits.acquire()
            sent[index] = time.perf_counter()
            yield labeling_pb2.AutoLabelRequest(
                item=labeling_pb2.AutoLabelItem(
                    client_id=f"{client_prefix}{index}",
                    image=common_pb2.Image(data=data),
                    display_name=f"{client_prefix}{index}.jpg",
                )
            )

    async with grpc.aio.insecure_channel(address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        start = time.perf_counter()
        async for answer in stub.AutoLabel(requests(), timeout=_STREAM_TIMEOUT_S):
            index = int(answer.client_id.removeprefix(client_prefix))
            if index in answers:
                raise MeshCheckFailed(f"image {answer.client_id} was answered twice")
            latencies[index] = time.perf_counter() - sent[index]
            answers[index] = answer
            credits.release()
        seconds = time.perf_counter() - start
    missing = sorted(set(range(len(images))) - set(answers))
    if missing:
        raise MeshCheckFailed(f"{len(missing)} images were never answered, first {missing[:5]}")
    responses = [answers[i] for i in range(len(images))]
    failed = [r for r in responses if r.status.code != 0]
    if failed:
        raise MeshCheckFailed(
            f"{len(failed)} of {len(images)} images failed; first: {failed[0].client_id}:"
            f" code {failed[0].status.code}, {failed[0].status.message}"
        )
    return StreamRun(seconds, latencies, responses)


async def registry_objects(address: str) -> tuple[int, list[registry_pb2.LabeledObject]]:
    """ListObjects' total_size, and every object (all pages)."""
    found: list[registry_pb2.LabeledObject] = []
    async with grpc.aio.insecure_channel(address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        request = registry_pb2.ListObjectsRequest(page_size=_PAGE)
        first = await stub.ListObjects(request, timeout=60)
        total, page = first.total_size, first
        while True:
            found.extend(page.objects)
            if not page.next_page_token:
                return total, found
            request.page_token = page.next_page_token
            page = await stub.ListObjects(request, timeout=60)


def _answered_names(responses: Sequence[labeling_pb2.AutoLabelResponse]) -> set[str]:
    return {o.name for r in responses for o in r.objects}


def check_registry(
    data_dir: Path,
    images: Sequence[bytes],
    run: StreamRun,
    warmup_names: set[str],
    total_before: int,
    total_after: int,
    stored: Sequence[registry_pb2.LabeledObject],
) -> tuple[int, int]:
    """Raise MeshCheckFailed unless the registry holds exactly what AutoLabel reported:
    the objects (each with mask and embedding) and the images' bytes. Returns the objects
    counted (total_size delta) and the images found in the image store."""
    replayed = [r.client_id for r in run.responses if r.already_registered]
    if replayed:
        raise MeshCheckFailed(
            f"{len(replayed)} images were answered as already registered in a fresh registry"
            f" (first {replayed[0]})"
        )
    answered = _answered_names(run.responses)
    counted = total_after - total_before
    if counted != len(answered):
        raise MeshCheckFailed(
            f"AutoLabel reported {len(answered)} objects, but the registry's object count grew"
            f" by {counted} ({total_before} -> {total_after})"
        )
    stored_names = {o.name for o in stored}
    if len(stored) != total_after or stored_names != answered | warmup_names:
        raise MeshCheckFailed(
            f"the registry lists {len(stored)} objects ({total_after} by total_size);"
            f" {len(answered - stored_names)} reported objects are missing, and"
            f" {len(stored_names - answered - warmup_names)} stored ones were not reported"
        )
    incomplete = [
        o.name for o in stored if o.name in answered and not (o.has_mask and o.has_embedding)
    ]
    if incomplete:
        raise MeshCheckFailed(
            f"{len(incomplete)} registered objects lack a mask or an embedding (first"
            f" {incomplete[0]})"
        )
    store = ImageStore(data_dir / "images")
    kept = sum(store.find(hashlib.sha256(data).hexdigest()) is not None for data in images)
    if kept != len(images):
        raise MeshCheckFailed(
            f"only {kept} of {len(images)} images are in the registry's image store"
        )
    return counted, kept


def _stage_means(responses: Sequence[labeling_pb2.AutoLabelResponse]) -> dict[str, float]:
    """Mean milliseconds per image in each stage, as the orchestrator reports them."""
    means = {}
    for stage in STAGES:
        values = [
            getattr(r.timings, stage).ToNanoseconds() / 1e6
            for r in responses
            if r.timings.HasField(stage)
        ]
        means[stage] = float(np.mean(values)) if values else 0.0
    return means


def measure_orchestrator(
    triton_address: str,
    triton_pid: int,
    run_dir: Path,
    images: Sequence[bytes],
    warmup_images: Sequence[bytes],
    workload: Workload,
    in_flight: int,
    embedding_dimension: int,
    *,
    shared_memory: bool = False,
) -> VariantResult:
    """AutoLabel with `in_flight` images in flight through a fresh mesh, checked against the
    registry."""
    with running_mesh(
        triton_address, run_dir, in_flight, embedding_dimension, shared_memory=shared_memory
    ) as mesh:
        address = mesh.orchestrator.address
        warmup_names: set[str] = set()
        if warmup_images:
            warm = asyncio.run(auto_label(address, warmup_images, workload, in_flight, "warmup-"))
            warmup_names = _answered_names(warm.responses)
        total_before, _ = asyncio.run(registry_objects(mesh.registry.address))
        groups = _cpu_groups(triton_pid, mesh)
        before = triton_counts(triton_address)
        cpu_before = cpu_seconds(groups)
        run = asyncio.run(auto_label(address, images, workload, in_flight, "image-"))
        cpu_after = cpu_seconds(groups)
        after = triton_counts(triton_address)
        total_after, stored = asyncio.run(registry_objects(mesh.registry.address))
        counted, kept = check_registry(
            mesh.data_dir, images, run, warmup_names, total_before, total_after, stored
        )
    stopped_badly = {name: status for name, status in mesh.exit_status.items() if status != 0}
    if stopped_badly:
        print(
            f"autolabel_mesh: servers exited with {stopped_badly} on SIGTERM (logs: {run_dir})",
            file=sys.stderr,
        )
    return _variant(
        f"orchestrator_shm_{in_flight}" if shared_memory else f"orchestrator_{in_flight}",
        "orchestrator",
        f"{_path_name('orchestrator', shared_memory)}, {in_flight} in flight",
        in_flight,
        run.seconds,
        run.latencies_s,
        [len({o.name for o in r.objects}) for r in run.responses],
        triton_batches=batch_deltas(before, after),
        cpu_s=cpu_used(cpu_before, cpu_after),
        registry_objects=counted,
        registry_images_stored=kept,
        server_stage_ms_mean=_stage_means(run.responses),
        server_exit_status=dict(mesh.exit_status),
        triton_shared_memory=shared_memory,
    )


# --- the run ----------------------------------------------------------------------------------


def measure(
    args: argparse.Namespace,
    models_dir: Path,
    images: Sequence[bytes],
    warmup_images: Sequence[bytes],
    workload: Workload,
    embedding_dimension: int,
    work_dir: Path,
) -> list[VariantResult]:
    """Both paths at every level, on one tritonserver that is stopped on the way out."""
    handle = start_triton(
        TritonLaunch(
            model_repository=args.model_repository or default_model_repository(),
            grpc_port=0,
            http_port=0,
            metrics_port=0,
            models_dir=models_dir,
            log_file=work_dir / "tritonserver.log",
            device="gpu" if args.device == "cuda" else "cpu",
            ready_timeout_s=args.ready_timeout_s,
        )
    )
    results: list[VariantResult] = []
    try:
        for in_flight in args.concurrency:
            served = asyncio.run(
                measure_triton_only(
                    handle.address, handle.pid, images, warmup_images, workload, in_flight
                )
            )
            results.append(served)
            for shared in args.triton_shared_memory:
                meshed = measure_orchestrator(
                    handle.address,
                    handle.pid,
                    work_dir / f"mesh-{in_flight}{'-shm' if shared else ''}",
                    images,
                    warmup_images,
                    workload,
                    in_flight,
                    embedding_dimension,
                    shared_memory=shared,
                )
                meshed.over_triton_only = meshed.images_per_s / served.images_per_s
                results.append(meshed)
                print(
                    f"autolabel_mesh: {in_flight} in flight: Triton only"
                    f" {served.images_per_s:.1f} images/s, {_path_name('orchestrator', shared)}"
                    f" {meshed.images_per_s:.1f} images/s",
                    file=sys.stderr,
                )
    finally:
        handle.stop()
    return results


# --- the report -------------------------------------------------------------------------------


def _path_name(kind: Kind, shared_memory: bool | None) -> str:
    if kind == "triton_only":
        return "Triton only"
    return "orchestrator + registry" + (", shared memory" if shared_memory else "")


def _number(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _batches(result: VariantResult) -> str:
    return " / ".join(
        _number(result.triton_batches[m]["average_batch_size"], 2)
        for m in MODELS
        if m in result.triton_batches
    )


def markdown(report: dict[str, Any], results: Sequence[VariantResult]) -> str:
    """The tables (with their command, machine and caveats) to paste into BENCHMARKS.md."""
    title = "AutoLabel through the orchestrator and the registry, against Triton only"
    caveat = report["caveat"]
    lines = [f"### {title}" + (f": {caveat.split(':')[0].upper()}" if caveat else ""), ""]
    if caveat:
        lines += [f"**{caveat}.**", ""]
    settings = report["settings"]
    gpus = ", ".join(report["machine"]["gpus"]) or "no GPU"
    lines += [
        f"Command: `{report['command']}`",
        "",
        f"Machine: {report['machine']['cpu']} ({report['machine']['cpu_cores_usable']} cores),"
        f" {gpus}; Triton device {settings['device']}.",
        "",
        f"Workload per image: detect {len(settings['classes'])} classes (at most"
        f" {settings['max_detections']} boxes) → segment every box → embed every masked box;"
        f" the orchestrator also decodes, creates the source with the image's bytes and"
        f" registers every object (mask, embedding) in one BatchCreateObjects."
        f" {report['images']['count']} images ({report['images']['source']}), after"
        f" {settings['warmup']} warm-up images. K in flight: Triton only, K client loops;"
        " orchestrator, one AutoLabel stream with K images unanswered and"
        " `--labeling-window K`.",
        "",
        "| In flight | Path | Images/s | Objects/s | Objects/image | p50 (ms) | p95 (ms)"
        " | Triton batch florence2 / sam2 / dinov2 | Orchestrator / Triton only"
        " | Objects in registry |",
        "|---:|---|---:|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in results:
        path = _path_name(r.kind, r.triton_shared_memory)
        stored = "-" if r.registry_objects is None else str(r.registry_objects)
        lines.append(
            f"| {r.in_flight} | {path} | {_number(r.images_per_s, 2)}"
            f" | {_number(r.objects_per_s, 1)} | {_number(r.objects_per_image, 2)}"
            f" | {_number(r.latency_ms_p50)} | {_number(r.latency_ms_p95)} | {_batches(r)}"
            f" | {_number(r.over_triton_only, 2)} | {stored} |"
        )
    meshed = [r for r in results if r.kind == "orchestrator"]
    lines += [
        "",
        "Where an orchestrator image's time goes (mean ms per image as the orchestrator"
        " reports it; detect, segment and embed include Triton's queueing):",
        "",
        "| In flight | " + " | ".join(STAGES) + " | client latency p50 |",
        "|---:|" + "---:|" * (len(STAGES) + 1),
    ]
    for r in meshed:
        stages = " | ".join(_number(r.server_stage_ms_mean.get(s)) for s in STAGES)
        shm = " (shared memory)" if r.triton_shared_memory else ""
        lines.append(f"| {r.in_flight}{shm} | {stages} | {_number(r.latency_ms_p50)} |")
    cores = report["machine"]["cpu_cores_usable"]
    lines += [
        "",
        f"CPU time per image by process (ms; the {cores} cores are shared by all of them, so"
        f" {cores} * 1000 / total is the most images/s the path could reach here):",
        "",
        "| In flight | Path | " + " | ".join(CPU_GROUPS) + " | total |",
        "|---:|---|" + "---:|" * (len(CPU_GROUPS) + 1),
    ]
    for r in results:
        path = _path_name(r.kind, r.triton_shared_memory)
        used = " | ".join(_number(r.cpu_ms_per_image.get(g)) for g in CPU_GROUPS)
        total = sum(r.cpu_ms_per_image.values())
        lines.append(f"| {r.in_flight} | {path} | {used} | {_number(total)} |")
    lines += [
        "",
        "Registry check (every orchestrator run, fresh registry): "
        + "; ".join(
            f"K={r.in_flight}{' (shared memory)' if r.triton_shared_memory else ''}:"
            f" {r.registry_objects} objects stored = {r.objects} reported,"
            f" {r.registry_images_stored}/{r.images} images in the image store"
            for r in meshed
        )
        + ". Every object has a mask and an embedding.",
    ]
    return "\n".join(lines)


# --- command line -----------------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    command = argparse.ArgumentParser(
        prog="python -m bench.autolabel_mesh",
        description="Images through the real AutoLabel stream (orchestrator process, Triton,"
        " registry process) against the same models through Triton alone, at each level of"
        " concurrency; the registry is checked to hold every object reported. With tiny"
        " random models on a CPU the figures are serving-path ratios only.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    command.add_argument(
        "--models-dir",
        type=Path,
        help="florence2/, sam2/, dinov2/ in transformers format; default: tiny random models"
        " built in the work directory",
    )
    command.add_argument(
        "--device", choices=("cpu", "cuda"), default="cpu", help="where Triton runs the models"
    )
    command.add_argument("--images", type=int, default=200, help="images per variant")
    command.add_argument(
        "--image-size", type=image_size, default=(640, 480), help="synthetic images, WIDTHxHEIGHT"
    )
    command.add_argument("--seed", type=int, default=0, help="of the synthetic images")
    command.add_argument(
        "--classes", default=",".join(DEFAULT_CLASSES), help="class names to detect, by commas"
    )
    command.add_argument(
        "--max-detections",
        type=int,
        default=4,
        help="boxes per image, at most (the orchestrator's max_objects_per_image)",
    )
    command.add_argument(
        "--concurrency",
        type=positive_int_list,
        default=[1, 4, 16],
        help="images in flight: Triton-only client loops; AutoLabel's --in-flight and the"
        " orchestrator's labelling window",
    )
    command.add_argument(
        "--triton-shared-memory",
        type=_on_off_list,
        default="off",
        metavar="on|off|on,off",
        help="the orchestrator's triton_shared_memory setting(s), by commas: 'on,off' runs"
        " the orchestrator path with each, side by side at every level",
    )
    command.add_argument(
        "--warmup",
        type=int,
        default=8,
        help="other images run through each path before it is measured, not counted",
    )
    command.add_argument(
        "--model-repository", type=Path, help="default: the checkout's model_repository/"
    )
    command.add_argument("--ready-timeout-s", type=float, default=900.0)
    command.add_argument(
        "--work-dir",
        type=Path,
        help="for tiny models and the servers' logs; default: a temporary directory",
    )
    command.add_argument("--out", type=Path, help="write the JSON results here")
    return command


def _on_off_list(text: str) -> list[bool]:
    """'on,off' as [True, False]: each value once, in the order given."""
    values = [value.strip().lower() for value in text.split(",") if value.strip()]
    if not values or any(v not in ("on", "off") for v in values) or len(set(values)) != len(values):
        raise argparse.ArgumentTypeError(f"expected on, off or both ('on,off'), got {text!r}")
    return [value == "on" for value in values]


def _caveat(device: str, embedder_parameters: int) -> str:
    """What the figures are not, in one sentence ("" for real weights on a GPU)."""
    if embedder_parameters < _TINY_PARAMETERS:
        return (
            f"Tiny random-weight models{' on CPU' if device == 'cpu' else ''}: serving-path"
            " ratios (what the orchestrator and the registry add per image on top of the"
            " models served by Triton), not model throughput or label quality"
        )
    if device == "cpu":
        return "Real models on CPU: ratios only, absolute times count only on a GPU"
    return ""


def main(argv: Sequence[str] | None = None) -> int:
    """Run every variant, print the markdown tables, write --out; the exit status."""
    command = parser()
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = command.parse_args(arguments)
    if args.images < 1 or args.max_detections < 1 or args.warmup < 0:
        command.error("--images and --max-detections must be positive, --warmup >= 0")
    classes = tuple(name.strip() for name in args.classes.split(",") if name.strip())
    if not classes:
        command.error("--classes needs at least one name")
    workload = Workload(classes=classes, max_detections=args.max_detections)
    width, height = args.image_size
    images = synthetic_images(args.images, width=width, height=height, seed=args.seed)
    # Other images for the warm-ups: a measured image must meet an empty registry.
    warmup_images = synthetic_images(args.warmup, width=width, height=height, seed=args.seed + 1)

    try:
        with contextlib.ExitStack() as stack:
            work_dir = args.work_dir or Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="autolabel_mesh-"))
            )
            work_dir.mkdir(parents=True, exist_ok=True)
            models_dir = args.models_dir
            if models_dir is None:
                models_dir = work_dir / "tiny-models"
                print(f"autolabel_mesh: building tiny models in {models_dir}", file=sys.stderr)
                make_tiny_models(models_dir, seed=0)
            embedder = Dinov2Embedder.load(models_dir / "dinov2")
            dimension = embedder.dimension
            parameters = sum(p.numel() for p in embedder.model.parameters())
            del embedder
            results = measure(
                args, models_dir, images, warmup_images, workload, dimension, work_dir
            )
    except (DomainError, MeshCheckFailed) as error:
        print(f"autolabel_mesh: {error}", file=sys.stderr)
        return 1

    caveat = _caveat(args.device, parameters)
    report: dict[str, Any] = {
        "benchmark": "autolabel_mesh",
        "caveat": caveat,
        "command": "python -m bench.autolabel_mesh " + shlex.join(arguments),
        "machine": machine(),
        "settings": {
            "device": args.device,
            "classes": list(classes),
            "max_detections": args.max_detections,
            "concurrency": args.concurrency,
            "warmup": args.warmup,
            "triton_shared_memory": ["on" if v else "off" for v in args.triton_shared_memory],
            "models_dir": str(args.models_dir) if args.models_dir else "tiny, built for the run",
            "embedding_dimension": dimension,
            "dinov2_parameters": parameters,
        },
        "images": {
            "count": len(images),
            "source": f"synthetic {width}x{height} JPEG, seed {args.seed}",
        },
        "ratios": {
            f"{r.name}_over_triton_only_{r.in_flight}": r.over_triton_only
            for r in results
            if r.over_triton_only is not None
        },
        "variants": [asdict(r) for r in results],
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(markdown(report, results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
