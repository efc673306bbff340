"""Prometheus metrics of a server: every RPC counted and timed, labeling progress, `/metrics`.

Each server owns one `prometheus_client.CollectorRegistry` (never the process-wide default),
so several servers in one process (the tests start many) keep their counts apart.
`servers/bootstrap.py` installs `RpcMetricsInterceptor` on every server and serves the
registry over HTTP with `MetricsEndpoint` on `--<server>-metrics-port`.

gRPC metrics, named as go-grpc-prometheus names them so existing dashboards work. Labels:
`grpc_service` (`agentic_labeling.v1.RegistryService`), `grpc_method` (`BatchCreateObjects`),
`grpc_type` (unary, client_stream, server_stream, bidi_stream), and `grpc_code` where noted
(the status code's name: OK, INVALID_ARGUMENT, ...):

    grpc_server_started_total                RPCs whose handler started
    grpc_server_handled_total{grpc_code}     RPCs finished, by status code
    grpc_server_errors_total{grpc_code}      RPCs finished with any code but OK
    grpc_server_handling_seconds             histogram of handler time, 1 ms .. 120 s buckets
                                             (a whole stream is one observation)
    grpc_server_in_flight                    RPCs being handled now
    grpc_server_msg_received_total           request messages (a unary RPC counts 1)
    grpc_server_msg_sent_total               response messages (a unary RPC counts 1 if OK)

The methods of every hosted service the default descriptor pool knows start at 0, so `rate()`
works from the first scrape. RPCs refused before a handler runs (unknown method, over
max_concurrent_rpcs, a message over the size limit) are answered by gRPC itself and are not
counted here; unknown methods never become label values, so a client cannot grow the series.

Labeling metrics, fed by the orchestrator's AutoLabel through `LabelingMetrics`:

    alabel_images_labelled_total{outcome}    images finished: ok | failed | skipped
    alabel_objects_registered_total          objects registered with the registry
    alabel_labeling_window_in_flight         images being labelled now (the window's fill)

Rates are computed by Prometheus from the counters, for example:

    images per second    sum(rate(alabel_images_labelled_total{outcome="ok"}[1m]))
    objects per second   rate(alabel_objects_registered_total[1m])
    error ratio          sum by (grpc_method) (rate(grpc_server_errors_total[5m]))
                         / sum by (grpc_method) (rate(grpc_server_handled_total[5m]))
    p95 latency          histogram_quantile(0.95,
                           sum by (le, grpc_method) (rate(grpc_server_handling_seconds_bucket[5m])))
"""

from __future__ import annotations

import asyncio
import functools
import socket
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, get_args
from wsgiref.simple_server import WSGIRequestHandler, make_server

import grpc
from google.protobuf import descriptor_pool
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from agentic_labeling.servers.handler_wrapping import (
    HANDLER_SHAPES,
    CallHooks,
    HandlerShape,
    WrappingInterceptor,
)

__all__ = [
    "IMAGE_OUTCOMES",
    "LATENCY_BUCKETS_S",
    "ImageOutcome",
    "LabelingMetrics",
    "MetricsEndpoint",
    "RpcMetricsInterceptor",
]

# From a health check (about 1 ms) to a slow unary call on a busy GPU (two minutes).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
)

_METHOD_LABELS = ("grpc_service", "grpc_method", "grpc_type")
_OK = grpc.StatusCode.OK


def _rpc_type(request_streaming: bool, response_streaming: bool) -> str:
    return next(
        shape.rpc_type
        for shape in HANDLER_SHAPES
        if (shape.request_streaming, shape.response_streaming)
        == (request_streaming, response_streaming)
    )


def _split_method(full_method: str) -> tuple[str, str]:
    """`/pkg.Service/Method` -> (`pkg.Service`, `Method`)."""
    service, _, method = full_method.lstrip("/").rpartition("/")
    return service, method


