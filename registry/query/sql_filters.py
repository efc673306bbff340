"""AIP-160 filters as SQL: the parsed expression (`filtering.parse_filter`) becomes a psycopg
`sql.Composable` WHERE clause with named parameters, per resource.

The SQL means exactly what `filtering.evaluate` means on the same rows. SQL has three truth
values and the filter language two, so every comparison is made two-valued where it is built:

- `field = null` is `col IS NULL`, `field != null` is `col IS NOT NULL`;
- any other comparison on a nullable column is `(col op value AND col IS NOT NULL)`, false for
  NULL, so NOT of it is true, as `evaluate` says (`NOT track = "tracks/.."` matches untracked
  objects while `track != "tracks/.."` does not).

Columns that are never NULL get the bare comparison, which keeps it usable by an index.

Fields with more than a value behind them:

- `category` (objects, tracks) and `display_name` (categories) match a category's display name
  or any of its synonyms, case-insensitively, or for `category` the resource name
  `categories/{uuid}`. A name nobody has matches nothing with `=` and everything with `!=`.
- `source` and `track` take resource names `sources/{uuid}` and `tracks/{uuid}`; anything else
  is InvalidArgument naming `filter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal
from uuid import UUID

from psycopg import sql

from agentic_labeling.registry.query import queryable_fields
from agentic_labeling.registry.query.filtering import (
    And,
    Comparison,
    Expr,
    FilterSchema,
    Not,
    Op,
    Or,
)
from agentic_labeling.registry.values.records import category_name_key
from agentic_labeling.registry.values.resource_names import Collection, parse_name

__all__ = [
    "CATEGORY_FILTER_SQL",
    "OBJECT_FILTER_SQL",
    "SOURCE_FILTER_SQL",
    "TRACK_FILTER_SQL",
    "FieldSql",
    "FilterSql",
    "QueryParams",
    "category_field",
    "plain_field",
    "resource_field",
    "where_clause",
]

Cast = Literal["uuid", "text", "float8", "int8", "int4", "bool", "timestamptz"]


class QueryParams:
    """Named parameters collected while a query is composed (`%(p0)s`, `%(p1)s`, ...), so the
    pieces of a query can be built in any order."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def add(self, value: object, cast: Cast | None = None) -> sql.Composable:
        """A placeholder for `value`, cast to a type when given."""
        name = f"p{len(self.values)}"
        self.values[name] = value
        placeholder = sql.Placeholder(name)
        if cast is None:
            return placeholder
        return sql.SQL("{}::{}").format(placeholder, sql.SQL(cast))


# Builds the SQL of one comparison on one field.
FieldSql = Callable[[Comparison, QueryParams], sql.Composable]

_OPERATORS: dict[Op, sql.SQL] = {
    Op.EQ: sql.SQL("="),
    Op.NE: sql.SQL("<>"),
    Op.LT: sql.SQL("<"),
    Op.LE: sql.SQL("<="),
    Op.GT: sql.SQL(">"),
    Op.GE: sql.SQL(">="),
}


def _compare(
    column: sql.Composable, op: Op, value: sql.Composable, *, nullable: bool
) -> sql.Composable:
    """`column op value`, false (never NULL) when the column is NULL."""
    comparison = sql.SQL("{} {} {}").format(column, _OPERATORS[op], value)
    if not nullable:
        return comparison
    return sql.SQL("({} AND {} IS NOT NULL)").format(comparison, column)


def _compare_null(column: sql.Composable, op: Op) -> sql.Composable:
    return sql.SQL("{} IS NULL" if op is Op.EQ else "{} IS NOT NULL").format(column)


def plain_field(column: sql.Composable, cast: Cast, *, nullable: bool = False) -> FieldSql:
    """A column compared with the value as it is (numbers, strings, booleans, times, enums)."""

    def build(comparison: Comparison, params: QueryParams) -> sql.Composable:
        if comparison.value is None:
            return _compare_null(column, comparison.op)
        value = params.add(comparison.value, cast)
        return _compare(column, comparison.op, value, nullable=nullable)

    return build


def resource_field(
    column: sql.Composable, collection: Collection, *, nullable: bool = False
) -> FieldSql:
    """A UUID column compared with a resource name `collection/{uuid}`."""

    def build(comparison: Comparison, params: QueryParams) -> sql.Composable:
        if comparison.value is None:
            return _compare_null(column, comparison.op)
        resource_id = parse_name(str(comparison.value), collection, field="filter")
        value = params.add(resource_id, "uuid")
        return _compare(column, comparison.op, value, nullable=nullable)

    return build


