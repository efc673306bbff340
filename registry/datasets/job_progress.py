"""What a slow registry job (export, import) needs from whoever runs it: somewhere to report
progress, and a way to learn that it should stop. The gRPC layer passes its operation's
progress (servers/operation_store.py); tests may pass their own."""

from __future__ import annotations

from typing import Protocol

__all__ = ["JobProgress"]


class JobProgress(Protocol):
    def update(
        self,
        *,
        stage: str | None = None,
        done: int | None = None,
        total: int | None = None,
        unit: str | None = None,
    ) -> None: ...

    def check_cancelled(self) -> None:
        """Raise (Cancelled) when the job should stop; called only at safe points."""
