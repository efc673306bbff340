"""Session fixtures shared by the whole suite."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image
from real_parts import Mesh

from agentic_labeling.local_mesh import start_server_process, unused_port
from agentic_labeling.models.tiny import make_tiny_models
from agentic_labeling.triton_server import (
    TritonHandle,
    TritonLaunch,
    default_model_repository,
    start_triton,
)

# Pillow's own function, as the product sees it. Importing ultralytics replaces it for the whole
# process (label_fixtures.import_ultralytics puts it back); a test run that leaves it replaced
# makes later bad-image tests fail with ModuleNotFoundError('pi_heif') in unrelated places.
_PILLOW_OPEN = Image.open


@pytest.fixture(autouse=True)
def _pillow_open_stays_pillows() -> Iterator[None]:
    yield
    if Image.open is not _PILLOW_OPEN:
        Image.open = _PILLOW_OPEN  # type: ignore[assignment]  # one failure, not a cascade
        pytest.fail(
            "PIL.Image.open was replaced (by importing ultralytics?) during or before this "
            "test; import it through label_fixtures.import_ultralytics"
        )


def registry_data_dir() -> Iterator[Path]:
    """A data directory for a registry server, outside pytest's tmp: the embedded Postgres runs
    as another user and every pytest session resets /tmp/pytest-of-<user> to 0700."""
    directory = Path(tempfile.mkdtemp(prefix="alabel-registry-"))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """Real `alabel serve` processes on loopback; Triton points where nothing listens."""
    workdir = tmp_path_factory.mktemp("mesh")
    data_dir = next(data_dirs := registry_data_dir())
    common = [
        "--data-dir",
        str(data_dir),
        "--shutdown-grace-s",
        "5",
        "--embedding-dimension",
        "8",
    ]
    registry = start_server_process("registry", workdir, common)
    triton_url = f"127.0.0.1:{unused_port()}"
    try:
        orchestrator = start_server_process(
            "orchestrator",
            workdir,
            [*common, "--registry-url", registry.address, "--triton-url", triton_url],
        )
    except BaseException:
        registry.stop()
        raise
    yield Mesh(registry, orchestrator, triton_url)
    # Both must stop cleanly on SIGTERM: exit status 0, not a death by signal.
    statuses = {p.name: p.stop() for p in (orchestrator, registry)}
    assert statuses == {"orchestrator": 0, "registry": 0}, {
        p.name: p.log.read_text() for p in (orchestrator, registry)
    }
    next(data_dirs, None)  # removes the data directory


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Tiny random-weight Florence-2, SAM2 and DINOv2 (plumbing only, never label quality)."""
    directory = tmp_path_factory.mktemp("tiny-models")
    make_tiny_models(directory, seed=0)
    return directory


@pytest.fixture(scope="session")
def served_triton(
    tiny_models_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[TritonHandle]:
    """The real tritonserver serving the repository's model_repository/ with the tiny models."""
    log = tmp_path_factory.mktemp("triton") / "tritonserver.log"
    handle = start_triton(
        TritonLaunch(
            model_repository=default_model_repository(),
            grpc_port=0,
            http_port=0,
            metrics_port=0,
            models_dir=tiny_models_dir,
            log_file=log,
            device="cpu",
            ready_timeout_s=120,
        )
    )
    yield handle
    handle.stop()