# --- gRPC metrics ------------------------------------------------------------------------


@dataclass(frozen=True)
class _MethodMetrics:
    """The children of every metric for one method, looked up once, not per RPC."""

    labels: tuple[str, str, str]
    started: Counter
    in_flight: Gauge
    handling: Histogram
    received: Counter
    sent: Counter
    handled_by_code: Counter
    errors_by_code: Counter

    def handled(self, code: grpc.StatusCode) -> None:
        self.handled_by_code.labels(*self.labels, code.name).inc()
        if code is not _OK:
            self.errors_by_code.labels(*self.labels, code.name).inc()


class _Rpc:
    """One RPC being recorded: started and in flight now; each wrapper finishes it once."""

    __slots__ = ("_began", "_metrics")

    def __init__(self, metrics: _MethodMetrics) -> None:
        self._metrics = metrics
        metrics.started.inc()
        metrics.in_flight.inc()
        self._began = time.perf_counter()

    def received(self) -> None:
        self._metrics.received.inc()

    def sent(self) -> None:
        self._metrics.sent.inc()

    def finish(self, code: grpc.StatusCode) -> None:
        self._metrics.handling.observe(time.perf_counter() - self._began)
        self._metrics.in_flight.dec()
        self._metrics.handled(code)


class _RecordingContext:
    """The handler's context, recording the status code it sets and the messages it moves.

    grpc.aio gives synchronous handlers a context without `code()`, so the code is taken where
    it is set (`set_code`, `abort`) for both kinds. Everything else passes through.
    """

    def __init__(self, context: Any, rpc: _Rpc) -> None:
        self._context = context
        self._rpc = rpc
        self._code: grpc.StatusCode | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def set_code(self, code: grpc.StatusCode) -> None:
        self._code = code
        self._context.set_code(code)

    def abort(self, code: grpc.StatusCode, *args: Any, **kwargs: Any) -> Any:
        # A coroutine on async contexts (the caller awaits it), a plain call on sync ones.
        self._code = code
        return self._context.abort(code, *args, **kwargs)

    async def read(self) -> Any:
        message = await self._context.read()
        if message is not grpc.aio.EOF:
            self._rpc.received()
        return message

    async def write(self, message: Any) -> None:
        await self._context.write(message)
        self._rpc.sent()

    def final_code(self, error: BaseException | None) -> grpc.StatusCode:
        """The status the client gets, given what the handler raised (None: it returned)."""
        if error is None:
            return self._code or _OK
        if isinstance(error, grpc.aio.AbortError):
            return self._code or grpc.StatusCode.UNKNOWN
        if isinstance(error, asyncio.CancelledError | GeneratorExit):
            remaining = self._context.time_remaining()
            if remaining is not None and remaining <= 0:
                return grpc.StatusCode.DEADLINE_EXCEEDED
            return grpc.StatusCode.CANCELLED
        return grpc.StatusCode.UNKNOWN  # an exception nothing mapped: gRPC answers UNKNOWN


class _CountedRequests:
    """A request stream (async or sync) that counts each message as the handler takes it."""

    def __init__(self, requests: Any, rpc: _Rpc) -> None:
        self._requests = requests
        self._rpc = rpc
        self._iterator: Any = None

    def __aiter__(self) -> _CountedRequests:
        self._iterator = self._requests.__aiter__()
        return self

    async def __anext__(self) -> Any:
        message = await self._iterator.__anext__()
        self._rpc.received()
        return message

    def __iter__(self) -> _CountedRequests:
        self._iterator = iter(self._requests)
        return self

    def __next__(self) -> Any:
        message = next(self._iterator)
        self._rpc.received()
        return message


def _incoming(request: Any, rpc: _Rpc, request_streaming: bool) -> Any:
    if request_streaming:
        return _CountedRequests(request, rpc)
    rpc.received()
    return request