def category_field(
    column: sql.Composable, *, nullable: bool = False, resource_names: bool = True
) -> FieldSql:
    """A category ID column compared with a category name or synonym (any case) or, when
    `resource_names`, with `categories/{uuid}`."""

    def build(comparison: Comparison, params: QueryParams) -> sql.Composable:
        text = str(comparison.value)
        if resource_names and text.startswith("categories/"):
            resource_id: UUID = parse_name(text, "categories", field="filter")
            value = params.add(resource_id, "uuid")
            return _compare(column, comparison.op, value, nullable=nullable)
        key = params.add(category_name_key(text), "text")
        # category_id is never NULL in category_names: IN / NOT IN are two-valued here.
        membership = sql.SQL(
            "{} IN (SELECT n.category_id FROM category_names n WHERE n.name_key = {})"
            if comparison.op is Op.EQ
            else "{} NOT IN (SELECT n.category_id FROM category_names n WHERE n.name_key = {})"
        ).format(column, key)
        if not nullable:
            return membership
        return sql.SQL("({} AND {} IS NOT NULL)").format(membership, column)

    return build


@dataclass(frozen=True)
class FilterSql:
    """How one resource's filter fields become SQL; every schema field has an entry."""

    schema: FilterSchema
    fields: Mapping[str, FieldSql]

    def __post_init__(self) -> None:
        missing = set(self.schema) - set(self.fields)
        if missing:
            raise ValueError(f"no SQL for filter fields {sorted(missing)}")


def where_clause(expr: Expr | None, target: FilterSql, params: QueryParams) -> sql.Composable:
    """The WHERE condition for `expr` (TRUE for no filter), its values added to `params`."""
    if expr is None:
        return sql.SQL("TRUE")
    if isinstance(expr, Comparison):
        return target.fields[expr.field](expr, params)
    if isinstance(expr, And | Or):
        joiner = sql.SQL(" AND " if isinstance(expr, And) else " OR ")
        return sql.SQL("({})").format(
            joiner.join(where_clause(term, target, params) for term in expr.terms)
        )
    if isinstance(expr, Not):
        return sql.SQL("(NOT {})").format(where_clause(expr.term, target, params))
    raise TypeError(f"not a filter expression: {expr!r}")  # pragma: no cover


def _column(table: str, name: str) -> sql.Identifier:
    return sql.Identifier(table, name)


# Objects, as `FROM objects o`.
OBJECT_FILTER_SQL = FilterSql(
    queryable_fields.OBJECT_FILTER,
    {
        "category": category_field(_column("o", "category_id")),
        "source": resource_field(_column("o", "source_id"), "sources"),
        "frame_index": plain_field(_column("o", "frame_index"), "int8"),
        "confidence": plain_field(_column("o", "confidence"), "float8"),
        "quality_score": plain_field(_column("o", "quality_score"), "float8"),
        "area": plain_field(_column("o", "area"), "float8"),
        "is_validated": plain_field(_column("o", "is_validated"), "bool"),
        "validated_by": plain_field(_column("o", "validated_by"), "text", nullable=True),
        "detection_model": plain_field(_column("o", "detection_model"), "text"),
        "track": resource_field(_column("o", "track_id"), "tracks", nullable=True),
        "create_time": plain_field(_column("o", "create_time"), "timestamptz"),
        "update_time": plain_field(_column("o", "update_time"), "timestamptz"),
    },
)

# Sources, as `FROM sources s`.
SOURCE_FILTER_SQL = FilterSql(
    queryable_fields.SOURCE_FILTER,
    {
        "kind": plain_field(_column("s", "kind"), "text"),
        "display_name": plain_field(_column("s", "display_name"), "text"),
        "content_sha256": plain_field(_column("s", "content_sha256"), "text"),
        "create_time": plain_field(_column("s", "create_time"), "timestamptz"),
    },
)

# Categories, as `FROM categories c`: display_name matches names and synonyms.
CATEGORY_FILTER_SQL = FilterSql(
    queryable_fields.CATEGORY_FILTER,
    {"display_name": category_field(_column("c", "id"), resource_names=False)},
)

# Tracks, as `FROM track_summaries t` (category is NULL only for a track without objects).
TRACK_FILTER_SQL = FilterSql(
    queryable_fields.TRACK_FILTER,
    {
        "source": resource_field(_column("t", "source_id"), "sources"),
        "category": category_field(_column("t", "category_id"), nullable=True),
        "object_count": plain_field(_column("t", "object_count"), "int8"),
    },
)
