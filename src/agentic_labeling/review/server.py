"""`alabel serve review`: the review app on uvicorn, bound to --host and --review-port.

Like the gRPC servers: once it serves, the bound port is written to `--port-file` (atomically,
so a reader never sees half a number) and removed again when it stops; SIGTERM or Ctrl-C stop
it gracefully (uvicorn finishes in-flight requests within --shutdown-grace-s). `/healthz`
answers 200 while it serves, saying whether the registry is reachable.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import uvicorn

from agentic_labeling.errors import Unavailable
from agentic_labeling.local.addresses import client_address
from agentic_labeling.review.app import ReviewConfig, create_app
from agentic_labeling.settings import Settings

__all__ = ["review_url", "run"]

logger = logging.getLogger(__name__)
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def review_url(host: str, port: int) -> str:
    return f"http://{client_address(host, port)}/"


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    temporary.replace(path)


class _Server(uvicorn.Server):
    """uvicorn, writing the port file once it serves and removing it when it stops."""

    def __init__(self, config: uvicorn.Config, port: int, port_file: Path | None) -> None:
        super().__init__(config)
        self.bound_port = port
        self.port_file = port_file

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.port_file is not None:
            _write_atomically(self.port_file, f"{self.bound_port}\n")
        logger.info(
            "listening",
            extra={"server": "review", "url": review_url(self.config.host, self.bound_port)},
        )

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises SIGTERM after its graceful stop, which makes the exit status
        # -15; a clean stop here exits 0 like the gRPC servers.
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in _STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.port_file is not None:
            self.port_file.unlink(missing_ok=True)
        await super().shutdown(sockets)


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise Unavailable(
            f"review cannot listen on {client_address(host, port)}: {error.strerror}",
            reason="BIND_FAILED",
        ) from None
    sock.set_inheritable(True)
    return sock


def run(settings: Settings, *, port_file: Path | None = None, reviewer: str = "reviewer") -> None:
    """Serve the review app until SIGTERM or SIGINT."""
    sock = _bind(settings.host, settings.review_port)
    port = int(sock.getsockname()[1])
    app = create_app(
        ReviewConfig(
            registry_url=settings.registry_url,
            reviewer=reviewer,
        )
    )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_level=settings.log_level.lower(),
        access_log=False,
        timeout_graceful_shutdown=max(int(settings.shutdown_grace_s), 1),
        lifespan="on",
    )
    server = _Server(config, port, port_file)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
