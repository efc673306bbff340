"""Checks shared by every List method: page size (AIP-158) and order_by (AIP-132).

Page tokens are opaque and belong to the store that issues them; this module only checks
what is the same for every resource.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

from agentic_labeling.errors import InvalidArgument

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "MAX_PAGE_SIZE",
    "OrderKey",
    "effective_page_size",
    "parse_order_by",
]

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000

_ORDER_TERM = re.compile(r"^([a-z_][a-z0-9_.]*)(?:\s+(asc|desc))?$")


def effective_page_size(requested: int, *, field: str = "page_size") -> int:
    """0 means the default; above the maximum is lowered to it (AIP-158); below 0 is an error."""
    if requested < 0:
        raise InvalidArgument(f"page_size must not be negative, got {requested}", field=field)
    if requested == 0:
        return DEFAULT_PAGE_SIZE
    return min(requested, MAX_PAGE_SIZE)


@dataclass(frozen=True)
class OrderKey:
    """One term of an order_by: a field and its direction."""

    field: str
    descending: bool = False


def parse_order_by(
    text: str, allowed: Collection[str], *, field: str = "order_by"
) -> tuple[OrderKey, ...]:
    """Parse `"confidence desc, create_time"` into keys, each field one of `allowed`."""
    if not text.strip():
        return ()
    keys: list[OrderKey] = []
    seen: set[str] = set()
    for raw in text.split(","):
        term = " ".join(raw.split())
        match = _ORDER_TERM.match(term)
        if match is None:
            raise InvalidArgument(
                f"order_by term {raw.strip()!r} is not `field` or `field asc|desc`", field=field
            )
        name, direction = match.group(1), match.group(2)
        if name not in allowed:
            raise InvalidArgument(
                f"cannot order by {name!r}; allowed: {', '.join(sorted(allowed))}", field=field
            )
        if name in seen:
            raise InvalidArgument(f"order_by names {name!r} twice", field=field)
        seen.add(name)
        keys.append(OrderKey(field=name, descending=direction == "desc"))
    return tuple(keys)
