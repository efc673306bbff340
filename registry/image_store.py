"""The registry's image store: the encoded bytes of every image and video frame that was sent
with its source, so that a dataset can be exported long after labelling.

Files are content-addressed, `images/{h[0:2]}/{h[2:4]}/{sha256}` (no extension: the format is
read from the header when a file is exported), written atomically. The same bytes are stored
once however many sources or frames carry them, and storing them again is a no-op, so a
retried CreateSource needs no bookkeeping. A file is written before the row that names it is
committed; a failed insert can leave a file no row names, which costs disk and nothing else.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.atomic_files import write_atomically

__all__ = ["STORED_IMAGE_FORMATS", "ImageStore"]

STORED_IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"})
"""PIL format names of the images the store accepts (MPO is a JPEG with extra frames)."""

_SHA256 = re.compile(r"[0-9a-f]{64}")


class ImageStore:
    """Encoded images under `directory`, keyed by the SHA-256 of their bytes."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, sha256: str) -> Path:
        if not _SHA256.fullmatch(sha256):
            raise ValueError(f"not a lower-case hex SHA-256: {sha256!r}")
        return self.directory / sha256[:2] / sha256[2:4] / sha256

    def find(self, sha256: str) -> Path | None:
        """The stored file of these bytes, or None when they were never sent."""
        if not _SHA256.fullmatch(sha256):
            return None
        path = self.path(sha256)
        return path if path.is_file() else None

    def put(self, data: bytes, *, expected_sha256: str = "", field: str = "image_data") -> str:
        """Store `data` (an encoded image) and return its SHA-256.

        Refused with InvalidArgument naming `field`: bytes that are not an image of a
        supported format, and bytes whose hash differs from a non-empty `expected_sha256`.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        if expected_sha256 and expected_sha256 != sha256:
            raise InvalidArgument(
                f"the SHA-256 of {field} is {sha256}, not the content_sha256 given "
                f"({expected_sha256})",
                field=field,
                reason="CONTENT_HASH_MISMATCH",
            )
        _check_image_format(data, field)
        target = self.path(sha256)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, data)
        return sha256


def _check_image_format(data: bytes, field: str) -> None:
    """Only the header is read: the orchestrator decoded the pixels already, and a client
    storing a truncated file gets the error when the export reads it."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise InvalidArgument(
            f"{field} is not an image PIL can identify ({error})", field=field
        ) from error
    if image_format not in STORED_IMAGE_FORMATS:
        raise InvalidArgument(
            f"{field} is a {image_format} image; the image store takes JPEG, PNG, WebP, BMP "
            "or TIFF",
            field=field,
        )
