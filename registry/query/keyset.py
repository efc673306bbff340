"""Keyset paging shared by every List: filter, ORDER BY, the seek predicate that continues
after a page token, and the token for the next page.

A page is `ORDER BY <order_by keys>, <id>` and `WHERE <filter> AND <sort key> after <token>`,
`LIMIT page_size + 1` (the extra row says whether there is a next page). `plan_page` checks the
request and builds those pieces; `fetch_page` runs them over a store's table, the one SELECT
every List shares; `list_page` is a whole filtered List (plan, fetch, count, records) for the
stores whose List is nothing more (sources, categories, objects, tracks). The ID breaks ties
and runs in the direction of the last key, so an all-ascending or all-descending order is one
row comparison `(k1, k2, id) > (...)` that a `(k1, id)` index serves in either direction.
Every sort expression is NOT NULL (views wrap theirs in COALESCE), so comparisons never meet
NULL.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from psycopg import sql
from psycopg.rows import dict_row

from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.query.filtering import format_filter, parse_filter
from agentic_labeling.registry.query.listing import OrderKey, effective_page_size, parse_order_by
from agentic_labeling.registry.query.page_tokens import (
    KeyValue,
    decode_page_token,
    encode_page_token,
    page_scope,
)
from agentic_labeling.registry.query.sql_filters import Cast, FilterSql, QueryParams, where_clause
from agentic_labeling.registry.values.records import Page

__all__ = [
    "ListQuery",
    "Listing",
    "PagePlan",
    "SortField",
    "count_matching",
    "fetch_page",
    "list_page",
    "plan_page",
]

T = TypeVar("T")

_KINDS: dict[Cast, type] = {
    "float8": float,
    "int8": int,
    "text": str,
    "timestamptz": datetime,
    "uuid": UUID,
}


@dataclass(frozen=True)
class SortField:
    """A sort expression and its SQL type (the type of its page-token value)."""

    expr: sql.Composable
    cast: Cast

    @property
    def kind(self) -> type:
        return _KINDS[self.cast]


@dataclass(frozen=True)
class Listing:
    """What one List method pages over."""

    resource: str
    filter_sql: FilterSql | None
    sort_fields: Mapping[str, SortField]
    tiebreak: SortField
    default_order: tuple[OrderKey, ...] = ()


@dataclass(frozen=True)
class PagePlan:
    """The SQL pieces of one page; select `sort_columns` to let `next_token` read the key."""

    filter: sql.Composable
    seek: sql.Composable
    order_by: sql.Composable
    sort_columns: sql.Composable
    page_size: int
    scope: str
    key_count: int

    @property
    def limit(self) -> int:
        return self.page_size + 1

    def page(self, rows: Sequence[Mapping[str, Any]]) -> tuple[Sequence[Mapping[str, Any]], str]:
        """The rows of this page and the token for the next one ("" on the last page)."""
        if len(rows) <= self.page_size:
            return rows, ""
        last = rows[self.page_size - 1]
        key: list[KeyValue] = [last[f"_k{i}"] for i in range(self.key_count)]
        return rows[: self.page_size], encode_page_token(self.scope, key)


def plan_page(
    listing: Listing,
    params: QueryParams,
    *,
    filter_text: str = "",
    order_by: str = "",
    page_size: int = 0,
    page_token: str = "",
    parent: str = "",
) -> PagePlan:
    """Check the List request's filter, order_by, page_size and page_token and build the SQL.

    Raises InvalidArgument naming `filter`, `order_by`, `page_size` or `page_token`.
    """
    size = effective_page_size(page_size)
    expr = None
    if listing.filter_sql is not None:
        expr = parse_filter(filter_text, listing.filter_sql.schema)
        condition = where_clause(expr, listing.filter_sql, params)
    else:
        condition = sql.SQL("TRUE")
    keys = parse_order_by(order_by, listing.sort_fields) or listing.default_order
    fields = [listing.sort_fields[key.field] for key in keys]
    directions = [key.descending for key in keys]
    fields.append(listing.tiebreak)
    directions.append(directions[-1] if keys else False)
    scope = page_scope(
        listing.resource,
        format_filter(expr),
        ",".join(f"{k.field} {'desc' if k.descending else 'asc'}" for k in keys),
        parent,
    )
    seek: sql.Composable = sql.SQL("TRUE")
    if page_token:
        cursor = decode_page_token(page_token, scope, [f.kind for f in fields])
        seek = _seek(fields, directions, cursor, params)
    order = sql.SQL(", ").join(
        sql.SQL("{} DESC" if descending else "{} ASC").format(field.expr)
        for field, descending in zip(fields, directions, strict=True)
    )
    columns = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(field.expr, sql.Identifier(f"_k{i}"))
        for i, field in enumerate(fields)
    )
    return PagePlan(
        filter=condition,
        seek=seek,
        order_by=order,
        sort_columns=columns,
        page_size=size,
        scope=scope,
        key_count=len(fields),
    )


async def fetch_page(
    conn: Connection,
    plan: PagePlan,
    params: QueryParams,
    *,
    columns: sql.Composable,
    table: sql.Composable,
    where: sql.Composable | None = None,
) -> tuple[Sequence[Mapping[str, Any]], str]:
    """The page `plan` describes: `SELECT columns FROM table WHERE [where AND] <filter> AND
    <seek>` in the plan's order, and the token for the next page ("" on the last page).

    `where` narrows the rows before the request's filter (a parent, for frames); its
    parameters, like the plan's, are in `params`.
    """
    conditions = [plan.filter, plan.seek] if where is None else [where, plan.filter, plan.seek]
    query = sql.SQL("SELECT {}, {} FROM {} WHERE {} ORDER BY {} LIMIT {}").format(
        columns,
        plan.sort_columns,
        table,
        sql.SQL(" AND ").join(conditions),
        plan.order_by,
        sql.Literal(plan.limit),
    )
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(query, params.values)
        return plan.page(await cursor.fetchall())


async def count_matching(
    conn: Connection, plan: PagePlan, params: QueryParams, *, table: sql.Composable
) -> int:
    """How many rows of `table` match the plan's filter, on every page (a List's total_size)."""
    query = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(table, plan.filter)
    cursor = await conn.execute(query, params.values)
    row = await cursor.fetchone()
    assert row is not None
    return int(row[0])


@dataclass(frozen=True)
class ListQuery(Generic[T]):
    """One List as a whole: what it pages over, the columns and table its SELECT reads, and
    how a row becomes a record. `count_table`, where the List reports total_size, is the
    table the filter is counted over."""

    listing: Listing
    columns: sql.Composable
    table: sql.Composable
    from_row: Callable[[Mapping[str, Any]], T]
    count_table: sql.Composable | None = None


async def list_page(
    db: Database,
    query: ListQuery[T],
    filter_text: str = "",
    order_by: str = "",
    page_size: int = 0,
    page_token: str = "",
) -> Page[T]:
    """One page of a List method, its arguments in the List's own order.

    The request is checked before any connection is taken (InvalidArgument naming `filter`,
    `order_by`, `page_size` or `page_token`). A page with total_size is read in one snapshot,
    so the count agrees with the rows.
    """
    params = QueryParams()
    plan = plan_page(
        query.listing,
        params,
        filter_text=filter_text,
        order_by=order_by,
        page_size=page_size,
        page_token=page_token,
    )

    async def rows(conn: Connection) -> tuple[tuple[T, ...], str]:
        found, token = await fetch_page(
            conn, plan, params, columns=query.columns, table=query.table
        )
        return tuple(query.from_row(row) for row in found), token

    count_table = query.count_table
    if count_table is None:
        async with db.connection() as conn:
            return Page(*await rows(conn))

    async def with_total(conn: Connection) -> Page[T]:
        items, token = await rows(conn)
        return Page(items, token, await count_matching(conn, plan, params, table=count_table))

    return await db.transact(with_total, snapshot=True)


def _seek(
    fields: Sequence[SortField],
    directions: Sequence[bool],
    cursor: Sequence[KeyValue],
    params: QueryParams,
) -> sql.Composable:
    """Rows strictly after `cursor` in the order (fields, directions)."""
    values = [params.add(value, field.cast) for field, value in zip(fields, cursor, strict=True)]
    if len(set(directions)) == 1:
        return sql.SQL("({}) {} ({})").format(
            sql.SQL(", ").join(field.expr for field in fields),
            sql.SQL("<" if directions[0] else ">"),
            sql.SQL(", ").join(values),
        )
    alternatives = []
    for i, field in enumerate(fields):
        equal = [
            sql.SQL("{} = {}").format(fields[j].expr, values[j]) for j in range(i)
        ]  # earlier keys tie
        after = sql.SQL("{} {} {}").format(
            field.expr, sql.SQL("<" if directions[i] else ">"), values[i]
        )
        alternatives.append(sql.SQL("({})").format(sql.SQL(" AND ").join([*equal, after])))
    return sql.SQL("({})").format(sql.SQL(" OR ").join(alternatives))
