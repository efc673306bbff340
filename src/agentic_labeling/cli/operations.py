"""Following a long-running operation of a server to its end, with a progress bar.

The server's slow methods (build, export, import) return a google.longrunning.Operation at
once; `follow` polls it through google.longrunning.Operations (WaitOperation with a short
timeout, so progress shows while the job runs), draws its OperationProgress, and returns the
finished operation's response, or raises the operation's error as a CLI failure. Ctrl-C asks
the server to cancel the job (it stops at its next safe point and writes nothing half) before
the command exits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from google.protobuf import duration_pb2
from google.protobuf.message import Message

from agentic_labeling.cli.failures import CliFailure

if TYPE_CHECKING:
    import grpc
    from google.longrunning import operations_pb2
    from google.rpc import status_pb2

__all__ = ["follow", "operation_failure"]

ResponseT = TypeVar("ResponseT", bound=Message)

_POLL_S = 0.5


def operation_failure(error: status_pb2.Status, what: str) -> CliFailure:
    """`what` failed: the operation's google.rpc.Status, shown as a failed RPC is."""
    from agentic_labeling.cli.channels import failure_from_details
    from agentic_labeling.rpc_status import status_details

    return failure_from_details(status_details(error), f"{what} failed")


def follow(
    channel: grpc.Channel,
    operation: operations_pb2.Operation,
    response: ResponseT,
    *,
    what: str,
    show_progress: bool = True,
) -> ResponseT:
    """Wait for `operation` to finish; unpack its response into `response` and return it."""
    from google.longrunning import operations_pb2, operations_pb2_grpc
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    from agentic_labeling.v1 import common_pb2

    stub = operations_pb2_grpc.OperationsStub(channel)
    bar = Progress(
        TextColumn(f"[bold]{what}"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[unit]}"),
        TimeElapsedColumn(),
        console=Console(stderr=True, highlight=False),
        disable=not show_progress,
        transient=True,
    )
    progress = common_pb2.OperationProgress()
    try:
        with bar:
            task = bar.add_task("starting", total=None, unit="")
            while not operation.done:
                operation = stub.WaitOperation(
                    operations_pb2.WaitOperationRequest(
                        name=operation.name, timeout=duration_pb2.Duration(nanos=500_000_000)
                    ),
                    timeout=_POLL_S + 30,
                )
                operation.metadata.Unpack(progress)
                bar.update(
                    task,
                    description=progress.stage,
                    completed=progress.done,
                    total=progress.total or None,
                    unit=progress.unit,
                )
    except KeyboardInterrupt:
        stub.CancelOperation(operations_pb2.CancelOperationRequest(name=operation.name), timeout=10)
        raise CliFailure(
            f"{what}: interrupted; the server was asked to cancel {operation.name} (it stops "
            "at its next safe point and leaves nothing half-written)"
        ) from None
    if operation.HasField("error"):
        raise operation_failure(operation.error, what)
    operation.response.Unpack(response)
    return response
