"""AIP-160 filters (`registry.query.filtering`) as Qdrant payload filters, and the payload they
run over.

SearchSimilar pushes its filter down into Qdrant's filtered search instead of filtering the
top k afterwards (which would return fewer than k hits, or none, for a selective filter). So
the translation must mean exactly what `filtering.evaluate` means, nulls and NOT included;
`tests/registry/test_vector_filters.py` checks it with random filters over random payloads on
both engines (qdrant-edge, and qdrant-client's local mode).

The payload (`OBJECT_PAYLOAD`): one key per field of `OBJECT_FILTER`, named like the field.
Strings are keywords, compared exactly (case-sensitive); numbers are floats; `frame_index` is
an integer; timestamps are integers, microseconds since the Unix epoch (UTC). Integers rather
than RFC 3339 strings because both engines compare them exactly, while datetime strings would
need one formatting that every engine parses back identically. Booleans are stored as the
integers 0 and 1: qdrant-edge-py 0.9.0 turns `MatchValue(True)` into the integer 1 (Python's
bool is an int), so a JSON `true` in the payload never matches any condition (found by the
property test; it catches the day that changes). A field that is null is left out of the
payload (never stored as JSON null); ``is_empty`` would match either.

Each comparison becomes a condition that is true exactly when `evaluate` says so:

=====================  ======================================================================
filter                 Qdrant condition
=====================  ======================================================================
``f = null``           ``is_empty(f)`` (missing, null or [] — the payload never holds [])
``f != null``          ``must_not: [is_empty(f)]``
``f = v``              ``match(f, v)`` (booleans as 0 / 1); for a float field
                       ``range(f, gte=v, lte=v)``, as Qdrant matches no floats; a missing
                       field never matches, as in `evaluate`
``f != v``             ``must_not: [is_empty(f), match(f, v)]`` — a bare ``must_not:
                       [match]`` would also match points without the field, which
                       `evaluate` says do not match
``f < v`` etc.         ``range(f, lt=v)`` etc.; a missing field never matches
``NOT e``              ``must_not: [e]``: every condition above is two-valued, so plain
                       negation is exactly `evaluate`'s NOT (``NOT f = v`` matches points
                       without ``f``, ``f != v`` does not)
``a AND b``            ``must: [a, b]``
``a OR b``             ``should: [a, b]``
=====================  ======================================================================

An empty OR (never produced by the parser) matches nothing, as ``any([])`` is false; Qdrant
would read an empty ``should`` as no condition at all, so it becomes ``has_id: []``.

Values in filters must be in the payload's terms. Category, source and track are stored as
the ids the registry passes in the payload; a filter that names a category by name or synonym
(`category = "dog"`) must be rewritten to the category's id before searching, with
`map_comparisons`. Resolving at query time, not storing names in the payload, keeps a rename or
a new synonym from touching every vector of the category.

Limits: integer and timestamp values are compared as 64-bit floats by Qdrant's range
conditions, exact for magnitudes below 2**53 (timestamps: years 1685 to 2255). The stores
refuse payload values outside that range, so every comparison stays exact.

Anything the payload cannot answer (a field it does not hold, a value of the wrong kind, an
ordering on a keyword) raises `InvalidArgument` naming the field `filter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Generic, TypeVar, cast

import qdrant_edge as edge
from qdrant_client import models

from agentic_labeling.errors import InvalidArgument
from agentic_labeling.registry.query.filtering import And, Comparison, Expr, Not, Op, Or, Value

__all__ = [
    "MAX_EXACT_INTEGER",
    "OBJECT_PAYLOAD",
    "PayloadKind",
    "from_timestamp_us",
    "map_comparisons",
    "to_client_filter",
    "to_edge_filter",
    "to_timestamp_us",
]


class PayloadKind(Enum):
    """How one payload key is stored, and so how filters compare it and how it is indexed."""

    KEYWORD = "keyword"  # str, exact match
    INTEGER = "integer"  # int
    FLOAT = "float"  # float
    BOOL = "bool"  # int 0 or 1 (see the module docstring)
    TIMESTAMP = "timestamp"  # int, microseconds since the Unix epoch (UTC)


OBJECT_PAYLOAD: Mapping[str, PayloadKind] = {
    "category": PayloadKind.KEYWORD,
    "source": PayloadKind.KEYWORD,
    "frame_index": PayloadKind.INTEGER,
    "confidence": PayloadKind.FLOAT,
    "quality_score": PayloadKind.FLOAT,
    "area": PayloadKind.FLOAT,
    "is_validated": PayloadKind.BOOL,
    "validated_by": PayloadKind.KEYWORD,
    "detection_model": PayloadKind.KEYWORD,
    "track": PayloadKind.KEYWORD,
    "create_time": PayloadKind.TIMESTAMP,
    "update_time": PayloadKind.TIMESTAMP,
}
"""The payload of an object's vector: key to kind. Keys are the `OBJECT_FILTER` field names."""

