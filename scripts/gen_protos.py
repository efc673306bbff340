"""Generate the Python package `agentic_labeling.v1` from protos/ (the one way to do it).

    python scripts/gen_protos.py          # regenerate src/agentic_labeling/v1/ in place
    python scripts/gen_protos.py --check  # regenerate elsewhere, fail on any difference

It also refreshes third_party/googleapis/ from the installed googleapis-common-protos, so that
buf and protoc compile against exactly the .proto files whose Python modules run at runtime.
buf's remote plugins are not reachable here, so protoc comes from grpcio-tools.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.resources
import shutil
import sys
import tempfile
from pathlib import Path

from google.rpc import status_pb2
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_PROTOS = PROTOS / "agentic_labeling" / "v1"
OUTPUT_ROOT = ROOT / "src"
GENERATED = OUTPUT_ROOT / "agentic_labeling" / "v1"
THIRD_PARTY = ROOT / "third_party" / "googleapis"

# The googleapis files our protos import, with what they import in turn, as
# {name protoc and the runtime descriptor pool use: file in googleapis-common-protos}.
# The package ships google/longrunning/operations.proto as operations_proto.proto, but its
# Python module registers it under the googleapis name, so the vendored copy takes that name.
GOOGLEAPIS_FILES = {
    "google/api/annotations.proto": "google/api/annotations.proto",
    "google/api/client.proto": "google/api/client.proto",
    "google/api/field_behavior.proto": "google/api/field_behavior.proto",
    "google/api/http.proto": "google/api/http.proto",
    "google/api/launch_stage.proto": "google/api/launch_stage.proto",
    "google/longrunning/operations.proto": "google/longrunning/operations_proto.proto",
    "google/rpc/status.proto": "google/rpc/status.proto",
}

INIT_TEXT = '''"""Generated from protos/agentic_labeling/v1 by `make protos`. Do not edit."""
'''


def refresh_third_party(target: Path) -> None:
    # `google` is a namespace package: locate site-packages through a module file instead.
    source_root = Path(status_pb2.__file__).resolve().parents[2]
    for name, installed in GOOGLEAPIS_FILES.items():
        destination = target / name
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source_root / installed, destination)


def generate(output_root: Path, googleapis: Path) -> None:
    output = output_root / "agentic_labeling" / "v1"
    output.mkdir(parents=True, exist_ok=True)
    well_known = Path(str(importlib.resources.files("grpc_tools") / "_proto"))
    sources = sorted(str(p.relative_to(PROTOS)) for p in PACKAGE_PROTOS.glob("*.proto"))
    args = [
        "grpc_tools.protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
        f"-I{well_known}",
        f"--python_out={output_root}",
        f"--pyi_out={output_root}",
        f"--grpc_python_out={output_root}",
        *sources,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed; see the messages above")
    (output / "__init__.py").write_text(INIT_TEXT)


def _tree_differences(expected: Path, actual: Path) -> list[str]:
    comparison = filecmp.dircmp(expected, actual, ignore=["__pycache__"])
    problems = [f"missing: {name}" for name in comparison.left_only]
    problems += [f"not generated: {name}" for name in comparison.right_only]
    for name in comparison.common_files:
        if (expected / name).read_bytes() != (actual / name).read_bytes():
            problems.append(f"differs: {name}")
    return problems


def check() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        fresh_googleapis = Path(tmp) / "googleapis"
        refresh_third_party(fresh_googleapis)
        generate(Path(tmp) / "src", fresh_googleapis)
        problems = [
            f"src/agentic_labeling/v1/: {p}"
            for p in _tree_differences(Path(tmp) / "src" / "agentic_labeling" / "v1", GENERATED)
        ]
        for relative in GOOGLEAPIS_FILES:
            checked_in = THIRD_PARTY / relative
            if not checked_in.exists() or not filecmp.cmp(
                fresh_googleapis / relative, checked_in, shallow=False
            ):
                problems.append(f"third_party/googleapis/{relative}: differs or missing")
    if problems:
        print("Generated code is out of date; run `make protos` and commit:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    print("generated code matches protos/")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if regeneration would differ")
    if parser.parse_args().check:
        return check()
    refresh_third_party(THIRD_PARTY)
    for stale in GENERATED.glob("*_pb2*.py*"):
        stale.unlink()
    generate(OUTPUT_ROOT, THIRD_PARTY)
    print(f"wrote {GENERATED.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
