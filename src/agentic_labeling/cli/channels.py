"""How commands reach a server: one channel per command, and a failed RPC shown as one line.

Imported by command bodies only (it loads grpc), never at the top of a command module, so that
`alabel --help` stays fast.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import grpc
from google.rpc import status_pb2  # type: ignore[import-untyped,unused-ignore]

from agentic_labeling.channel_options import channel_options
from agentic_labeling.cli.failures import CliFailure, MethodNotBuilt
from agentic_labeling.rpc_status import RpcErrorDetails, rpc_error_details, status_details

__all__ = [
    "StatusSummary",
    "failure_from_details",
    "failure_from_rpc_error",
    "open_channel",
    "rpc_failures",
    "server_channel",
]

_FIELDS_SHOWN = 3
_CODE_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


@contextlib.contextmanager
def open_channel(address: str, *, max_message_bytes: int) -> Iterator[grpc.Channel]:
    """An insecure channel to `address` with the platform's message limit.

    A loopback address never goes through an `http_proxy` of the environment.
    """
    options = channel_options(address, max_message_bytes=max_message_bytes)
    with grpc.insecure_channel(address, options=options) as channel:
        yield channel


def _unreachable(code: grpc.StatusCode, message: str) -> bool:
    return code is grpc.StatusCode.UNAVAILABLE and (
        "failed to connect" in message or "Connection refused" in message
    )


def failure_from_rpc_error(err: grpc.RpcError, server: str, address: str) -> CliFailure:
    """The CLI failure for an RPC the server at `address` refused or could not answer."""
    info = rpc_error_details(err)
    where = f"{server} at {address}"
    if info.code is grpc.StatusCode.UNIMPLEMENTED:
        return MethodNotBuilt(f"{where} does not offer this yet: {info.message}")
    if _unreachable(info.code, info.message):
        return CliFailure(
            f"{where} is not reachable (UNAVAILABLE: {info.message})",
            details=[
                f"is it running? `alabel up` starts the mesh; --{server}-url names another server"
            ],
        )
    return failure_from_details(info, where)


def failure_from_details(info: RpcErrorDetails, where: str) -> CliFailure:
    """One line `<where>: <CODE>: <message> (reason: ...; field: ...)` for a failed call or
    a failed long-running operation (whose google.rpc.Status reads the same way)."""
    # The first line says it all (code, message, reason, field); a message's further lines
    # (say, a filter with a caret under the bad character) follow as details.
    first, *more_lines = info.message.splitlines() or [""]
    facts = []
    if info.reason and info.reason != info.code.name:
        facts.append(f"reason: {info.reason}")
    fields = [
        v.field if v.description == info.message else f"{v.field}: {v.description}"
        for v in info.field_violations
    ]
    if fields:
        more = f"; and {len(fields) - _FIELDS_SHOWN} more" if len(fields) > _FIELDS_SHOWN else ""
        facts.append(f"field: {'; '.join(fields[:_FIELDS_SHOWN])}{more}")
    line = f"{where}: {info.code.name}: {first}"
    if facts:
        line += f" ({'; '.join(facts)})"
    return CliFailure(line, details=more_lines)


@contextlib.contextmanager
def rpc_failures(server: str, address: str) -> Iterator[None]:
    """Turn a `grpc.RpcError` raised inside into a `CliFailure` naming the server (exit 1).

    UNIMPLEMENTED becomes `MethodNotBuilt` (exit 3), like a planned command.
    """
    try:
        yield
    except grpc.RpcError as err:
        raise failure_from_rpc_error(err, server, address) from None


@contextlib.contextmanager
def server_channel(server: str, address: str, *, max_message_bytes: int) -> Iterator[grpc.Channel]:
    """`open_channel` to `server` at `address`, where a failed call becomes a CLI failure
    naming that server (`rpc_failures`): what every command that calls one server needs."""
    with (
        open_channel(address, max_message_bytes=max_message_bytes) as channel,
        rpc_failures(server, address),
    ):
        yield channel


class StatusSummary:
    """A google.rpc.Status read for people and scripts: code name, message, reason, fields."""

    def __init__(self, status: status_pb2.Status) -> None:
        read = status_details(status)
        self.code: str = _CODE_NAMES.get(status.code, f"CODE_{status.code}")
        self.message: str = status.message
        self.reason = read.reason
        self.fields: list[str] = [v.field for v in read.field_violations]

    @classmethod
    def local(cls, code: grpc.StatusCode, message: str) -> StatusSummary:
        """A failure found on this side, before anything was sent."""
        return cls(status_pb2.Status(code=code.value[0], message=message))

    @property
    def ok(self) -> bool:
        return self.code == "OK"

    def text(self) -> str:
        """`INVALID_ARGUMENT: the image cannot be decoded (field: item.image.data)`."""
        line = f"{self.code}: {self.message}"
        if self.fields:
            line += f" (field: {', '.join(self.fields)})"
        return line

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "message": self.message,
            "reason": self.reason,
            "fields": self.fields,
        }
