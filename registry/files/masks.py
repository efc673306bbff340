"""Mask files: one 1-bit PNG per object, written atomically, under 100 KB each.

Layout: `root/masks/{h[0:2]}/{h[2:4]}/{object_id}.png`, where `h` is the SHA-256 hex digest of
the object id's 16 bytes and `object_id` is the id in its canonical form
(`3f2c...-...`, lower case). Hashing spreads files evenly over the 65,536 directories whatever
the UUID version: with the id's own hex, time-ordered ids (UUIDv7) would put every object of a
few weeks into one directory. `path(object_id)` gives the path; the file name alone still says
which object it belongs to.

Why 1-bit PNG: exact (masks are bits), readable by every image tool, and served as is by
GetObjectMask. A 4000x3000 mask of dozens of organic blobs with holes is about 60 KB (see the
tests); size grows with the length of the mask's boundaries, not with its pixel count.

Limit: an encoded mask over `max_bytes` (default 100 KB) is refused with ResourceExhausted
(reason MASK_TOO_LARGE, naming the object and both sizes) and nothing is written. Such masks
are noise-like (hundreds of fragments at 12 MP); no other encoding of the same bits would be
much smaller (PNG's row filters were tried: within 5% of Pillow's output), and a lossy one
would change the label, so the caller must clean the mask (e.g. drop tiny fragments) instead.

Atomic writes: the PNG goes to a temporary file in the destination directory, is fsynced, and
replaces the destination with `os.replace`; the directory is fsynced after. A reader sees the
old file or the new one, never part of one; a crash can leave a temporary file (`.*.tmp`),
never a partial `.png`, and `remove_stale_temp_files` (for the reconcile pass) removes them.

Object ids must be UUIDs (InvalidArgument naming `object_id` otherwise), so a path can never
leave the root. The methods are blocking file I/O: call them through `asyncio.to_thread` from
async code. Safe to use from several threads; two writes of one mask leave one of them whole.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import re
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from uuid import UUID

import numpy as np
import numpy.typing as npt
from PIL import Image

from agentic_labeling.errors import InvalidArgument, NotFound, ResourceExhausted
from agentic_labeling.pil_errors import pil_error_text
from agentic_labeling.registry.files.atomic_files import (
    TEMP_SUFFIX,
    fsync_directory,
    write_all_atomically,
    write_atomically,
)

__all__ = ["MAX_MASK_BYTES", "MaskStore", "decode_mask_png", "encode_mask_png"]

MAX_MASK_BYTES = 100_000
"""The largest mask file accepted (100 KB)."""

_HEX2 = re.compile(r"[0-9a-f]{2}")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def encode_mask_png(mask: npt.NDArray[np.bool_], *, compress_level: int = 6) -> bytes:
    """A bool (H, W) mask as a 1-bit grayscale PNG, at zlib's default level unless told.

    Not `optimize=True`: on masks of 640x480 it was 9-12x slower for files about 10% smaller,
    and was 60% of the registry's CPU per AutoLabel image (bench/autolabel_mesh.py)."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        shape = getattr(mask, "shape", None)
        raise InvalidArgument(f"mask must have shape (height, width), got {shape}", field="mask")
    if mask.dtype != np.bool_:
        raise InvalidArgument(f"mask must be bool, got {mask.dtype}", field="mask")
    if mask.size == 0:
        raise InvalidArgument(f"mask must not be empty, got shape {mask.shape}", field="mask")
    buffer = io.BytesIO()
    # Pillow stores a bool array as mode "1", which PNG writes with bit depth 1.
    Image.fromarray(np.ascontiguousarray(mask)).save(
        buffer, format="PNG", compress_level=compress_level
    )
    return buffer.getvalue()


def decode_mask_png(data: bytes) -> npt.NDArray[np.bool_]:
    """The bool (H, W) mask in a 1-bit PNG; InvalidArgument when `data` is not one."""
    if not data.startswith(_PNG_SIGNATURE):
        raise InvalidArgument("mask data is not a PNG", field="mask")
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode != "1":
                raise InvalidArgument(
                    f"mask PNG must be 1-bit, got mode {image.mode}", field="mask"
                )
            return np.array(image, dtype=np.bool_)
    except OSError as error:
        raise InvalidArgument(
            f"mask PNG cannot be read: {pil_error_text(error)}", field="mask"
        ) from error


