"""Where an export goes, and how it lands there whole or not at all.

An export directory is named by the user relative to the server's export root, so the name
is checked to stay inside that root (after `..` and symlinks are resolved) before anything is
written. The writers then fill a temporary directory beside the target, and only a finished
export is renamed into place: a reader of the target sees nothing, the old export, or the new
one, never half of one; a failed export leaves no temporary directory and the old export as
it was. A crash (not an exception) can leave a `.{name}.partial-*` directory beside the
target; it is never mistaken for an export and may be deleted.

`place_image` puts one image into an export by copy, symlink or hard link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from agentic_labeling.registry.label_sets import ImageTransfer

__all__ = ["place_image", "resolve_target", "staged_directory"]

_FIELD = "output_dir"
# Keeps `.{name}.partial-{token}` within the 255-byte file name limit.
_MAX_NAME_IN_TEMP = 100


def resolve_target(root: Path, relative: str, *, overwrite: bool) -> Path:
    """The export directory `root / relative`, resolved, after checking it may be written.

    `relative` must be a non-empty relative path that stays strictly inside `root` once `..`
    and symlinks are resolved (InvalidArgument, field `output_dir`, otherwise). An existing
    target is AlreadyExists unless `overwrite`; with `overwrite` it must be a directory.
    Nothing is created.
    """
    if not relative or not relative.strip():
        raise InvalidArgument("output_dir must not be empty", field=_FIELD)
    if "\x00" in relative:
        raise InvalidArgument("output_dir must not contain NUL characters", field=_FIELD)
    if Path(relative).is_absolute() or relative.startswith(("/", "\\")):
        raise InvalidArgument(
            f"output_dir {relative!r} must be relative to the export root", field=_FIELD
        )
    base = root.resolve()
    target = (base / relative).resolve()
    if target == base or base not in target.parents:
        raise InvalidArgument(
            f"output_dir {relative!r} resolves outside the export root", field=_FIELD
        )
    if target.exists():
        if not overwrite:
            raise AlreadyExists(
                f"output_dir {relative!r} exists already; ask for overwrite to replace it",
                metadata={"field": _FIELD},
            )
        if not target.is_dir():
            raise InvalidArgument(
                f"output_dir {relative!r} exists and is not a directory", field=_FIELD
            )
    return target


@contextlib.contextmanager
def staged_directory(target: Path, *, overwrite: bool) -> Iterator[Path]:
    """A fresh directory beside `target`, renamed to `target` when the block ends normally.

    The directory is `.{target name}.partial-{random}` in the target's parent (created as
    needed), so the rename is atomic. With `overwrite`, an existing target is moved aside
    first and removed after the rename. When the block raises, the staged directory is removed
    and any old target is left untouched. Without `overwrite`, a target that appeared while
    the block ran is AlreadyExists (and the staged directory is removed).
    """
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    stem = target.name[:_MAX_NAME_IN_TEMP]
    staged = parent / f".{stem}.partial-{secrets.token_hex(8)}"
    staged.mkdir()
    try:
        yield staged
        _commit(staged, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _commit(staged: Path, target: Path, *, overwrite: bool) -> None:
    if not (target.exists() or target.is_symlink()):
        # A directory created by someone else between this check and the rename is replaced
        # if empty (rename's rule); the window is the length of one system call.
        os.rename(staged, target)
        return
    if not overwrite:
        raise AlreadyExists(f"{target} appeared while the export was being written")
    aside = target.parent / f".{target.name[:_MAX_NAME_IN_TEMP]}.old-{secrets.token_hex(8)}"
    os.rename(target, aside)
    try:
        os.rename(staged, target)
    except BaseException:
        os.rename(aside, target)
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside)
    else:
        aside.unlink()


def place_image(source: Path, destination: Path, transfer: ImageTransfer) -> None:
    """Put `source` at `destination`: a copy, an absolute symlink, or a hard link.

    A symlink points to the resolved source, so the export may be moved. A hard link across
    file systems (or on one that has none) is FailedPrecondition naming `image_transfer`.
    """
    if transfer == ImageTransfer.COPY:
        shutil.copyfile(source, destination)
    elif transfer == ImageTransfer.SYMLINK:
        os.symlink(source.resolve(), destination)
    elif transfer == ImageTransfer.HARDLINK:
        try:
            os.link(source, destination)
        except OSError as error:
            if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise
            raise FailedPrecondition(
                f"image_transfer HARDLINK cannot link {source} into the export "
                f"({os.strerror(error.errno)}); use COPY or SYMLINK",
                metadata={"field": "image_transfer"},
            ) from error
    else:  # pragma: no cover - StrEnum is closed
        raise InvalidArgument(f"unknown image_transfer {transfer!r}", field="image_transfer")
