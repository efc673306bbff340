"""Every server counts and times its RPCs and serves them, with labeling progress, on /metrics.

Real grpc.aio servers on 127.0.0.1 with a raw-bytes test service, real clients, and the real
HTTP endpoint scraped with urllib (loopback, no proxy) and parsed with prometheus_client's own
parser.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from real_parts import Mesh

from agentic_labeling.errors import InvalidArgument, NotFound, Unavailable
from agentic_labeling.servers.bootstrap import (
    RunningServer,
    ServiceRegistration,
    metrics_port_file,
    start_server,
)
from agentic_labeling.servers.metrics import (
    LATENCY_BUCKETS_S,
    LabelingMetrics,
    MetricsEndpoint,
    RpcMetricsInterceptor,
)
from agentic_labeling.settings import Settings

SERVICE = "agentic_labeling.testing.v1.MeteredService"
HEALTH = "grpc.health.v1.Health"
SETTINGS = Settings(host="127.0.0.1", shutdown_grace_s=1.0, log_format="text")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --- a service with every handler shape ----------------------------------------------------


@dataclass
class Gate:
    """Holds `block` calls in flight until the test opens it."""

    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def answer(payload: bytes) -> bytes:
    if payload == b"invalid":
        raise InvalidArgument("payload is not acceptable", field="payload")
    if payload == b"missing":
        raise NotFound("probe", "probes/1")
    if payload == b"bug":
        raise RuntimeError("a handler bug")
    return payload


def metered_handlers(gate: Gate) -> grpc.GenericRpcHandler:
    async def echo(request: bytes, context: Any) -> bytes:
        if request == b"block":
            gate.entered.set()
            await gate.release.wait()
        if request == b"sleep":
            await asyncio.sleep(30)
        return answer(request)

    async def chat(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
        yield b"first"
        async for request in requests:
            yield answer(request)

    async def collect(requests: Any, context: Any) -> bytes:
        parts = []
        while (message := await context.read()) is not grpc.aio.EOF:
            parts.append(answer(message))
        return b"|".join(parts)

    async def announce(request: bytes, context: Any) -> None:
        for _ in range(int(request)):
            await context.write(b"news")

    def sync_echo(request: bytes, context: Any) -> bytes:
        return answer(request)

    def sync_count(request: bytes, context: Any) -> Iterator[bytes]:
        for _ in range(int(request)):
            yield b"n"

    def sync_join(requests: Iterator[bytes], context: Any) -> bytes:
        return b"|".join(answer(r) for r in requests)

    return grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Echo": grpc.unary_unary_rpc_method_handler(echo),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Collect": grpc.stream_unary_rpc_method_handler(collect),
            "Announce": grpc.unary_stream_rpc_method_handler(announce),
            "SyncEcho": grpc.unary_unary_rpc_method_handler(sync_echo),
            "SyncCount": grpc.unary_stream_rpc_method_handler(sync_count),
            "SyncJoin": grpc.stream_unary_rpc_method_handler(sync_join),
        },
    )


def metered_service(gate: Gate) -> ServiceRegistration:
    generic = metered_handlers(gate)
    return ServiceRegistration(SERVICE, lambda server: server.add_generic_rpc_handlers((generic,)))


@dataclass
class Metered:
    server: RunningServer
    channel: grpc.aio.Channel
    gate: Gate

    async def echo(self, payload: bytes, *, deadline_s: float = 5.0) -> bytes:
        response: bytes = await self.channel.unary_unary(f"/{SERVICE}/Echo")(
            payload, timeout=deadline_s
        )
        return response

    def scrape(self) -> Scrape:
        assert self.server.metrics_endpoint is not None
        return scrape(self.server.metrics_endpoint.url)


StartMetered = Callable[..., Any]


@pytest.fixture
async def start_metered() -> AsyncIterator[StartMetered]:
    """Start metered servers (metrics on a free port unless told); all stopped at teardown."""
    started: list[Metered] = []

    async def start(
        settings: Settings = SETTINGS, *, name: str = "metered", **options: Any
    ) -> Metered:
        options.setdefault("metrics_port", 0)
        gate = Gate()
        running = await start_server(
            settings, name=name, port=0, services=[metered_service(gate)], **options
        )
        metered = Metered(running, grpc.aio.insecure_channel(running.address), gate)
        started.append(metered)
        return metered

    yield start
    for metered in started:
        metered.gate.release.set()
        await metered.channel.close()
        await metered.server.stop(0)


@pytest.fixture
async def metered(start_metered: StartMetered) -> Metered:
    server: Metered = await start_metered()
    return server


# --- reading /metrics -------------------------------------------------------------------


@dataclass(frozen=True)
class Scrape:
    """One scrape: every sample by name and labels."""

    text: str
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float]

    def value(self, name: str, **labels: str) -> float:
        """The sample with exactly these labels; KeyError when the series does not exist."""
        return self.samples[(name, frozenset(labels.items()))]

    def value_or_zero(self, name: str, **labels: str) -> float:
        """Like `value`, but a series not created yet counts as 0."""
        return self.samples.get((name, frozenset(labels.items())), 0.0)

    def series(self, name: str, **labels: str) -> dict[frozenset[tuple[str, str]], float]:
        """Every sample of `name` whose labels include `labels`."""
        wanted = set(labels.items())
        return {key: v for (n, key), v in self.samples.items() if n == name and wanted <= key}


def scrape(url: str) -> Scrape:
    with NO_PROXY.open(url, timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }
    return Scrape(text, samples)


def method(name: str, rpc_type: str = "unary", service: str = SERVICE) -> dict[str, str]:
    return {"grpc_service": service, "grpc_method": name, "grpc_type": rpc_type}


async def until(predicate: Callable[[], bool], *, timeout_s: float = 30.0) -> None:
    """Wait for `predicate`; the timeout is a hang guard on a loaded machine, not a speed check."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.02)