MAX_EXACT_INTEGER = 2**53 - 1
"""The largest magnitude an integer or timestamp payload value may have (see the limits)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ORDERED_KINDS = frozenset({PayloadKind.INTEGER, PayloadKind.FLOAT, PayloadKind.TIMESTAMP})
_RANGE_ARGUMENT = {Op.LT: "lt", Op.LE: "lte", Op.GT: "gt", Op.GE: "gte"}


def to_timestamp_us(moment: datetime) -> int:
    """An aware datetime as integer microseconds since the Unix epoch (exact)."""
    if moment.utcoffset() is None:
        raise ValueError(f"a timestamp needs a UTC offset, got {moment!r}")
    return (moment - _EPOCH) // timedelta(microseconds=1)


def from_timestamp_us(micros: int) -> datetime:
    """The inverse of `to_timestamp_us`, in UTC."""
    return _EPOCH + timedelta(microseconds=micros)


def map_comparisons(expr: Expr, change: Callable[[Comparison], Comparison]) -> Expr:
    """`expr` with every comparison replaced by `change(comparison)`, structure unchanged.

    For rewriting values into the payload's terms before searching, e.g. a category name or
    synonym into the category id the payload holds. A name that resolves to nothing should map
    to a value no payload holds (such as ""), so that `category = "nope"` matches nothing and
    `category != "nope"` matches every object, as with the names themselves.
    """
    if isinstance(expr, Comparison):
        return change(expr)
    if isinstance(expr, And):
        return And(tuple(map_comparisons(term, change) for term in expr.terms))
    if isinstance(expr, Or):
        return Or(tuple(map_comparisons(term, change) for term in expr.terms))
    return Not(map_comparisons(expr.term, change))


# --- Translation --------------------------------------------------------------------------------

C = TypeVar("C")
Scalar = str | int | bool


@dataclass(frozen=True)
class _Bounds:
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None


class _Builder(Generic[C]):
    """Makes one engine's condition objects; `_translate` decides which."""

    def match(self, key: str, value: Scalar) -> C:
        raise NotImplementedError

    def range(self, key: str, bounds: _Bounds) -> C:
        raise NotImplementedError

    def is_empty(self, key: str) -> C:
        raise NotImplementedError

    def all_of(self, conditions: list[C]) -> C:
        raise NotImplementedError

    def any_of(self, conditions: list[C]) -> C:
        raise NotImplementedError

    def none_of(self, conditions: list[C]) -> C:
        raise NotImplementedError

    def nothing(self) -> C:
        raise NotImplementedError


_EdgeCondition = edge.Filter | edge.FieldCondition | edge.HasIdCondition


class _EdgeBuilder(_Builder[_EdgeCondition]):
    def match(self, key: str, value: Scalar) -> edge.FieldCondition:
        return edge.FieldCondition(key, match=edge.MatchValue(value))

    def range(self, key: str, bounds: _Bounds) -> edge.FieldCondition:
        return edge.FieldCondition(
            key, range=edge.RangeFloat(gt=bounds.gt, gte=bounds.gte, lt=bounds.lt, lte=bounds.lte)
        )

    def is_empty(self, key: str) -> edge.FieldCondition:
        return edge.FieldCondition(key, is_empty=True)

    def all_of(self, conditions: list[_EdgeCondition]) -> edge.Filter:
        return edge.Filter(must=list(conditions))

    def any_of(self, conditions: list[_EdgeCondition]) -> edge.Filter:
        return edge.Filter(should=list(conditions))

    def none_of(self, conditions: list[_EdgeCondition]) -> edge.Filter:
        return edge.Filter(must_not=list(conditions))

    def nothing(self) -> edge.HasIdCondition:
        return edge.HasIdCondition(set())


