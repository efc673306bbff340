"""Session fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from real_parts import Mesh

from agentic_labeling.local_mesh import start_server_process, unused_port


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    """Real `alabel serve` processes on loopback; Triton points where nothing listens."""
    workdir = tmp_path_factory.mktemp("mesh")
    common = ["--data-dir", str(workdir / "data"), "--shutdown-grace-s", "5"]
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