def refuses_connections(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


async def rpc_code(call: Any) -> grpc.StatusCode:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    code: grpc.StatusCode = info.value.code()
    return code


# --- gRPC metrics -------------------------------------------------------------------------


async def test_requests_are_counted_by_method_and_status_code(metered: Metered) -> None:
    for _ in range(3):
        await metered.echo(b"ok")
    for _ in range(2):
        assert await rpc_code(metered.echo(b"invalid")) == grpc.StatusCode.INVALID_ARGUMENT

    scraped = metered.scrape()

    echo = method("Echo")
    assert scraped.value("grpc_server_started_total", **echo) == 5
    assert scraped.value("grpc_server_handled_total", **echo, grpc_code="OK") == 3
    assert scraped.value("grpc_server_handled_total", **echo, grpc_code="INVALID_ARGUMENT") == 2
    assert scraped.series("grpc_server_errors_total", **echo) == {
        frozenset({**echo, "grpc_code": "INVALID_ARGUMENT"}.items()): 2
    }
    assert scraped.value("grpc_server_msg_received_total", **echo) == 5
    assert scraped.value("grpc_server_msg_sent_total", **echo) == 3  # errors send no message
    assert scraped.value("grpc_server_in_flight", **echo) == 0


async def test_latency_histogram_has_buckets_from_1_ms_to_120_s(metered: Metered) -> None:
    await metered.echo(b"ok")
    assert await rpc_code(metered.echo(b"invalid")) == grpc.StatusCode.INVALID_ARGUMENT

    scraped = metered.scrape()

    buckets = scraped.series("grpc_server_handling_seconds_bucket", **method("Echo"))
    bounds = sorted(float(dict(labels)["le"]) for labels in buckets)
    assert bounds == [*LATENCY_BUCKETS_S, float("inf")]
    assert (bounds[0], bounds[-2]) == (0.001, 120.0)
    assert scraped.value("grpc_server_handling_seconds_count", **method("Echo")) == 2
    assert max(buckets.values()) == 2  # the +Inf bucket holds every call


async def test_in_flight_gauge_counts_a_running_call_and_returns_to_zero(
    metered: Metered,
) -> None:
    blocked = asyncio.ensure_future(metered.echo(b"block"))
    await asyncio.wait_for(metered.gate.entered.wait(), 5)
    during = metered.scrape().value("grpc_server_in_flight", **method("Echo"))
    await asyncio.sleep(0.1)
    metered.gate.release.set()
    assert await blocked == b"block"

    after = metered.scrape()

    assert during == 1
    assert after.value("grpc_server_in_flight", **method("Echo")) == 0
    assert after.value("grpc_server_handling_seconds_sum", **method("Echo")) >= 0.1


async def test_bidirectional_stream_counts_messages_in_and_out(metered: Metered) -> None:
    chat = metered.channel.stream_stream(f"/{SERVICE}/Chat")
    responses = [r async for r in chat(iter([b"a", b"b", b"c"]), timeout=5)]

    scraped = metered.scrape()

    labels = method("Chat", "bidi_stream")
    assert responses == [b"first", b"a", b"b", b"c"]
    assert scraped.value("grpc_server_msg_received_total", **labels) == 3
    assert scraped.value("grpc_server_msg_sent_total", **labels) == 4
    assert scraped.value("grpc_server_handled_total", **labels, grpc_code="OK") == 1
    assert scraped.value("grpc_server_in_flight", **labels) == 0


async def test_a_failed_message_ends_the_stream_with_its_code(metered: Metered) -> None:
    chat = metered.channel.stream_stream(f"/{SERVICE}/Chat")
    call = chat(iter([b"a", b"missing", b"c"]), timeout=5)
    received = [await call.read(), await call.read()]
    assert await rpc_code(call.read()) == grpc.StatusCode.NOT_FOUND

    scraped = metered.scrape()

    labels = method("Chat", "bidi_stream")
    assert received == [b"first", b"a"]
    assert scraped.value("grpc_server_errors_total", **labels, grpc_code="NOT_FOUND") == 1
    assert scraped.value("grpc_server_msg_sent_total", **labels) == 2


async def test_context_read_and_write_are_counted_as_messages(metered: Metered) -> None:
    collected = await metered.channel.stream_unary(f"/{SERVICE}/Collect")(
        iter([b"x", b"y"]), timeout=5
    )
    announced = [
        r async for r in metered.channel.unary_stream(f"/{SERVICE}/Announce")(b"3", timeout=5)
    ]

    scraped = metered.scrape()

    collect, announce = method("Collect", "client_stream"), method("Announce", "server_stream")
    assert (collected, announced) == (b"x|y", [b"news"] * 3)
    assert scraped.value("grpc_server_msg_received_total", **collect) == 2
    assert scraped.value("grpc_server_msg_sent_total", **collect) == 1
    assert scraped.value("grpc_server_msg_received_total", **announce) == 1
    assert scraped.value("grpc_server_msg_sent_total", **announce) == 3


async def test_synchronous_handlers_are_counted_with_their_codes(metered: Metered) -> None:
    await metered.channel.unary_unary(f"/{SERVICE}/SyncEcho")(b"ok", timeout=5)
    code = await rpc_code(metered.channel.unary_unary(f"/{SERVICE}/SyncEcho")(b"invalid"))
    counted = [
        r async for r in metered.channel.unary_stream(f"/{SERVICE}/SyncCount")(b"2", timeout=5)
    ]
    joined = await metered.channel.stream_unary(f"/{SERVICE}/SyncJoin")(
        iter([b"p", b"q"]), timeout=5
    )

    scraped = metered.scrape()

    sync_echo, sync_count = method("SyncEcho"), method("SyncCount", "server_stream")
    sync_join = method("SyncJoin", "client_stream")
    assert (code, counted, joined) == (grpc.StatusCode.INVALID_ARGUMENT, [b"n", b"n"], b"p|q")
    assert scraped.value("grpc_server_handled_total", **sync_echo, grpc_code="OK") == 1
    assert scraped.value("grpc_server_errors_total", **sync_echo, grpc_code="INVALID_ARGUMENT") == 1
    assert scraped.value("grpc_server_msg_sent_total", **sync_count) == 2
    assert scraped.value("grpc_server_msg_received_total", **sync_join) == 2
    assert scraped.value("grpc_server_in_flight", **sync_join) == 0


async def test_a_handler_bug_is_counted_as_internal(metered: Metered) -> None:
    assert await rpc_code(metered.echo(b"bug")) == grpc.StatusCode.INTERNAL

    # The status reaches the client before the server's metrics hook has counted it.
    def errors() -> float:
        return metered.scrape().value_or_zero(
            "grpc_server_errors_total", **method("Echo"), grpc_code="INTERNAL"
        )

    await until(lambda: errors() >= 1)
    assert errors() == 1


async def test_deadline_exceeded_and_cancelled_calls_are_told_apart(metered: Metered) -> None:
    echo = method("Echo")

    def handled(code: str) -> float:
        return metered.scrape().value_or_zero("grpc_server_handled_total", **echo, grpc_code=code)

    code = await rpc_code(metered.echo(b"sleep", deadline_s=0.2))
    await until(lambda: handled("DEADLINE_EXCEEDED") == 1)
    call = metered.channel.unary_unary(f"/{SERVICE}/Echo")(b"sleep", timeout=30)
    await until(lambda: metered.scrape().value("grpc_server_in_flight", **echo) == 1)
    call.cancel()
    await until(lambda: handled("CANCELLED") == 1)

    assert code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert metered.scrape().value("grpc_server_in_flight", **echo) == 0


async def test_methods_of_known_services_start_at_zero(metered: Metered) -> None:
    scraped = metered.scrape()

    watch = method("Watch", "server_stream", service=HEALTH)
    assert scraped.value("grpc_server_started_total", **watch) == 0
    assert scraped.value("grpc_server_handled_total", **watch, grpc_code="OK") == 0
    assert scraped.value("grpc_server_handling_seconds_count", **watch) == 0


async def test_health_checks_are_counted_like_any_rpc(metered: Metered) -> None:
    stub = health_pb2_grpc.HealthStub(metered.channel)
    await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)

    scraped = metered.scrape()

    check = method("Check", service=HEALTH)
    assert scraped.value("grpc_server_handled_total", **check, grpc_code="OK") == 1


