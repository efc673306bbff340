"""`make demo`: start the mesh on loopback, call it the ways users will, stop it cleanly.

What this shows today: tiny random-weight Florence-2, SAM2 and DINOv2 served by the real
tritonserver from model_repository/ with dynamic batching; Detect / Segment / Embed on one
image; its objects registered in the registry (embedded Postgres, qdrant-edge, mask files) and
found again by filter and by similarity; gRPC health, reflection for grpcurl, precise errors,
and a clean stop on SIGTERM. The weights are random, so the boxes mean nothing. AutoLabel
(which will do detect-to-register in one stream), datasets and training are not built yet.
"""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import grpc
import numpy as np
from PIL import Image, ImageDraw
from rich.console import Console
from rich.table import Table
from transformers.utils import logging as transformers_logging

from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.dinov2 import Dinov2Embedder
from agentic_labeling.models.tiny import make_tiny_models
from agentic_labeling.servers.error_status import describe_rpc_error
from agentic_labeling.triton_server import (
    TritonHandle,
    TritonLaunch,
    default_model_repository,
    start_triton,
)
from agentic_labeling.v1 import (
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

GRPCURL = Path(sys.executable).parent / "grpcurl"
console = Console()


def grpcurl(*args: str) -> str:
    command = [str(GRPCURL), "-plaintext", *args]
    console.print(f"[dim]$ grpcurl -plaintext {' '.join(args)}[/dim]")
    result = subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)
    return (result.stdout + result.stderr).strip()


