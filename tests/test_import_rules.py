"""Who may import whom: clients, the CLI and the registry never import the servers.

The servers sit on top: they import the registry, the clients and the neutral modules
(`errors`, `rpc_status`, `channel_options`), never the other way round, so a client or a
command never drags a server (and its dependencies) in. Read from the source, by AST.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = "agentic_labeling"
# Folder (as checked out) -> the package it is imported as (through the symlinks in src/).
GUARDED = {
    REPO / "clients": f"{PACKAGE}.clients",
    REPO / "src" / PACKAGE / "cli": f"{PACKAGE}.cli",
    REPO / "registry": f"{PACKAGE}.registry",
    REPO / "src" / PACKAGE / "review": f"{PACKAGE}.review",
    REPO / "src" / PACKAGE / "tracking": f"{PACKAGE}.tracking",
}
FORBIDDEN = f"{PACKAGE}.servers"


def _is_forbidden(module: str) -> bool:
    return module in (FORBIDDEN, "servers") or module.startswith((f"{FORBIDDEN}.", "servers."))


def _absolute(node: ast.ImportFrom, package: str) -> str:
    """The module a `from ... import` names, relative imports resolved against `package`."""
    if node.level == 0:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def servers_imports(source: str, package: str) -> list[str]:
    """Every import in `source` (a module of `package`) that reaches the servers package."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names if _is_forbidden(alias.name)]
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, package)
            names = [f"{module}.{alias.name}" for alias in node.names]
            found += [module] if _is_forbidden(module) else [n for n in names if _is_forbidden(n)]
    return found


def _modules() -> list[tuple[Path, str]]:
    return [
        (path, ".".join([package, *path.relative_to(folder).with_suffix("").parts[:-1]]))
        for folder, package in GUARDED.items()
        for path in sorted(folder.rglob("*.py"))
    ]


@pytest.mark.parametrize(
    "source",
    [
        "import agentic_labeling.servers.error_status",
        "from agentic_labeling.servers.error_status import describe_rpc_error",
        "from agentic_labeling import servers",
        "from agentic_labeling.servers import metrics",
        "import servers.bootstrap",
        "from ..servers import bootstrap",
        "def late():\n    from agentic_labeling.servers.metrics import LabelingMetrics",
    ],
)
def test_the_rule_catches_every_spelling_of_a_servers_import(source: str) -> None:
    assert servers_imports(source, f"{PACKAGE}.clients")


def test_the_rule_lets_neutral_imports_pass() -> None:
    source = (
        "import agentic_labeling.rpc_status\n"
        "from agentic_labeling import errors\n"
        "from agentic_labeling.serving import x\n"
        "from .registry_client import RegistryClient\n"
    )
    assert servers_imports(source, f"{PACKAGE}.clients") == []


def test_the_guarded_folders_hold_modules() -> None:
    for folder in GUARDED:
        assert any(folder.rglob("*.py")), folder


def test_no_client_cli_or_registry_module_imports_the_servers() -> None:
    offenders = {
        str(path.relative_to(REPO)): found
        for path, package in _modules()
        if (found := servers_imports(path.read_text(encoding="utf-8"), package))
    }
    assert offenders == {}