async def test_unknown_methods_never_become_series(metered: Metered) -> None:
    code = await rpc_code(metered.channel.unary_unary(f"/{SERVICE}/NoSuchMethod")(b""))

    scraped = metered.scrape()

    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert "NoSuchMethod" not in scraped.text


async def test_two_servers_in_one_process_keep_separate_counts(
    start_metered: StartMetered,
) -> None:
    first, second = await start_metered(), await start_metered()
    for _ in range(2):
        await first.echo(b"ok")
    await second.echo(b"ok")

    counts = [
        server.scrape().value("grpc_server_handled_total", **method("Echo"), grpc_code="OK")
        for server in (first, second)
    ]

    assert first.server.metrics_port != second.server.metrics_port
    assert counts == [2, 1]


async def test_an_exception_no_interceptor_mapped_is_counted_as_unknown() -> None:
    registry = CollectorRegistry()
    server = grpc.aio.server(interceptors=[RpcMetricsInterceptor(registry)])
    server.add_generic_rpc_handlers((metered_handlers(Gate()),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            codes = [
                await rpc_code(channel.unary_unary(f"/{SERVICE}/Echo")(b"bug", timeout=5)),
                await rpc_code(channel.unary_unary(f"/{SERVICE}/SyncEcho")(b"bug", timeout=5)),
                await rpc_code(channel.stream_unary(f"/{SERVICE}/SyncJoin")(iter([b"bug"]))),
                await rpc_code(channel.unary_stream(f"/{SERVICE}/SyncCount")(b"bug").read()),
            ]
    finally:
        await server.stop(0)

    def errors(name: str, rpc_type: str = "unary") -> float | None:
        labels = {**method(name, rpc_type), "grpc_code": "UNKNOWN"}
        return registry.get_sample_value("grpc_server_errors_total", labels)

    assert codes == [grpc.StatusCode.UNKNOWN] * 4
    assert [
        errors("Echo"),
        errors("SyncEcho"),
        errors("SyncJoin", "client_stream"),
        errors("SyncCount", "server_stream"),
    ] == [1, 1, 1, 1]


# --- the endpoint: ports, port files, stop ---------------------------------------------------


async def test_metrics_port_minus_one_serves_no_endpoint(
    start_metered: StartMetered, tmp_path: Path
) -> None:
    port_file = tmp_path / "metered.port"
    metrics_port_file(port_file).write_text("9999\n")  # stale, from an earlier run

    metered = await start_metered(metrics_port=-1, port_file=port_file)

    assert metered.server.metrics_port is None
    assert metered.server.metrics_endpoint is None
    assert not metrics_port_file(port_file).exists()
    assert await metered.echo(b"ok") == b"ok"  # still counted, just not served


async def test_registry_and_orchestrator_take_their_metrics_ports_from_settings(
    start_metered: StartMetered, free_port: Callable[[], int]
) -> None:
    registry_port, orchestrator_port = free_port(), free_port()
    settings = SETTINGS.replace(
        registry_metrics_port=registry_port, orchestrator_metrics_port=orchestrator_port
    )

    registry = await start_metered(settings, name="registry", metrics_port=None)
    orchestrator = await start_metered(settings, name="orchestrator", metrics_port=None)
    other = await start_metered(settings, name="probe", metrics_port=None)

    assert (registry.server.metrics_port, orchestrator.server.metrics_port) == (
        registry_port,
        orchestrator_port,
    )
    assert registry.scrape().value("grpc_server_in_flight", **method("Check", service=HEALTH)) == 0
    assert other.server.metrics_port is None


async def test_settings_minus_one_turns_the_registry_endpoint_off(
    start_metered: StartMetered,
) -> None:
    settings = SETTINGS.replace(registry_metrics_port=-1)

    registry = await start_metered(settings, name="registry", metrics_port=None)

    assert registry.server.metrics_port is None


async def test_metrics_port_is_written_beside_the_port_file_and_removed_on_stop(
    start_metered: StartMetered, tmp_path: Path
) -> None:
    port_file = tmp_path / "metered.port"
    metered = await start_metered(port_file=port_file)
    written = metrics_port_file(port_file).read_text()

    await metered.server.stop(0)

    assert written == f"{metered.server.metrics_port}\n"
    assert metrics_port_file(port_file) == tmp_path / "metered.port.metrics"
    assert not metrics_port_file(port_file).exists()
    assert metered.server.metrics_port is not None
    assert refuses_connections(metered.server.metrics_port)


async def test_listening_line_names_the_metrics_port(
    start_metered: StartMetered, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="agentic_labeling.servers.bootstrap"):
        metered = await start_metered()

    [line] = [r for r in caplog.records if r.getMessage() == "listening"]
    assert line.__dict__["metrics_port"] == metered.server.metrics_port
    assert metered.server.metrics_endpoint is not None
    assert metered.server.metrics_endpoint.url == (
        f"http://127.0.0.1:{metered.server.metrics_port}/metrics"
    )


async def test_a_metrics_port_in_use_fails_the_start_with_unavailable(
    start_metered: StartMetered,
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(Unavailable) as failure:
            await start_metered(metrics_port=port)

    assert failure.value.reason == "BIND_FAILED"
    assert failure.value.metadata["address"] == f"127.0.0.1:{port}"
    assert "--metered-metrics-port 0" in failure.value.message


def metrics_threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("metrics-http-")}


async def test_a_grpc_port_in_use_leaves_no_metrics_endpoint_behind(
    start_metered: StartMetered,
) -> None:
    first = await start_metered()
    before = metrics_threads()

    with pytest.raises(Unavailable):
        await start_server(
            SETTINGS, name="second", port=first.server.port, services=[], metrics_port=0
        )

    assert metrics_threads() == before


def test_endpoint_stop_is_idempotent_and_frees_the_port() -> None:
    endpoint = MetricsEndpoint.start(CollectorRegistry(), "127.0.0.1", 0)
    body = scrape(endpoint.url).text

    endpoint.stop()
    endpoint.stop()

    assert body == ""  # an empty registry renders as nothing at all
    assert refuses_connections(endpoint.port)
    with pytest.raises(urllib.error.URLError):
        scrape(endpoint.url)


def test_endpoint_on_ipv6_loopback_gives_a_bracketed_url() -> None:
    if not socket.has_ipv6:  # pragma: no cover - depends on the machine
        pytest.skip("no IPv6 on this machine")
    try:
        endpoint = MetricsEndpoint.start(CollectorRegistry(), "::1", 0)
    except OSError:  # pragma: no cover - IPv6 configured off
        pytest.skip("::1 cannot be bound here")
    try:
        assert endpoint.url == f"http://[::1]:{endpoint.port}/metrics"
        assert scrape(endpoint.url).text == ""
    finally:
        endpoint.stop()


# --- labeling metrics ---------------------------------------------------------------------


async def test_labeling_metrics_render_on_the_servers_endpoint(
    start_metered: StartMetered,
) -> None:
    registry = CollectorRegistry()
    labeling = LabelingMetrics(registry)
    metered = await start_metered(metrics_registry=registry)
    before = metered.scrape()

    for outcome in ("ok", "ok", "ok", "failed", "skipped"):
        labeling.image_done(outcome)
    labeling.objects_registered(7)
    labeling.objects_registered(0)
    labeling.window(5)
    labeling.window(3)
    after = metered.scrape()

    images = "alabel_images_labelled_total"
    assert {o: before.value(images, outcome=o) for o in ("ok", "failed", "skipped")} == {
        "ok": 0,
        "failed": 0,
        "skipped": 0,
    }
    assert {o: after.value(images, outcome=o) for o in ("ok", "failed", "skipped")} == {
        "ok": 3,
        "failed": 1,
        "skipped": 1,
    }
    assert after.value("alabel_objects_registered_total") == 7
    assert after.value("alabel_labeling_window_in_flight") == 3
    # Beside the RPC metrics of the same server.
    assert after.value("grpc_server_in_flight", **method("Check", service=HEALTH)) == 0


def test_labeling_metrics_refuse_values_that_cannot_be_true() -> None:
    labeling = LabelingMetrics()

    with pytest.raises(ValueError, match="outcome must be one of ok, failed, skipped"):
        labeling.image_done("done")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="count"):
        labeling.objects_registered(-1)
    with pytest.raises(ValueError, match="in_flight"):
        labeling.window(-1)
    text = generate_latest(labeling.registry).decode()
    assert 'alabel_images_labelled_total{outcome="ok"} 0.0' in text
    assert "alabel_objects_registered_total 0.0" in text


def test_labeling_metrics_of_two_servers_do_not_mix() -> None:
    first, second = LabelingMetrics(), LabelingMetrics()

    first.image_done("ok")

    assert first.registry.get_sample_value("alabel_images_labelled_total", {"outcome": "ok"}) == 1
    assert second.registry.get_sample_value("alabel_images_labelled_total", {"outcome": "ok"}) == 0


# --- the real server processes --------------------------------------------------------------


def test_mesh_servers_serve_metrics_on_free_ports_of_their_own(mesh: Mesh) -> None:
    registry, orchestrator = mesh.registry, mesh.orchestrator
    assert registry.metrics_url is not None
    assert orchestrator.metrics_url is not None
    with grpc.insecure_channel(registry.address) as channel:
        health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)

    scraped = {p.name: scrape(url) for p in (registry, orchestrator) if (url := p.metrics_url)}

    assert registry.metrics_port != orchestrator.metrics_port
    assert 9464 not in (registry.metrics_port, orchestrator.metrics_port)
    check = method("Check", service=HEALTH)
    assert scraped["registry"].value("grpc_server_handled_total", **check, grpc_code="OK") >= 1
    assert scraped["registry"].series(
        "grpc_server_started_total", grpc_service="agentic_labeling.v1.RegistryService"
    )
    assert scraped["orchestrator"].series(
        "grpc_server_started_total", grpc_service="agentic_labeling.v1.LabelingService"
    )