class _ClientBuilder(_Builder[models.Condition]):
    def match(self, key: str, value: Scalar) -> models.FieldCondition:
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))

    def range(self, key: str, bounds: _Bounds) -> models.FieldCondition:
        return models.FieldCondition(
            key=key,
            range=models.Range(gt=bounds.gt, gte=bounds.gte, lt=bounds.lt, lte=bounds.lte),
        )

    def is_empty(self, key: str) -> models.IsEmptyCondition:
        return models.IsEmptyCondition(is_empty=models.PayloadField(key=key))

    def all_of(self, conditions: list[models.Condition]) -> models.Filter:
        return models.Filter(must=list(conditions))

    def any_of(self, conditions: list[models.Condition]) -> models.Filter:
        return models.Filter(should=list(conditions))

    def none_of(self, conditions: list[models.Condition]) -> models.Filter:
        return models.Filter(must_not=list(conditions))

    def nothing(self) -> models.HasIdCondition:
        return models.HasIdCondition(has_id=[])


def to_edge_filter(
    expr: Expr | None, payload: Mapping[str, PayloadKind] = OBJECT_PAYLOAD
) -> edge.Filter | None:
    """`expr` as a qdrant-edge filter over `payload` (None for no filter)."""
    if expr is None:
        return None
    condition = _Translation(_EdgeBuilder(), payload).condition(expr)
    if isinstance(condition, edge.Filter):
        return condition
    return edge.Filter(must=[condition])


def to_client_filter(
    expr: Expr | None, payload: Mapping[str, PayloadKind] = OBJECT_PAYLOAD
) -> models.Filter | None:
    """`expr` as a qdrant-client filter over `payload` (None for no filter)."""
    if expr is None:
        return None
    condition = _Translation(_ClientBuilder(), payload).condition(expr)
    if isinstance(condition, models.Filter):
        return condition
    return models.Filter(must=[condition])


class _Translation(Generic[C]):
    def __init__(self, builder: _Builder[C], payload: Mapping[str, PayloadKind]) -> None:
        self._build = builder
        self._payload = payload

    def condition(self, expr: Expr) -> C:
        if isinstance(expr, Comparison):
            return self._comparison(expr)
        if isinstance(expr, And):
            return self._build.all_of([self.condition(term) for term in expr.terms])
        if isinstance(expr, Or):
            if not expr.terms:
                return self._build.nothing()
            return self._build.any_of([self.condition(term) for term in expr.terms])
        if isinstance(expr, Not):
            return self._build.none_of([self.condition(expr.term)])
        raise _unsupported(f"{expr!r} is not a filter expression")

    def _comparison(self, comparison: Comparison) -> C:
        key, op, value = comparison.field, comparison.op, comparison.value
        kind = self._payload.get(key)
        if kind is None:
            known = ", ".join(sorted(self._payload))
            raise _unsupported(
                f"field {key!r} cannot be used in a similarity search filter (known: {known})"
            )
        if value is None:
            if op is Op.EQ:
                return self._build.is_empty(key)
            if op is Op.NE:
                return self._build.none_of([self._build.is_empty(key)])
            raise _unsupported(f'null can only be compared with "=" or "!=" ({key} {op.value})')
        number = _payload_value(key, kind, value)
        if op is Op.EQ:
            return self._equals(key, kind, number)
        if op is Op.NE:
            # Present and different: must_not alone would also match points without the key.
            return self._build.none_of([self._build.is_empty(key), self._equals(key, kind, number)])
        if kind not in _ORDERED_KINDS:
            raise _unsupported(f"field {key!r} cannot be ordered; use = or !=")
        bound = float(number)
        return self._build.range(key, _Bounds(**{_RANGE_ARGUMENT[op]: bound}))

    def _equals(self, key: str, kind: PayloadKind, value: Scalar | float) -> C:
        if kind is PayloadKind.FLOAT:
            # MatchValue takes no floats; an exact range is equality on the stored float.
            return self._build.range(key, _Bounds(gte=float(value), lte=float(value)))
        return self._build.match(key, cast(Scalar, value))


def _payload_value(key: str, kind: PayloadKind, value: Value) -> Scalar | float:
    """The filter's value in the payload's terms, or InvalidArgument when it cannot be one."""
    if kind is PayloadKind.BOOL and isinstance(value, bool):
        return int(value)
    if kind is PayloadKind.KEYWORD and isinstance(value, str):
        return value
    if kind is PayloadKind.INTEGER and isinstance(value, int) and not isinstance(value, bool):
        return value
    if kind is PayloadKind.FLOAT and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if (
        kind is PayloadKind.TIMESTAMP
        and isinstance(value, datetime)
        and value.utcoffset() is not None
    ):
        return to_timestamp_us(value)
    raise _unsupported(f"field {key!r} holds {kind.value} values; cannot compare with {value!r}")


def _unsupported(message: str) -> InvalidArgument:
    return InvalidArgument(f"filter: {message}", field="filter", reason="INVALID_FILTER")
