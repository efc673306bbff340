"""A real server process for the shutdown tests, started through `run_server` like a CLI command.

    python slow_server.py PORT_FILE GRACE_S

Hosts `agentic_labeling.testing.v1.SlowService` with raw-bytes methods:
- `Sleep` (server streaming): answers b"started" at once, sleeps the number of seconds in the
  request (ASCII), then answers b"done" — so a client knows when its RPC is in flight.
- `Ping` (unary): answers b"pong".
Logs go to stderr as JSON lines.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc

from agentic_labeling.servers.bootstrap import ServiceRegistration, run_server
from agentic_labeling.settings import Settings

SERVICE = "agentic_labeling.testing.v1.SlowService"


async def sleep(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield b"started"
    await asyncio.sleep(float(request.decode()))
    yield b"done"


async def ping(request: bytes, context: Any) -> bytes:
    return b"pong"


def services() -> list[ServiceRegistration]:
    generic = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Sleep": grpc.unary_stream_rpc_method_handler(sleep),
            "Ping": grpc.unary_unary_rpc_method_handler(ping),
        },
    )
    return [
        ServiceRegistration(SERVICE, lambda server: server.add_generic_rpc_handlers((generic,)))
    ]


def main(argv: list[str]) -> None:
    port_file, grace_s = Path(argv[1]), float(argv[2])
    settings = Settings(host="127.0.0.1", shutdown_grace_s=grace_s, log_format="json")
    run_server(settings, name="slow", port=0, services_factory=services, port_file=port_file)


if __name__ == "__main__":
    main(sys.argv)
