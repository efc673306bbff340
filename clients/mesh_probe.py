"""Asks the mesh's dependencies whether they are up: the registry (gRPC health) and Triton.

Used by LabelingService.GetMeshStatus and the orchestrator's start-up checks. Every probe has
a deadline and reports an unreachable dependency as a fact (reachable=False with the reason,
or None for a number it could not learn), never as an exception; `served_embedding_dimension`,
used by `alabel up` which wants the reason, is the exception.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from tritonclient.grpc import InferenceServerException
from tritonclient.grpc import aio as triton_aio

from agentic_labeling.v1 import registry_pb2, registry_pb2_grpc

__all__ = [
    "ComponentState",
    "ModelState",
    "TritonState",
    "probe_registry",
    "probe_triton",
    "registry_embedding_dimension",
    "served_embedding_dimension",
    "served_max_batch_sizes",
]

REGISTRY_SERVICE = "agentic_labeling.v1.RegistryService"


@dataclass(frozen=True)
class ComponentState:
    address: str
    reachable: bool
    version: str = ""
    message: str = ""


@dataclass(frozen=True)
class ModelState:
    name: str
    version: str
    ready: bool
    reason: str = ""
    inference_count: int = 0
    execution_count: int = 0


@dataclass(frozen=True)
class TritonState:
    server: ComponentState
    models: tuple[ModelState, ...] = field(default=())


async def probe_registry(address: str, *, timeout_s: float) -> ComponentState:
    """SERVING from the registry's health service means reachable."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=REGISTRY_SERVICE), timeout=timeout_s
            )
        except grpc.aio.AioRpcError as err:
            return ComponentState(address, False, message=f"{err.code().name}: {err.details()}")
    serving = reply.status == health_pb2.HealthCheckResponse.SERVING
    status_name = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    return ComponentState(address, serving, message="" if serving else status_name)


async def probe_triton(url: str, *, timeout_s: float) -> TritonState:
    """Triton's readiness, version and every model in its repository with its statistics."""
    client = triton_aio.InferenceServerClient(url)
    try:
        if not await client.is_server_live(client_timeout=timeout_s):
            return TritonState(ComponentState(url, False, message="server is not live"))
        metadata = await client.get_server_metadata(client_timeout=timeout_s)
        index = await client.get_model_repository_index(client_timeout=timeout_s)
        stats = await client.get_inference_statistics(client_timeout=timeout_s)
    except InferenceServerException as exc:
        return TritonState(ComponentState(url, False, message=str(exc.message())))
    finally:
        await client.close()
    counts = {
        (s.name, s.version): (s.inference_count, s.execution_count) for s in stats.model_stats
    }
    models = tuple(
        ModelState(
            name=m.name,
            version=m.version,
            ready=m.state == "READY",
            reason=m.reason,
            inference_count=counts.get((m.name, m.version), (0, 0))[0],
            execution_count=counts.get((m.name, m.version), (0, 0))[1],
        )
        for m in index.models
    )
    return TritonState(ComponentState(url, True, version=metadata.version), models)


def _blank_png(size: int = 32) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (size, size), (127, 127, 127)).save(buffer, format="PNG")
    return buffer.getvalue()


async def served_embedding_dimension(url: str, *, timeout_s: float) -> int:
    """The length of the embeddings the served DINOv2 gives: one small blank image embedded.

    Asking the model itself covers every way of serving it (local weights, hub ids, a Triton
    elsewhere); its config.pbtxt declares the output as variable-length. Raises the domain
    errors of `TritonModels.embed` when it cannot answer.
    """
    from agentic_labeling.clients.triton_models import TritonModels

    async with TritonModels(url, deadline_s=timeout_s) as models:
        embeddings = await models.embed(_blank_png(), [])
    return int(embeddings.shape[-1])


async def registry_embedding_dimension(address: str, *, timeout_s: float) -> int | None:
    """The embedding length the registry stores (GetRegistryInfo); None when it cannot say."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            info = await stub.GetRegistryInfo(
                registry_pb2.GetRegistryInfoRequest(), timeout=timeout_s
            )
        except grpc.aio.AioRpcError:
            return None  # down, or a registry from before GetRegistryInfo (UNIMPLEMENTED)
    return int(info.embedding_dimension) or None


async def served_max_batch_sizes(url: str, *, timeout_s: float) -> dict[str, int] | None:
    """Each served model's max_batch_size, from its config on Triton; None when it cannot say."""
    client = triton_aio.InferenceServerClient(url)
    try:
        index = await client.get_model_repository_index(client_timeout=timeout_s)
        sizes = {}
        for model in index.models:
            if model.state != "READY":
                continue
            reply = await client.get_model_config(model.name, client_timeout=timeout_s)
            sizes[model.name] = int(reply.config.max_batch_size)
    except InferenceServerException:
        return None
    finally:
        await client.close()
    return sizes
