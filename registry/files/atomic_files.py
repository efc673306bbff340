"""Files that appear whole or not at all: write to a temporary file beside the target, fsync,
rename over the target, fsync the directory. Masks and stored images both need this; a crash
leaves at most a hidden `.NAME.*.tmp` file, which the stores sweep up."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["TEMP_SUFFIX", "fsync_directory", "write_atomically"]

TEMP_SUFFIX = ".tmp"


def write_atomically(target: Path, data: bytes) -> None:
    """Write `data` to `target` (whose directory exists) so readers never see a partial file."""
    handle, temp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.stem}.", suffix=TEMP_SUFFIX
    )
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    fsync_directory(target.parent)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable (POSIX: fsync the directory)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
