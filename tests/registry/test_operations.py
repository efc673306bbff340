"""Long-running operations stored in Postgres: what a restarted registry answers about them.

A store that is dropped without `close` is what a SIGKILL leaves: the next store on the same
database must tell each client how its operation ended. (The same through real registry
processes killed with SIGKILL: tests/servers/test_operation_crash.py.)
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from google.protobuf import wrappers_pb2

from agentic_labeling.errors import FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.database import Database
from agentic_labeling.registry.operations import OperationRecords
from agentic_labeling.servers.operation_store import OperationStore, Progress
from agentic_labeling.v1 import common_pb2

OWNER = "host-a:/data/a"


def _store(db: Database, owner: str = OWNER, **options: int) -> OperationStore:
    return OperationStore(OperationRecords(db), owner=owner, **options)


async def _forever(progress: Progress) -> wrappers_pb2.StringValue:
    progress.update(stage="writing", done=1, total=9, unit="images")
    await asyncio.Event().wait()
    raise AssertionError("unreachable")


async def _quick(progress: Progress) -> wrappers_pb2.StringValue:
    return wrappers_pb2.StringValue(value=progress.target)


async def test_a_finished_operation_reads_the_same_from_a_new_store(db: Database) -> None:
    first = _store(db)
    name = (await first.start("datasets/a", _quick)).name
    done = await first.wait(name, 5)
    assert done.done
    again = _store(db)
    assert await again.get(name) == done
    assert await again.wait(name, 0) == done


async def test_an_operation_whose_server_died_reads_as_aborted_with_a_reason(
    db: Database,
) -> None:
    dead = _store(db)
    name = (await dead.start("datasets/b", _forever)).name
    await asyncio.sleep(0.01)
    # The process dies: no close, no end stored. Its successor on the same data dir recovers.
    restarted = _store(db)
    assert await restarted.recover() == [name]
    operation = await restarted.get(name)
    assert operation.done
    assert operation.error.code == grpc.StatusCode.ABORTED.value[0]
    assert "re-run it" in operation.error.message
    progress = common_pb2.OperationProgress()
    assert operation.metadata.Unpack(progress)
    assert progress.target == "datasets/b"
    await dead.close()  # the test's own cleanup: the task must not outlive the loop
    assert await restarted.get(name) == operation  # the late end does not overwrite it


async def test_recovery_leaves_the_running_operations_of_other_instances_alone(
    db: Database,
) -> None:
    other = _store(db, owner="host-b:/data/b")
    name = (await other.start("datasets/c", _forever)).name
    mine = _store(db)
    assert await mine.recover() == []
    assert not (await mine.get(name)).done
    assert name in await mine.running_names()
    with pytest.raises(FailedPrecondition, match="host-b"):
        await mine.cancel(name)
    with pytest.raises(FailedPrecondition, match="host-b"):
        await mine.delete(name)
    await other.close()
    assert (await mine.get(name)).error.code == grpc.StatusCode.CANCELLED.value[0]


async def test_a_stopped_server_stores_its_running_operations_as_cancelled(db: Database) -> None:
    store = _store(db)
    name = (await store.start("datasets/d", _forever)).name
    await asyncio.sleep(0.01)
    await store.close()
    stored = await _store(db).get(name)
    assert stored.error.code == grpc.StatusCode.CANCELLED.value[0]


async def test_listing_pages_newest_first_across_stores_and_keeps_the_newest_finished(
    db: Database,
) -> None:
    first = _store(db, max_finished=3)
    names = []
    for index in range(5):
        names.append((await first.start(str(index), _quick)).name)
        await first.wait(names[-1], 5)
    running = (await first.start("running", _forever)).name
    later = _store(db)
    page, token = await later.list(page_size=2)
    assert [o.name for o in page] == [running, names[4]]
    assert not page[0].done
    rest, last = await later.list(page_size=5, page_token=token)
    assert [o.name for o in rest] == [names[3], names[2]]
    assert last == ""
    with pytest.raises(NotFound):
        await later.get(names[0])
    with pytest.raises(InvalidArgument):
        await later.list(page_token=names[0])
    await first.close()


async def test_deleting_a_finished_operation_forgets_it_everywhere(db: Database) -> None:
    first = _store(db)
    name = (await first.start("datasets/e", _quick)).name
    await first.wait(name, 5)
    await _store(db).delete(name)
    with pytest.raises(NotFound):
        await first.get(name)
