"""The synthetic-video module shared with bench/ (bench/tracking_scenes.py)."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def scenes() -> ModuleType:
    # bench/ sits at the repository root, outside the installed package.
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(ROOT))
        return importlib.import_module("bench.tracking_scenes")
