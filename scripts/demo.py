"""`make demo`: start the mesh on loopback, call it the ways users will, stop it cleanly.

What this shows today: the real tritonserver (serving the repository's model_repository/),
the registry and orchestrator servers with the whole agentic_labeling.v1 contract, gRPC
health, reflection for grpcurl, precise errors, and a clean stop on SIGTERM.
The models, the stores and AutoLabel are not built yet; those RPCs answer UNIMPLEMENTED.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from rich.console import Console
from rich.table import Table

from agentic_labeling.local_mesh import ManagedProcess, start_server_process, start_tritonserver
from agentic_labeling.servers.error_status import describe_rpc_error
from agentic_labeling.v1 import labeling_pb2, labeling_pb2_grpc, registry_pb2, registry_pb2_grpc

REPO_ROOT = Path(__file__).resolve().parent.parent
TRITONSERVER = REPO_ROOT / ".triton" / "pytriton" / "tritonserver" / "bin" / "tritonserver"
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
    console.print(f"models on Triton: {len(status.models)} (model serving is not built yet)")


def show_precise_error(registry: ManagedProcess) -> None:
    console.rule("A bad request gets INVALID_ARGUMENT naming the field")
    with grpc.insecure_channel(registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)
        for request in (
            registry_pb2.ListObjectsRequest(filter='categroy = "cat"'),
            registry_pb2.ListObjectsRequest(filter='category = "cat" AND confidence >= 0.5'),
        ):
            try:
                stub.ListObjects(request, timeout=10)
            except grpc.RpcError as err:
                console.print(f"ListObjects(filter={request.filter!r})")
                console.print(f"  -> {describe_rpc_error(err)}", markup=False, highlight=False)


def main() -> int:
    console.rule("AgenticLabeling demo: the mesh's skeleton on loopback")
    console.print(
        "This version has the whole gRPC contract, the servers, health, reflection and the real "
        "tritonserver.\nThe models (Florence-2, SAM2, DINOv2 on Triton), the registry's stores "
        "and AutoLabel are not built yet:\ntheir RPCs answer UNIMPLEMENTED. No labels are made, "
        "so none are shown."
    )
    with tempfile.TemporaryDirectory(prefix="alabel-demo-") as tmp:
        workdir = Path(tmp)
        started: list[ManagedProcess] = []
        try:
            triton = start_tritonserver(TRITONSERVER, REPO_ROOT / "model_repository", workdir)
            started.append(triton)
            common = ["--data-dir", str(workdir / "data"), "--log-format", "text"]
            registry = start_server_process("registry", workdir, common)
            started.append(registry)
            orchestrator = start_server_process(
                "orchestrator",
                workdir,
                [*common, "--registry-url", registry.address, "--triton-url", triton.address],
            )
            started.append(orchestrator)
            for process in started:
                console.print(f"started {process.name:<12} at {process.address}")

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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
