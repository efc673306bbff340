"""Triton system shared memory for the image tensors the orchestrator sends to its models.

With Triton on the same host, an image's tensor can be written once into a POSIX shared
memory region (/dev/shm) that Triton maps, instead of travelling inside every gRPC message
(serialised, sent over loopback, copied again on Triton's side).

`SharedMemoryPool` keeps one region per call in flight and reuses it: a call takes a free
region big enough for its tensor (a smaller free one is replaced by a bigger one), writes the
tensor, names the region in its InferInput and gives the region back once the answer is in.
Regions are created lazily, so the pool grows to the number of concurrent calls (the
orchestrator's labelling window bounds it) and no further. `close()` unregisters every region
from Triton and unlinks it from /dev/shm.

A call that ended without its answer (a passed deadline, a cancelled stream) gives its region
back too, although Triton may still run that request later and read the region while a new
call has written another image into it: only the abandoned request reads the wrong pixels,
and nobody reads its answer. The region keeps its size while registered, so Triton never reads
past it.

A region that cannot be created or registered (Triton in a container with its own /dev/shm,
a full /dev/shm, a name Triton already holds) turns the pool off for good with one warning:
every later call goes over the wire, as without the setting.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from tritonclient.grpc import aio as triton_aio
from tritonclient.utils import InferenceServerException
from tritonclient.utils import shared_memory as system_shm

__all__ = ["SharedMemoryPool"]

logger = logging.getLogger(__name__)

# Regions are sized in powers of two from 1 MiB, so images of similar sizes share a region
# and a slightly bigger image rarely forces a new one.
_MIN_REGION_BYTES = 1 << 20


def _region_bytes(nbytes: int) -> int:
    return max(_MIN_REGION_BYTES, 1 << max(nbytes - 1, 0).bit_length())


@dataclass
class Region:
    """One registered region: Triton knows it as `name`, /dev/shm as `key`."""

    name: str
    key: str
    size: int
    handle: Any  # tritonclient's SharedMemoryRegion
    registered: bool = False

    def write(self, array: npt.NDArray[Any]) -> None:
        system_shm.set_shared_memory_region(self.handle, [np.ascontiguousarray(array)])


class SharedMemoryPool:
    """Regions for the tensors of the calls in flight through one Triton client."""

    def __init__(
        self, client: triton_aio.InferenceServerClient, url: str, *, name_prefix: str = ""
    ) -> None:
        self._client = client
        self._url = url
        # Unique per process and pool: two orchestrators on one host never share a name.
        self._prefix = name_prefix or f"alabel-{os.getpid()}-{secrets.token_hex(4)}"
        self._created = 0
        self._regions: dict[str, Region] = {}  # every region that exists, free or in use
        self._free: list[Region] = []
        self._off = False

    @property
    def active(self) -> bool:
        """False once a region failed (or after close): calls then go over the wire."""
        return not self._off

    @property
    def keys(self) -> list[str]:
        """The /dev/shm names of the regions that exist now."""
        return [region.key for region in self._regions.values()]

    async def acquire(self, nbytes: int) -> Region | None:
        """A region of at least `nbytes` for one call, or None: send over the wire."""
        if self._off:
            return None
        fitting = [r for r in self._free if r.size >= nbytes]
        region = min(fitting, key=lambda r: r.size) if fitting else None
        if region is not None:
            self._free.remove(region)
            return region
        try:
            if self._free:  # all too small: replace one, so the pool does not grow
                await self._drop(self._free.pop())
            return await self._create(_region_bytes(nbytes))
        except (InferenceServerException, system_shm.SharedMemoryException, OSError) as exc:
            self._off = True
            logger.warning(
                "Triton shared memory is off for this process; images go over gRPC",
                extra={"error": str(exc), "triton_url": self._url},
            )
            return None

    def release(self, region: Region) -> None:
        """Give back a region whose call has its answer (or failed)."""
        if region.name in self._regions:
            self._free.append(region)

    async def close(self) -> None:
        """Unregister every region from Triton and unlink it; the pool is off afterwards."""
        self._off = True
        self._free.clear()
        for region in list(self._regions.values()):
            with contextlib.suppress(InferenceServerException, OSError):
                await self._drop(region)

    async def _create(self, size: int) -> Region:
        name = f"{self._prefix}-{self._created}"
        self._created += 1
        handle = system_shm.create_shared_memory_region(name, "/" + name, size, create_only=True)
        region = Region(name, "/" + name, size, handle)
        self._regions[name] = region
        try:
            await self._client.register_system_shared_memory(name, region.key, size)
        except BaseException:
            await self._drop(region)  # never left in /dev/shm, also on cancellation
            raise
        region.registered = True
        return region

    async def _drop(self, region: Region) -> None:
        """Unregister (when registered) and unlink one region; it is unlinked even when
        Triton cannot be reached."""
        self._regions.pop(region.name, None)
        try:
            if region.registered:
                region.registered = False
                await self._client.unregister_system_shared_memory(region.name)
        finally:
            system_shm.destroy_shared_memory_region(region.handle)
