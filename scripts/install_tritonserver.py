"""Unpack the tritonserver binary and its Python backend from the nvidia-pytriton wheel.

    python scripts/install_tritonserver.py --version 0.7.0 --dest .triton

The wheel bundles a real Triton Inference Server build that runs Python-backend models on a
CPU-only machine. Installing the wheel itself would drag in its numpy and tritonclient pins,
so it is downloaded without dependencies and only `pytriton/tritonserver/` and the shared
libraries beside it (`nvidia_pytriton.libs/`, reached through the binaries' relative RPATH)
are unpacked, in the wheel's own layout.
The Python backend's stub must match the interpreter that runs the models, so the stub built
for this Python is copied into `backends/python/` (why: agentic_labeling/triton_server.py).
"""

from __future__ import annotations

import argparse
import shutil
import stat
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

SERVER = "pytriton/tritonserver"
PREFIXES = (f"{SERVER}/", "nvidia_pytriton.libs/")


def download_wheel(version: str, into: Path) -> Path:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-deps",
            "--only-binary=:all:",
            f"nvidia-pytriton=={version}",
            "--dest",
            str(into),
        ],
        check=True,
    )
    wheels = sorted(into.glob(f"nvidia_pytriton-{version}-*.whl"))
    if not wheels:
        raise SystemExit(f"pip did not download nvidia-pytriton {version}")
    return wheels[0]


def unpack(wheel: Path, dest: Path) -> Path:
    """Extract the server and its libraries under dest, keeping executable bits."""
    staging = Path(tempfile.mkdtemp(prefix="tritonserver-", dir=dest))
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if not info.filename.startswith(PREFIXES) or info.is_dir():
                continue
            target = staging / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as source, target.open("wb") as out:
                shutil.copyfileobj(source, out)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                target.chmod(mode)
    server = staging / SERVER
    python_version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = server / "python_backend_stubs" / python_version / "triton_python_backend_stub"
    if not stub.exists():
        raise SystemExit(f"the wheel has no Python backend stub for Python {python_version}")
    backend_stub = server / "backends" / "python" / "triton_python_backend_stub"
    shutil.copy2(stub, backend_stub)
    for executable in (server / "bin" / "tritonserver", backend_stub):
        executable.chmod(executable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    # Swap the whole tree in at the end: an interrupted run leaves no half install.
    for name in ("pytriton", "nvidia_pytriton.libs"):
        if (dest / name).exists():
            shutil.rmtree(dest / name)
        (staging / name).rename(dest / name)
    staging.rmdir()
    return dest / SERVER


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", required=True, help="nvidia-pytriton version, e.g. 0.7.0")
    parser.add_argument("--dest", type=Path, required=True, help="directory to install into")
    args = parser.parse_args()
    args.dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as downloads:
        wheel = download_wheel(args.version, Path(downloads))
        installed = unpack(wheel, args.dest.resolve())
    print(f"tritonserver installed in {installed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
