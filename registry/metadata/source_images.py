"""Registering a source or a video frame together with its encoded image.

Every field of the request is checked, and the image's header read, before any file is
written, so a refused request leaves no orphan file in the image store. The size a request
declares must be the image's own (upright: EXIF orientation applied, see
`agentic_labeling.images`): a source registered at the wrong size would fail every later
AutoLabel, box check and export of its image.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING
from uuid import UUID

from agentic_labeling.errors import FieldViolation, InvalidArgument, NotFound
from agentic_labeling.registry.files.image_store import ImageFacts
from agentic_labeling.registry.metadata.sources import check_new_frame, check_new_source
from agentic_labeling.registry.values.records import Frame, NewFrame, NewSource, Source
from agentic_labeling.registry.values.resource_names import format_name, not_found

if TYPE_CHECKING:
    from agentic_labeling.registry.coordinator import Registry

__all__ = ["create_frame_with_image", "create_source_with_image"]


async def create_source_with_image(
    registry: Registry,
    new: NewSource,
    image_data: bytes = b"",
    *,
    source_id: UUID | None = None,
    return_existing: bool = False,
    image_field: str = "image_data",
) -> Source:
    """Create `new` (see `SourceStore.create`), storing `image_data` when given; its SHA-256
    fills `content_sha256`. `image_field` names the image in errors."""
    check_new_source(new)
    if image_data:
        facts = await _inspect(registry, image_data, new.content_sha256, image_field)
        _check_size(
            facts, (new.width, new.height), "the source declares", ("source.width", "source.height")
        )
        await asyncio.to_thread(registry.images.put, image_data, field=image_field)
        new = dataclasses.replace(new, content_sha256=facts.sha256)
    return await registry.repository.sources.create(
        new, source_id=source_id, return_existing=return_existing
    )


async def create_frame_with_image(
    registry: Registry, source_id: UUID, new: NewFrame, image_data: bytes = b""
) -> Frame:
    """Add `new` to a video source (see `SourceStore.create_frame`), storing `image_data`
    when given, which must be the source's size."""
    check_new_frame(new)
    if image_data:
        facts = await _inspect(registry, image_data, new.content_sha256, "image_data")
        try:
            source = await registry.repository.sources.get(source_id)
        except NotFound:
            raise not_found("source", format_name("sources", source_id), "parent") from None
        _check_size(
            facts,
            (source.width, source.height),
            f"{format_name('sources', source_id)} is",
            ("image_data", "image_data"),
        )
        await asyncio.to_thread(registry.images.put, image_data)
        new = dataclasses.replace(new, content_sha256=facts.sha256)
    return await registry.repository.sources.create_frame(source_id, new)


async def _inspect(registry: Registry, data: bytes, sha256: str, field: str) -> ImageFacts:
    return await asyncio.to_thread(
        registry.images.inspect, data, expected_sha256=sha256, field=field
    )


def _check_size(
    facts: ImageFacts, declared: tuple[int, int], declared_by: str, fields: tuple[str, str]
) -> None:
    """InvalidArgument naming each of `fields` (for width, height) whose size is not the
    image's."""
    found = (facts.width, facts.height)
    if found == declared:
        return
    message = (
        f"{declared_by} {declared[0]} x {declared[1]}, but the image is {found[0]} x "
        f"{found[1]} pixels (upright, EXIF orientation applied)"
    )
    named = [
        field
        for field, value, wanted in zip(fields, found, declared, strict=True)
        if value != wanted
    ]
    raise InvalidArgument(
        message,
        violations=[FieldViolation(field, message) for field in dict.fromkeys(named)],
        reason="IMAGE_SIZE_MISMATCH",
        metadata={"width": str(found[0]), "height": str(found[1])},
    )
