"""The registry's image store: the encoded bytes of every image and video frame that was sent
with its source, so that a dataset can be exported long after labelling.

Files are content-addressed, `images/{h[0:2]}/{h[2:4]}/{sha256}` (no extension: the format is
read from the header when a file is exported), written atomically. The same bytes are stored
once however many sources or frames carry them, and storing them again is a no-op, so a
retried CreateSource needs no bookkeeping. The bytes are checked (`inspect`) before anything
is written; a file is written before the row that names it is committed, so a failed insert
can still leave a file no row names, which costs disk and nothing else.

Orientation (see `agentic_labeling.images`): the stored bytes are the original ones (their
hash names them), but every size and label refers to the upright image. `upright` gives the
file an export writes: the stored file itself when its EXIF orientation is 1 (or absent), else
an upright copy with the orientation tag removed, made once and kept under
`images/upright/{h[0:2]}/{h[2:4]}/{sha256}` (sha256 of the original bytes), so cv2.imread,
ultralytics and every other reader see the pixels the labels were made on.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, ImageOps

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.images import check_pixel_mode, exif_orientation, open_image, upright_size
from agentic_labeling.registry.files.atomic_files import write_atomically

__all__ = ["STORED_IMAGE_FORMATS", "ImageFacts", "ImageStore"]

STORED_IMAGE_FORMATS = frozenset({"JPEG", "MPO", "PNG", "WEBP", "BMP", "TIFF"})
"""PIL format names of the images the store accepts (MPO is a JPEG with extra frames)."""

_SHA256 = re.compile(r"[0-9a-f]{64}")
_UPRIGHT = "upright"
# Re-encoding a lossy format for the upright copy: near-lossless, as photo tools rotate.
_LOSSY_QUALITY = 95
_SAVE_FORMAT = {"MPO": "JPEG"}


@dataclass(frozen=True)
class ImageFacts:
    """What the header of an encoded image says; width and height are upright."""

    sha256: str
    format: str
    width: int
    height: int


class ImageStore:
    """Encoded images under `directory`, keyed by the SHA-256 of their bytes.

    `max_pixels` (None: Pillow's own limit only) refuses larger images as IMAGE_TOO_LARGE.
    """

    def __init__(self, directory: Path, *, max_pixels: int | None = None) -> None:
        self.directory = directory
        self.max_pixels = max_pixels

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

    def inspect(
        self, data: bytes, *, expected_sha256: str = "", field: str = "image_data"
    ) -> ImageFacts:
        """The facts of `data` if the store would take it; writes nothing.

        Refused with InvalidArgument naming `field`: bytes whose hash differs from a non-empty
        `expected_sha256` (CONTENT_HASH_MISMATCH), bytes that are not an image of a supported
        format, an image over the pixel limit or a decompression bomb (IMAGE_TOO_LARGE), and
        pixel modes with no faithful 8-bit view (UNSUPPORTED_IMAGE_MODE). Only the header is
        read: the orchestrator decoded the pixels already, and a client storing a truncated
        file gets the error when the export reads it.
        """
        sha256 = hashlib.sha256(data).hexdigest()
        if expected_sha256 and expected_sha256 != sha256:
            raise InvalidArgument(
                f"the SHA-256 of {field} is {sha256}, not the content_sha256 given "
                f"({expected_sha256})",
                field=field,
                reason="CONTENT_HASH_MISMATCH",
            )
        if not data:
            raise InvalidArgument(f"{field} is empty", field=field, reason="EMPTY_IMAGE")
        with open_image(data, field=field, max_pixels=self.max_pixels) as image:
            width, height = upright_size(image)
            if self.max_pixels is not None and width * height > self.max_pixels:
                raise InvalidArgument(
                    f"{field} is {width}x{height} = {width * height} pixels, more than the "
                    f"limit of {self.max_pixels}",
                    field=field,
                    reason="IMAGE_TOO_LARGE",
                    metadata={
                        "width": str(width),
                        "height": str(height),
                        "limit": str(self.max_pixels),
                    },
                )
            check_pixel_mode(image, field)
            return ImageFacts(sha256, image.format or "", width, height)

    def put(self, data: bytes, *, expected_sha256: str = "", field: str = "image_data") -> str:
        """Store `data` (an encoded image, refused as `inspect` says) and return its SHA-256."""
        sha256 = self.inspect(data, expected_sha256=expected_sha256, field=field).sha256
        target = self.path(sha256)
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            write_atomically(target, data)
        return sha256

    def remove(self, sha256: str) -> None:
        """Delete the stored file of these bytes (and its upright copy), if any. The caller
        knows that no source or frame names them."""
        for path in (self.path(sha256), self._upright_path(sha256)):
            path.unlink(missing_ok=True)

    def _upright_path(self, sha256: str) -> Path:
        return self.directory / _UPRIGHT / sha256[:2] / sha256[2:4] / sha256

    def upright(self, path: Path) -> Path:
        """The file to export for the image in `path` (stored or not): `path` itself when it
        needs no turning, else its upright copy in the store (see the module docstring). A
        file that cannot be read is returned as it is: the writer reading it says what is wrong.
        """
        try:
            image = Image.open(path)
        except (OSError, ValueError, Image.DecompressionBombError):
            return path
        with image:
            if exif_orientation(image) == 1:
                return path
            name = path.name if path.parent.parent.parent == self.directory else ""
            sha256 = name if _SHA256.fullmatch(name) else _file_sha256(path)
            target = self._upright_path(sha256)
            if not target.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                write_atomically(target, _upright_bytes(image))
        return target


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _upright_bytes(image: Image.Image) -> bytes:
    """`image` turned upright and encoded in its own format without the orientation tag."""
    image_format = image.format or "PNG"
    upright = ImageOps.exif_transpose(image)  # also drops the tag from its EXIF
    options: dict[str, object] = {"exif": upright.getexif().tobytes()}
    if "icc_profile" in image.info:
        options["icc_profile"] = image.info["icc_profile"]
    if image_format in ("JPEG", "MPO", "WEBP"):
        options["quality"] = _LOSSY_QUALITY
    buffer = io.BytesIO()
    upright.save(buffer, format=_SAVE_FORMAT.get(image_format, image_format), **options)
    return buffer.getvalue()
