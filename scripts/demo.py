"""`make demo`: the main job, run with the commands a user types, on real photographs.

1. builds tiny random-weight Florence-2, SAM2 and DINOv2 (`alabel models make-tiny`);
2. starts the mesh on loopback (`alabel up`): tritonserver serving model_repository/, the
   registry (embedded Postgres + the Qdrant engine + mask files) and the orchestrator;
3. labels real photographs shipped inside scikit-image (`alabel label`), then runs the same
   command again to show that a re-run registers nothing twice;
4. shows stats, a filtered listing and a similarity search (`alabel stats|objects|search`);
5. builds a dataset of those objects, exports it as YOLO segmentation and as COCO
   (`alabel datasets create|build|export`);
6. prints the review page's URL (`alabel up` started it) and saves screenshots of its queue
   and image view to build/demo/ (with Chromium installed), and stops the mesh (`alabel down`).
   `python scripts/demo.py --update-docs` writes them to docs/ instead, for the README.

The weights are random, so the labels are meaningless; the demo says so, and shows the one
flag (`--models-dir` with real checkpoints) that switches to real weights.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image
from rich.console import Console
from skimage import data as sample_images

console = Console()
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins", "hubble_deep_field")
CLASSES = "person,cat,cup,rocket,coin"
ROOT = Path(__file__).resolve().parents[1]
# Screenshots go to the ignored build/demo/, so a demo leaves the checkout clean; the README's
# copies in docs/ change only when asked (`--update-docs`).
SCREENSHOTS = ROOT / "build" / "demo"
DOCS = ROOT / "docs"


ENVIRONMENT = dict(os.environ)


def export(name: str, value: str) -> None:
    """Set an ALABEL_* setting for every later command, as a user's shell would."""
    console.print(f"[bold]$ export {name}={value}[/bold]")
    ENVIRONMENT[name] = value


def alabel(*args: str, check: bool = True, quiet: bool = False) -> subprocess.CompletedProcess[str]:
    """Run `alabel ARGS` as a user would, echoing the command and its output (the command
    only, when `quiet`)."""
    console.print(f"[bold]$ alabel {' '.join(shlex.quote(a) for a in args)}[/bold]")
    result = subprocess.run(
        [sys.executable, "-m", "agentic_labeling", *args],
        capture_output=True,
        text=True,
        check=False,
        env=ENVIRONMENT,
    )
    output = (result.stdout + result.stderr).rstrip()
    if output and not quiet:
        console.print(output, markup=False, highlight=False)
    if check and result.returncode != 0:
        raise SystemExit(f"alabel {args[0]} failed with status {result.returncode}")
    return result


def write_photos(directory: Path) -> None:
    directory.mkdir(parents=True)
    for name in PHOTOS:
        pixels = np.asarray(getattr(sample_images, name)())
        if pixels.ndim == 2:  # grayscale samples become RGB photos
            pixels = np.stack([pixels] * 3, axis=-1)
        Image.fromarray(pixels.astype(np.uint8)).save(directory / f"{name}.png")


def review(state: dict[str, object], screenshots: Path) -> None:
    """Where to review the labels; screenshots of the page for the README."""
    import review_screenshots  # scripts/, beside this file

    console.rule("Review the labels in the browser")
    page = next(c["urls"]["page"] for c in state["components"] if c["name"] == "review")  # type: ignore[attr-defined, index]
    console.print(f"review page: {page}  (a accept, r reject, c change class, s more like this)")
    why_not = review_screenshots.missing()
    if why_not is not None:
        console.print(f"no screenshots: {why_not}")
        return
    screenshots.mkdir(parents=True, exist_ok=True)
    queue, image = screenshots / "review-queue.png", screenshots / "review-image.png"
    review_screenshots.take(page, queue, image)
    console.print(f"screenshots: {queue}, {image}")


