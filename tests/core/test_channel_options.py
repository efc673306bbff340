"""Every client channel takes its options from one function: message limits, and no proxy
for a server on this machine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from agentic_labeling.channel_options import channel_options, message_size_options
from agentic_labeling.clients.registry_client import RegistryClient
from agentic_labeling.errors import NotFound
from agentic_labeling.servers.error_status import DomainErrorInterceptor

NO_PROXY = ("grpc.enable_http_proxy", 0)
# Nothing listens on the discard port: a channel that takes this proxy cannot connect.
DEAD_PROXY = "http://127.0.0.1:9"


def test_a_loopback_channel_bypasses_the_proxy_and_carries_the_message_limit() -> None:
    options = channel_options("127.0.0.1:50051", max_message_bytes=1024)

    assert options == [*message_size_options(1024), NO_PROXY]


@pytest.mark.parametrize("address", ["localhost:1", "[::1]:50051", "127.8.0.1:2"])
def test_every_loopback_spelling_bypasses_the_proxy(address: str) -> None:
    assert channel_options(address) == [NO_PROXY]


@pytest.mark.parametrize("address", ["registry:50051", "10.0.0.5:50051", "[2001:db8::1]:50051"])
def test_a_remote_channel_may_use_the_proxy(address: str) -> None:
    assert channel_options(address, max_message_bytes=1024) == message_size_options(1024)


def test_a_local_server_bypasses_the_proxy_whatever_its_address() -> None:
    assert channel_options("10.0.0.5:50051", local=True) == [NO_PROXY]


def test_without_a_limit_the_channel_keeps_grpcs_message_sizes() -> None:
    assert channel_options("registry:50051") == []


@pytest.fixture
async def loopback_registry() -> AsyncIterator[str]:
    """A server on 127.0.0.1 whose GetSource answers NOT_FOUND: reached, it says so."""

    async def get_source(request: bytes, context: Any) -> bytes:
        raise NotFound("source", "sources/nowhere")

    handlers = grpc.method_handlers_generic_handler(
        "agentic_labeling.v1.RegistryService",
        {"GetSource": grpc.unary_unary_rpc_method_handler(get_source)},
    )
    server = grpc.aio.server(interceptors=[DomainErrorInterceptor()])
    server.add_generic_rpc_handlers((handlers,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    yield f"127.0.0.1:{port}"
    await server.stop(0)


async def test_the_registry_client_reaches_a_loopback_registry_past_an_http_proxy(
    loopback_registry: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", DEAD_PROXY)

    async with RegistryClient(loopback_registry, deadline_s=10) as client:
        with pytest.raises(NotFound) as missing:
            await client.get_source("sources/nowhere")

    assert missing.value.name == "sources/nowhere"
