"""`host:port` strings for servers on this machine, and free ports.

A server bound to a wildcard host (`0.0.0.0`, `::`, empty) is reached by a client on this
machine over loopback; an IPv6 host is written in brackets (`[::1]:50051`), as gRPC and URLs
want it.
"""

from __future__ import annotations

import socket

__all__ = [
    "address_host",
    "client_address",
    "client_host",
    "host_port",
    "is_loopback",
    "unused_port",
]

_WILDCARDS = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}


def client_host(host: str) -> str:
    """Where a client on this machine reaches a server bound to `host`."""
    return _WILDCARDS.get(host, host)


def host_port(host: str, port: int) -> str:
    """`host:port`, with an IPv6 host in brackets."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def client_address(host: str, port: int) -> str:
    """The `host:port` a client on this machine dials for a server bound to `host` and `port`."""
    return host_port(client_host(host), port)


def address_host(address: str) -> str:
    """The host of a `host:port` address, without an IPv6 address's brackets."""
    return address.rsplit(":", 1)[0].strip("[]")


def is_loopback(address: str) -> bool:
    """Whether `host:port` names this machine's loopback interface."""
    host = address_host(address)
    return host in ("localhost", "::1") or host.startswith("127.")


def unused_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (bound once by the OS, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
