"""Opaque page tokens for keyset paging: the sort key of the last row of a page, bound to the
query that produced it.

A token is URL-safe base64 (no padding) of a small JSON document: a format version, a scope (a
hash of the resource, the normalised filter and the order, plus the parent where there is one)
and the last row's sort values with their types. Keyset tokens stay valid while rows are added
or removed: the next page starts after that key, wherever it now is. A token used with another
filter or order, or that was altered, is InvalidArgument naming `page_token`. Tokens are not
secret and not signed: everything in them is a value the caller could filter on anyway.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from datetime import datetime
from typing import TypeAlias
from uuid import UUID

from agentic_labeling.errors import InvalidArgument

__all__ = ["KeyValue", "decode_page_token", "encode_page_token", "page_scope"]

KeyValue: TypeAlias = float | int | str | datetime | UUID

_VERSION = 1
_FIELD = "page_token"


def page_scope(*parts: str) -> str:
    """A short hash of what a token is valid for (resource, filter, order, parent)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()
    return digest[:24]


def _tag(value: KeyValue) -> list[object]:
    # bool is an int: refuse it rather than mistype it (no sort key is a bool).
    if isinstance(value, bool):
        raise TypeError("a page token cannot hold a bool")
    if isinstance(value, float):
        return ["f", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, datetime):
        if value.utcoffset() is None:
            raise TypeError("a page token cannot hold a naive datetime")
        return ["t", value.isoformat()]
    return ["u", str(value)]


def encode_page_token(scope: str, key: Sequence[KeyValue]) -> str:
    """A token for the page after the row whose sort key is `key`."""
    document = {"v": _VERSION, "s": scope, "k": [_tag(value) for value in key]}
    raw = json.dumps(document, separators=(",", ":"), allow_nan=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _bad(why: str) -> InvalidArgument:
    return InvalidArgument(f"page_token {why}", field=_FIELD, reason="INVALID_PAGE_TOKEN")


def decode_page_token(token: str, scope: str, kinds: Sequence[type]) -> tuple[KeyValue, ...]:
    """The sort key in `token`, checked against the scope and the expected value types
    (`float`, `int`, `str`, `datetime`, `UUID`, one per sort column)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        document = json.loads(raw)
    except (binascii.Error, ValueError):
        raise _bad("is not a token this server issued") from None
    if not isinstance(document, dict) or document.get("v") != _VERSION:
        raise _bad("is not a token this server issued")
    if document.get("s") != scope:
        raise _bad(
            "was issued for another filter, order_by or parent; "
            "start again without a page_token when those change"
        )
    values = document.get("k")
    if not isinstance(values, list) or len(values) != len(kinds):
        raise _bad("is not a token this server issued")
    return tuple(_untag(item, kind) for item, kind in zip(values, kinds, strict=True))


def _untag(item: object, kind: type) -> KeyValue:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
        raise _bad("is not a token this server issued")
    tag, payload = item
    try:
        if kind is float and tag == "f" and isinstance(payload, float):
            return payload
        if kind is int and tag == "i" and isinstance(payload, int):
            return payload
        if kind is str and tag == "s" and isinstance(payload, str):
            return payload
        if kind is datetime and tag == "t" and isinstance(payload, str):
            moment = datetime.fromisoformat(payload)
            if moment.utcoffset() is not None:
                return moment
        if kind is UUID and tag == "u" and isinstance(payload, str):
            return UUID(payload)
    except ValueError:
        pass
    raise _bad("is not a token this server issued")
