"""Long-running operations of one server process: slow jobs (build, export, import) run as
asyncio tasks and are seen by clients as google.longrunning.Operation messages.

    operation = store.start("datasets/7c1...", run_export, response_type)  # returns at once
    ...
    async def run_export(progress: Progress) -> ExportDatasetResponse:
        progress.update(stage="writing labels", done=0, total=n, unit="images")
        progress.check_cancelled()          # at each safe point

A job reports progress (an OperationProgress as the operation's metadata) and looks at
`check_cancelled` at points where stopping leaves nothing half-written; CancelOperation only
asks. Its result becomes the operation's response; a domain error becomes the operation's
error with the same code and details as a failed RPC would carry.

Operations live in memory: a restarted server has forgotten them (the jobs' effects are
durable, their progress is not). The newest `max_finished` finished operations are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import uuid4

from google.longrunning import operations_pb2
from google.protobuf import message as protobuf_message
from google.protobuf import timestamp_pb2

from agentic_labeling.errors import Cancelled, FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.servers.error_status import status_message
from agentic_labeling.v1 import common_pb2

__all__ = ["OperationStore", "Progress"]

logger = logging.getLogger(__name__)

MAX_FINISHED_OPERATIONS = 1000


def _now() -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.GetCurrentTime()
    return stamp


@dataclass
class Progress:
    """What a running job has done, and whether it was asked to stop."""

    target: str
    start_time: timestamp_pb2.Timestamp = field(default_factory=_now)
    stage: str = ""
    done: int = 0
    total: int = 0
    unit: str = ""
    cancel_requested: bool = False
    update_time: timestamp_pb2.Timestamp = field(default_factory=_now)

    def update(
        self,
        *,
        stage: str | None = None,
        done: int | None = None,
        total: int | None = None,
        unit: str | None = None,
    ) -> None:
        if stage is not None:
            self.stage = stage
        if done is not None:
            self.done = done
        if total is not None:
            self.total = total
        if unit is not None:
            self.unit = unit
        self.update_time = _now()

    def check_cancelled(self) -> None:
        """Raise Cancelled when the client asked to cancel; call it only at safe points."""
        if self.cancel_requested:
            raise Cancelled(f"the operation on {self.target} was cancelled")

    def message(self) -> common_pb2.OperationProgress:
        return common_pb2.OperationProgress(
            target=self.target,
            stage=self.stage,
            done=self.done,
            total=self.total,
            unit=self.unit,
            start_time=self.start_time,
            update_time=self.update_time,
            cancel_requested=self.cancel_requested,
        )


@dataclass
class _Entry:
    name: str
    progress: Progress
    task: asyncio.Task[protobuf_message.Message]
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    result: operations_pb2.Operation | None = None


class OperationStore:
    """The operations of this process, by name (`operations/{uuid}`)."""

    def __init__(self, *, max_finished: int = MAX_FINISHED_OPERATIONS) -> None:
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._max_finished = max_finished

    def start(
        self, target: str, job: Callable[[Progress], Awaitable[protobuf_message.Message]]
    ) -> operations_pb2.Operation:
        """Run `job` in the background and return its operation, not done yet."""
        name = f"operations/{uuid4()}"
        progress = Progress(target=target)
        task = asyncio.get_running_loop().create_task(_run(job, progress), name=name)
        entry = _Entry(name, progress, task)
        self._entries[name] = entry
        task.add_done_callback(lambda _: self._finish(entry))
        return self._message(entry)

    def get(self, name: str) -> operations_pb2.Operation:
        return self._message(self._entry(name))

    def list(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[operations_pb2.Operation], str]:
        """Newest first; the token is the name of the last operation of the previous page."""
        size = min(page_size or 50, 1000)
        names = list(reversed(self._entries))
        start = 0
        if page_token:
            if page_token not in self._entries:
                raise InvalidArgument(
                    "page_token names an operation this server no longer has; list again",
                    field="page_token",
                )
            start = names.index(page_token) + 1
        page = names[start : start + size]
        more = start + size < len(names)
        return [self._message(self._entries[n]) for n in page], (page[-1] if more else "")

    async def wait(self, name: str, timeout_s: float | None) -> operations_pb2.Operation:
        """The operation once done, or as it is when `timeout_s` passes first."""
        entry = self._entry(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entry.finished.wait(), timeout_s)
        return self._message(entry)

    def cancel(self, name: str) -> None:
        """Ask the job to stop at its next safe point (a finished operation stays as it is)."""
        entry = self._entry(name)
        if entry.result is None:
            entry.progress.cancel_requested = True
            entry.progress.update()

    def delete(self, name: str) -> None:
        """Forget a finished operation; a running one must be cancelled and finish first."""
        entry = self._entry(name)
        if entry.result is None:
            raise FailedPrecondition(
                f"{name} is still running; cancel it and wait until it is done",
                reason="OPERATION_RUNNING",
            )
        del self._entries[name]

    async def close(self) -> None:
        """Cancel every running job and wait for them: used when the server stops.

        The flag stops work a job runs in a thread (an export's writer), which cancelling
        its task cannot reach; the task's cancellation stops the rest."""
        running = [e for e in self._entries.values() if not e.task.done()]
        for entry in running:
            entry.progress.cancel_requested = True
            entry.task.cancel()
        await asyncio.gather(*(e.task for e in running), return_exceptions=True)

    def _entry(self, name: str) -> _Entry:
        entry = self._entries.get(name)
        if entry is None:
            # Operations are kept in memory: a restarted server has forgotten the old ones.
            error = NotFound("operation", name)
            error.metadata["field"] = "name"
            raise error
        return entry

    def _finish(self, entry: _Entry) -> None:
        operation = self._message(entry, running=False)
        if entry.task.cancelled():
            error = status_message(Cancelled("the server stopped before the operation ended"))
            operation.error.CopyFrom(error)
        else:
            outcome = entry.task.exception()
            if outcome is None:
                operation.response.Pack(entry.task.result())
            else:
                if not isinstance(outcome, Exception):  # pragma: no cover - SystemExit & co.
                    outcome = Exception(repr(outcome))
                operation.error.CopyFrom(
                    status_message(outcome, method=f"operation on {entry.progress.target}")
                )
        entry.result = operation
        entry.finished.set()
        self._forget_oldest_finished()

    def _forget_oldest_finished(self) -> None:
        finished = [name for name, e in self._entries.items() if e.result is not None]
        for name in finished[: max(0, len(finished) - self._max_finished)]:
            del self._entries[name]

    def _message(self, entry: _Entry, *, running: bool = True) -> operations_pb2.Operation:
        if entry.result is not None:
            return _copy(entry.result)
        operation = operations_pb2.Operation(name=entry.name, done=not running)
        operation.metadata.Pack(entry.progress.message())
        return operation


async def _run(
    job: Callable[[Progress], Awaitable[protobuf_message.Message]], progress: Progress
) -> protobuf_message.Message:
    result = await job(progress)
    progress.update()
    return result


def _copy(operation: operations_pb2.Operation) -> operations_pb2.Operation:
    copy = operations_pb2.Operation()
    copy.CopyFrom(operation)
    return copy
