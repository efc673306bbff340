"""How every gRPC server of the platform starts, reports ready, and stops.

One code path for all servers, so each gets the same behaviour: domain errors mapped by
`DomainErrorInterceptor`, explicit message-size and concurrency limits from `Settings`, the
standard gRPC health service (SERVING once started, NOT_SERVING while stopping), reflection so
grpcurl works without .proto files, Prometheus metrics of every RPC (`servers/metrics.py`) on an
HTTP `/metrics` endpoint of its own port, a structured "listening" log line, an optional port
file for a parent process to wait on, and a graceful stop on SIGTERM/SIGINT (in-flight RPCs get
`shutdown_grace_s` to finish, then are cancelled; a second signal cancels them at once).

The metrics port of the registry and the orchestrator comes from `registry_metrics_port` and
`orchestrator_metrics_port` (0: any free port, -1: no endpoint); other servers have none
unless the caller passes `metrics_port`. The bound metrics port is in the "listening" line
(`metrics_port`), on `RunningServer.metrics_port`, and, with a port file `X`, in `X.metrics`
(written before `X`, so a reader that sees `X` finds it; removed on stop like `X`). A server
whose stores refuse to open (a domain error before it listens) writes why to `X.error` (JSON:
message, reason, metadata) before it exits, so `alabel up` can say it in one line.

A CLI command calls `run_server(settings, name=..., port=..., services_factory=...)`; tests
and embedders use `start_server` and `RunningServer.stop` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import descriptor, descriptor_pool
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from agentic_labeling.channel_options import message_size_options
from agentic_labeling.errors import DomainError, Unavailable
from agentic_labeling.logs import configure_logging
from agentic_labeling.servers.error_status import DomainErrorInterceptor
from agentic_labeling.servers.metrics import MetricsEndpoint, RpcMetricsInterceptor
from agentic_labeling.settings import Settings

__all__ = [
    "RunningServer",
    "ServiceRegistration",
    "error_file",
    "metrics_port_file",
    "run_server",
    "serve_until_signalled",
    "start_server",
]

logger = logging.getLogger(__name__)

T = TypeVar("T")

_SERVING = health_pb2.HealthCheckResponse.SERVING

# The setting that holds each server's metrics port; servers not named here have no endpoint
# unless the caller asks for one.
_METRICS_PORT_SETTINGS = {
    "registry": "registry_metrics_port",
    "orchestrator": "orchestrator_metrics_port",
}
_METRICS_OFF = -1

# Keepalive: the server pings idle connections every minute and drops peers that stay silent
# for 20 s (a vanished client must not pin a stream forever); clients may ping every 10 s,
# also without calls, before the server calls it abuse and closes the connection.
_KEEPALIVE_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.http2.min_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 2),
)


@dataclass(frozen=True)
class ServiceRegistration:
    """One service a server hosts: its full protobuf name and how to add it to a server.

    `add_to_server` is typically the generated `add_<Service>Servicer_to_server` bound to a
    servicer, e.g. `functools.partial(add_RegistryServiceServicer_to_server, servicer)`.
    """

    full_name: str
    add_to_server: Callable[[grpc.aio.Server], None]


def _host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 literal in brackets (`[::1]:50051`)."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _server_options(settings: Settings) -> list[tuple[str, int]]:
    return [
        *message_size_options(settings.max_message_bytes),
        # Linux lets two processes bind one port with SO_REUSEPORT and then splits the
        # connections between them; a second server must fail to start instead.
        ("grpc.so_reuseport", 0),
        *_KEEPALIVE_OPTIONS,
    ]


class _ReflectionPool:
    """The default descriptor pool, which also finds the file of a member such as a method.

    protobuf's pool resolves `pkg.Service` but not `pkg.Service.Method`, so without this
    `grpcurl describe pkg.Service.Method` answers "Symbol not found".
    """

    def __init__(self, pool: descriptor_pool.DescriptorPool) -> None:
        self._pool = pool

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)

    def FindFileContainingSymbol(self, symbol: str) -> descriptor.FileDescriptor:
        try:
            return self._pool.FindFileContainingSymbol(symbol)
        except KeyError:
            parent = symbol.rpartition(".")[0]
            if not parent:
                raise
            return self.FindFileContainingSymbol(parent)


def metrics_port_file(port_file: Path) -> Path:
    """Where the metrics port is written beside a port file: `X` -> `X.metrics`."""
    return port_file.with_name(port_file.name + ".metrics")


def _write_text_atomically(path: Path, text: str) -> None:
    """A reader never sees a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def _write_port_file(path: Path, port: int) -> None:
    _write_text_atomically(path, f"{port}\n")


