"""What commands print: aligned plain-text tables for people, protobuf JSON for scripts.

Tables are plain columns (like `kubectl get`): they survive pipes, `grep` and narrow terminals.
JSON uses the proto field names (snake_case) and prints every field, defaults included, so a
script never has to guess whether a missing key means false or zero.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from typing import Any

import click
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from agentic_labeling.v1 import common_pb2

__all__ = [
    "bbox_text",
    "echo_json",
    "echo_table",
    "message_json",
    "object_name",
    "short_id",
]

_OBJECTS = "objects/"


_INT64_TYPES = frozenset(
    {
        FieldDescriptor.TYPE_INT64,
        FieldDescriptor.TYPE_UINT64,
        FieldDescriptor.TYPE_SINT64,
        FieldDescriptor.TYPE_FIXED64,
        FieldDescriptor.TYPE_SFIXED64,
    }
)


def _int64_as_numbers(descriptor: Any, data: dict[str, Any]) -> None:
    """Proto JSON writes 64-bit integers as strings; scripts (jq) want numbers."""
    for f in descriptor.fields:
        if f.name not in data:
            continue
        if f.type in _INT64_TYPES:
            value = data[f.name]
            data[f.name] = [int(v) for v in value] if isinstance(value, list) else int(value)
        elif f.message_type is not None and not f.message_type.GetOptions().map_entry:
            value = data[f.name]
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    _int64_as_numbers(f.message_type, item)


def message_json(message: Message) -> dict[str, Any]:
    """A protobuf message as JSON-ready data: proto field names, every field present, and
    64-bit integers as numbers (proto JSON writes them as strings)."""
    data = json_format.MessageToDict(
        message,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )
    _int64_as_numbers(message.DESCRIPTOR, data)
    return data


def echo_json(data: object, *, indent: int | None = 2) -> None:
    click.echo(json.dumps(data, indent=indent, sort_keys=False))


def echo_table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, indent: str = "") -> None:
    """Columns padded to their widest cell; the last column is not padded."""
    table = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[i]) for row in table) for i in range(len(headers) - 1)]
    for row in table:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo(indent + "  ".join([*cells, row[-1]]).rstrip())


def bbox_text(box: common_pb2.BoundingBox) -> str:
    """`x,y,w,h` in pixels, one decimal."""
    return ",".join(f"{v:.1f}" for v in (box.x, box.y, box.width, box.height))


def short_id(name: str) -> str:
    """The id part of a resource name: `objects/3f2b...` -> `3f2b...`."""
    return name.rsplit("/", 1)[-1]


def object_name(text: str) -> str | None:
    """`objects/<uuid>` for an object id given as a UUID or as `objects/<uuid>`; else None."""
    raw = text.strip()
    if raw.startswith(_OBJECTS):
        raw = raw[len(_OBJECTS) :]
    try:
        return _OBJECTS + str(uuid.UUID(raw))
    except ValueError:
        return None
