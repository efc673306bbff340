"""host:port strings: one way to write them, for every server this machine starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentic_labeling.local.addresses import client_address, is_loopback
from agentic_labeling.triton_server import TritonHandle


@pytest.mark.parametrize(
    ("host", "address"),
    [
        ("0.0.0.0", "127.0.0.1:50051"),
        ("", "127.0.0.1:50051"),
        ("::", "[::1]:50051"),
        ("::1", "[::1]:50051"),
        ("10.1.2.3", "10.1.2.3:50051"),
        ("gpu-box", "gpu-box:50051"),
    ],
)
def test_a_client_dials_loopback_for_a_wildcard_bind_and_brackets_ipv6(
    host: str, address: str
) -> None:
    assert client_address(host, 50051) == address


@pytest.mark.parametrize(
    ("address", "loopback"),
    [
        ("127.0.0.1:1", True),
        ("127.9.9.9:1", True),
        ("localhost:8001", True),
        ("[::1]:8001", True),
        ("10.0.0.1:8001", False),
        ("gpu-box:8001", False),
    ],
)
def test_loopback_addresses_are_recognised(address: str, loopback: bool) -> None:
    assert is_loopback(address) is loopback


def test_a_triton_bound_to_the_ipv6_wildcard_is_reached_at_bracketed_loopback(
    tmp_path: Path,
) -> None:
    handle = TritonHandle(1, "::", 8001, 8000, 8002, tmp_path / "log", tmp_path)
    assert handle.address == "[::1]:8001"
    assert handle.http_url == "http://[::1]:8000"
    assert handle.metrics_url == "http://[::1]:8002/metrics"
