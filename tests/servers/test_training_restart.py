"""A registry killed with SIGKILL while it trains, then restarted on the same data directory
(and so the same embedded Postgres): the run it left RUNNING reads FAILED with a message saying
the registry stopped, and its operation is done with an error (as `open_services` marks runs at
start-up), so nobody waits on a training that no process is doing.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
import pytest
from conftest import registry_data_dir
from dataset_mesh import Mesh, start_registry
from google.longrunning import operations_pb2
from training_mesh import (
    TrainingMesh,
    build_shapes,
    operation_target,
    skip_unless_training_installed,
)

from agentic_labeling.servers.training_service import INTERRUPTED_RUN_MESSAGE
from agentic_labeling.v1 import training_pb2

skip_unless_training_installed()


def _mesh(workdir: Path, data_dir: Path) -> TrainingMesh:
    exports = data_dir / "exports"
    return TrainingMesh(Mesh(start_registry(workdir, data_dir, exports), exports), data_dir)


@pytest.mark.slow
def test_a_run_training_when_its_registry_is_killed_reads_failed_after_the_restart(
    tmp_path: Path,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    mesh = _mesh(tmp_path / "first", data_dir)
    try:
        dataset = build_shapes(mesh)
        operation = mesh.start(dataset.name, epochs=1000)
        run_name = operation_target(operation)
        # An epoch recorded: ultralytics is training in its subprocess, not still starting.
        mesh.wait_state(run_name, training_pb2.RUN_STATE_RUNNING)
        deadline = time.monotonic() + 300
        while (running := mesh.run(run_name)).epochs_completed < 1:
            assert running.state == training_pb2.RUN_STATE_RUNNING, running
            assert time.monotonic() < deadline, "no epoch was recorded"
            time.sleep(0.2)
        mesh.process.process.kill()  # SIGKILL: nothing recorded at the end
        mesh.process.process.wait()
        mesh.channel.close()

        mesh = _mesh(tmp_path / "second", data_dir)
        run = mesh.run(run_name)
        assert run.state == training_pb2.RUN_STATE_FAILED
        assert run.error_message == INTERRUPTED_RUN_MESSAGE
        assert "registry stopped" in run.error_message
        assert 1 <= run.epochs_completed < 1000
        assert run.end_time.seconds > 0
        assert run.operation == operation.name
        ended = mesh.operations.GetOperation(
            operations_pb2.GetOperationRequest(name=operation.name), timeout=30
        )
        assert ended.done
        assert ended.HasField("error")
        assert ended.error.code == grpc.StatusCode.ABORTED.value[0]
        assert "registry stopped" in ended.error.message
        mesh.channel.close()
        assert mesh.process.stop() == 0
    finally:
        if mesh.process.process.poll() is None:
            mesh.process.process.kill()
        next(data_dirs, None)
