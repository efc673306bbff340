"""The labeling window: how many images the orchestrator has on Triton at once, across all
streams, and beside it the registration queue: how many images are at the registry at once.

One window per server (`settings.labeling_window` slots, a semaphore). An image takes a slot
for its model stages only (detect, segment, embed) and gives it back before its objects are
registered, so `size` images in the window are `size` concurrent requests on Triton, which its
dynamic batcher turns into batches: the window is the batching opportunity. An image waiting
for the registry holds no slot, so a slow registry does not shrink Triton's batches.

The registry calls (decoding and registering the source before the models, registering the
objects after) take a slot of the registration queue instead (`settings.registration_queue`
slots, another semaphore). An image holds at most one slot of either kind at a time and never
waits for one while holding the other, so the two cannot deadlock. Both are bounded, and each
stream's credits (servers/auto_label.py) bound the images waiting for either, so back-pressure
still reaches the client. GetMeshStatus reports the window's `size` and `in_flight`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

__all__ = ["LabelingWindow"]


class LabelingWindow:
    """Two counting semaphores, one for the model stages and one for the registry calls, that
    also say how many of their slots are taken."""

    def __init__(
        self,
        size: int,
        *,
        registration: int | None = None,
        on_change: Callable[[int], None] | None = None,
    ) -> None:
        if size <= 0:
            raise ValueError(f"the labeling window needs at least one slot, got {size}")
        # A server passes settings.registration_queue; None (tests): as many as the window.
        registration = size if registration is None else registration
        if registration <= 0:
            raise ValueError(f"the registration queue needs at least one slot, got {registration}")
        self.size = size
        self.registration_size = registration
        self._slots = asyncio.Semaphore(size)
        self._registration_slots = asyncio.Semaphore(registration)
        self._in_flight = 0
        self._registering = 0
        # Told the number in flight whenever it changes (the Prometheus gauge).
        self._on_change = on_change

    @property
    def in_flight(self) -> int:
        """Images in their model stages now (holding a window slot)."""
        return self._in_flight

    @property
    def registering(self) -> int:
        """Images at the registry now (holding a registration slot)."""
        return self._registering

    @property
    def images(self) -> int:
        """How many images a stream may have unanswered: enough to fill both at once."""
        return self.size + self.registration_size

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold one window slot for the body (model stages); waits while all are taken.
        Cancellation-safe."""
        async with self._slots:
            self._in_flight += 1
            self._changed()
            try:
                yield
            finally:
                self._in_flight -= 1
                self._changed()

    @contextlib.asynccontextmanager
    async def registration_slot(self) -> AsyncIterator[None]:
        """Hold one registration slot for the body (registry calls); waits while all are
        taken. Cancellation-safe."""
        async with self._registration_slots:
            self._registering += 1
            try:
                yield
            finally:
                self._registering -= 1

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self._in_flight)
