"""A registry killed with SIGKILL in the middle of an export, then of an import: after each
restart the interrupted operation reads as done with an ABORTED error that says to re-run it,
and no staging directory is left in the export root (also none that an older crash left)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import grpc
import pytest
from conftest import registry_data_dir
from dataset_mesh import Mesh, build, create_dataset, export, register, start_registry
from google.longrunning import operations_pb2

from agentic_labeling.local_mesh import ManagedProcess
from agentic_labeling.v1 import common_pb2, dataset_pb2

IMAGES = 60


def _staging(root: Path) -> list[Path]:
    return [p for p in root.rglob("*.partial-*") if p.is_dir()]


def _kill(process: ManagedProcess) -> None:
    process.process.kill()  # SIGKILL: no graceful stop, nothing stored at the end
    process.process.wait()


def _reads_aborted(mesh: Mesh, name: str) -> None:
    operation = mesh.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=name), timeout=30
    )
    assert operation.done
    assert operation.error.code == grpc.StatusCode.ABORTED.value[0]
    assert "registry stopped while this operation" in operation.error.message
    assert "re-run it" in operation.error.message


def _progress(mesh: Mesh, name: str) -> tuple[bool, int]:
    operation = mesh.operations.GetOperation(
        operations_pb2.GetOperationRequest(name=name), timeout=30
    )
    progress = common_pb2.OperationProgress()
    operation.metadata.Unpack(progress)
    return operation.done, progress.done


@pytest.mark.slow
def test_a_registry_killed_mid_export_and_mid_import_leaves_no_staging_and_says_why(
    tmp_path: Path,
) -> None:
    data_dirs = registry_data_dir()
    data_dir = next(data_dirs)
    root = data_dir / "exports"
    process = start_registry(tmp_path / "first", data_dir, root)
    mesh = Mesh(process, root)
    try:
        for seed in range(IMAGES):
            register(mesh, seed)
        dataset = build(mesh, create_dataset(mesh, "crash", filter="is_validated = true"))
        source = export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_COCO, "truth")
        exporting = mesh.datasets.ExportDataset(
            dataset_pb2.ExportDatasetRequest(
                name=dataset.name,
                format=dataset_pb2.EXPORT_FORMAT_YOLO_SEGMENT,
                output_dir="street/yolo",
            ),
            timeout=30,
        )
        deadline = time.monotonic() + 60
        while not _staging(root / "street") and time.monotonic() < deadline:
            time.sleep(0.001)
        _kill(process)
        assert _staging(root / "street"), "the export was not caught while it was written"
        assert not (root / "street" / "yolo").exists()
        # A leftover of an older crash, named by a random token as before this fix.
        old = root / "elsewhere" / ".done.partial-0123456789abcdef"
        old.mkdir(parents=True)
        mesh.channel.close()

        process = start_registry(tmp_path / "second", data_dir, root)
        mesh = Mesh(process, root)
        assert _staging(root) == []
        _reads_aborted(mesh, exporting.name)
        importing = mesh.datasets.ImportLabels(
            dataset_pb2.ImportLabelsRequest(
                format=dataset_pb2.LABEL_FORMAT_COCO,
                path=source.path,
                validated_by="ground truth",
                request_id=str(uuid.uuid4()),
            ),
            timeout=30,
        )
        done, written = _progress(mesh, importing.name)
        while not done and written == 0 and time.monotonic() < deadline + 60:
            time.sleep(0.001)
            done, written = _progress(mesh, importing.name)
        _kill(process)
        assert not done, "the import was not caught while it ran"
        mesh.channel.close()

        process = start_registry(tmp_path / "third", data_dir, root)
        mesh = Mesh(process, root)
        _reads_aborted(mesh, importing.name)
        _reads_aborted(mesh, exporting.name)
        # Re-running the export finishes it, with nothing else beside it.
        again = export(mesh, dataset, dataset_pb2.EXPORT_FORMAT_YOLO_SEGMENT, "street/yolo")
        assert Path(again.entry_point).is_file()
        assert os.listdir(root / "street") == ["yolo"]
        mesh.channel.close()
        assert process.stop() == 0
    finally:
        if process.process.poll() is None:
            process.process.kill()
        next(data_dirs, None)
