"""Test-only Python-backend model that cannot load: initialize() raises."""

from __future__ import annotations


class TritonPythonModel:
    def initialize(self, args: dict[str, str]) -> None:
        raise RuntimeError("weights for 'broken' not found under /nowhere")

    def execute(self, requests: list[object]) -> list[object]:
        raise AssertionError("never loaded")