def main(argv: list[str]) -> int:
    if argv not in ([], ["--update-docs"]):
        console.print("usage: python scripts/demo.py [--update-docs]")
        return 2
    screenshots = DOCS if argv else SCREENSHOTS
    console.rule("AgenticLabeling demo")
    console.print(
        "The models here have TINY RANDOM WEIGHTS: the pipeline, serving, registry and search "
        "are real, the labels are meaningless. For real labels, put Florence-2, SAM2 and "
        "DINOv2 checkpoints (transformers format) under DIR/florence2, DIR/sam2, DIR/dinov2 and "
        "run `alabel --models-dir DIR up`."
    )
    with tempfile.TemporaryDirectory(prefix="alabel-demo-") as tmp:
        work = Path(tmp)
        photos = work / "photos"
        write_photos(photos)
        console.print(f"{len(PHOTOS)} photographs from scikit-image in {photos}")
        export("ALABEL_DATA_DIR", str(work / "data"))
        export("ALABEL_MODELS_DIR", str(work / "models"))
        ports = ("REGISTRY", "ORCHESTRATOR", "REVIEW", "REGISTRY_METRICS", "ORCHESTRATOR_METRICS")
        for port in ports:
            export(f"ALABEL_{port}_PORT", "0")  # any free port: never clash with a running mesh
        export("ALABEL_LOG_FORMAT", "text")
        alabel("models", "make-tiny", str(work / "models"))
        console.rule("Start the mesh")
        alabel(
            "up",
            "--device",
            "cpu",
            "--triton-grpc-port",
            "0",
            "--triton-http-port",
            "0",
            "--triton-metrics-port",
            "0",
        )
        # `alabel up` records where everything listens in <data-dir>/run/mesh.json.
        state = json.loads((work / "data" / "run" / "mesh.json").read_text())
        addresses = {c["name"]: c["address"] for c in state["components"]}
        export("ALABEL_REGISTRY_URL", addresses["registry"])
        export("ALABEL_ORCHESTRATOR_URL", addresses["orchestrator"])
        try:
            console.rule("Label the photographs, then run the same command again")
            # The tiny models' marker makes `alabel label` warn once and keep every box.
            label = ["label", str(photos), "--classes", CLASSES, "--max-objects", "3"]
            alabel(*label)
            alabel(*label)
            console.rule("What the registry holds")
            alabel("stats")
            alabel("objects", "list", "--filter", "confidence >= 0", "--limit", "3")
            listed = alabel("objects", "list", "--limit", "1", "--json")
            names = [o["name"] for o in json.loads(listed.stdout)["objects"]]
            if names:
                alabel("search", "--like", names[0], "--top-k", "3")
            alabel("search", "--like", str(photos / "chelsea.png"), "--top-k", "3")
            console.rule("A dataset, split by source, exported as YOLO-seg and COCO")
            # The classes the random models happened to find (a class never seen is refused).
            everything = alabel("objects", "list", "--limit", "1000", "--json", quiet=True)
            found = {o["category_name"] for o in json.loads(everything.stdout)["objects"]}
            classes = ",".join(c for c in CLASSES.split(",") if c in found)
            alabel("datasets", "create", "demo", "--classes", classes, "--split", "0.6,0.2,0.2")
            alabel("datasets", "build", "demo")
            alabel("datasets", "export", "demo", "--format", "yolo-segment", "--out", "demo-yolo")
            alabel("datasets", "export", "demo", "--format", "coco", "--out", "demo-coco")
            exports = work / "data" / "exports"
            console.print(f"[bold]$ cat {exports / 'demo-yolo' / 'data.yaml'}[/bold]")
            console.print((exports / "demo-yolo" / "data.yaml").read_text().rstrip(), markup=False)
            written = sorted(str(p.relative_to(exports)) for p in exports.rglob("*") if p.is_file())
            console.print(f"{len(written)} files written, e.g. {', '.join(written[:4])}")
            review(state, screenshots)
        finally:
            console.rule("Stop the mesh")
            alabel("down")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
