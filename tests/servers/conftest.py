"""Real gRPC servers on loopback for the server tests, and a probe service to poke them with.

The probe service is built from `grpc.method_handlers_generic_handler` with raw-bytes messages
(our own .proto services come later). Every handler shape grpc.aio knows is there: coroutine
unary, async-generator streaming, coroutine streaming through `context.write`, and plain
synchronous functions and generators. Each handler acts on its request payload:

    b"ok:<text>"      echo the payload back
    b"invalid"        raise InvalidArgument naming the field "payload"
    b"missing"        raise NotFound
    b"bug"            raise RuntimeError (with a secret in its text)
    b"many"           raise InvalidArgument with 5000 field violations
    b"huge"           raise FailedPrecondition with an oversized message and metadata
    b"long_name"      raise NotFound with a 10 kB resource name
    b"long_message"   raise InvalidArgument with a 10 kB message
    b"group"          raise NotFound from inside an asyncio.TaskGroup
    b"abort"          call context.abort(FAILED_PRECONDITION) (async handlers only)
    b"block"          wait until the test releases it (async handlers only)
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from training_mesh import shapes_dataset, trained_run, training_mesh  # noqa: F401 (fixtures)

from agentic_labeling.errors import (
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from agentic_labeling.servers.bootstrap import RunningServer, ServiceRegistration, start_server
from agentic_labeling.settings import Settings

PROBE_SERVICE = "agentic_labeling.testing.v1.ProbeService"
SECRET = "hunter2-connection-string"

# kind -> (method name, request streaming, response streaming)
PROBE_METHODS: dict[str, tuple[str, bool, bool]] = {
    "unary_unary": ("UnaryUnary", False, False),
    "unary_stream": ("UnaryStream", False, True),
    "unary_stream_write": ("UnaryStreamWrite", False, True),
    "stream_unary": ("StreamUnary", True, False),
    "stream_stream": ("StreamStream", True, True),
    "sync_unary_unary": ("SyncUnaryUnary", False, False),
    "sync_unary_stream": ("SyncUnaryStream", False, True),
}
ASYNC_KINDS = ("unary_unary", "unary_stream", "unary_stream_write", "stream_unary", "stream_stream")
ALL_KINDS = tuple(PROBE_METHODS)


def probe_outcome(payload: bytes) -> bytes:
    """What every probe handler does with one request payload (synchronous cases)."""
    if payload.startswith(b"ok:"):
        return payload
    if payload == b"invalid":
        raise InvalidArgument("payload is not acceptable", field="payload", reason="BAD_PROBE")
    if payload == b"missing":
        raise NotFound("probe", "probes/42")
    if payload == b"many":
        raise InvalidArgument(
            "every object is wrong",
            violations=[
                FieldViolation(f"objects[{i}].bbox.width", "must be positive") for i in range(5000)
            ],
        )
    if payload == b"long_name":
        raise NotFound("probe", "probes/" + "p" * 10_000)
    if payload == b"long_message":
        raise InvalidArgument("m" * 10_000, field="payload")
    if payload == b"huge":
        raise FailedPrecondition("é" * 5000, metadata={"blob": "x" * 20_000})
    if payload == b"bug":
        raise RuntimeError(f"could not connect with {SECRET}")
    raise AssertionError(f"unknown probe payload {payload!r}")


@dataclass
class ProbeState:
    """Lets a test hold `block` requests in flight and see how many are waiting."""

    release: asyncio.Event = field(default_factory=asyncio.Event)
    blocked: int = 0
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_blocked(self, count: int) -> None:
        async with self.changed:
            await asyncio.wait_for(self.changed.wait_for(lambda: self.blocked >= count), 5)


def make_probe_service() -> tuple[ServiceRegistration, ProbeState]:
    state = ProbeState()

    async def act(payload: bytes, context: Any) -> bytes:
        if payload == b"block":
            async with state.changed:
                state.blocked += 1
                state.changed.notify_all()
            try:
                await state.release.wait()
            finally:
                state.blocked -= 1
            return b"released"
        if payload == b"abort":
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "aborted on purpose")
        if payload == b"group":
            async with asyncio.TaskGroup() as group:
                group.create_task(asyncio.sleep(0))
                group.create_task(act(b"missing", context))
        return probe_outcome(payload)

    async def unary_unary(request: bytes, context: Any) -> bytes:
        return await act(request, context)

    async def unary_stream(request: bytes, context: Any) -> AsyncIterator[bytes]:
        yield b"first"
        yield await act(request, context)

    async def unary_stream_write(request: bytes, context: Any) -> None:
        await context.write(b"first")
        await context.write(await act(request, context))

    async def stream_unary(requests: AsyncIterator[bytes], context: Any) -> bytes:
        answers = [await act(request, context) async for request in requests]
        return b"|".join(answers)

    async def stream_stream(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        yield b"first"
        async for request in requests:
            yield await act(request, context)

    def sync_unary_unary(request: bytes, context: Any) -> bytes:
        return probe_outcome(request)

    def sync_unary_stream(request: bytes, context: Any) -> Iterator[bytes]:
        yield b"first"
        yield probe_outcome(request)

    behaviors: dict[str, Callable[..., Any]] = {
        "unary_unary": unary_unary,
        "unary_stream": unary_stream,
        "unary_stream_write": unary_stream_write,
        "stream_unary": stream_unary,
        "stream_stream": stream_stream,
        "sync_unary_unary": sync_unary_unary,
        "sync_unary_stream": sync_unary_stream,
    }
    constructors = {
        (False, False): grpc.unary_unary_rpc_method_handler,
        (False, True): grpc.unary_stream_rpc_method_handler,
        (True, False): grpc.stream_unary_rpc_method_handler,
        (True, True): grpc.stream_stream_rpc_method_handler,
    }
    handlers = {
        name: constructors[(req_stream, resp_stream)](behaviors[kind])
        for kind, (name, req_stream, resp_stream) in PROBE_METHODS.items()
    }
    generic = grpc.method_handlers_generic_handler(PROBE_SERVICE, handlers)
    registration = ServiceRegistration(
        full_name=PROBE_SERVICE,
        add_to_server=lambda server: server.add_generic_rpc_handlers((generic,)),
    )
    return registration, state


async def call_probe(
    channel: grpc.aio.Channel, kind: str, payload: bytes, *, deadline_s: float = 5.0
) -> list[bytes]:
    """Call the probe method of `kind` with one payload; every response, in order."""
    name, request_streaming, response_streaming = PROBE_METHODS[kind]
    method = f"/{PROBE_SERVICE}/{name}"
    if not request_streaming and not response_streaming:
        return [await channel.unary_unary(method)(payload, timeout=deadline_s)]
    if not request_streaming:
        return [r async for r in channel.unary_stream(method)(payload, timeout=deadline_s)]
    if not response_streaming:
        return [await channel.stream_unary(method)(iter([payload]), timeout=deadline_s)]
    return [r async for r in channel.stream_stream(method)(iter([payload]), timeout=deadline_s)]


@dataclass
class Probe:
    """A running probe server, a channel to it, and the handle on its blocked requests."""

    server: RunningServer
    channel: grpc.aio.Channel
    state: ProbeState
    # Test modules cannot import this conftest (pytest runs with --import-mode=importlib),
    # so the constants they need travel on the fixture.
    service: str = PROBE_SERVICE
    secret: str = SECRET

    async def call(self, kind: str, payload: bytes, *, deadline_s: float = 5.0) -> list[bytes]:
        return await call_probe(self.channel, kind, payload, deadline_s=deadline_s)


# Small limits so the limit tests need no large payloads; a short grace so stops are quick.
TEST_SETTINGS = Settings(
    host="127.0.0.1",
    max_message_bytes=64 * 1024,
    max_concurrent_rpcs=32,
    shutdown_grace_s=1.0,
    log_format="text",
)


@pytest.fixture(scope="session")
def server_settings() -> Settings:
    return TEST_SETTINGS


@pytest.fixture(params=ALL_KINDS)
def handler_kind(request: pytest.FixtureRequest) -> str:
    """Every handler shape of the probe service, sync ones included."""
    return str(request.param)


@pytest.fixture(params=ASYNC_KINDS)
def async_handler_kind(request: pytest.FixtureRequest) -> str:
    """The coroutine and async-generator handler shapes (the ones that can block)."""
    return str(request.param)


@pytest.fixture(scope="session")
async def probe() -> AsyncIterator[Probe]:
    """One probe server for the whole session: tests that need their own use `start_probe`."""
    registration, state = make_probe_service()
    running = await start_server(TEST_SETTINGS, name="probe", port=0, services=[registration])
    async with grpc.aio.insecure_channel(running.address) as channel:
        yield Probe(server=running, channel=channel, state=state)
    state.release.set()
    await running.stop(0)


StartProbe = Callable[..., Awaitable[Probe]]


@pytest.fixture
async def start_probe() -> AsyncIterator[StartProbe]:
    """Start probe servers with chosen settings/port/port file; all stopped at teardown."""
    started: list[Probe] = []

    async def start(
        settings: Settings = TEST_SETTINGS,
        *,
        port: int = 0,
        port_file: Path | None = None,
        services: Sequence[ServiceRegistration] | None = None,
    ) -> Probe:
        registration, state = make_probe_service()
        running = await start_server(
            settings,
            name="probe",
            port=port,
            services=[registration] if services is None else services,
            port_file=port_file,
        )
        probe = Probe(running, grpc.aio.insecure_channel(running.address), state)
        started.append(probe)
        return probe

    yield start
    for probe in started:
        probe.state.release.set()
        await probe.channel.close()
        await probe.server.stop(0)


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A port nothing on 127.0.0.1 listens on right now (the OS picks it)."""

    def pick() -> int:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe_socket:
            probe_socket.bind(("127.0.0.1", 0))
            port: int = probe_socket.getsockname()[1]
            return port

    return pick
