"""What the Triton tests share: the test-only model repositories and a look at leftover processes.

No `__init__.py` here on purpose: this directory must never become an importable `triton`
package, or it would shadow the `triton` package that torch imports.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def echo_repository() -> Path:
    """One Python-backend model, `echo` (see repository/echo/1/model.py)."""
    return HERE / "repository"


@pytest.fixture(scope="session")
def broken_repository() -> Path:
    """One Python-backend model, `broken`, whose initialize() raises."""
    return HERE / "broken_repository"


def _live_processes_mentioning(text: str) -> list[str]:
    """Command lines of live (not zombie) processes whose command line contains `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            command = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile
        if state != "Z" and text in command:
            found.append(command)
    return found


@pytest.fixture
def leftover_processes() -> Callable[[str], list[str]]:
    """A function: the live processes mentioning a text once the stubs had time to exit.

    tritonserver and its Python stubs name the model repository on their command lines; a stub
    notices its server is gone within a second or two. `settle_s` is only a hang guard (the
    wait ends as soon as they are gone), generous for a busy machine.
    """

    def leftovers(text: str, settle_s: float = 60.0) -> list[str]:
        deadline = time.monotonic() + settle_s
        while (found := _live_processes_mentioning(text)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return found

    return leftovers
