"""Where the real parts are, and what the session's mesh fixture hands to tests.

The processes themselves are started by agentic_labeling.local_mesh, on the one launcher that
`alabel up` uses too (agentic_labeling.local.launcher).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from agentic_labeling.local_mesh import ManagedProcess

REPO_ROOT = Path(__file__).resolve().parents[1]
GRPCURL = Path(sys.executable).parent / "grpcurl"


@dataclass
class Mesh:
    """Registry and orchestrator servers; Triton's address has nothing listening."""

    registry: ManagedProcess
    orchestrator: ManagedProcess
    triton_url: str
