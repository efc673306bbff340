"""`alabel categories ...` and `alabel validate --create-category` against a real registry
process (embedded Postgres and Qdrant) on loopback. Each test uses category names of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import uuid

import grpc
import pytest
from click.testing import CliRunner, Result
from real_parts import Mesh

from agentic_labeling.cli import cli
from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


def alabel(mesh: Mesh, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--registry-url", mesh.registry.address, *args])


def _category(mesh: Mesh, name: str) -> registry_pb2.Category | None:
    with grpc.insecure_channel(mesh.registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        page = stub.ListCategories(
            registry_pb2.ListCategoriesRequest(filter=f'display_name = "{name}"'), timeout=30
        )
    return page.categories[0] if page.categories else None


def _object(mesh: Mesh, category: str) -> str:
    """One object of `category` (created with it) in a source of its own."""
    with grpc.insecure_channel(mesh.registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        source = stub.CreateSource(
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(
                    kind=common_pb2.SOURCE_KIND_IMAGE,
                    width=64,
                    height=48,
                    display_name=f"{category}.png",
                    content_sha256=hashlib.sha256(category.encode()).hexdigest(),
                ),
                return_existing=True,
            ),
            timeout=30,
        )
        reply = stub.BatchCreateObjects(
            registry_pb2.BatchCreateObjectsRequest(
                request_id=str(uuid.uuid4()),
                create_missing_categories=True,
                requests=[
                    registry_pb2.CreateObjectRequest(
                        object=registry_pb2.LabeledObject(
                            source=source.name,
                            category_name=category,
                            bbox=common_pb2.BoundingBox(x=1, y=1, width=10, height=10),
                            confidence=0.9,
                            detection_model="test",
                        )
                    )
                ],
            ),
            timeout=30,
        )
    return str(reply.objects[0].name)


def _get(mesh: Mesh, name: str) -> registry_pb2.LabeledObject:
    with grpc.insecure_channel(mesh.registry.address) as channel:
        stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
        found: registry_pb2.LabeledObject = stub.GetObject(
            registry_pb2.GetObjectRequest(name=name), timeout=30
        )
    return found


def test_categories_create_then_list_shows_it_with_its_synonyms(mesh: Mesh) -> None:
    created = alabel(mesh, "categories", "create", "lorry", "--synonym", "truck lorry", "--json")
    assert created.exit_code == 0, created.output
    assert json.loads(created.stdout)["display_name"] == "lorry"
    listed = alabel(mesh, "categories", "list", "--json")
    assert listed.exit_code == 0, listed.output
    found = {c["display_name"]: c for c in json.loads(listed.stdout)["categories"]}
    assert found["lorry"]["synonyms"] == ["truck lorry"]
    table = alabel(mesh, "categories", "list")
    assert table.stdout.splitlines()[0].split() == ["CATEGORY", "OBJECTS", "SYNONYMS", "ID"]
    assert any(line.startswith("lorry ") for line in table.stdout.splitlines())


def test_categories_create_of_an_existing_name_is_refused(mesh: Mesh) -> None:
    assert alabel(mesh, "categories", "create", "kayak").exit_code == 0
    again = alabel(mesh, "categories", "create", "Kayak")
    assert again.exit_code == 1
    assert "ALREADY_EXISTS" in again.stderr


def test_categories_rename_keeps_the_objects_of_the_category(mesh: Mesh) -> None:
    obj = _object(mesh, "canoe")
    result = alabel(mesh, "categories", "rename", "canoe", "dugout canoe")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("renamed to dugout canoe")
    assert _category(mesh, "canoe") is None
    assert _get(mesh, obj).category_name == "dugout canoe"


def test_categories_add_synonym_makes_the_synonym_resolve_to_the_category(mesh: Mesh) -> None:
    assert alabel(mesh, "categories", "create", "bicycle").exit_code == 0
    result = alabel(mesh, "categories", "add-synonym", "bicycle", "bike", "push bike")
    assert result.exit_code == 0, result.output
    found = _category(mesh, "bike")
    assert found is not None
    assert (found.display_name, list(found.synonyms)) == ("bicycle", ["bike", "push bike"])


def test_categories_delete_removes_an_empty_category(mesh: Mesh) -> None:
    assert alabel(mesh, "categories", "create", "sled").exit_code == 0
    result = alabel(mesh, "categories", "delete", "sled", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout == "deleted category sled\n"
    assert _category(mesh, "sled") is None


def test_categories_delete_without_yes_off_a_terminal_is_a_usage_error(mesh: Mesh) -> None:
    assert alabel(mesh, "categories", "create", "raft").exit_code == 0
    result = alabel(mesh, "categories", "delete", "raft")
    assert result.exit_code == 2
    assert "needs --yes" in result.stderr
    assert _category(mesh, "raft") is not None


def test_a_category_command_on_an_unknown_name_says_so(mesh: Mesh) -> None:
    result = alabel(mesh, "categories", "rename", "hovercraft", "boat")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: no category named 'hovercraft'"


def test_validate_to_a_new_category_says_how_to_create_it(mesh: Mesh) -> None:
    obj = _object(mesh, "ferry")
    result = alabel(mesh, "validate", obj, "--by", "ann", "--category", "pedalo")
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "error: category 'pedalo' does not exist; pass --create-category to create it, or run"
        " `alabel categories create pedalo` first"
    )
    assert not _get(mesh, obj).is_validated
    assert _category(mesh, "pedalo") is None


def test_validate_with_create_category_creates_it_then_validates(mesh: Mesh) -> None:
    obj = _object(mesh, "yacht")
    result = alabel(
        mesh, "validate", obj, "--by", "ann", "--category", "sailboat", "--create-category"
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == "created category sailboat"
    stored = _get(mesh, obj)
    assert (stored.category_name, stored.is_validated) == ("sailboat", True)


def test_every_categories_command_has_help_with_examples() -> None:
    for command in ("list", "create", "rename", "add-synonym", "delete"):
        result = CliRunner().invoke(cli, ["categories", command, "--help"])
        assert result.exit_code == 0, result.output
        assert f"alabel categories {command}" in result.stdout.split("Examples:")[1]
