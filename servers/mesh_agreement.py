"""What the orchestrator checks its peers agree on: the embedding length, the window and batches.

Embedding length. The served DINOv2's embeddings go into the registry, which stores one length
(recorded when its stores were created). Two different lengths would otherwise fail image by
image at BatchCreateObjects. The orchestrator compares the two numbers once both peers answer:

- at start-up: a mismatch stops the start with one line (FailedPrecondition, reason
  EMBEDDING_DIMENSION_MISMATCH, naming both numbers), which `alabel up` reports;
- when Triton or the registry was not up yet at start-up (the orchestrator starts without
  them, by design), before the first image of each AutoLabel stream until the two numbers have
  been seen to agree once: a mismatch refuses the stream with FAILED_PRECONDITION. A peer that
  still cannot answer is not a mismatch: the images then fail as UNAVAILABLE, item by item.

GetMeshStatus shows both numbers (0 for one not known). The served length is asked once (one
blank image embedded) and remembered: asking on every status call would run the model.

Window and batches. The labelling window bounds the images in flight across all streams, so
it bounds the batches Triton can form: a window smaller than a model's max_batch_size leaves
that model's batches never full. That is slower, not wrong, so start-up logs a warning.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from agentic_labeling.clients.mesh_probe import (
    registry_embedding_dimension,
    served_embedding_dimension,
    served_max_batch_sizes,
)
from agentic_labeling.errors import DomainError, FailedPrecondition
from agentic_labeling.settings import Settings

__all__ = ["EmbeddingDimensions", "MeshAgreement", "small_window_warning"]

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class EmbeddingDimensions:
    """The served DINOv2's embedding length and the registry's; None where one cannot say."""

    served: int | None
    registry: int | None

    @property
    def known(self) -> bool:
        return self.served is not None and self.registry is not None

    def mismatch(self, registry_url: str) -> FailedPrecondition | None:
        """The error to answer when both are known and differ, else None."""
        if not self.known or self.served == self.registry:
            return None
        return FailedPrecondition(
            f"the served DINOv2 gives {self.served}-dimensional embeddings but the registry at"
            f" {registry_url} stores {self.registry}-dimensional ones: serve the DINOv2 that"
            " registry was made with (--models-dir), or use a registry of"
            f" {self.served} dimensions (another --data-dir)",
            reason="EMBEDDING_DIMENSION_MISMATCH",
            metadata={"served": str(self.served), "registry": str(self.registry)},
        )


def small_window_warning(window: int, max_batch_sizes: dict[str, int]) -> str | None:
    """Why `window` images in flight cannot fill some model's batches; None when they can."""
    short = {name: size for name, size in sorted(max_batch_sizes.items()) if size > window}
    if not short:
        return None
    models = ", ".join(f"{name} {size}" for name, size in short.items())
    return (
        f"labeling_window {window} is smaller than the max_batch_size Triton serves"
        f" ({models}): those batches can never fill; set --labeling-window to at least"
        f" {max(short.values())}"
    )


class MeshAgreement:
    """Compares the orchestrator's peers; one per orchestrator."""

    def __init__(self, settings: Settings, *, probe_timeout_s: float = _PROBE_TIMEOUT_S) -> None:
        self._settings = settings
        self._timeout_s = probe_timeout_s
        self._served: int | None = None
        self._agreed = False

    async def _served_dimension(self) -> int | None:
        if self._served is None:
            try:
                self._served = await served_embedding_dimension(
                    self._settings.triton_url, timeout_s=self._timeout_s
                )
            except DomainError:
                return None  # Triton (or its dinov2) not up: not known yet
        return self._served

    async def embedding_dimensions(self) -> EmbeddingDimensions:
        """Both lengths as the peers say them now (the served one remembered once known)."""
        served, registry = await asyncio.gather(
            self._served_dimension(),
            registry_embedding_dimension(self._settings.registry_url, timeout_s=self._timeout_s),
        )
        return EmbeddingDimensions(served=served, registry=registry)

    async def require_embedding_agreement(self) -> None:
        """Raise FailedPrecondition when the two lengths are known and differ.

        Once they have been seen equal, later calls return at once.
        """
        if self._agreed:
            return
        dimensions = await self.embedding_dimensions()
        error = dimensions.mismatch(self._settings.registry_url)
        if error is not None:
            raise error
        self._agreed = dimensions.known

    async def check_at_start(self) -> None:
        """Start-up: a known mismatch raises; what cannot be compared yet is logged."""
        await self.require_embedding_agreement()
        if not self._agreed:
            logger.info(
                "embedding lengths not compared at start-up (Triton or the registry is not up);"
                " AutoLabel compares them before its first image"
            )
        sizes = await served_max_batch_sizes(self._settings.triton_url, timeout_s=self._timeout_s)
        warning = small_window_warning(self._settings.labeling_window, sizes or {})
        if warning is not None:
            logger.warning(warning)
