"""The gRPC options every client channel of the platform is opened with, in one place.

Plain data, no grpc import: the CLI (which keeps `alabel --help` free of gRPC), the clients,
the health probes and tritonclient's `channel_args` all take the same list of pairs.
"""

from __future__ import annotations

from agentic_labeling.local.addresses import is_loopback

__all__ = ["ChannelOption", "channel_options", "message_size_options"]

ChannelOption = tuple[str, int]


def message_size_options(max_message_bytes: int) -> list[ChannelOption]:
    """The largest message sent and received, for a channel or a server alike."""
    return [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
    ]


def channel_options(
    address: str, *, max_message_bytes: int | None = None, local: bool = False
) -> list[ChannelOption]:
    """Options for a client channel to `address`.

    `max_message_bytes`: the platform's message limit both ways (None: gRPC's defaults).
    A loopback address, or any address of a server this process knows is `local` (one it
    started), never goes through an `http_proxy` of the environment, which cannot reach it.
    """
    options = [] if max_message_bytes is None else message_size_options(max_message_bytes)
    if local or is_loopback(address):
        options.append(("grpc.enable_http_proxy", 0))
    return options
