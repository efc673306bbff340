"""Who may import whom inside the registry, as registry/__init__.py maps it.

Each subpackage (values, query, metadata, vectors, files, datasets) and each top-level module
(coordinator, repository, database, operations) is a unit; a unit imports only the units below
it. A module that takes the facade as an argument may name `coordinator` for type hints,
under TYPE_CHECKING only. Read from the source, by AST.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REGISTRY = Path(__file__).resolve().parents[2] / "registry"
PACKAGE = "agentic_labeling.registry"
BELOW: dict[str, frozenset[str]] = {
    "values": frozenset(),
    "files": frozenset(),
    "database": frozenset(),
    "query": frozenset({"values", "database"}),
    "vectors": frozenset({"query", "database"}),
    "metadata": frozenset({"values", "query", "files", "database"}),
    "datasets": frozenset({"values", "query", "files", "metadata", "database"}),
    "operations": frozenset({"database"}),
    "repository": frozenset({"metadata", "datasets", "database"}),
}
ALL_UNITS = frozenset(BELOW) | {"coordinator"}
BELOW["coordinator"] = ALL_UNITS - {"coordinator"}
TYPE_HINT_ONLY = frozenset({"coordinator"})


def _unit(module: str) -> str:
    """The unit of an absolute module name inside the registry."""
    return module.removeprefix(f"{PACKAGE}.").split(".")[0]


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, type_only: bool = False) -> list[tuple[str, bool]]:
    """(registry unit imported, whether under TYPE_CHECKING) for every import in `tree`."""
    found: list[tuple[str, bool]] = []
    for child in ast.iter_child_nodes(tree):
        if isinstance(child, ast.Import):
            names = [alias.name for alias in child.names]
        elif isinstance(child, ast.ImportFrom) and child.level == 0 and child.module:
            names = (
                [f"{child.module}.{alias.name}" for alias in child.names]
                if child.module == PACKAGE
                else [child.module]
            )
        else:
            inner = isinstance(child, ast.If) and _is_type_checking(child)
            found += _imports(child, type_only or inner)
            continue
        found += [(_unit(n), type_only) for n in names if n.startswith(f"{PACKAGE}.")]
    return found


def layer_violations(source: str, unit: str) -> list[str]:
    """Imports of `source` (a module of `unit`) that reach a unit not below it."""
    return [
        f"{unit} imports {target}"
        for target, type_only in _imports(ast.parse(source))
        if target != unit
        and target not in BELOW[unit]
        and not (type_only and target in TYPE_HINT_ONLY)
    ]


def _modules() -> list[tuple[Path, str]]:
    return [
        (path, path.relative_to(REGISTRY).with_suffix("").parts[0])
        for path in sorted(REGISTRY.rglob("*.py"))
        if path != REGISTRY / "__init__.py"
    ]


def test_every_registry_module_belongs_to_a_mapped_unit() -> None:
    assert {unit for _, unit in _modules()} == ALL_UNITS


def test_registry_units_import_only_the_units_below_them() -> None:
    offenders = {
        str(path.relative_to(REGISTRY)): found
        for path, unit in _modules()
        if (found := layer_violations(path.read_text(encoding="utf-8"), unit))
    }
    assert offenders == {}


@pytest.mark.parametrize(
    ("source", "unit"),
    [
        ("from agentic_labeling.registry.metadata.objects import ObjectStore", "query"),
        ("from agentic_labeling.registry.datasets import label_sets", "metadata"),
        ("import agentic_labeling.registry.vectors.vector_store", "files"),
        ("from agentic_labeling.registry import repository", "datasets"),
        ("from agentic_labeling.registry.coordinator import Registry", "metadata"),
        ("def late():\n    from agentic_labeling.registry.metadata import tracks", "values"),
    ],
)
def test_the_rule_refuses_an_import_from_above(source: str, unit: str) -> None:
    assert layer_violations(source, unit)


def test_the_rule_lets_the_facade_be_named_for_type_hints_only() -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from agentic_labeling.registry.values.records import Source\n"
        "if TYPE_CHECKING:\n"
        "    from agentic_labeling.registry.coordinator import Registry\n"
    )
    assert layer_violations(source, "metadata") == []
