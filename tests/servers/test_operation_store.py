"""Long-running operations in memory: progress while running, the response or the error once
done, cancellation at the job's safe points, and what is kept. Stored in Postgres and across a
restart: tests/registry/test_operations.py."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import wrappers_pb2

from agentic_labeling.errors import FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.servers.operation_store import OperationStore, Progress
from agentic_labeling.v1 import common_pb2


def _progress_of(operation: object) -> common_pb2.OperationProgress:
    progress = common_pb2.OperationProgress()
    assert operation.metadata.Unpack(progress)  # type: ignore[attr-defined]
    return progress


async def test_a_job_reports_progress_then_its_response() -> None:
    store = OperationStore()
    step = asyncio.Event()

    async def job(progress: Progress) -> wrappers_pb2.StringValue:
        progress.update(stage="counting", done=1, total=3, unit="images")
        await step.wait()
        return wrappers_pb2.StringValue(value="finished")

    started = await store.start("datasets/x", job)
    assert not started.done
    await asyncio.sleep(0)
    running = await store.wait(started.name, 0.05)  # times out: still running
    assert not running.done
    progress = _progress_of(running)
    assert (progress.target, progress.stage, progress.done, progress.total) == (
        "datasets/x",
        "counting",
        1,
        3,
    )
    step.set()
    done = await store.wait(started.name, 5)
    assert done.done
    answer = wrappers_pb2.StringValue()
    assert done.response.Unpack(answer)
    assert answer.value == "finished"
    assert await store.get(started.name) == done


async def test_a_failed_job_carries_its_status_and_a_bug_carries_only_an_incident() -> None:
    store = OperationStore()

    async def refused(progress: Progress) -> wrappers_pb2.StringValue:
        raise InvalidArgument("the path is bad", field="path")

    async def broken(progress: Progress) -> wrappers_pb2.StringValue:
        raise ZeroDivisionError("oops")

    bad = await store.wait((await store.start("a", refused)).name, 5)
    assert bad.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert bad.error.message == "the path is bad"
    bug = await store.wait((await store.start("b", broken)).name, 5)
    assert bug.error.code == grpc.StatusCode.INTERNAL.value[0]
    assert "oops" not in bug.error.message


async def test_cancel_is_seen_at_the_jobs_next_safe_point() -> None:
    store = OperationStore()
    reached = asyncio.Event()

    async def job(progress: Progress) -> wrappers_pb2.StringValue:
        reached.set()
        while True:
            progress.check_cancelled()
            await asyncio.sleep(0.01)

    name = (await store.start("datasets/y", job)).name
    await reached.wait()
    with pytest.raises(FailedPrecondition, match="still running"):
        await store.delete(name)
    await store.cancel(name)
    assert _progress_of(await store.get(name)).cancel_requested
    done = await store.wait(name, 5)
    assert done.error.code == grpc.StatusCode.CANCELLED.value[0]
    await store.cancel(name)  # a finished operation stays as it was
    assert await store.get(name) == done
    await store.delete(name)
    with pytest.raises(NotFound):
        await store.get(name)


async def test_listing_is_newest_first_in_pages_and_old_finished_ones_are_forgotten() -> None:
    store = OperationStore(max_finished=3)

    async def job(progress: Progress) -> wrappers_pb2.StringValue:
        return wrappers_pb2.StringValue()

    names = [(await store.start(str(i), job)).name for i in range(5)]
    await asyncio.sleep(0.01)  # every job runs to its end
    page, token = await store.list(page_size=2)
    assert [o.name for o in page] == [names[4], names[3]]
    rest, last = await store.list(page_size=2, page_token=token)
    assert [o.name for o in rest] == [names[2]]
    assert last == ""
    with pytest.raises(NotFound):
        await store.get(names[0])
    with pytest.raises(InvalidArgument):
        await store.list(page_token=names[0])


async def test_close_stops_running_jobs_and_marks_them_cancelled() -> None:
    store = OperationStore()

    async def forever(progress: Progress) -> wrappers_pb2.StringValue:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    name = (await store.start("z", forever)).name
    await asyncio.sleep(0)
    await store.close()
    assert (await store.get(name)).error.code == grpc.StatusCode.CANCELLED.value[0]
