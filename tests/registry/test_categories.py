"""Categories with synonyms in Postgres: names unique case-insensitively across names and
synonyms, field-mask updates, deletion guarded by use."""

from __future__ import annotations

import asyncio
from uuid import uuid4

import pytest

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from agentic_labeling.registry.values.records import NewCategory


async def test_create_category_stores_name_and_synonyms_in_order(repo) -> None:
    category = await repo.categories.create(NewCategory("person", synonyms=["human", "Man"]))
    assert (category.display_name, category.synonyms, category.object_count) == (
        "person",
        ("human", "Man"),
        0,
    )
    assert await repo.categories.get(category.id) == category


@pytest.mark.parametrize(
    ("second", "field"),
    [
        (NewCategory("PERSON"), "category.display_name"),
        (NewCategory("Human"), "category.display_name"),  # another category's synonym
        (NewCategory("walker", synonyms=["PERSON"]), "category.synonyms[0]"),
        (NewCategory("walker", synonyms=["ok", "human"]), "category.synonyms[1]"),
    ],
)
async def test_names_and_synonyms_are_unique_across_both_case_insensitively(
    repo, second: NewCategory, field: str
) -> None:
    first = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    with pytest.raises(AlreadyExists) as caught:
        await repo.categories.create(second)
    assert caught.value.metadata == {"field": field, "category": f"categories/{first.id}"}
    assert len((await repo.categories.list()).items) == 1  # nothing half-created


async def test_a_synonym_repeating_the_display_name_is_invalid_argument(repo) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.categories.create(NewCategory("person", synonyms=["Person"]))
    assert caught.value.violations[0].field == "category.synonyms[0]"


@pytest.mark.parametrize(
    ("category", "field"),
    [
        (NewCategory(""), "category.display_name"),
        (NewCategory(" cat"), "category.display_name"),
        (NewCategory("cat\n"), "category.display_name"),
        (NewCategory("x" * 201), "category.display_name"),
        (NewCategory("categories/x"), "category.display_name"),
        (NewCategory("cat", synonyms=[""]), "category.synonyms[0]"),
    ],
)
async def test_bad_names_are_invalid_argument_naming_the_field(
    repo, category: NewCategory, field: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        await repo.categories.create(category)
    assert caught.value.violations[0].field == field


async def test_resolve_finds_a_category_by_name_or_synonym_in_any_case(repo) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    assert (await repo.categories.resolve("HUMAN")).id == person.id
    assert (await repo.categories.resolve("Person")).id == person.id
    with pytest.raises(NotFound) as caught:
        await repo.categories.resolve("zebra")
    assert caught.value.metadata["field"] == "category_name"


async def test_update_category_replaces_synonyms_named_in_the_mask(repo) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    updated = await repo.categories.update(person.id, paths=["synonyms"], synonyms=["pedestrian"])
    assert (updated.display_name, updated.synonyms) == ("person", ("pedestrian",))
    # the old synonym is free again
    await repo.categories.create(NewCategory("human"))


async def test_update_category_renames_and_keeps_synonyms_outside_the_mask(repo) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    updated = await repo.categories.update(person.id, paths=["display_name"], display_name="Person")
    assert (updated.display_name, updated.synonyms) == ("Person", ("human",))


async def test_update_category_to_a_taken_name_is_already_exists_and_changes_nothing(repo) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    await repo.categories.create(NewCategory("dog"))
    with pytest.raises(AlreadyExists) as caught:
        await repo.categories.update(person.id, paths=["synonyms"], synonyms=["human", "DOG"])
    assert caught.value.metadata["field"] == "category.synonyms[1]"
    assert (await repo.categories.get(person.id)).synonyms == ("human",)


@pytest.mark.parametrize("paths", [[], ["colour"], ["object_count"], ["name"]])
async def test_update_category_with_a_bad_mask_is_invalid_argument_naming_update_mask(
    repo, paths: list[str]
) -> None:
    person = await repo.categories.create(NewCategory("person"))
    with pytest.raises(InvalidArgument) as caught:
        await repo.categories.update(person.id, paths=paths)
    assert caught.value.violations[0].field == "update_mask"


async def test_update_unknown_category_is_not_found(repo) -> None:
    with pytest.raises(NotFound):
        await repo.categories.update(uuid4(), paths=["display_name"], display_name="x")


async def test_delete_category_in_use_is_failed_precondition_unless_forced(repo, build) -> None:
    image = await build.image()
    (record,) = (await build.create(build.obj(image, "cat", embedding=[1.0] * 8))).objects
    with pytest.raises(FailedPrecondition) as caught:
        await repo.categories.delete(record.category_id)
    assert caught.value.reason == "CATEGORY_IN_USE"
    assert (await repo.categories.get(record.category_id)).object_count == 1

    deleted = await repo.categories.delete(record.category_id, force=True)

    assert [(d.id, d.had_embedding) for d in deleted] == [(record.id, True)]
    with pytest.raises(NotFound):
        await repo.categories.get(record.category_id)
    assert (await repo.objects.list()).total_size == 0
    assert [op.op for op in await repo.outbox.pending()] == ["delete"]


async def test_delete_unused_category_frees_its_names(repo) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    assert await repo.categories.delete(person.id) == ()
    await repo.categories.create(NewCategory("human"))
    with pytest.raises(NotFound):
        await repo.categories.delete(person.id)


async def test_list_categories_pages_in_display_name_order(repo) -> None:
    for name in ("zebra", "ant", "moose", "bee"):
        await repo.categories.create(NewCategory(name))
    first = await repo.categories.list(page_size=3)
    rest = await repo.categories.list(page_size=3, page_token=first.next_page_token)
    assert [c.display_name for c in first.items + rest.items] == ["ant", "bee", "moose", "zebra"]
    newest = await repo.categories.list(order_by="create_time desc", page_size=1)
    assert newest.items[0].display_name == "bee"


async def test_concurrent_creators_of_one_name_make_one_category(repo, build) -> None:
    image = await build.image()
    results = await asyncio.gather(
        *(build.create(build.obj(image, "Heron", bbox=(10 * i, 10, 5, 5))) for i in range(8))
    )
    assert len({r.objects[0].category_id for r in results}) == 1
    assert [c.display_name for c in (await repo.categories.list()).items] == ["Heron"]


async def test_ids_for_names_resolves_names_and_synonyms_as_given(repo) -> None:
    person = await repo.categories.create(NewCategory("person", synonyms=["human"]))
    found = await repo.categories.ids_for_names(["Human", "person", "zebra"])
    assert found == {"Human": person.id, "person": person.id}