class _RecordedCall(CallHooks):
    """One call of a handler, counted and timed: from its start to the status it ends with."""

    def __init__(self, context: Any, metrics: _MethodMetrics, shape: HandlerShape) -> None:
        self._rpc = _Rpc(metrics)
        self._recording = _RecordingContext(context, self._rpc)
        super().__init__(self._recording)
        self._shape = shape

    def begin(self, request: Any) -> Any:
        return _incoming(request, self._rpc, self._shape.request_streaming)

    def streamed(self) -> None:
        self._rpc.sent()

    def finish(self, error: BaseException | None, response: Any) -> None:
        code = self._recording.final_code(error)
        if not self._shape.response_streaming and response is not None and code is _OK:
            self._rpc.sent()
        self._rpc.finish(code)


class RpcMetricsInterceptor(WrappingInterceptor):
    """Counts and times every RPC of a grpc.aio server into `registry`.

    Install it first (outermost), before `DomainErrorInterceptor`, so it sees the status code
    a domain error was mapped to rather than the raw exception.
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        with_code = (*_METHOD_LABELS, "grpc_code")
        self._started = Counter(
            "grpc_server_started",
            "RPCs whose handler started on the server.",
            _METHOD_LABELS,
            registry=registry,
        )
        self._handled = Counter(
            "grpc_server_handled",
            "RPCs finished on the server, by gRPC status code.",
            with_code,
            registry=registry,
        )
        self._errors = Counter(
            "grpc_server_errors",
            "RPCs finished on the server with a status code other than OK.",
            with_code,
            registry=registry,
        )
        self._handling = Histogram(
            "grpc_server_handling_seconds",
            "Seconds from a handler's start to its end (a whole stream counts once).",
            _METHOD_LABELS,
            buckets=LATENCY_BUCKETS_S,
            registry=registry,
        )
        self._in_flight = Gauge(
            "grpc_server_in_flight",
            "RPCs being handled by the server now.",
            _METHOD_LABELS,
            registry=registry,
        )
        self._received = Counter(
            "grpc_server_msg_received",
            "Request messages received (a unary RPC counts one).",
            _METHOD_LABELS,
            registry=registry,
        )
        self._sent = Counter(
            "grpc_server_msg_sent",
            "Response messages sent (a unary RPC counts one when it succeeds).",
            _METHOD_LABELS,
            registry=registry,
        )
        self._methods: dict[str, _MethodMetrics] = {}

    def _method_metrics(self, full_method: str, rpc_type: str) -> _MethodMetrics:
        found = self._methods.get(full_method)
        if found is None:
            labels = (*_split_method(full_method), rpc_type)
            found = _MethodMetrics(
                labels=labels,
                started=self._started.labels(*labels),
                in_flight=self._in_flight.labels(*labels),
                handling=self._handling.labels(*labels),
                received=self._received.labels(*labels),
                sent=self._sent.labels(*labels),
                handled_by_code=self._handled,
                errors_by_code=self._errors,
            )
            self._handled.labels(*labels, _OK.name)  # so the error ratio has a denominator
            self._methods[full_method] = found
        return found

    def initialize(
        self,
        service_names: Iterable[str],
        pool: descriptor_pool.DescriptorPool | None = None,
    ) -> None:
        """Create every method's series at 0 for the services `pool` (default: the default
        pool) describes; services it does not know (raw-bytes test services) are skipped."""
        pool = pool or descriptor_pool.Default()
        for name in service_names:
            try:
                service = pool.FindServiceByName(name)
            except KeyError:
                continue
            for method in service.methods:
                rpc_type = _rpc_type(method.client_streaming, method.server_streaming)
                self._method_metrics(f"/{service.full_name}/{method.name}", rpc_type)

    def hooks(self, method: str, shape: HandlerShape) -> Callable[[Any], CallHooks]:
        metrics = self._method_metrics(method, shape.rpc_type)
        return functools.partial(_RecordedCall, metrics=metrics, shape=shape)


# --- labeling metrics --------------------------------------------------------------------

ImageOutcome = Literal["ok", "failed", "skipped"]
IMAGE_OUTCOMES: tuple[ImageOutcome, ...] = get_args(ImageOutcome)


class LabelingMetrics:
    """Progress of AutoLabel, for the orchestrator to report as it goes.

    Create it on the registry the orchestrator's `/metrics` serves and hand that registry to
    the server, e.g.::

        registry = CollectorRegistry()
        labeling = LabelingMetrics(registry)
        run_server(..., services_factory=partial(services, settings, labeling),
                   metrics_registry=registry)

    Without a registry it records into a private one (`self.registry`), e.g. in unit tests.
    Every outcome starts at 0, so `rate()` works before the first image of each kind.
    """

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._images = Counter(
            "alabel_images_labelled",
            "Images the orchestrator finished, by outcome: ok (objects registered), failed"
            " (the image's own error), skipped (its content was registered before).",
            ["outcome"],
            registry=self.registry,
        )
        for outcome in IMAGE_OUTCOMES:
            self._images.labels(outcome)
        self._objects = Counter(
            "alabel_objects_registered",
            "Objects the orchestrator registered with the registry.",
            registry=self.registry,
        )
        self._window = Gauge(
            "alabel_labeling_window_in_flight",
            "Images being labelled now, across all streams (at most --labeling-window).",
            registry=self.registry,
        )

    def image_done(self, outcome: ImageOutcome) -> None:
        """One image finished: "ok", "failed" or "skipped"."""
        if outcome not in IMAGE_OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(IMAGE_OUTCOMES)}, got {outcome!r}")
        self._images.labels(outcome).inc()

    def objects_registered(self, count: int) -> None:
        """`count` objects of one image were registered (0 is fine: nothing found)."""
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        self._objects.inc(count)

    def window(self, in_flight: int) -> None:
        """The labeling window now holds `in_flight` images."""
        if in_flight < 0:
            raise ValueError(f"in_flight must not be negative, got {in_flight}")
        self._window.set(in_flight)


# --- the /metrics endpoint ---------------------------------------------------------------


class _QuietRequestHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a scrape every few seconds would flood the server's log."""


