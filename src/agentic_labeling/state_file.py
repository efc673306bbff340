"""A JSON state file for processes started in the background, locked while they start or stop.

`alabel triton start` and `alabel up` record what they started (pids, ports) in one of these,
so that `stop` / `down` and `status` find it again. The lock keeps two commands from acting on
one server at once; writes are atomic, so a reader never sees half a file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, Generic, TypeVar

from agentic_labeling.errors import FailedPrecondition

__all__ = ["StateFile"]

T = TypeVar("T")


class StateFile(Generic[T]):
    """`path` holding one `T`, read with `decode` and written with `encode`.

    `written_by` names the command that writes it (for the message about a foreign file);
    `busy` is what a second command is told while the lock is held, with reason `busy_reason`.
    """

    def __init__(
        self,
        path: Path,
        *,
        decode: Callable[[Mapping[str, Any]], T],
        encode: Callable[[T], dict[str, Any]],
        written_by: str,
        busy: str,
        busy_reason: str,
    ) -> None:
        self.path = path
        self._decode = decode
        self._encode = encode
        self._written_by = written_by
        self._busy = busy
        self._busy_reason = busy_reason

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Held while starting or stopping; FailedPrecondition when another command holds it."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_suffix(".lock").open("w") as lock_file:
            try:
                fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES):
                    raise
                raise FailedPrecondition(
                    f"{self._busy} ({self.path}); try again when it is done",
                    reason=self._busy_reason,
                ) from None
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def load(self) -> T | None:
        try:
            return self._decode(json.loads(self.path.read_text()))
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            raise FailedPrecondition(
                f"{self.path} is not a state file written by `{self._written_by}`; remove it",
                reason="BAD_STATE_FILE",
            ) from None

    def save(self, value: T) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(".json.partial")
        partial.write_text(json.dumps(self._encode(value), indent=2) + "\n")
        partial.replace(self.path)  # atomic: a reader never sees half a file

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
