"""What a CPU benchmark ran on, as written into its JSON and above its table."""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["cpu_machine"]


def cpu_machine() -> dict[str, object]:
    """Core count, platform, Python version and processor of this machine."""
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "processor": platform.processor() or platform.machine(),
    }
