"""Every server starts, maps errors, enforces its limits, reports health and stops cleanly.

All servers here are real grpc.aio servers on 127.0.0.1, called by real grpc.aio clients; the
shutdown tests run a server in a separate process and send it real signals.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from agentic_labeling.errors import Unavailable
from agentic_labeling.rpc_status import rpc_error_details
from agentic_labeling.servers.bootstrap import RunningServer, run_server, serve_until_signalled

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SLOW_SERVER = Path(__file__).with_name("slow_server.py")
SLOW_SERVICE = "agentic_labeling.testing.v1.SlowService"
GRPCURL = Path(sys.executable).with_name("grpcurl")
# How a server that is stopping turns a new RPC away. Usually UNAVAILABLE (the connection is
# refused); an RPC that reaches gRPC's core in the instant shutdown begins is CANCELLED.
# Hang guards only: a stuck stop or exit fails instead of hanging; never a speed check.
HANG_S = 120
REFUSED = (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value


async def until(predicate: Callable[[], bool], *, timeout_s: float = 5.0) -> None:
    """Poll a condition (instead of sleeping a fixed time and hoping)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            raise TimeoutError("condition not met in time")
        await asyncio.sleep(0.01)


async def until_refused(
    call_once: Callable[[], Awaitable[Any]], *, timeout_s: float = 5.0
) -> grpc.aio.AioRpcError:
    """Call repeatedly until the server refuses the call; that refusal."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        try:
            await call_once()
        except grpc.aio.AioRpcError as err:
            return err
        await asyncio.sleep(0.01)
    raise TimeoutError("the server kept accepting new RPCs")


async def health_status(channel: grpc.aio.Channel, service: str) -> Any:
    stub = health_pb2_grpc.HealthStub(channel)
    response = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return response.status


# --- error mapping through the interceptor --------------------------------------------------


async def test_successful_call_returns_the_handlers_answer(probe: Any, handler_kind: str) -> None:
    responses = await probe.call(handler_kind, b"ok:hello")

    assert responses[-1] == b"ok:hello"


async def test_invalid_argument_reaches_the_client_with_the_field_named(
    probe: Any, handler_kind: str
) -> None:
    err = await rpc_error(probe.call(handler_kind, b"invalid"))

    details = rpc_error_details(err)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert err.details() == "payload is not acceptable"
    assert (details.reason, details.domain) == ("BAD_PROBE", "agentic-labeling")
    assert [v.field for v in details.field_violations] == ["payload"]
    # grpcio-status accepts it too: code and message agree with the rich status.
    assert rpc_status.from_call(err).code == grpc.StatusCode.INVALID_ARGUMENT.value[0]


async def test_handler_bug_is_internal_and_leaks_nothing(
    probe: Any, handler_kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR):
        err = await rpc_error(probe.call(handler_kind, b"bug"))

    details = rpc_error_details(err)
    assert err.code() == grpc.StatusCode.INTERNAL
    assert probe.secret not in err.details()
    assert probe.secret not in repr(err.trailing_metadata())
    assert details.reason == "INTERNAL"
    incident = details.metadata["incident_id"]
    [logged] = [r for r in caplog.records if r.__dict__.get("incident_id") == incident]
    assert logged.exc_info is not None
    assert probe.secret in str(logged.exc_info[1])


async def test_server_keeps_answering_after_a_handler_bug(probe: Any, handler_kind: str) -> None:
    await rpc_error(probe.call(handler_kind, b"bug"))

    responses = await probe.call(handler_kind, b"ok:still here")

    assert responses[-1] == b"ok:still here"


async def test_not_found_reaches_the_client_with_the_resource_named(probe: Any) -> None:
    err = await rpc_error(probe.call("unary_unary", b"missing"))

    details = rpc_error_details(err)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (details.resource_type, details.resource_name) == ("probe", "probes/42")


async def test_abort_called_by_a_handler_passes_through_unchanged(
    probe: Any, async_handler_kind: str
) -> None:
    err = await rpc_error(probe.call(async_handler_kind, b"abort"))

    assert (err.code(), err.details()) == (
        grpc.StatusCode.FAILED_PRECONDITION,
        "aborted on purpose",
    )


async def test_domain_error_raised_inside_a_task_group_keeps_its_code(probe: Any) -> None:
    err = await rpc_error(probe.call("unary_unary", b"group"))

    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_thousands_of_field_violations_still_arrive_as_invalid_argument(
    probe: Any,
) -> None:
    err = await rpc_error(probe.call("unary_unary", b"many"))

    details = rpc_error_details(err)
    shown = len(details.field_violations)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert details.field_violations[0].field == "objects[0].bbox.width"
    assert shown + int(details.metadata["omitted_field_violations"]) == 5000


async def test_oversized_error_texts_are_clipped_to_fit_the_trailers(probe: Any) -> None:
    err = await rpc_error(probe.call("unary_unary", b"huge"))

    details = rpc_error_details(err)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert details.reason == "FAILED_PRECONDITION"
    assert len(err.details().encode()) <= 512
    assert "blob" not in details.metadata


async def test_not_found_with_an_oversized_name_keeps_its_code_and_reason(probe: Any) -> None:
    err = await rpc_error(probe.call("unary_unary", b"long_name"))

    details = rpc_error_details(err)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert (details.reason, details.domain) == ("NOT_FOUND", "agentic-labeling")


async def test_a_long_message_is_clipped_but_the_field_still_named(probe: Any) -> None:
    err = await rpc_error(probe.call("unary_unary", b"long_message"))

    details = rpc_error_details(err)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in details.field_violations] == ["payload"]
    assert "omitted_field_violations" not in details.metadata


async def test_unknown_method_is_unimplemented(probe: Any) -> None:
    err = await rpc_error(probe.channel.unary_unary(f"/{probe.service}/NoSuchMethod")(b""))

    assert err.code() == grpc.StatusCode.UNIMPLEMENTED


# --- start-up: health, port file, binding, logging ---------------------------------------


async def test_health_reports_serving_for_the_server_and_each_service(probe: Any) -> None:
    assert await health_status(probe.channel, "") == SERVING
    assert await health_status(probe.channel, probe.service) == SERVING


async def test_health_of_an_unknown_service_is_not_found(probe: Any) -> None:
    err = await rpc_error(health_status(probe.channel, "no.such.Service"))

    assert err.code() == grpc.StatusCode.NOT_FOUND


async def test_port_file_holds_the_bound_port_once_serving(
    start_probe: Any, tmp_path: Path
) -> None:
    port_file = tmp_path / "run" / "probe.port"

    started = await start_probe(port_file=port_file)

    assert port_file.read_text() == f"{started.server.port}\n"
    assert [p.name for p in port_file.parent.iterdir()] == ["probe.port"]  # no temp file left
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port_file.read_text().strip()}") as ch:
        assert await health_status(ch, "") == SERVING


async def test_port_file_is_removed_when_the_server_stops(start_probe: Any, tmp_path: Path) -> None:
    port_file = tmp_path / "probe.port"
    started = await start_probe(port_file=port_file)

    await started.server.stop(0)

    assert not port_file.exists()


async def test_second_server_on_a_port_in_use_fails_with_unavailable(start_probe: Any) -> None:
    first = await start_probe()

    with pytest.raises(Unavailable) as failure:
        await start_probe(port=first.server.port)

    assert failure.value.reason == "BIND_FAILED"
    assert failure.value.metadata["address"] == first.server.address
    assert (await first.call("unary_unary", b"ok:first"))[0] == b"ok:first"


async def test_servers_started_on_port_zero_get_distinct_ports(start_probe: Any) -> None:
    servers = [await start_probe() for _ in range(3)]

    assert len({s.server.port for s in servers}) == 3
    assert all(s.server.port > 0 for s in servers)


async def test_server_listens_on_the_requested_port(
    start_probe: Any, free_port: Callable[[], int]
) -> None:
    port = free_port()

    started = await start_probe(port=port)

    assert (started.server.port, started.server.address) == (port, f"127.0.0.1:{port}")
    assert (await started.call("unary_unary", b"ok:x"))[0] == b"ok:x"


def test_address_puts_an_ipv6_host_in_brackets() -> None:
    running = RunningServer(
        name="x", host="::1", port=50051, server=None, health=None, port_file=None
    )

    assert running.address == "[::1]:50051"


async def test_start_logs_a_listening_line_with_name_address_and_port(
    start_probe: Any, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="agentic_labeling.servers.bootstrap"):
        started = await start_probe()

    [line] = [r for r in caplog.records if r.getMessage() == "listening"]
    assert line.__dict__["server"] == "probe"
    assert line.__dict__["address"] == started.server.address
    assert line.__dict__["port"] == started.server.port


# --- limits ---------------------------------------------------------------------------------


async def test_message_at_the_size_limit_is_accepted(probe: Any, server_settings: Any) -> None:
    payload = b"ok:" + b"x" * (server_settings.max_message_bytes - 3)

    assert (await probe.call("unary_unary", payload))[0] == payload


async def test_message_over_the_size_limit_is_refused_with_resource_exhausted(
    probe: Any, server_settings: Any
) -> None:
    payload = b"ok:" + b"x" * (server_settings.max_message_bytes - 2)

    err = await rpc_error(probe.call("unary_unary", payload))

    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_rpcs_beyond_max_concurrent_rpcs_are_refused_with_resource_exhausted(
    start_probe: Any, server_settings: Any
) -> None:
    started = await start_probe(server_settings.replace(max_concurrent_rpcs=2))
    blocked = [asyncio.ensure_future(started.call("unary_unary", b"block")) for _ in range(2)]
    await started.state.wait_blocked(2)

    err = await rpc_error(started.call("unary_unary", b"ok:third"))
    started.state.release.set()

    assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert [await b for b in blocked] == [[b"released"], [b"released"]]


# --- stopping -------------------------------------------------------------------------------


async def test_stop_lets_in_flight_rpcs_finish_and_refuses_new_ones(start_probe: Any) -> None:
    started = await start_probe()
    in_flight = asyncio.ensure_future(started.call("unary_unary", b"block"))
    await started.state.wait_blocked(1)

    stopping = asyncio.ensure_future(started.server.stop(5.0))
    refused = await until_refused(lambda: started.call("unary_unary", b"ok:new", deadline_s=1))
    still_running = not in_flight.done()
    started.state.release.set()

    assert refused.code() in REFUSED
    assert still_running
    assert await in_flight == [b"released"]
    await asyncio.wait_for(stopping, 5)


async def test_stop_turns_health_not_serving_first(start_probe: Any) -> None:
    started = await start_probe()
    watch = health_pb2_grpc.HealthStub(started.channel).Watch(
        health_pb2.HealthCheckRequest(service=""), timeout=10
    )
    assert (await watch.read()).status == SERVING

    stopping = asyncio.ensure_future(started.server.stop(5.0))
    update = await watch.read()
    watch.cancel()

    assert update.status == NOT_SERVING
    await asyncio.wait_for(stopping, 5)


async def test_stop_cancels_rpcs_still_running_after_the_grace(start_probe: Any) -> None:
    started = await start_probe()
    # The RPC blocks until released, which never happens: stop() returns only by cancelling it.
    in_flight = asyncio.ensure_future(started.call("unary_unary", b"block", deadline_s=HANG_S))
    await started.state.wait_blocked(1)

    await asyncio.wait_for(started.server.stop(0.2), HANG_S)

    err = await rpc_error(in_flight)
    assert err.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


def handlers_installed(original: Any) -> Callable[[], bool]:
    return lambda: signal.getsignal(signal.SIGINT) is not original


async def test_sigint_stops_the_server_gracefully_and_restores_the_handler(
    start_probe: Any,
) -> None:
    started = await start_probe()
    in_flight = asyncio.ensure_future(started.call("unary_unary", b"block"))
    await started.state.wait_blocked(1)
    original = signal.getsignal(signal.SIGINT)
    serving = asyncio.ensure_future(serve_until_signalled(started.server, grace_s=5.0))
    await until(handlers_installed(original))

    os.kill(os.getpid(), signal.SIGINT)
    refused = await until_refused(lambda: started.call("unary_unary", b"ok:new", deadline_s=1))
    started.state.release.set()

    assert refused.code() in REFUSED
    assert await in_flight == [b"released"]
    await asyncio.wait_for(serving, 5)
    assert signal.getsignal(signal.SIGINT) is original


async def test_second_signal_cancels_in_flight_rpcs_at_once(start_probe: Any) -> None:
    started = await start_probe()
    in_flight = asyncio.ensure_future(started.call("unary_unary", b"block", deadline_s=30))
    await started.state.wait_blocked(1)
    original = signal.getsignal(signal.SIGINT)
    serving = asyncio.ensure_future(serve_until_signalled(started.server, grace_s=30.0))
    await until(handlers_installed(original))

    os.kill(os.getpid(), signal.SIGINT)
    await until_refused(lambda: started.call("unary_unary", b"ok:new", deadline_s=1))
    os.kill(os.getpid(), signal.SIGINT)
    await asyncio.wait_for(serving, 5)  # far less than the 30 s grace

    err = await rpc_error(in_flight)
    assert err.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)


async def test_serve_until_signalled_returns_when_the_server_stops_otherwise(
    start_probe: Any,
) -> None:
    started = await start_probe()
    original = signal.getsignal(signal.SIGINT)
    serving = asyncio.ensure_future(serve_until_signalled(started.server, grace_s=1.0))
    await until(handlers_installed(original))

    await started.server.stop(0)

    await asyncio.wait_for(serving, 5)
    assert signal.getsignal(signal.SIGINT) is original


def test_run_server_stops_cleanly_on_a_signal_that_lands_during_start_up(
    tmp_path: Path, server_settings: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    port_file = tmp_path / "run.port"
    started: list[int] = []

    def services() -> list[Any]:
        # Runs inside run_server's loop, before the server starts: the signal is queued then.
        asyncio.get_running_loop().call_soon(os.kill, os.getpid(), signal.SIGTERM)
        started.append(1)
        return []

    try:
        run_server(
            server_settings, name="run", port=0, services_factory=services, port_file=port_file
        )
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)

    events = [
        event
        for line in capsys.readouterr().err.splitlines()
        for event in ("listening", "signal received", "stopped")
        if f"agentic_labeling.servers.bootstrap: {event}" in line
    ]
    assert started == [1]
    assert events == ["listening", "signal received", "stopped"]
    assert not port_file.exists()  # written once serving, removed once stopped
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


# --- a real server process and SIGTERM ------------------------------------------------------


@contextlib.asynccontextmanager
async def slow_server_process(
    tmp_path: Path, grace_s: float
) -> AsyncIterator[tuple[asyncio.subprocess.Process, grpc.aio.Channel]]:
    """`slow_server.py` in its own process, once its port file says it serves."""
    port_file = tmp_path / "slow.port"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(SLOW_SERVER),
        str(port_file),
        str(grace_s),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        await until(lambda: port_file.exists() or process.returncode is not None, timeout_s=30)
        assert process.returncode is None, "the server process exited during start-up"
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port_file.read_text().strip()}") as ch:
            yield process, ch
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


def json_logs(stderr: bytes) -> list[dict[str, Any]]:
    # grpc's C core may print its own plain lines to stderr; ours are the JSON ones.
    lines = stderr.decode().splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


async def test_sigterm_lets_the_in_flight_rpc_finish_and_the_process_exits_zero(
    tmp_path: Path,
) -> None:
    # A grace far longer than the hang guard: a server that waited it out instead of exiting
    # once the RPC is done trips the guard; a busy machine never makes the RPC miss it.
    grace_s = 10 * HANG_S
    async with slow_server_process(tmp_path, grace_s) as (process, channel):
        sleeping = channel.unary_stream(f"/{SLOW_SERVICE}/Sleep")(b"1.0", timeout=HANG_S)
        assert await sleeping.read() == b"started"

        process.send_signal(signal.SIGTERM)
        refused = await until_refused(
            lambda: channel.unary_unary(f"/{SLOW_SERVICE}/Ping")(b"", timeout=1)
        )
        still_running = not sleeping.done()
        last = await sleeping.read()
        code = await sleeping.code()
        returncode = await asyncio.wait_for(process.wait(), HANG_S)

        assert refused.code() in REFUSED
        assert still_running
        assert (last, code) == (b"done", grpc.StatusCode.OK)
        assert returncode == 0
        assert process.stderr is not None
        logs = json_logs(await process.stderr.read())
        assert any(e.get("signal") == "SIGTERM" for e in logs)
        assert {"listening", "stopping", "stopped"} <= {e["msg"] for e in logs}


async def test_sigterm_cancels_an_rpc_longer_than_the_grace_and_still_exits_zero(
    tmp_path: Path,
) -> None:
    grace_s = 0.5
    # The RPC would outlive the hang guard many times over (and its own deadline is as long):
    # the process exits in time only by cancelling it after the grace.
    longer = 10 * HANG_S
    async with slow_server_process(tmp_path, grace_s) as (process, channel):
        sleeping = channel.unary_stream(f"/{SLOW_SERVICE}/Sleep")(
            str(longer).encode(), timeout=longer
        )
        assert await sleeping.read() == b"started"

        process.send_signal(signal.SIGTERM)
        err = await rpc_error(sleeping.read())
        returncode = await asyncio.wait_for(process.wait(), HANG_S)

        assert err.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
        assert returncode == 0


# --- grpcurl through reflection -------------------------------------------------------------


async def grpcurl(*args: str) -> str:
    # Run without blocking the loop: the server under test answers from this same loop.
    assert GRPCURL.exists(), f"{GRPCURL} missing: install the dev extra (pip install -e '.[dev]')"
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL),
        "-plaintext",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def test_grpcurl_lists_every_service_through_reflection(probe: Any) -> None:
    listed = (await grpcurl(probe.server.address, "list")).split()

    assert set(listed) == {
        probe.service,
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
    }


async def test_grpcurl_calls_health_check_without_proto_files(probe: Any) -> None:
    out = await grpcurl(
        "-d", '{"service": ""}', probe.server.address, "grpc.health.v1.Health/Check"
    )

    assert json.loads(out) == {"status": "SERVING"}


async def test_grpcurl_describes_the_health_service(probe: Any) -> None:
    out = await grpcurl(probe.server.address, "describe", "grpc.health.v1.Health")

    assert "rpc Check ( .grpc.health.v1.HealthCheckRequest )" in out


async def test_grpcurl_describes_a_single_method(probe: Any) -> None:
    out = await grpcurl(probe.server.address, "describe", "grpc.health.v1.Health.Check")

    assert "rpc Check ( .grpc.health.v1.HealthCheckRequest )" in out


async def test_grpcurl_describe_of_an_unknown_symbol_fails(probe: Any) -> None:
    with pytest.raises(AssertionError, match="Symbol not found"):
        await grpcurl(probe.server.address, "describe", "no.such.Service")
