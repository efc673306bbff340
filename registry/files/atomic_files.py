"""Files that appear whole or not at all: write to a temporary file beside the target, fsync,
rename over the target, fsync the directory. Masks and stored images both need this; a crash
leaves at most a hidden `.NAME.*.tmp` file, which the stores sweep up."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TEMP_SUFFIX", "fsync_directory", "write_all_atomically", "write_atomically"]

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


def write_all_atomically(files: Sequence[tuple[Path, bytes]]) -> None:
    """`write_atomically` for several files (whose directories exist) in one pass: every
    temporary file is written before the first fsync, so the file system writes them back
    together, and each directory is fsynced once after the renames. When this returns, all
    are durable; when it raises, none of the temporary files is left (targets already renamed
    stay, whole)."""
    temps: list[str] = []
    try:
        for target, data in files:
            handle, temp_name = tempfile.mkstemp(
                dir=target.parent, prefix=f".{target.stem}.", suffix=TEMP_SUFFIX
            )
            temps.append(temp_name)
            with os.fdopen(handle, "wb") as file:
                file.write(data)
        for temp_name in temps:
            descriptor = os.open(temp_name, os.O_RDONLY)
            try:
                os.fsync(descriptor)
            finally:
                os.close(descriptor)
        for (target, _), temp_name in zip(files, temps, strict=True):
            os.replace(temp_name, target)
    except BaseException:
        for temp_name in temps:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp_name)
        raise
    for directory in dict.fromkeys(target.parent for target, _ in files):
        fsync_directory(directory)


def fsync_directory(directory: Path) -> None:
    """Make a rename or unlink in `directory` durable (POSIX: fsync the directory)."""
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
