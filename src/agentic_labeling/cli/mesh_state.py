"""`<data-dir>/run/mesh.json`: what `alabel up` started, so that `alabel down` can stop it.

One record per part of the mesh (triton, registry, orchestrator): the address clients use, and
for a process `alabel up` started (or adopted from `alabel triton start`), its pid, the pid's
start time (so a pid reused by another program is never signalled) and its log file. A part
run elsewhere (an external Triton) has no pid and is never stopped. The file is replaced
atomically and only changed under a lock, so two `up`/`down` commands cannot race.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentic_labeling.local.processes import process_is_running
from agentic_labeling.state_file import StateFile

__all__ = ["Component", "MeshState", "MeshStateFile"]

_FORMAT = 1


@dataclass(frozen=True)
class Component:
    """One part of the mesh as `alabel up` left it."""

    name: str
    address: str
    pid: int | None = None  # None: not started by `alabel up` (an external server)
    start_ticks: int | None = None  # the process's start time, from /proc/<pid>/stat
    log_file: str | None = None
    urls: Mapping[str, str] = field(default_factory=dict)  # other endpoints, e.g. metrics
    # A Triton that `alabel triton start` started and `alabel up` took over: `down` stops it.
    adopted: bool = False

    @property
    def managed(self) -> bool:
        return self.pid is not None

    def is_running(self) -> bool:
        return self.pid is not None and process_is_running(self.pid, self.start_ticks)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "address": self.address,
            "pid": self.pid,
            "start_ticks": self.start_ticks,
            "log_file": self.log_file,
            "urls": dict(self.urls),
            "managed": self.managed,
            "adopted": self.adopted,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Component:
        pid = data.get("pid")
        ticks = data.get("start_ticks")
        log_file = data.get("log_file")
        return cls(
            name=str(data["name"]),
            address=str(data["address"]),
            pid=int(pid) if pid is not None else None,
            start_ticks=int(ticks) if ticks is not None else None,
            log_file=str(log_file) if log_file is not None else None,
            urls={str(k): str(v) for k, v in dict(data.get("urls") or {}).items()},
            adopted=bool(data.get("adopted", False)),
        )


@dataclass
class MeshState:
    """The parts in start order (triton, registry, orchestrator)."""

    components: list[Component] = field(default_factory=list)
    started_at: float = field(default_factory=time.time)

    def running(self) -> list[Component]:
        """The parts `alabel up` started that still run."""
        return [c for c in self.components if c.is_running()]

    def dead(self) -> list[Component]:
        """The parts `alabel up` started that no longer run (killed, crashed)."""
        return [c for c in self.components if c.managed and not c.is_running()]

    def replace(self, component: Component) -> None:
        """Put `component` where the part of its name was (a part started again)."""
        self.components = [component if c.name == component.name else c for c in self.components]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "started_at": self.started_at,
            "components": [c.to_json() for c in self.components],
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> MeshState:
        return cls(
            components=[Component.from_json(c) for c in data["components"]],
            started_at=float(data["started_at"]),
        )


class MeshStateFile(StateFile[MeshState]):
    """`<data_dir>/run/mesh.json`: what `alabel up` started."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            decode=MeshState.from_json,
            encode=MeshState.to_json,
            written_by="alabel up",
            busy="another `alabel up` or `alabel down` is working on this mesh",
            busy_reason="MESH_BUSY",
        )