def show_mesh_status(orchestrator: ManagedProcess) -> None:
    with grpc.insecure_channel(orchestrator.address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        status = stub.GetMeshStatus(labeling_pb2.GetMeshStatusRequest(), timeout=15)
    table = Table(title=f"GetMeshStatus (orchestrator {status.version})")
    for column in ("component", "address", "reachable", "version / message"):
        table.add_column(column)
    for name, component in (("triton", status.triton), ("registry", status.registry)):
        table.add_row(
            name,
            component.address,
            "yes" if component.reachable else "no",
            component.version or component.message,
        )
    console.print(table)
    for model in status.models:
        console.print(f"model {model.name:<10} ready={model.ready}")


def demo_image() -> bytes:
    image = Image.new("RGB", (320, 240), (90, 140, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((40, 60, 150, 170), fill=(220, 180, 40))
    draw.rectangle((190, 90, 290, 200), fill=(60, 160, 80))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def show_models(orchestrator: ManagedProcess, registry: ManagedProcess) -> None:
    console.rule("Detect, Segment, Embed on one image (random weights: the boxes mean nothing)")
    image = common_pb2.Image(data=demo_image())
    with grpc.insecure_channel(orchestrator.address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)
        detected = stub.Detect(
            labeling_pb2.DetectRequest(image=image, class_names=["ball", "box"], max_detections=3),
            timeout=60,
        )
        for d in detected.detections:
            b = d.bbox
            console.print(
                f"{d.class_name:<5} confidence {d.confidence:.3f}  "
                f"box x={b.x:.1f} y={b.y:.1f} w={b.width:.1f} h={b.height:.1f}"
            )
        boxes = [d.bbox for d in detected.detections]
        masks = stub.Segment(labeling_pb2.SegmentRequest(image=image, boxes=boxes), timeout=60)
        embedded = stub.Embed(labeling_pb2.EmbedRequest(image=image, boxes=boxes), timeout=60)
    pixels = [sum(m.mask.rle.counts[1::2]) for m in masks.masks]
    console.print(f"SAM2 masks: {len(masks.masks)}, object pixels {pixels}")
    norms = [round(float(np.linalg.norm(e.values)), 4) for e in embedded.embeddings]
    console.print(
        f"DINOv2 embeddings: {len(norms)} of dimension {embedded.dimension}, norms {norms}"
    )
    register(registry, image.data, detected, masks, embedded)


def register(
    registry: ManagedProcess,
    data: bytes,
    detected: labeling_pb2.DetectResponse,
    masks: labeling_pb2.SegmentResponse,
    embedded: labeling_pb2.EmbedResponse,
) -> None:
    console.rule("Registered, then found again by filter and by similarity")
    with grpc.insecure_channel(registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        source = stub.CreateSource(
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(
                    kind=common_pb2.SOURCE_KIND_IMAGE,
                    width=detected.image_width,
                    height=detected.image_height,
                    display_name="demo.png",
                    content_sha256=hashlib.sha256(data).hexdigest(),
                ),
                return_existing=True,
            ),
            timeout=30,
        )
        created = stub.BatchCreateObjects(
            registry_pb2.BatchCreateObjectsRequest(
                request_id=str(uuid.uuid5(uuid.NAMESPACE_URL, source.name)),
                create_missing_categories=True,
                requests=[
                    registry_pb2.CreateObjectRequest(
                        object=registry_pb2.LabeledObject(
                            source=source.name,
                            category_name=d.class_name,
                            bbox=d.bbox,
                            confidence=d.confidence,
                            detection_model=detected.model,
                            quality_score=m.predicted_iou,
                        ),
                        mask=m.mask,
                        embedding=e,
                    )
                    for d, m, e in zip(
                        detected.detections, masks.masks, embedded.embeddings, strict=True
                    )
                ],
            ),
            timeout=30,
        )
        console.print(
            f"BatchCreateObjects: {len(created.objects)} objects, "
            f"{len(created.merged)} merged as duplicates (IoU > 0.9)"
        )
        listed = stub.ListObjects(
            registry_pb2.ListObjectsRequest(filter='category = "ball"', order_by="confidence desc"),
            timeout=30,
        )
        console.print(f'ListObjects(category = "ball"): {listed.total_size} objects')
        if created.objects:
            query = created.objects[0]
            found = stub.SearchSimilar(
                registry_pb2.SearchSimilarRequest(object=query.name, top_k=5), timeout=30
            )
            for result in found.results:
                console.print(f"  similar to {query.name}: {result.object.name} {result.score:.3f}")
        stats = stub.GetStats(registry_pb2.GetStatsRequest(), timeout=30)
        console.print(
            "GetStats: " + ", ".join(f"{c.display_name}={c.count}" for c in stats.per_category)
        )


def show_precise_error(registry: ManagedProcess) -> None:
    console.rule("A bad request gets INVALID_ARGUMENT naming the field")
    with grpc.insecure_channel(registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        request = registry_pb2.ListObjectsRequest(filter='categroy = "cat"')
        try:
            stub.ListObjects(request, timeout=10)
        except grpc.RpcError as err:
            console.print(f"ListObjects(filter={request.filter!r})")
            console.print(f"  -> {describe_rpc_error(err)}", markup=False, highlight=False)


def main() -> int:
    console.rule("AgenticLabeling demo: the mesh on loopback")
    console.print(
        "Florence-2, SAM2 and DINOv2 run on the real tritonserver with TINY RANDOM WEIGHTS: "
        "the plumbing is real, the labels are meaningless. For real weights, put checkpoints in "
        "transformers format under DIR/florence2, DIR/sam2 and DIR/dinov2 and start Triton with "
        "`alabel --models-dir DIR triton start`. AutoLabel, datasets and training are not "
        "built yet: their RPCs answer UNIMPLEMENTED."
    )
    with tempfile.TemporaryDirectory(prefix="alabel-demo-") as tmp:
        workdir = Path(tmp)
        started: list[ManagedProcess] = []
        triton: TritonHandle | None = None
        try:
            transformers_logging.disable_progress_bar()
            make_tiny_models(workdir / "models")
            console.print("built tiny models; starting tritonserver (about 10 s on 2 cores)")
            triton = start_triton(
                TritonLaunch(
                    model_repository=default_model_repository(),
                    grpc_port=0,
                    http_port=0,
                    metrics_port=0,
                    models_dir=workdir / "models",
                    log_file=workdir / "tritonserver.log",
                    device="cpu",
                )
            )
            console.print(f"started tritonserver at {triton.address}")
            common = ["--data-dir", str(workdir / "data"), "--log-format", "text"]
            # The registry stores embeddings of the served DINOv2's dimension (32 for tiny).
            dimension = Dinov2Embedder.load(workdir / "models" / "dinov2").dimension
            registry = start_server_process(
                "registry", workdir, [*common, "--embedding-dimension", str(dimension)]
            )
            started.append(registry)
            orchestrator = start_server_process(
                "orchestrator",
                workdir,
                [*common, "--registry-url", registry.address, "--triton-url", triton.address],
            )
            started.append(orchestrator)
            for process in started:
                console.print(f"started {process.name:<12} at {process.address}")
            show_models(orchestrator, registry)

            console.rule("Reflection: grpcurl lists and describes without .proto files")
            console.print(grpcurl(registry.address, "list"))
            console.print(grpcurl(orchestrator.address, "list"))
            method = "agentic_labeling.v1.RegistryService.ListObjects"
            console.print(grpcurl(registry.address, "describe", method))
            console.print(grpcurl(orchestrator.address, "grpc.health.v1.Health/Check"))

            console.rule("The orchestrator sees the mesh")
            show_mesh_status(orchestrator)
            show_precise_error(registry)
        finally:
            console.rule("Stopping with SIGTERM")
            for process in reversed(started):
                console.print(f"{process.name:<12} exited with status {process.stop()}")
            if triton is not None:
                console.print(f"tritonserver exited with status {triton.stop()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
