"""The registry has one front door: code under servers/ reaches the registry through
`Registry` (registry/coordinator.py) and plain value modules only.

An AST walk of every servers/*.py: imports of `agentic_labeling.registry` (or the bare
top-level `registry` the symlinks make importable) must name the facade module or the value
package below (or one of its modules); and no server module reaches past the facade
(`.repository`, `.database`) or applies the vector outbox itself (the facade's writes do that).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVERS = Path(__file__).resolve().parents[1] / "servers"
REGISTRY = "agentic_labeling.registry"

FACADE = f"{REGISTRY}.coordinator"
# Plain values and pure checks: no I/O, no store. Anything else goes through the facade.
VALUES = f"{REGISTRY}.values"
# What only the facade may touch: the stores behind it and the outbox it applies.
FORBIDDEN_ATTRIBUTES = frozenset({"repository", "database", "apply_outbox"})


def _absolute(name: str) -> str:
    """`registry.x` (the top-level symlink) is the same package as agentic_labeling.registry."""
    return (
        f"agentic_labeling.{name}" if name == "registry" or name.startswith("registry.") else name
    )


def registry_imports(source: str, package: str = "agentic_labeling.servers") -> Iterator[str]:
    """Every registry module `source` imports (by any spelling), as an absolute name."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [_absolute(alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = _absolute(node.module or "")
            # From a package (`from agentic_labeling.registry import coordinator`) each name is
            # a module; from a module, the names are its values.
            if module in ("agentic_labeling", REGISTRY):
                names = [f"{module}.{alias.name}" for alias in node.names]
            else:
                names = [module]
        else:
            continue
        for name in names:
            if name == REGISTRY or name.startswith(f"{REGISTRY}."):
                yield name


def _allowed(name: str) -> bool:
    return name in (FACADE, VALUES) or name.startswith(f"{VALUES}.")


def violations(source: str) -> list[str]:
    """Registry modules imported past the facade, and attributes only the facade may use."""
    found = []
    for name in registry_imports(source):
        if not _allowed(name):
            found.append(f"imports {name}")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            found.append(f"line {node.lineno} uses .{node.attr}")
    return found


def _server_modules() -> list[Path]:
    return sorted(SERVERS.glob("*.py"))


def test_the_walk_covers_the_registry_servicers() -> None:
    names = {path.name for path in _server_modules()}
    assert {"registry_service.py", "dataset_service.py", "registry_server.py"} <= names


@pytest.mark.parametrize("path", _server_modules(), ids=lambda path: path.name)
def test_server_modules_reach_the_registry_only_through_its_facade(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "from agentic_labeling.registry.repository import Repository",
        "from agentic_labeling.registry.metadata import objects",
        "from agentic_labeling import registry",
        "import agentic_labeling.registry.database",
        "from registry.files.image_store import ImageStore",
        "import registry.files.masks",
        "from ..registry.metadata import outbox",
        "from agentic_labeling.registry.values_extra import x",
    ],
)
def test_the_rule_refuses_every_spelling_of_a_store_import(source: str) -> None:
    assert violations(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "self._registry.repository.objects.get(object_id)",
        "registry.database",
        "await self._registry.apply_outbox()",
    ],
)
def test_the_rule_refuses_reaching_past_the_facade(source: str) -> None:
    assert violations(source) != []


@pytest.mark.parametrize(
    "source",
    [
        "from agentic_labeling.registry.coordinator import Registry",
        "from agentic_labeling.registry.values.records import Page, Source",
        "from agentic_labeling.registry.values.resource_names import format_name",
        "from agentic_labeling.registry.values.dataset_records import DatasetRecord",
        "from agentic_labeling.registry.values import records",
        "from agentic_labeling.registry.values.input_checks import check_text",
    ],
)
def test_the_rule_allows_the_facade_and_value_modules(source: str) -> None:
    assert violations(source) == []