def _address_family(host: str, port: int) -> socket.AddressFamily:
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    return infos[0][0]


def _client_host(host: str) -> str:
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"[{host}]" if ":" in host else host


class MetricsEndpoint:
    """Serves one registry as Prometheus text at `http://host:port/metrics`.

    prometheus_client's WSGI app (content negotiation, gzip, `name[]` filters) in a daemon
    thread of its own, so a scrape never waits for the server's event loop.
    """

    # How often the serving thread checks for `stop`: a stop takes at most this long.
    _POLL_S = 0.05

    def __init__(self, server: ThreadingWSGIServer, host: str) -> None:
        self._server = server
        self.host = host
        self.port: int = server.server_port
        self._thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": self._POLL_S},
            name=f"metrics-http-{self.port}",
            daemon=True,
        )
        self._lock = threading.Lock()
        self._stopped = False
        self._thread.start()

    @classmethod
    def start(cls, registry: CollectorRegistry, host: str, port: int) -> MetricsEndpoint:
        """Listen on `host:port` (0: a free port) and serve. Raises OSError if it cannot bind."""

        class Server(ThreadingWSGIServer):
            address_family = _address_family(host, port)

        server = make_server(
            host, port, make_wsgi_app(registry), Server, handler_class=_QuietRequestHandler
        )
        return cls(server, host)

    @property
    def url(self) -> str:
        """Where a client on this machine scrapes it."""
        return f"http://{_client_host(self.host)}:{self.port}/metrics"

    def stop(self) -> None:
        """Stop serving and close the port. Blocks up to 50 ms; safe to call again."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            self._server.shutdown()
            self._server.server_close()
            self._thread.join()
