"""Categories with synonyms: create, get, list, update (display_name, synonyms), delete, and
resolving a name or synonym to its category.

Every spelling (the display name and each synonym) is a row of `category_names` keyed by its
case-folded form, so "Person", "person" and a synonym "PERSON" of another category collide on
the primary key: uniqueness across names and synonyms is the database's, not a check that two
writers could both pass. Writers insert names in key order with ON CONFLICT DO NOTHING, so
concurrent creators neither deadlock nor fail: the loser sees the winner's category.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any
from uuid import UUID, uuid4

from psycopg import sql
from psycopg.rows import dict_row

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from agentic_labeling.registry.database import Connection, Database
from agentic_labeling.registry.metadata.outbox import enqueue
from agentic_labeling.registry.metadata.tracks import drop_empty_tracks
from agentic_labeling.registry.query.keyset import Listing, ListQuery, SortField, list_page
from agentic_labeling.registry.query.listing import OrderKey
from agentic_labeling.registry.query.sql_filters import CATEGORY_FILTER_SQL
from agentic_labeling.registry.values.input_checks import check_name
from agentic_labeling.registry.values.records import (
    Category,
    DeletedObject,
    NewCategory,
    Page,
    category_name_key,
)
from agentic_labeling.registry.values.resource_names import format_name, not_found

__all__ = [
    "CATEGORY_LISTING",
    "CategoryStore",
    "create_missing_categories",
    "lock_categories",
    "lock_named_categories",
    "resolve_category_names",
]

_CATEGORY_COLUMNS = sql.SQL(
    "c.id, c.display_name, c.create_time, "
    "coalesce((SELECT array_agg(n.name ORDER BY n.position) FROM category_names n "
    "WHERE n.category_id = c.id AND NOT n.is_display_name), ARRAY[]::text[]) AS synonyms, "
    "(SELECT count(*) FROM objects o WHERE o.category_id = c.id) AS object_count"
)

CATEGORY_LISTING = Listing(
    resource="categories",
    filter_sql=CATEGORY_FILTER_SQL,
    sort_fields={
        "display_name": SortField(sql.SQL("c.display_name"), "text"),
        "create_time": SortField(sql.SQL("c.create_time"), "timestamptz"),
    },
    tiebreak=SortField(sql.SQL("c.id"), "uuid"),
    default_order=(OrderKey("display_name"),),
)

_UPDATABLE = frozenset({"display_name", "synonyms"})
_OUTPUT_ONLY = frozenset({"name", "object_count", "create_time"})


def _category_from_row(row: Mapping[str, Any]) -> Category:
    return Category(
        id=row["id"],
        display_name=row["display_name"],
        synonyms=tuple(row["synonyms"]),
        object_count=row["object_count"],
        create_time=row["create_time"],
    )


_CATEGORY_QUERY = ListQuery(
    CATEGORY_LISTING, _CATEGORY_COLUMNS, sql.SQL("categories c"), _category_from_row
)


async def _load(conn: Connection, category_id: UUID, field: str = "name") -> Category:
    async with conn.cursor(row_factory=dict_row) as cursor:
        await cursor.execute(
            sql.SQL("SELECT {} FROM categories c WHERE c.id = %s").format(_CATEGORY_COLUMNS),
            (category_id,),
        )
        row = await cursor.fetchone()
    if row is None:
        raise not_found("category", format_name("categories", category_id), field)
    return _category_from_row(row)


def _check_spellings(display_name: str, synonyms: Sequence[str]) -> list[tuple[str, str, str]]:
    """(key, name, field) for the display name and each synonym; InvalidArgument for a bad or
    repeated one."""
    spellings = [
        (
            category_name_key(check_name(display_name, "category.display_name")),
            display_name,
            "category.display_name",
        )
    ]
    for i, synonym in enumerate(synonyms):
        field = f"category.synonyms[{i}]"
        key = category_name_key(check_name(synonym, field))
        for other_key, other, _ in spellings:
            if key == other_key:
                raise InvalidArgument(
                    f"{synonym!r} repeats {other!r} (names are case-insensitive)", field=field
                )
        spellings.append((key, synonym, field))
    return spellings


async def _insert_names(
    conn: Connection, category_id: UUID, spellings: Sequence[tuple[str, str, str]]
) -> None:
    """Insert the spellings of one category; AlreadyExists naming the field of one taken."""
    ordered = sorted(range(len(spellings)), key=lambda i: spellings[i][0])
    cursor = await conn.execute(
        "INSERT INTO category_names (name_key, category_id, name, is_display_name, position) "
        "SELECT k, %s, n, p = 0, p FROM unnest(%s::text[], %s::text[], %s::int[]) AS w(k, n, p) "
        "ORDER BY k ON CONFLICT (name_key) DO NOTHING RETURNING name_key",
        (
            category_id,
            [spellings[i][0] for i in ordered],
            [spellings[i][1] for i in ordered],
            ordered,
        ),
    )
    inserted = {row[0] for row in await cursor.fetchall()}
    for key, name, field in spellings:
        if key not in inserted:
            cursor = await conn.execute(
                "SELECT category_id FROM category_names WHERE name_key = %s", (key,)
            )
            owner = await cursor.fetchone()
            holder = format_name("categories", owner[0]) if owner else "another category"
            raise AlreadyExists(
                f"the name {name!r} is taken by {holder} (names and synonyms are unique, "
                "case-insensitively)",
                metadata={"field": field, "category": holder},
            )


async def resolve_category_names(conn: Connection, keys: Collection[str]) -> dict[str, UUID]:
    """Category IDs by case-folded name or synonym, for those that exist."""
    if not keys:
        return {}
    cursor = await conn.execute(
        "SELECT name_key, category_id FROM category_names WHERE name_key = ANY(%s::text[])",
        (sorted(keys),),
    )
    return dict(await cursor.fetchall())


async def create_missing_categories(conn: Connection, names: Mapping[str, str]) -> None:
    """Create a category (no synonyms) for each case-folded key -> name that no category has.

    Names are inserted in key order with ON CONFLICT DO NOTHING: a name another writer creates
    meanwhile is simply taken as that writer's category.
    """
    if not names:
        return
    keys = sorted(names)
    await conn.execute(
        "WITH wanted AS (SELECT k, n FROM unnest(%s::text[], %s::text[]) AS w(k, n)), "
        "named AS (INSERT INTO category_names (name_key, category_id, name, is_display_name, "
        "position) SELECT k, gen_random_uuid(), n, true, 0 FROM wanted ORDER BY k "
        "ON CONFLICT (name_key) DO NOTHING RETURNING category_id, name) "
        "INSERT INTO categories (id, display_name) SELECT category_id, name FROM named",
        (keys, [names[k] for k in keys]),
    )


async def lock_named_categories(
    conn: Connection, keys: Collection[str]
) -> dict[str, tuple[UUID, str]]:
    """The categories these case-folded names or synonyms name, held against deletion until
    commit (in ID order, as `lock_categories`): (ID, display name) by key, for those that
    exist. Resolving and locking in one statement saves a round trip on every batch."""
    if not keys:
        return {}
    cursor = await conn.execute(
        "SELECT n.name_key, c.id, c.display_name FROM category_names n "
        "JOIN categories c ON c.id = n.category_id WHERE n.name_key = ANY(%s::text[]) "
        "ORDER BY c.id FOR KEY SHARE OF c",
        (sorted(keys),),
    )
    return {key: (category_id, name) for key, category_id, name in await cursor.fetchall()}


async def lock_categories(conn: Connection, category_ids: Collection[UUID]) -> dict[UUID, str]:
    """Hold the categories against deletion until commit; returns the display names of those
    that exist, by ID."""
    if not category_ids:
        return {}
    cursor = await conn.execute(
        "SELECT id, display_name FROM categories WHERE id = ANY(%s::uuid[]) "
        "ORDER BY id FOR KEY SHARE",
        (sorted(category_ids),),
    )
    return dict(await cursor.fetchall())


class CategoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def create(self, new: NewCategory) -> Category:
        """A new category; AlreadyExists when a name or synonym is taken (any case)."""
        spellings = _check_spellings(new.display_name, list(new.synonyms))
        category_id = uuid4()

        async def work(conn: Connection) -> Category:
            await conn.execute(
                "INSERT INTO categories (id, display_name) VALUES (%s, %s)",
                (category_id, new.display_name),
            )
            await _insert_names(conn, category_id, spellings)
            return await _load(conn, category_id)

        return await self._db.transact(work)

    async def get(self, category_id: UUID) -> Category:
        async with self._db.connection() as conn:
            return await _load(conn, category_id)

    async def resolve(self, name: str, *, field: str = "category_name") -> Category:
        """The category whose display name or synonym is `name` (any case)."""
        async with self._db.connection() as conn:
            found = await resolve_category_names(conn, [category_name_key(name)])
            if not found:
                raise not_found("category", name, field)
            return await _load(conn, next(iter(found.values())), field)

    async def ids_for_names(self, names: Collection[str]) -> dict[str, UUID]:
        """Category IDs for names or synonyms (any case), keyed by the name as given; names no
        category has are left out. For rewriting `category = "dog"` into category IDs, as the
        vector store's payload holds IDs."""
        keys = {name: category_name_key(name) for name in names}
        async with self._db.connection() as conn:
            found = await resolve_category_names(conn, set(keys.values()))
        return {name: found[key] for name, key in keys.items() if key in found}

    async def list(
        self, *, filter: str = "", order_by: str = "", page_size: int = 0, page_token: str = ""
    ) -> Page[Category]:
        """Categories (filter: display_name, which also matches synonyms, any case)."""
        return await list_page(self._db, _CATEGORY_QUERY, filter, order_by, page_size, page_token)

    async def update(
        self,
        category_id: UUID,
        *,
        paths: Collection[str],
        display_name: str = "",
        synonyms: Sequence[str] = (),
    ) -> Category:
        """Change the fields named in `paths` (display_name, synonyms: the list is replaced)."""
        if not paths:
            raise InvalidArgument("name at least one field to update", field="update_mask")
        for path in paths:
            if path in _OUTPUT_ONLY:
                raise InvalidArgument(f"{path!r} is output only", field="update_mask")
            if path not in _UPDATABLE:
                raise InvalidArgument(
                    f"unknown field {path!r}; updatable: display_name, synonyms",
                    field="update_mask",
                )

        async def work(conn: Connection) -> Category:
            cursor = await conn.execute(
                "SELECT id FROM categories WHERE id = %s FOR UPDATE", (category_id,)
            )
            if await cursor.fetchone() is None:
                raise not_found("category", format_name("categories", category_id), "name")
            current = await _load(conn, category_id)
            new_name = display_name if "display_name" in paths else current.display_name
            new_synonyms = list(synonyms) if "synonyms" in paths else list(current.synonyms)
            spellings = _check_spellings(new_name, new_synonyms)
            await conn.execute("DELETE FROM category_names WHERE category_id = %s", (category_id,))
            await _insert_names(conn, category_id, spellings)
            await conn.execute(
                "UPDATE categories SET display_name = %s WHERE id = %s", (new_name, category_id)
            )
            return await _load(conn, category_id)

        return await self._db.transact(work)

    async def delete(self, category_id: UUID, *, force: bool = False) -> tuple[DeletedObject, ...]:
        """Delete the category; FailedPrecondition while objects use it unless `force`, which
        deletes those objects too (returned, so the caller can remove their mask files)."""

        async def work(conn: Connection) -> tuple[DeletedObject, ...]:
            # FOR UPDATE conflicts with the KEY SHARE lock a new object's foreign key takes:
            # no object can join the category while it is being deleted.
            cursor = await conn.execute(
                "SELECT id FROM categories WHERE id = %s FOR UPDATE", (category_id,)
            )
            if await cursor.fetchone() is None:
                raise not_found("category", format_name("categories", category_id), "name")
            if not force:
                cursor = await conn.execute(
                    "SELECT count(*) FROM objects WHERE category_id = %s", (category_id,)
                )
                row = await cursor.fetchone()
                count = row[0] if row else 0
                if count:
                    raise FailedPrecondition(
                        f"{count} objects use the category; delete them or set force",
                        reason="CATEGORY_IN_USE",
                        metadata={"object_count": str(count)},
                    )
            cursor = await conn.execute(
                "DELETE FROM objects WHERE category_id = %s "
                "RETURNING id, has_embedding, has_mask, track_id",
                (category_id,),
            )
            rows = await cursor.fetchall()
            await enqueue(conn, [row[0] for row in rows if row[1]], "delete")
            await drop_empty_tracks(conn, [row[3] for row in rows])
            await conn.execute("DELETE FROM categories WHERE id = %s", (category_id,))
            return tuple(DeletedObject(row[0], row[1], row[2]) for row in rows)

        return await self._db.transact(work)
