"""One training at a time per device: the others wait their turn in the order they came.

    async with turns.turn("0", progress.check_cancelled):
        ...  # the device is this job's until the block ends

A waiting job keeps its place in the line while it looks at its cancel flag now and then, so a
cancelled run leaves the line without ever having held the device.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Callable

__all__ = ["DeviceTurns"]

_LOOK_AT_CANCEL_S = 0.5


class DeviceTurns:
    """FIFO lines of jobs, one per device name."""

    def __init__(self) -> None:
        self._lines: defaultdict[str, deque[asyncio.Future[None]]] = defaultdict(deque)

    def waiting(self, device: str) -> int:
        """Jobs in the line of `device`, the one holding it included."""
        return len(self._lines[device])

    @contextlib.asynccontextmanager
    async def turn(self, device: str, check_cancelled: Callable[[], None]) -> AsyncIterator[None]:
        """Wait for `device`, then hold it for the block; `check_cancelled` raises to leave."""
        line = self._lines[device]
        ticket: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        line.append(ticket)
        if line[0] is ticket:
            ticket.set_result(None)
        try:
            while not ticket.done():
                check_cancelled()
                # asyncio.wait leaves the ticket alone on timeout: the place in line is kept.
                await asyncio.wait({ticket}, timeout=_LOOK_AT_CANCEL_S)
            yield
        finally:
            line.remove(ticket)
            if line and not line[0].done():
                line[0].set_result(None)
            if not line:
                del self._lines[device]
