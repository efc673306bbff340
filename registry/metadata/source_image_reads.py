"""Reading back the encoded image stored with a source or one of its frames (GetSourceImage).

The bytes are returned as they were sent; the file is read off the event loop. Its size
is checked before it is read: one that cannot fit in one gRPC message is refused, not sent
cut. Width and height are the source's (registration checked that the image is that size,
upright), so nothing is decoded here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

from agentic_labeling.errors import FailedPrecondition, ResourceExhausted
from agentic_labeling.registry.values.records import SourceKind, StoredImage
from agentic_labeling.registry.values.resource_names import format_name

if TYPE_CHECKING:
    from agentic_labeling.registry.coordinator import Registry

__all__ = ["MESSAGE_OVERHEAD_BYTES", "mime_type", "read_source_image"]

MESSAGE_OVERHEAD_BYTES = 4096
"""Room kept in a message for the reply's other fields (name, hash, size)."""

_SIGNATURES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"BM", "image/bmp"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
)


def mime_type(data: bytes) -> str:
    """The media type of an encoded image from its first bytes (the store's formats)."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    for signature, media_type in _SIGNATURES:
        if data.startswith(signature):
            return media_type
    return "application/octet-stream"


async def read_source_image(
    registry: Registry, source_id: UUID, frame_index: int | None, *, max_message_bytes: int
) -> StoredImage:
    """The image of `source_id` (its own with `frame_index` None, else that frame's).

    NotFound for an unknown source or frame; FailedPrecondition (IMAGE_NOT_STORED) when it
    was registered without its bytes; ResourceExhausted (IMAGE_TOO_LARGE_FOR_MESSAGE) when
    the file would not fit in one message of `max_message_bytes`.
    """
    source = await registry.repository.sources.get(source_id)
    owner, sha256 = format_name("sources", source_id), source.content_sha256
    if frame_index is not None:
        frame = await registry.repository.sources.get_frame(source_id, frame_index)
        owner = f"{owner}/frames/{frame_index}"
        # An image source's one frame holds no hash of its own: its image is the source's.
        if frame.content_sha256 or source.kind is not SourceKind.IMAGE:
            sha256 = frame.content_sha256
    path = registry.images.find(sha256)
    if path is None:
        raise _not_stored(owner, source.kind, frame_index)
    data = await asyncio.to_thread(_read, path, owner, max_message_bytes)
    return StoredImage(owner, data, mime_type(data), path.name, source.width, source.height)


def _read(path: Path, owner: str, max_message_bytes: int) -> bytes:
    size = path.stat().st_size
    limit = max_message_bytes - MESSAGE_OVERHEAD_BYTES
    if size > limit:
        raise ResourceExhausted(
            f"the image of {owner} is {size} bytes, more than fits in one message "
            f"({limit} bytes of --max-message-bytes {max_message_bytes}); restart the "
            "registry and its client with a larger --max-message-bytes",
            reason="IMAGE_TOO_LARGE_FOR_MESSAGE",
            metadata={"bytes": str(size), "limit": str(limit)},
        )
    return path.read_bytes()


def _not_stored(owner: str, kind: SourceKind, frame_index: int | None) -> FailedPrecondition:
    message = f"{owner} was registered without its image bytes"
    if kind is SourceKind.VIDEO and frame_index is None:
        message += "; a video's frames carry their own images: ask for one with frame_index"
    return FailedPrecondition(message, reason="IMAGE_NOT_STORED", metadata={"name": owner})
