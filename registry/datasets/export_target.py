"""Where an export goes, and how it lands there whole or not at all.

An export directory is named by the user relative to the server's export root, so the name
is checked to stay inside that root (after `..` and symlinks are resolved) before anything is
written. The writers then fill a temporary directory beside the target, and only a finished
export is renamed into place: a reader of the target sees nothing, the old export, or the new
one, never half of one; a failed export leaves no temporary directory and the old export as
it was. A crash (not an exception) can leave a `.{name}.partial-{token}` directory beside the
target; it is never mistaken for an export, and `sweep_staging` removes it at the next
start-up. The token is the id of the operation that writes it, so the sweep can tell a
leftover from the staging directory of an export still running on another registry instance.

`place_image` puts one image into an export by copy, symlink or hard link.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import shutil
from collections.abc import Collection, Iterator
from pathlib import Path

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from agentic_labeling.registry.datasets.label_sets import ImageTransfer

__all__ = [
    "find_staging",
    "place_image",
    "resolve_target",
    "staged_directory",
    "sweep_staging",
]

_FIELD = "output_dir"
# Keeps `.{name}.partial-{token}` within the 255-byte file name limit.
_MAX_NAME_IN_TEMP = 100
_STAGING_SUFFIX = ".partial-"
# What staged_directory names a staging directory: `.{name}.partial-{hex token}`.
_STAGING_NAME = re.compile(r"\.(?P<name>.+)\.partial-(?P<token>[0-9a-f]{16,64})")


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
def staged_directory(target: Path, *, overwrite: bool, token: str = "") -> Iterator[Path]:
    """A fresh directory beside `target`, renamed to `target` when the block ends normally.

    The directory is `.{target name}.partial-{token}` in the target's parent (created as
    needed), so the rename is atomic; `token` (lowercase hex, 16 to 64 digits, random when
    empty) names the job that writes it, for `sweep_staging`. With `overwrite`, an existing
    target is moved aside first and removed after the rename. When the block raises, the
    staged directory is removed and any old target is left untouched. Without `overwrite`, a
    target that appeared while the block ran is AlreadyExists (and the staged directory is
    removed).
    """
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    stem = target.name[:_MAX_NAME_IN_TEMP]
    token = token or secrets.token_hex(8)
    if not re.fullmatch(r"[0-9a-f]{16,64}", token):
        raise ValueError(f"a staging token is 16 to 64 lowercase hex digits, got {token!r}")
    staged = parent / f".{stem}{_STAGING_SUFFIX}{token}"
    staged.mkdir()
    try:
        yield staged
        _commit(staged, target, overwrite=overwrite)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def find_staging(root: Path) -> dict[Path, str]:
    """The staging directories under the export root, with their tokens.

    Only directories named as `staged_directory` names them count; symlinks and what lies
    inside hidden directories (staging ones included) are not looked at."""
    found: dict[Path, str] = {}
    if not root.is_dir():
        return found
    for directory, subdirectories, _ in os.walk(root):
        for name in subdirectories:
            match = _STAGING_NAME.fullmatch(name)
            path = Path(directory) / name
            if match is not None and not path.is_symlink():
                found[path] = match["token"]
        subdirectories[:] = [n for n in subdirectories if not n.startswith(".")]
    return found


def sweep_staging(found: dict[Path, str], live_tokens: Collection[str]) -> list[Path]:
    """Remove the `found` staging directories whose token is not live; the ones removed.

    Call `find_staging` first and read the live tokens (the exports running now, on every
    registry instance) after it: a job's operation is stored before its staging directory is
    created, so a directory found is either live in that later reading or a leftover."""
    removed = [path for path, token in found.items() if token not in live_tokens]
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


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
