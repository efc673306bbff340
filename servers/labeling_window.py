"""The labeling window: how many images the orchestrator works on at once, across all streams.

One window per server (`settings.labeling_window` slots, a semaphore). An image takes a slot
before it is decoded and gives it back once its answer is ready, so at most `size` images are
decoded, on Triton or being registered at any moment, whatever the number of streams. That
many concurrent requests are what Triton's dynamic batcher turns into batches: the window is
both the memory bound and the batching opportunity. GetMeshStatus reports `size` and
`in_flight`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

__all__ = ["LabelingWindow"]


class LabelingWindow:
    """A counting semaphore that also says how many of its slots are taken."""

    def __init__(self, size: int, *, on_change: Callable[[int], None] | None = None) -> None:
        if size <= 0:
            raise ValueError(f"the labeling window needs at least one slot, got {size}")
        self.size = size
        self._slots = asyncio.Semaphore(size)
        self._in_flight = 0
        # Told the number in flight whenever it changes (the Prometheus gauge).
        self._on_change = on_change

    @property
    def in_flight(self) -> int:
        """Images holding a slot now."""
        return self._in_flight

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one slot for the body; waits while all are taken. Cancellation-safe."""
        async with self._slots:
            self._in_flight += 1
            self._changed()
            try:
                yield
            finally:
                self._in_flight -= 1
                self._changed()

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._in_flight)
