"""`alabel categories ...`: the registry's classes, their names and synonyms.

A category is named on the command line by its name (or one of its synonyms, any case), or
by its id (`categories/UUID` or the UUID). Each command makes its calls on --registry-url;
a failed call becomes one clear line with exit status 1. gRPC and the generated stubs are
imported when a command runs, so that `alabel --help` stays fast.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import json_option, yes_option

if TYPE_CHECKING:
    from agentic_labeling.v1 import registry_pb2, registry_pb2_grpc

__all__ = ["categories", "find_category"]

_PAGE_SIZE = 1000
_PREFIX = "categories/"


def _quoted(text: str) -> str:
    """`text` as a filter string literal (the filter syntax escapes \\ and ")."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _as_id(text: str) -> str | None:
    raw = text.strip().removeprefix(_PREFIX)
    try:
        return _PREFIX + str(uuid.UUID(raw))
    except ValueError:
        return None


def _list(
    stub: registry_pb2_grpc.RegistryServiceStub, filter_expr: str = ""
) -> list[registry_pb2.Category]:
    from agentic_labeling.v1 import registry_pb2

    found: list[registry_pb2.Category] = []
    token = ""
    while True:
        page = stub.ListCategories(
            registry_pb2.ListCategoriesRequest(
                page_size=_PAGE_SIZE,
                page_token=token,
                filter=filter_expr,
                order_by="display_name",
            ),
            timeout=60,
        )
        found.extend(page.categories)
        token = page.next_page_token
        if not token:
            return found


def find_category(
    stub: registry_pb2_grpc.RegistryServiceStub, name: str
) -> registry_pb2.Category | None:
    """The category called `name` (a name or synonym, any case, or an id), or None."""
    from agentic_labeling.v1 import registry_pb2

    category_id = _as_id(name)
    if category_id is not None:
        import grpc

        try:
            found: registry_pb2.Category = stub.GetCategory(
                registry_pb2.GetCategoryRequest(name=category_id), timeout=30
            )
            return found
        except grpc.RpcError as err:
            if err.code() is grpc.StatusCode.NOT_FOUND:
                return None
            raise
    matches = _list(stub, f"display_name = {_quoted(name.strip())}")
    return matches[0] if matches else None


def _existing(stub: registry_pb2_grpc.RegistryServiceStub, name: str) -> registry_pb2.Category:
    found = find_category(stub, name)
    if found is None:
        raise CliFailure(
            f"no category named {name!r}", details=["`alabel categories list` shows them all"]
        )
    return found


def _echo_category(category: registry_pb2.Category, what: str, as_json: bool) -> None:
    from agentic_labeling.cli.output import echo_json, message_json

    if as_json:
        echo_json(message_json(category))
        return
    synonyms = f" (synonyms: {', '.join(category.synonyms)})" if category.synonyms else ""
    click.echo(f"{what} {category.display_name}{synonyms}  {category.name}")


def _name_argument(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not value.strip():
        raise click.BadParameter("must not be empty", ctx, param)
    return value.strip()


@click.group(
    cls=AlabelGroup,
    epilog="""\b
Examples:
  alabel categories list
  alabel categories create truck --synonym lorry
  alabel categories rename truck "pickup truck"
  alabel categories add-synonym person human pedestrian
  alabel categories delete truck""",
)
def categories() -> None:
    """List, create, rename and delete the registry's categories (classes).

    `alabel label` creates the categories of its --classes itself; these commands are for
    curating them: a category a reviewer needs (`alabel validate ID --category NEW`),
    a better name, synonyms that resolve to it ("human" -> person) when labelling and in
    filters.
    """


@categories.command(
    "list",
    epilog="""\b
Examples:
  alabel categories list
  alabel categories list --filter 'display_name = "car"' --json""",
)
@click.option(
    "--filter",
    "filter_expr",
    metavar="EXPR",
    help="Only categories matching EXPR over display_name (synonyms match too), e.g."
    " 'display_name = \"car\"'.",
)
@json_option
def categories_list(filter_expr: str | None, as_json: bool) -> None:
    """List categories with their synonyms and object counts, by name."""
    from agentic_labeling.cli.output import echo_json, echo_table, message_json, short_id
    from agentic_labeling.cli.registry import registry_stub

    with registry_stub() as stub:
        found = _list(stub, filter_expr or "")
    if as_json:
        echo_json({"categories": [message_json(c) for c in found]})
        return
    if not found:
        click.echo("no categories" + (" match the filter" if filter_expr else ""))
        return
    echo_table(
        ("CATEGORY", "OBJECTS", "SYNONYMS", "ID"),
        [
            [c.display_name, str(c.object_count), ", ".join(c.synonyms) or "-", short_id(c.name)]
            for c in found
        ],
    )


@categories.command(
    "create",
    epilog="""\b
Examples:
  alabel categories create truck
  alabel categories create "traffic light" --synonym "traffic signal" --json""",
)
@click.argument("name", callback=_name_argument)
@click.option(
    "--synonym",
    "synonyms",
    multiple=True,
    metavar="NAME",
    help="Another name that resolves to this category (repeat for more).",
)
@json_option
def categories_create(name: str, synonyms: tuple[str, ...], as_json: bool) -> None:
    """Create a category NAME (unique, any case, among names and synonyms)."""
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        created = stub.CreateCategory(
            registry_pb2.CreateCategoryRequest(
                category=registry_pb2.Category(display_name=name, synonyms=list(synonyms))
            ),
            timeout=30,
        )
    _echo_category(created, "created", as_json)


def _update(
    stub: registry_pb2_grpc.RegistryServiceStub,
    category: registry_pb2.Category,
    paths: Sequence[str],
) -> registry_pb2.Category:
    from google.protobuf import field_mask_pb2

    from agentic_labeling.v1 import registry_pb2

    updated: registry_pb2.Category = stub.UpdateCategory(
        registry_pb2.UpdateCategoryRequest(
            category=category, update_mask=field_mask_pb2.FieldMask(paths=list(paths))
        ),
        timeout=30,
    )
    return updated


@categories.command(
    "rename",
    epilog="""\b
Examples:
  alabel categories rename truck "pickup truck"
  alabel categories rename categories/3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 car""",
)
@click.argument("name", callback=_name_argument)
@click.argument("new_name", callback=_name_argument)
@json_option
def categories_rename(name: str, new_name: str, as_json: bool) -> None:
    """Rename category NAME to NEW_NAME; its objects follow (they refer to it by id)."""
    from agentic_labeling.cli.registry import registry_stub

    with registry_stub() as stub:
        category = _existing(stub, name)
        category.display_name = new_name
        updated = _update(stub, category, ["display_name"])
    _echo_category(updated, "renamed to", as_json)


@categories.command(
    "add-synonym",
    epilog="""\b
Examples:
  alabel categories add-synonym person human
  alabel categories add-synonym car automobile auto --json""",
)
@click.argument("name", callback=_name_argument)
@click.argument("synonyms", metavar="SYNONYM...", nargs=-1, required=True)
@json_option
def categories_add_synonym(name: str, synonyms: tuple[str, ...], as_json: bool) -> None:
    """Add SYNONYMs to category NAME: they resolve to it when labelling and in filters."""
    from agentic_labeling.cli.registry import registry_stub

    with registry_stub() as stub:
        category = _existing(stub, name)
        known = {s.casefold() for s in category.synonyms}
        added = [s.strip() for s in synonyms if s.strip().casefold() not in known]
        if not added:
            _echo_category(category, "unchanged:", as_json)
            return
        category.synonyms.extend(dict.fromkeys(added))
        updated = _update(stub, category, ["synonyms"])
    _echo_category(updated, "updated", as_json)


@categories.command(
    "delete",
    epilog="""\b
Examples:
  alabel categories delete truck
  alabel categories delete truck --force --yes""",
)
@click.argument("name", callback=_name_argument)
@click.option("--force", is_flag=True, help="Also delete the category's objects.")
@yes_option
def categories_delete(name: str, force: bool, yes: bool) -> None:
    """Delete category NAME.

    A category that still has objects is refused (FAILED_PRECONDITION) unless --force, which
    deletes its objects too. Asks first unless --yes; without a terminal, --yes is required.
    """
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        category = _existing(stub, name)
        what = f"category {category.display_name}"
        if force and category.object_count:
            what += f" and its {category.object_count} object(s)"
        if not yes:
            if not sys.stdin.isatty():
                raise click.UsageError(f"deleting {what} needs --yes when not run at a terminal")
            click.confirm(f"Delete {what}?", abort=True, err=True)
        stub.DeleteCategory(
            registry_pb2.DeleteCategoryRequest(name=category.name, force=force), timeout=120
        )
    click.echo(f"deleted {what}")
