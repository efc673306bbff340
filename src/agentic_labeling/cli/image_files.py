"""Which files `alabel label` sends: image files named directly or found in folders."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

__all__ = ["IMAGE_EXTENSIONS", "find_images"]

# What the orchestrator decodes (JPEG, PNG, WebP, BMP, TIFF), by file name extension.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    if recursive:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                yield Path(root, name)
    else:
        yield from sorted(p for p in folder.iterdir() if p.is_file())


def find_images(paths: Iterable[Path], *, recursive: bool) -> list[Path]:
    """Resolved image paths, each once, in the order given (folders sorted by name).

    A file named directly must have an image extension; a folder contributes the image files
    in it (its sub-folders too when `recursive`; hidden ones are skipped). Raises
    click.UsageError (exit 2) for a path that cannot be read, a file that is not an image, or
    when no image is found at all: nothing is sent before the whole list is known to be good.
    """
    found: dict[Path, None] = {}  # ordered set
    unreadable: list[str] = []
    for given in paths:
        if not os.access(given, os.R_OK) or (given.is_dir() and not os.access(given, os.X_OK)):
            unreadable.append(str(given))
            continue
        if given.is_dir():
            candidates = [p for p in _walk(given, recursive) if _is_image_name(p)]
        elif _is_image_name(given):
            candidates = [given]
        else:
            extensions = ", ".join(sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS))
            raise click.UsageError(f"{given} is not an image file (extensions: {extensions})")
        for candidate in candidates:
            if os.access(candidate, os.R_OK):
                found[candidate.resolve()] = None
            else:
                unreadable.append(str(candidate))
    if unreadable:
        more = f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        shown = ", ".join(unreadable[:5]) + more
        raise click.UsageError(f"cannot read {shown}")
    if not found:
        where = ", ".join(str(p) for p in paths)
        hint = "" if recursive else " (--recursive looks into sub-folders)"
        raise click.UsageError(f"no image files found in {where}{hint}")
    return list(found)