class RunningServer:
    """A started server: where it listens, its health servicer, and how to stop it."""

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        server: grpc.aio.Server,
        health: health.aio.HealthServicer,
        port_file: Path | None,
        metrics_registry: CollectorRegistry | None = None,
        metrics_endpoint: MetricsEndpoint | None = None,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.server = server
        # Services flip their own status here, e.g. NOT_SERVING while a dependency is down.
        self.health = health
        self.port_file = port_file
        # What /metrics serves: the RPC metrics and any the services added.
        self.metrics_registry = (
            metrics_registry if metrics_registry is not None else CollectorRegistry()
        )
        self.metrics_endpoint = metrics_endpoint

    @property
    def metrics_port(self) -> int | None:
        """The bound port of the `/metrics` endpoint; None when it has none."""
        return None if self.metrics_endpoint is None else self.metrics_endpoint.port

    @property
    def address(self) -> str:
        """`host:port` to dial, e.g. `127.0.0.1:50051`."""
        return _host_port(self.host, self.port)

    async def stop(self, grace_s: float) -> None:
        """Stop accepting RPCs; in-flight ones get `grace_s` seconds, then are cancelled.

        Health turns NOT_SERVING first (for good, later `set` calls are ignored) so that
        watchers and load balancers move away. Safe to call again, e.g. with 0 to cut the
        grace short.
        """
        logger.info(
            "stopping", extra={"server": self.name, "address": self.address, "grace_s": grace_s}
        )
        await self.health.enter_graceful_shutdown()
        await self.server.stop(grace_s)
        if self.port_file is not None:
            # A port file outliving its server would send the next reader to a dead port.
            self.port_file.unlink(missing_ok=True)
            metrics_port_file(self.port_file).unlink(missing_ok=True)
        if self.metrics_endpoint is not None:
            # Last, so the final counts of the grace period can still be scraped.
            await asyncio.to_thread(self.metrics_endpoint.stop)
        logger.info("stopped", extra={"server": self.name, "address": self.address})

    async def wait_for_termination(self) -> None:
        """Return once the server has stopped, for whatever reason. Safe to cancel."""
        # grpc.aio awaits its internal shutdown future directly: cancelling a bare
        # wait_for_termination() cancels that future and breaks every later stop().
        await asyncio.shield(self.server.wait_for_termination())


def _metrics_port(settings: Settings, name: str, explicit: int | None) -> int:
    if explicit is not None:
        return explicit
    setting = _METRICS_PORT_SETTINGS.get(name)
    return _METRICS_OFF if setting is None else int(getattr(settings, setting))


def _start_metrics_endpoint(
    registry: CollectorRegistry, name: str, host: str, port: int
) -> MetricsEndpoint | None:
    if port == _METRICS_OFF:
        return None
    try:
        return MetricsEndpoint.start(registry, host, port)
    except OSError as exc:
        address = _host_port(host, port)
        raise Unavailable(
            f"{name} cannot serve metrics on {address}: the port is in use or the address "
            f"does not belong to this machine (--{name}-metrics-port 0 takes any free port, "
            "-1 turns the endpoint off)",
            reason="BIND_FAILED",
            metadata={"server": name, "address": address},
        ) from exc


