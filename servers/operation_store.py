"""Long-running operations: slow jobs (build, export, import) run as asyncio tasks of this
process and are seen by clients as google.longrunning.Operation messages.

    operation = await store.start("datasets/7c1...", run_export)  # returns at once
    ...
    async def run_export(progress: Progress) -> ExportDatasetResponse:
        progress.update(stage="writing labels", done=0, total=n, unit="images")
        progress.check_cancelled()          # at each safe point

A job reports progress (an OperationProgress as the operation's metadata) and looks at
`check_cancelled` at points where stopping leaves nothing half-written; CancelOperation only
asks. Its result becomes the operation's response; a domain error becomes the operation's
error with the same code and details as a failed RPC would carry.

With `OperationRecords` (the registry's Postgres) every operation is stored when it starts and
when it ends, so GetOperation and ListOperations answer the same after a restart; progress
between the two lives in this process's memory. `recover()` at start-up ends the operations
this instance's predecessor left running (it died): they read as ABORTED, "re-run it". Without
records (tests of the store itself) operations live in memory only. The newest `max_finished`
finished operations are kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from uuid import UUID, uuid4

from google.longrunning import operations_pb2
from google.protobuf import message as protobuf_message
from google.protobuf import timestamp_pb2

from agentic_labeling.errors import (
    Cancelled,
    Conflict,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
)
from agentic_labeling.registry.coordinator import OperationRecords, StoredOperation
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
    # Names this run's own scratch space (an export's staging directory).
    operation_id: UUID = field(default_factory=uuid4)
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
    task: asyncio.Task[None] | None = None
    finished: asyncio.Event = field(default_factory=asyncio.Event)
    result: operations_pb2.Operation | None = None


class OperationStore:
    """The operations of this registry instance, by name (`operations/{uuid}`)."""

    def __init__(
        self,
        records: OperationRecords | None = None,
        *,
        owner: str = "",
        max_finished: int = MAX_FINISHED_OPERATIONS,
    ) -> None:
        # Running operations, and (without records) the finished ones too.
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._records = records
        self._owner = owner
        self._max_finished = max_finished

    async def recover(self) -> list[str]:
        """End the operations this instance left running when it last died; their names.

        Call once at start-up, before any `start`: every operation of this owner that is
        still running in Postgres then belongs to a process that is gone."""
        if self._records is None:
            return []
        ended: list[str] = []
        for stored in await self._records.running(owner=self._owner):
            operation = _stored_message(stored)
            operation.done = True
            operation.error.CopyFrom(
                status_message(
                    Conflict(
                        f"the registry stopped while this operation on {stored.target} ran; "
                        "re-run it",
                        reason="OPERATION_ABORTED",
                        metadata={"target": stored.target},
                    )
                )
            )
            if await self._records.finish(
                stored.name, stored.metadata, operation.SerializeToString()
            ):
                ended.append(stored.name)
        if ended:
            logger.warning(
                "operations left running by a stopped registry now read as aborted",
                extra={"operations": ended},
            )
        return ended

    async def running_names(self) -> set[str]:
        """Operations running now, here or (with records) on any registry instance."""
        names = {name for name, e in self._entries.items() if e.result is None}
        if self._records is not None:
            names.update(s.name for s in await self._records.running())
        return names

    async def start(
        self, target: str, job: Callable[[Progress], Awaitable[protobuf_message.Message]]
    ) -> operations_pb2.Operation:
        """Run `job` in the background and return its operation, not done yet.

        The operation is stored before the job starts: whatever happens to this process, a
        client holding its name can learn how it ended."""
        operation_id = uuid4()
        name = f"operations/{operation_id}"
        progress = Progress(target=target, operation_id=operation_id)
        if self._records is not None:
            await self._records.insert(
                name, target, self._owner, progress.message().SerializeToString()
            )
        entry = _Entry(name, progress)
        self._entries[name] = entry
        entry.task = asyncio.get_running_loop().create_task(self._drive(entry, job), name=name)
        return _entry_message(entry)

    async def get(self, name: str) -> operations_pb2.Operation:
        entry = self._entries.get(name)
        if entry is not None:
            return _entry_message(entry)
        return _stored_message(await self._stored(name))

    async def list(
        self, *, page_size: int = 0, page_token: str = ""
    ) -> tuple[list[operations_pb2.Operation], str]:
        """Newest first; the token is the name of the last operation of the previous page."""
        size = min(page_size or 50, 1000)
        if self._records is None:
            return _list_in_memory(self._entries, size, page_token)
        try:
            stored, more = await self._records.page(size=size, after=page_token)
        except LookupError:
            raise _unknown_page_token() from None
        page = [
            _entry_message(self._entries[s.name]) if s.name in self._entries else _stored_message(s)
            for s in stored
        ]
        return page, (stored[-1].name if more else "")

    async def wait(self, name: str, timeout_s: float | None) -> operations_pb2.Operation:
        """The operation once done, or as it is when `timeout_s` passes first."""
        entry = self._entries.get(name)
        if entry is None:
            # Done, or running on another registry instance: answered as it is now.
            return await self.get(name)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(entry.finished.wait(), timeout_s)
        return await self.get(name)

    async def cancel(self, name: str) -> None:
        """Ask the job to stop at its next safe point (a finished operation stays as it is)."""
        entry = self._entries.get(name)
        if entry is None:
            stored = await self._stored(name)
            if not stored.done:
                raise _elsewhere(stored, "cancel")
            return
        if entry.result is None:
            entry.progress.cancel_requested = True
            entry.progress.update()

    async def delete(self, name: str) -> None:
        """Forget a finished operation; a running one must be cancelled and finish first."""
        entry = self._entries.get(name)
        if entry is not None and entry.result is None:
            raise FailedPrecondition(
                f"{name} is still running; cancel it and wait until it is done",
                reason="OPERATION_RUNNING",
            )
        if entry is None:
            stored = await self._stored(name)
            if not stored.done:
                raise _elsewhere(stored, "delete")
        self._entries.pop(name, None)
        if self._records is not None:
            await self._records.delete(name)

    async def close(self) -> None:
        """Cancel every running job and wait for them: used when the server stops.

        The flag stops work a job runs in a thread (an export's writer), which cancelling
        its task cannot reach; the task's cancellation stops the rest. Each ends as
        CANCELLED, stored like any other end."""
        running = [e for e in self._entries.values() if e.task is not None and not e.task.done()]
        for entry in running:
            entry.progress.cancel_requested = True
            assert entry.task is not None
            entry.task.cancel()
        await asyncio.gather(*(e.task for e in running if e.task), return_exceptions=True)

    async def _stored(self, name: str) -> StoredOperation:
        stored = None if self._records is None else await self._records.get(name)
        if stored is None:
            error = NotFound("operation", name)
            error.metadata["field"] = "name"
            raise error
        return stored

    async def _drive(
        self, entry: _Entry, job: Callable[[Progress], Awaitable[protobuf_message.Message]]
    ) -> None:
        operation = operations_pb2.Operation(name=entry.name, done=True)
        try:
            result = await job(entry.progress)
            entry.progress.update()
            operation.response.Pack(result)
        except asyncio.CancelledError:
            error = Cancelled("the server stopped before the operation ended")
            operation.error.CopyFrom(status_message(error))
        except Exception as outcome:
            operation.error.CopyFrom(
                status_message(outcome, method=f"operation on {entry.progress.target}")
            )
        operation.metadata.Pack(entry.progress.message())
        entry.result = operation
        # Stored before anyone waiting hears of it, even when a stop cancels this task now.
        storing = asyncio.ensure_future(self._store_end(entry))
        try:
            await asyncio.shield(storing)
        except asyncio.CancelledError:
            await storing
        entry.finished.set()

    async def _store_end(self, entry: _Entry) -> None:
        if self._records is None:
            self._forget_oldest_finished()
            return
        assert entry.result is not None
        try:
            await self._records.finish(
                entry.name,
                entry.progress.message().SerializeToString(),
                entry.result.SerializeToString(),
            )
            await self._records.forget_oldest_finished(self._max_finished)
        except Exception:
            # Kept in memory instead: this process still answers with the truth.
            logger.exception("could not store the end of an operation", extra={"name": entry.name})
            return
        del self._entries[entry.name]  # Postgres answers from now on

    def _forget_oldest_finished(self) -> None:
        finished = [name for name, e in self._entries.items() if e.result is not None]
        for name in finished[: max(0, len(finished) - self._max_finished)]:
            del self._entries[name]


def _entry_message(entry: _Entry) -> operations_pb2.Operation:
    if entry.result is not None:
        return _copy(entry.result)
    operation = operations_pb2.Operation(name=entry.name, done=False)
    operation.metadata.Pack(entry.progress.message())
    return operation


def _list_in_memory(
    entries: OrderedDict[str, _Entry], size: int, page_token: str
) -> tuple[list[operations_pb2.Operation], str]:
    names = list(reversed(entries))
    start = 0
    if page_token:
        if page_token not in entries:
            raise _unknown_page_token()
        start = names.index(page_token) + 1
    page = names[start : start + size]
    more = start + size < len(names)
    return [_entry_message(entries[n]) for n in page], (page[-1] if more else "")


def _stored_message(stored: StoredOperation) -> operations_pb2.Operation:
    if stored.outcome is not None:
        return operations_pb2.Operation.FromString(stored.outcome)
    operation = operations_pb2.Operation(name=stored.name, done=False)
    operation.metadata.Pack(common_pb2.OperationProgress.FromString(stored.metadata))
    return operation


def _unknown_page_token() -> InvalidArgument:
    return InvalidArgument(
        "page_token names an operation this server no longer has; list again",
        field="page_token",
    )


def _elsewhere(stored: StoredOperation, action: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{stored.name} runs on the registry instance {stored.owner}; {action} it there",
        reason="OPERATION_RUNNING_ELSEWHERE",
        metadata={"owner": stored.owner},
    )


def _copy(operation: operations_pb2.Operation) -> operations_pb2.Operation:
    copy = operations_pb2.Operation()
    copy.CopyFrom(operation)
    return copy
