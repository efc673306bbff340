"""Resource names of the registry (`sources/{uuid}`, `categories/{uuid}`, `objects/{uuid}`,
`tracks/{uuid}`): formatting and strict parsing, so every layer spells them the same way.

Parsing refuses anything but `collection/` followed by a UUID and names the request field in the
InvalidArgument, because a malformed name is the caller's mistake, not a missing resource.
"""

from __future__ import annotations

from typing import Literal
from uuid import UUID

from agentic_labeling.errors import InvalidArgument, NotFound

__all__ = ["Collection", "format_name", "not_found", "parse_name", "parse_uuid"]

Collection = Literal[
    "sources", "categories", "objects", "tracks", "datasets", "runs", "evaluations"
]


def format_name(collection: Collection, resource_id: UUID) -> str:
    """`sources/2f1c...` for a source ID."""
    return f"{collection}/{resource_id}"


def not_found(resource_type: str, name: str, field: str | None = None) -> NotFound:
    """NotFound for the resource `name`, with the request field that named it in its metadata
    (`field`, e.g. `requests[3].object.source`)."""
    error = NotFound(resource_type, name)
    if field is not None:
        error.metadata["field"] = field
    return error


def parse_uuid(text: str, *, field: str) -> UUID:
    """A UUID in its canonical hyphenated form (any case); InvalidArgument naming `field`."""
    try:
        value = UUID(text)
    except ValueError:
        raise InvalidArgument(f"{text!r} is not a UUID", field=field) from None
    if str(value) != text.lower():  # UUID() also takes braces, "urn:uuid:" and no hyphens
        raise InvalidArgument(f"{text!r} is not a UUID in canonical form", field=field)
    return value


def parse_name(text: str, collection: Collection, *, field: str) -> UUID:
    """The UUID in a resource name `collection/{uuid}`; InvalidArgument naming `field`."""
    prefix = collection + "/"
    if not text.startswith(prefix):
        raise InvalidArgument(
            f"{text!r} is not a resource name of the form {prefix}{{uuid}}", field=field
        )
    return parse_uuid(text[len(prefix) :], field=field)