class MaskStore:
    """Mask files under `root/masks` (see the module docstring)."""

    def __init__(self, root: Path, *, max_bytes: int = MAX_MASK_BYTES) -> None:
        self.root = Path(root)
        self.directory = self.root / "masks"
        self.max_bytes = max_bytes

    def path(self, object_id: UUID | str) -> Path:
        """Where the mask of `object_id` lives (whether or not it exists)."""
        key = _object_id(object_id)
        digest = hashlib.sha256(key.bytes).hexdigest()
        return self.directory / digest[0:2] / digest[2:4] / f"{key}.png"

    def write(self, object_id: UUID | str, mask: npt.NDArray[np.bool_]) -> int:
        """Store `mask` (bool, (H, W)) as the object's mask, replacing any previous one,
        atomically. Returns the file's size in bytes.

        InvalidArgument for a bad id or mask, ResourceExhausted when the PNG would be larger
        than `max_bytes`; in both cases nothing is written.
        """
        target = self.path(object_id)
        data = self._encoded(object_id, mask)
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
        return len(data)

    def write_many(self, masks: Sequence[tuple[UUID, npt.NDArray[np.bool_]]]) -> list[int]:
        """`write` for the masks of one batch, fsynced together (see `write_all_atomically`):
        every mask is encoded and checked before the first file is written, so a bad one
        writes nothing. When this returns, all are durable. Returns each file's size."""
        files = [
            (self.path(object_id), self._encoded(object_id, mask)) for object_id, mask in masks
        ]
        for target, _ in files:
            target.parent.mkdir(parents=True, exist_ok=True)
        write_all_atomically(files)
        return [len(data) for _, data in files]

    def _encoded(self, object_id: UUID | str, mask: npt.NDArray[np.bool_]) -> bytes:
        # zlib level 1 first: about twice as fast as the default, files about a third larger
        # (the registry's largest cost per AutoLabel object after the vector flush); a mask
        # over the limit at level 1 gets the default level, so the limit refuses no more.
        data = encode_mask_png(mask, compress_level=1)
        if len(data) > self.max_bytes:
            data = encode_mask_png(mask)
        if len(data) > self.max_bytes:
            raise ResourceExhausted(
                f"the mask of object {_object_id(object_id)} is {len(data)} bytes as a 1-bit "
                f"PNG, over the limit of {self.max_bytes}; it is too fragmented to be an object "
                "mask (remove small fragments and holes)",
                reason="MASK_TOO_LARGE",
                metadata={
                    "object_id": str(_object_id(object_id)),
                    "size_bytes": str(len(data)),
                    "limit_bytes": str(self.max_bytes),
                },
            )
        return data

    def read_png(self, object_id: UUID | str) -> bytes:
        """The object's mask file as stored (a 1-bit PNG); NotFound when there is none."""
        target = self.path(object_id)
        try:
            return target.read_bytes()
        except FileNotFoundError:
            raise NotFound("mask", str(_object_id(object_id))) from None

    def read(self, object_id: UUID | str) -> npt.NDArray[np.bool_]:
        """The object's mask as bool (H, W); NotFound when there is none."""
        return decode_mask_png(self.read_png(object_id))

    def exists(self, object_id: UUID | str) -> bool:
        """Whether the object has a mask file."""
        return self.path(object_id).is_file()

    def delete(self, object_id: UUID | str) -> bool:
        """Remove the object's mask; True when there was one (a missing mask is fine)."""
        target = self.path(object_id)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        fsync_directory(target.parent)
        return True

    def iter_ids(self) -> Iterator[UUID]:
        """The id of every stored mask (for reconcile), in no particular order. Temporary
        files and anything that is not a mask at its own path are skipped."""
        if not self.directory.is_dir():
            return
        for first in os.scandir(self.directory):
            if not (first.is_dir() and _HEX2.fullmatch(first.name)):
                continue
            for second in os.scandir(first.path):
                if not (second.is_dir() and _HEX2.fullmatch(second.name)):
                    continue
                for entry in os.scandir(second.path):
                    key = _mask_file_id(entry.name)
                    if key is not None and self.path(key) == Path(entry.path):
                        yield key

    def remove_stale_temp_files(self, *, older_than_s: float = 3600.0) -> int:
        """Delete temporary files a crash left behind, if older than `older_than_s` (younger
        ones may belong to a write in progress). Returns how many were removed."""
        if not self.directory.is_dir():
            return 0
        cutoff = time.time() - older_than_s
        removed = 0
        for stale in self.directory.glob(f"*/*/.*{TEMP_SUFFIX}"):
            with contextlib.suppress(FileNotFoundError):
                if stale.stat().st_mtime <= cutoff:
                    stale.unlink()
                    removed += 1
        return removed


def _object_id(object_id: UUID | str) -> UUID:
    if isinstance(object_id, UUID):
        return object_id
    try:
        return UUID(object_id)
    except (ValueError, TypeError, AttributeError):
        raise InvalidArgument(
            f"object_id must be a UUID, got {object_id!r}", field="object_id"
        ) from None


def _mask_file_id(name: str) -> UUID | None:
    if not name.endswith(".png") or name.startswith("."):
        return None
    try:
        key = UUID(name[: -len(".png")])
    except ValueError:
        return None
    return key if f"{key}.png" == name else None
