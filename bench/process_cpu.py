"""CPU seconds used by groups of processes (a server and its children), read from /proc.

On a machine with few cores, every part of the mesh shares the same CPUs, so a path's
throughput follows the CPU time it needs per image. `cpu_seconds` says how much CPU each
group has used so far; the difference between two readings is what the group used in
between. A group is the processes that descend from its root pids, or whose command line
contains its marker, with all their descendants. A process counts in the first group that
claims it, so list the specific groups before the general ones (a server before the
benchmark process that started it).

It counts the user and system time of the processes alive at the reading. A process that
exits in between takes its time with it, so a group's figure is a lower bound. Linux only:
where /proc cannot be read, every group reads 0.
"""

from __future__ import annotations

import contextlib
import os
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["CpuGroup", "cpu_seconds", "cpu_used"]

_PROC = Path("/proc")


@dataclass(frozen=True)
class CpuGroup:
    """Processes counted together: descendants of `roots`, or of a process whose command line
    contains `marker`."""

    name: str
    roots: Sequence[int] = ()
    marker: str = ""


@dataclass(frozen=True)
class _Process:
    parent: int
    cpu_s: float
    command_line: str


def _processes() -> dict[int, _Process]:
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        entries = [entry for entry in _PROC.iterdir() if entry.name.isdigit()]
    except OSError:
        return {}
    found = {}
    for entry in entries:
        with contextlib.suppress(OSError, IndexError, ValueError):  # gone meanwhile
            # After the command name (which may hold spaces): state, ppid, ..., utime, stime.
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command_line = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            found[int(entry.name)] = _Process(
                parent=int(fields[1]),
                cpu_s=(int(fields[11]) + int(fields[12])) / ticks,
                command_line=command_line,
            )
    return found


def cpu_seconds(groups: Sequence[CpuGroup]) -> dict[str, float]:
    """CPU seconds (user + system) each group's live processes have used so far."""
    processes = _processes()
    children: dict[int, list[int]] = defaultdict(list)
    for pid, process in processes.items():
        children[process.parent].append(pid)
    claimed: set[int] = set()
    used = {}
    for group in groups:
        pending = [pid for pid in group.roots if pid in processes]
        if group.marker:
            pending += [pid for pid, p in processes.items() if group.marker in p.command_line]
        members: set[int] = set()
        while pending:
            pid = pending.pop()
            if pid in members or pid in claimed:
                continue
            members.add(pid)
            pending += children[pid]
        claimed |= members
        used[group.name] = sum(processes[pid].cpu_s for pid in members)
    return used


def cpu_used(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
    """What each group used between two readings (never negative: a process that exited in
    between takes its time with it)."""
    return {name: max(0.0, after[name] - before.get(name, 0.0)) for name in after}
