"""Which files `alabel label` sends: image and video files named directly or found in folders."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

import click

from agentic_labeling.cli.video_frames import VIDEO_EXTENSIONS

__all__ = ["IMAGE_EXTENSIONS", "find_images", "is_video"]

# What the orchestrator decodes (JPEG, PNG, WebP, BMP, TIFF), by file name extension.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"})


def _is_image_name(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS


def is_video(path: Path) -> bool:
    """Whether `path` is named as a video file (decoded into frames, not sent whole)."""
    return path.suffix.lower() in VIDEO_EXTENSIONS


def _is_wanted(path: Path) -> bool:
    return _is_image_name(path) or is_video(path)


def _extensions(known: frozenset[str]) -> str:
    return ", ".join(sorted(e.lstrip(".") for e in known))


def _walk(folder: Path, recursive: bool) -> Iterator[Path]:
    if recursive:
        for root, dirs, files in os.walk(folder, followlinks=False):
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(files):
                yield Path(root, name)
    else:
        yield from sorted(p for p in folder.iterdir() if p.is_file())


def find_images(paths: Iterable[Path], *, recursive: bool) -> list[Path]:
    """Resolved image and video paths, each once, in the order given (folders sorted by name).

    A file named directly must have an image or video extension; a folder contributes the
    files in it that have one (its sub-folders too when `recursive`; hidden ones are skipped).
    Raises
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
            candidates = [p for p in _walk(given, recursive) if _is_wanted(p)]
        elif _is_wanted(given):
            candidates = [given]
        else:
            raise click.UsageError(
                f"{given} is not an image file (extensions: {_extensions(IMAGE_EXTENSIONS)})"
                f" nor a video file ({_extensions(VIDEO_EXTENSIONS)})"
            )
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
        raise click.UsageError(f"no image files found in {where} (nor video files){hint}")
    return list(found)