async def start_server(
    settings: Settings,
    *,
    name: str,
    port: int,
    services: Sequence[ServiceRegistration],
    port_file: Path | None = None,
    metrics_port: int | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> RunningServer:
    """Start a grpc.aio server hosting `services` on `settings.host:port` (0: a free port).

    Its Prometheus `/metrics` endpoint listens on `settings.host:metrics_port` (0: a free
    port, -1: none); None takes the port from the server's setting (`registry_metrics_port`,
    `orchestrator_metrics_port`) and means none for other names. `metrics_registry` is the
    registry served there (a new one when None): a server that records metrics of its own
    (`LabelingMetrics`) creates them on it before starting.

    Returns once it serves and, when `port_file` is given, the bound ports are written there
    (see the module's docstring). Raises `Unavailable` (reason BIND_FAILED) when an address
    cannot be bound, e.g. because another server holds the port.
    """
    registry = metrics_registry if metrics_registry is not None else CollectorRegistry()
    rpc_metrics = RpcMetricsInterceptor(registry)
    server = grpc.aio.server(
        # Metrics outermost: they see the status a domain error was mapped to.
        interceptors=[rpc_metrics, DomainErrorInterceptor()],
        options=_server_options(settings),
        maximum_concurrent_rpcs=settings.max_concurrent_rpcs,
    )
    for service in services:
        service.add_to_server(server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    service_names = [service.full_name for service in services]
    hosted = [*service_names, health.SERVICE_NAME, reflection.SERVICE_NAME]
    reflection.enable_server_reflection(
        hosted, server, pool=_ReflectionPool(descriptor_pool.Default())
    )
    rpc_metrics.initialize(hosted)

    endpoint = _start_metrics_endpoint(
        registry, name, settings.host, _metrics_port(settings, name, metrics_port)
    )
    try:
        bind_address = _host_port(settings.host, port)
        try:
            bound_port: int = server.add_insecure_port(bind_address)
        except RuntimeError as exc:
            raise Unavailable(
                f"{name} cannot listen on {bind_address}: the port is in use or the address "
                "does not belong to this machine",
                reason="BIND_FAILED",
                metadata={"server": name, "address": bind_address},
            ) from exc
        await server.start()
    except BaseException:
        if endpoint is not None:
            endpoint.stop()
        raise
    for service_name in ("", *service_names):
        await health_servicer.set(service_name, _SERVING)

    running = RunningServer(
        name=name,
        host=settings.host,
        port=bound_port,
        server=server,
        health=health_servicer,
        port_file=port_file,
        metrics_registry=registry,
        metrics_endpoint=endpoint,
    )
    logger.info(
        "listening",
        extra={
            "server": name,
            "address": running.address,
            "port": bound_port,
            "metrics_port": running.metrics_port,
            "services": service_names,
        },
    )
    if port_file is not None:
        # The metrics file first: whoever waits for the port file finds both.
        metrics_file = metrics_port_file(port_file)
        if running.metrics_port is None:
            metrics_file.unlink(missing_ok=True)  # a stale one from an earlier run
        else:
            _write_port_file(metrics_file, running.metrics_port)
        _write_port_file(port_file, bound_port)
    return running


_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


@contextlib.contextmanager
def _collect_stop_signals() -> Iterator[asyncio.Queue[signal.Signals]]:
    """Queue SIGTERM and SIGINT on the running loop instead of dying; restore on exit."""
    loop = asyncio.get_running_loop()
    received: asyncio.Queue[signal.Signals] = asyncio.Queue()
    previous = {sig: signal.getsignal(sig) for sig in _STOP_SIGNALS}
    for sig in _STOP_SIGNALS:
        loop.add_signal_handler(sig, received.put_nowait, sig)
    try:
        yield received
    finally:
        for sig in _STOP_SIGNALS:
            loop.remove_signal_handler(sig)
            # remove_signal_handler resets to the default; an embedder's own handler returns.
            if previous[sig] is not None:
                signal.signal(sig, previous[sig])


async def _first_done(*awaitables: Any) -> tuple[int, Any]:
    """Run awaitables side by side; cancel the rest once one finishes.

    Returns the index of the one that finished and its result.
    """
    tasks = [asyncio.ensure_future(a) for a in awaitables]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
    index = next(i for i, task in enumerate(tasks) if task in done)
    return index, tasks[index].result()


async def _serve(
    running: RunningServer, grace_s: float, received: asyncio.Queue[signal.Signals]
) -> None:
    which, first_signal = await _first_done(received.get(), running.wait_for_termination())
    if which == 1:
        return  # stopped by someone else (e.g. `running.stop`): nothing left to do
    logger.info(
        "signal received, stopping gracefully",
        extra={"server": running.name, "signal": first_signal.name, "grace_s": grace_s},
    )
    stopping = asyncio.ensure_future(running.stop(grace_s))
    # shield: the graceful stop must go on when a second signal wins the race below.
    which, second_signal = await _first_done(received.get(), asyncio.shield(stopping))
    if which == 0:
        logger.warning(
            "second signal: cancelling in-flight RPCs now",
            extra={"server": running.name, "signal": second_signal.name},
        )
        await running.stop(0)
    await stopping


async def serve_until_signalled(running: RunningServer, grace_s: float) -> None:
    """Serve until SIGTERM or SIGINT, then stop gracefully (see `RunningServer.stop`).

    Also returns when the server stops on its own. A second signal during the grace period
    cancels the remaining RPCs at once.
    """
    with _collect_stop_signals() as received:
        await _serve(running, grace_s, received)


def error_file(port_file: Path) -> Path:
    """Where a server that failed to start says why, beside its port file: `X` -> `X.error`."""
    return port_file.with_name(port_file.name + ".error")


@contextlib.asynccontextmanager
async def _report_start_failure(
    port_file: Path | None, lifespan: contextlib.AbstractAsyncContextManager[T]
) -> AsyncIterator[T]:
    """Enter `lifespan`; a domain error while opening it (a store that refuses to open) is
    also written, as JSON, to the port file's `.error` file for the process that waits on it."""
    if port_file is not None:
        error_file(port_file).unlink(missing_ok=True)
    try:
        entered = await lifespan.__aenter__()
    except DomainError as error:
        if port_file is not None:
            report = {"message": error.message, "reason": error.reason, "metadata": error.metadata}
            _write_text_atomically(error_file(port_file), json.dumps(report))
        raise
    try:
        yield entered
    except BaseException as error:
        if not await lifespan.__aexit__(type(error), error, error.__traceback__):
            raise
    else:
        await lifespan.__aexit__(None, None, None)


def run_server(
    settings: Settings,
    *,
    name: str,
    port: int,
    services_factory: Callable[
        [],
        Sequence[ServiceRegistration]
        | contextlib.AbstractAsyncContextManager[Sequence[ServiceRegistration]],
    ],
    port_file: Path | None = None,
    metrics_port: int | None = None,
    metrics_registry: CollectorRegistry | None = None,
) -> None:
    """Blocking entry point for a server command: log setup, start, serve until signalled.

    `services_factory` runs inside the event loop, because grpc.aio servicers may need it. It
    returns the services, or an async context manager that yields them: one whose services
    hold resources (the registry's stores) opens them before the server starts and closes
    them after it has stopped, in-flight RPCs included. `metrics_port` and
    `metrics_registry`: see `start_server`.
    """
    configure_logging(settings.log_level, settings.log_format)

    async def main() -> None:
        # Signals are caught before the server starts: one that lands during start-up (a
        # supervisor giving up early) still stops the server cleanly instead of killing it.
        with _collect_stop_signals() as received:
            made = services_factory()
            lifespan = (
                made
                if isinstance(made, contextlib.AbstractAsyncContextManager)
                else contextlib.nullcontext(made)
            )
            async with _report_start_failure(port_file, lifespan) as services:
                running = await start_server(
                    settings,
                    name=name,
                    port=port,
                    services=services,
                    port_file=port_file,
                    metrics_port=metrics_port,
                    metrics_registry=metrics_registry,
                )
                await _serve(running, settings.shutdown_grace_s, received)

    asyncio.run(main())
