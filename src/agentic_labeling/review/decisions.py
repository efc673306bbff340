"""What a reviewer decided, read from a request body and checked before any RPC is made.

One decision names one or many objects; whatever it names, it becomes exactly one registry
RPC (see `gateway`), except a reject of many, which is one DeleteObject each (the registry has
no batch delete). Bad input is an `InvalidArgument` naming the field.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from agentic_labeling.errors import InvalidArgument

__all__ = ["ACTIONS", "MAX_NAMES", "Decision", "object_name", "parse_decision"]

ACTIONS = ("accept", "unaccept", "relabel", "restore", "reject", "box")
MAX_NAMES = 1000  # the registry's largest page: a "select all similar" fits
_MAX_CATEGORY = 200
_OBJECT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def object_name(value: object, field: str) -> str:
    """`objects/{uuid}` (or a bare uuid), as the registry names objects."""
    if not isinstance(value, str):
        raise InvalidArgument(f"{field} must be a string", field=field)
    uid = value.removeprefix("objects/")
    if not _OBJECT_ID.fullmatch(uid):
        raise InvalidArgument(f"{field} must be objects/{{uuid}}, got {value[:80]!r}", field=field)
    return f"objects/{uid}"


@dataclass(frozen=True)
class Decision:
    """`action` over `names`: accept/unaccept (validate or not), relabel (to
    `category_name`, validated), restore (back to `category_name` with `validated`, an undo),
    reject (delete), box (a new `bbox` x, y, width, height)."""

    action: str
    names: tuple[str, ...]
    category_name: str = ""
    validated: bool = False
    bbox: tuple[float, float, float, float] | None = None


def _bbox(value: object) -> tuple[float, float, float, float]:
    if not (isinstance(value, list) and len(value) == 4):
        raise InvalidArgument("bbox must be [x, y, width, height]", field="bbox")
    numbers = []
    for v in value:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise InvalidArgument("bbox holds finite numbers only", field="bbox")
        numbers.append(float(v))
    x, y, w, h = numbers
    if w <= 0 or h <= 0:
        raise InvalidArgument("bbox width and height must be > 0", field="bbox")
    return x, y, w, h


def parse_decision(body: Any) -> Decision:
    """The decision in a JSON body: {"action", "names", ["category_name"], ["bbox"], ...}."""
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object", field="body")
    action = body.get("action")
    if action not in ACTIONS:
        raise InvalidArgument(f"action must be one of {', '.join(ACTIONS)}", field="action")
    raw = body.get("names")
    if not isinstance(raw, list) or not raw:
        raise InvalidArgument("names must be a non-empty list of objects", field="names")
    if len(raw) > MAX_NAMES:
        raise InvalidArgument(f"names holds at most {MAX_NAMES} objects", field="names")
    names = tuple(dict.fromkeys(object_name(v, f"names[{i}]") for i, v in enumerate(raw)))
    category = body.get("category_name", "")
    if not isinstance(category, str) or len(category) > _MAX_CATEGORY:
        raise InvalidArgument(
            f"category_name must be a string of at most {_MAX_CATEGORY} characters",
            field="category_name",
        )
    category = category.strip()
    if action in ("relabel", "restore") and not category:
        raise InvalidArgument(f"{action} needs a category_name", field="category_name")
    bbox = None
    if action == "box":
        if len(names) != 1:
            raise InvalidArgument("a box edit names exactly one object", field="names")
        bbox = _bbox(body.get("bbox"))
    validated = body.get("validated", False)
    if not isinstance(validated, bool):
        raise InvalidArgument("validated must be true or false", field="validated")
    return Decision(action, names, category, validated, bbox)
