"""Every code block of README.md runs as printed, as a new user would type it.

The blocks run in README order in one scratch directory prepared like a new user's: the
checkout's `.venv` (symlinked) first on PATH, as `source .venv/bin/activate` gives; copies of
`buf.yaml`, `protos/` and `third_party/`; `./photos` with real photographs (scikit-image's
samples, as `make demo` uses), `photo.jpg` (over 96 KB, so a command line that carries it as
base64 would be too long) and `query.jpg`; and `./tiny-models` made by the README's own
`alabel models make-tiny ./tiny-models` command. HOME and XDG_DATA_HOME point to a fresh
directory, so the default data directory is a fresh one, as a new user's is. The servers use
the README's default ports: the module is skipped when one of them is taken.

- "Labelling images" is the walkthrough: its first block runs as one shell session and must
  pass end to end (it starts and stops its own mesh).
- The blocks of "Datasets and export" and "Calling the API" say "with the servers running":
  the test starts the mesh for them (`alabel --models-dir ./tiny-models up`) and stops it at
  the end.
- `make demo` and `make test` are the two commands never run here (see NOT_RERUN).
- What is skipped, and why, is decided by the README itself (see tests/readme_blocks.py):
  blocks without a language or marked `text`, `<!-- not run: REASON -->`, and
  `<!-- needs: CMD -->` where CMD is missing.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from readme_blocks import NOT_COMMANDS, Block, read_blocks

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
VENV = REPO / ".venv"

# `make demo` runs the whole mesh and `make test` runs this suite (recursion); both are run by
# people and CI directly, so here they are the two named exceptions.
NOT_RERUN = {
    "make demo": "`make demo` is run on its own (scripts/demo.py); not re-run inside the suite",
    "make test": "`make test` runs this suite: re-running it here would recurse",
}
RUNNABLE = frozenset({"bash", "sh", "shell", "console", "python"})
WALKTHROUGH = "Labelling images"
# The README says these run "with the servers above running": the test provides the mesh.
MESH_SECTIONS = frozenset(
    {
        "Datasets and export",
        "The training loop: train, evaluate, suggest, serve the student",
        "With grpcurl (reflection, no .proto files needed)",
        "With the generated Python stubs",
    }
)
MAKE_TINY = "alabel models make-tiny ./tiny-models"
# Registry, orchestrator, Triton HTTP/gRPC/metrics, registry and orchestrator metrics.
DEFAULT_PORTS = (50051, 50052, 8000, 8001, 8002, 8765, 9464, 9465)
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "coins")
ARGUMENT_LIMIT = 128 * 1024  # Linux's MAX_ARG_STRLEN: one argv string at most
# Hang guards only (never the behaviour under test): a stuck block fails instead of hanging.
WALKTHROUGH_HANG_S = 900
BLOCK_HANG_S = 600  # the training loop block trains, exports and restarts the mesh

pytestmark = pytest.mark.slow


def _blocks() -> list[Block]:
    return read_blocks(README)


def _block_id(block: Block) -> str:
    """`labelling-images-1`: the section and the block's number in it (stable across edits
    elsewhere in the README)."""
    same = [b for b in _blocks() if b.sections == block.sections]
    slug = re.sub(r"[^a-z0-9]+", "-", block.section.lower()).strip("-") or "top"
    return f"{slug}-{same.index(block) + 1}"


# --- the README's own rules ---------------------------------------------------------------------


def test_every_readme_block_is_runnable_or_skipped_by_a_stated_rule() -> None:
    unknown = [
        b.label
        for b in _blocks()
        if b.lang not in NOT_COMMANDS | RUNNABLE and "file" not in b.markers
    ]
    assert not unknown, f"blocks in a language this test cannot run: {unknown}"
    assert any(b.section == WALKTHROUGH and b.lang == "bash" for b in _blocks())


def test_a_mistyped_readme_marker_is_an_error(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text("# T\n\n<!-- not ran: typo -->\n```bash\ntrue\n```\n")
    with pytest.raises(ValueError, match="unknown marker 'not ran'"):
        read_blocks(readme)


def test_a_marker_applies_only_to_the_fence_right_after_it(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# T\n<!-- not run: docs -->\n\n```bash\na\n```\nprose\n```bash\nb\n```\n"
        "<!-- not run: x -->\nprose\n```bash\nc\n```\n"
    )
    assert [b.markers for b in read_blocks(readme)] == [{"not run": "docs"}, {}, {}]


# --- the scratch user ---------------------------------------------------------------------------


@dataclass
class User:
    """A new user's shell: where commands run and the environment they run with."""

    work: Path
    env: dict[str, str]
    logs: Path

    def run(self, script: str, name: str, hang_s: float) -> tuple[int, str]:
        """Run a bash script in the user's directory; (exit status, output)."""
        path = self.logs / f"{name}.sh"
        path.write_text(script)
        argv = ["bash", "--noprofile", "--norc", "-e", "-o", "pipefail", "-x", str(path)]
        return self._run(argv, hang_s)

    def python(self, source: str, name: str, hang_s: float) -> tuple[int, str]:
        path = self.logs / f"{name}.py"
        path.write_text(source)
        return self._run(["python", str(path)], hang_s)

    def alabel(self, *args: str, hang_s: float = BLOCK_HANG_S) -> tuple[int, str]:
        return self._run(["alabel", *args], hang_s)

    def _run(self, argv: list[str], hang_s: float) -> tuple[int, str]:
        process = subprocess.Popen(
            argv,
            cwd=self.work,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # its children go with it if it hangs
        )
        try:
            output, _ = process.communicate(timeout=hang_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            output, _ = process.communicate()
            return -1, f"{output}\n[hang guard: still running after {hang_s:.0f} s, killed]"
        return process.returncode, output


def _port_taken(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _write_photos(work: Path) -> None:
    from skimage import data as samples

    (work / "photos").mkdir()
    for name in PHOTOS:
        pixels = np.asarray(getattr(samples, name)())
        if pixels.ndim == 2:  # grayscale samples become RGB photos
            pixels = np.stack([pixels] * 3, axis=-1)
        Image.fromarray(pixels.astype(np.uint8)).save(work / "photos" / f"{name}.jpg", quality=90)
    # Large enough that its base64 does not fit in one command-line argument.
    astronaut = Image.fromarray(np.asarray(samples.astronaut())).resize((1024, 1024))
    astronaut.save(work / "photo.jpg", quality=95)
    assert (work / "photo.jpg").stat().st_size * 4 / 3 > ARGUMENT_LIMIT
    shutil.copy(work / "photos" / "chelsea.jpg", work / "query.jpg")


def _make_tiny_command() -> str | None:
    """The README's own `make-tiny` command, for a walkthrough that does not run it itself
    (None when the walkthrough does: then it makes them, as a new user would)."""
    blocks = _blocks()
    if any(b.section == WALKTHROUGH and MAKE_TINY in b.text for b in blocks):
        return None
    for block in blocks:
        for line in block.text.splitlines():
            if MAKE_TINY in line:
                return line.split("#", 1)[0].strip()
    raise AssertionError(f"README.md has no `{MAKE_TINY}` command; the walkthrough needs one")


def _clean_environment(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ALABEL_", "PYTEST_", "COV_", "XDG_")) and k != "VIRTUAL_ENV"
    }
    env.update(
        HOME=str(home),
        XDG_DATA_HOME=str(home / ".local" / "share"),
        VIRTUAL_ENV=str(VENV),
        PATH=f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    )
    return env


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    taken = [port for port in DEFAULT_PORTS if _port_taken(port)]
    if taken:
        pytest.skip(f"the README's default ports {taken} are in use on this machine")
    # Outside pytest's tmp: the embedded Postgres runs as another user when we are root, and
    # pytest resets its own tmp directories to 0700.
    root = Path(tempfile.mkdtemp(prefix="alabel-readme-"))
    work, home, logs = root / "work", root / "home", root / "logs"
    for directory in (work, home, logs):
        directory.mkdir()
    (work / ".venv").symlink_to(VENV)
    shutil.copy(REPO / "buf.yaml", work / "buf.yaml")
    for tree in ("protos", "third_party"):
        shutil.copytree(REPO / tree, work / tree)
    _write_photos(work)
    user = User(work, _clean_environment(home), logs)
    if (make_tiny := _make_tiny_command()) is not None:
        status, output = user.run(make_tiny + "\n", "make-tiny", BLOCK_HANG_S)
        assert status == 0, output
    try:
        yield user
    finally:
        user.alabel("down", hang_s=120)
        user.alabel("triton", "stop", hang_s=120)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def readme_mesh(user: User) -> Iterator[None]:
    """The mesh the "with the servers running" sections expect, on the default ports."""
    status, output = user.alabel("--models-dir", "./tiny-models", "up")
    assert status == 0, f"alabel --models-dir ./tiny-models up failed:\n{output[-4000:]}"
    yield
    user.alabel("down", hang_s=120)


# --- running the blocks -------------------------------------------------------------------------


def _without_the_exceptions(text: str) -> tuple[str, list[str]]:
    """The block without `make demo` / `make test` lines, and the reasons for what went."""
    kept, reasons = [], []
    for line in text.splitlines():
        command = line.split("#", 1)[0].strip()
        if command in NOT_RERUN:
            reasons.append(NOT_RERUN[command])
        else:
            kept.append(line)
    return "\n".join(kept) + "\n", reasons


def _commands(text: str) -> list[str]:
    lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
    return [line for line in lines if line]


def _one_terminal_per_line(user: User, block: Block, name: str) -> None:
    """Each line in its own terminal: a server keeps running (until SIGTERM at the end) once
    it says it is listening; any other command must finish with status 0."""
    running: list[tuple[str, subprocess.Popen[bytes], Path]] = []
    try:
        for number, command in enumerate(_commands(block.text)):
            log = user.logs / f"{name}-{number}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(
                    ["bash", "--noprofile", "--norc", "-c", command],
                    cwd=user.work,
                    env=user.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            # Tracked from the start, so the finally below stops it even if it never listens.
            running.append((command, process, log))
            guard = time.monotonic() + BLOCK_HANG_S  # a hang guard, not a speed check
            while process.poll() is None and b"listening" not in log.read_bytes():
                assert time.monotonic() < guard, f"`{command}` neither listened nor finished"
                time.sleep(0.2)
            if process.poll() is not None:
                running.pop()  # a command that finished: only its status counts
                assert process.returncode == 0, f"`{command}`:\n{log.read_text()[-4000:]}"
    finally:
        for command, process, log in reversed(running):
            process.send_signal(signal.SIGTERM)
            try:
                status = process.wait(timeout=120)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                status = process.wait()
            assert status == 0, f"`{command}` after SIGTERM:\n{log.read_text()[-4000:]}"


def _run_block(block: Block, user: User, request: pytest.FixtureRequest) -> None:
    name = f"block-{block.line}"
    if block.lang in NOT_COMMANDS:
        pytest.skip("not a command (a diagram, a formula or a layout)")
    if "not run" in block.markers:
        pytest.skip(f"documentation only: {block.markers['not run']}")
    if "file" in block.markers:
        target = user.work / block.markers["file"]
        if block.lang in ("yaml", "yml"):
            assert isinstance(yaml.safe_load(block.text), dict), f"{block.label} is not YAML"
        target.write_text(block.text)
        return
    missing = [c for c in block.markers.get("needs", "").split() if shutil.which(c) is None]
    if missing:
        pytest.skip(f"needs {', '.join(missing)} on PATH (not installed here)")
    text, reasons = _without_the_exceptions(block.text)
    if not _commands(text):
        pytest.skip("; ".join(reasons))
    if block.section in MESH_SECTIONS:
        request.getfixturevalue("readme_mesh")
    if "one terminal per line" in block.markers:
        _one_terminal_per_line(user, block, name)
        return
    if block.lang == "python":
        status, output = user.python(text, name, BLOCK_HANG_S)
    else:
        walkthrough = block.section == WALKTHROUGH
        try:
            status, output = user.run(
                text, name, WALKTHROUGH_HANG_S if walkthrough else BLOCK_HANG_S
            )
        finally:
            if walkthrough:
                user.alabel("down", hang_s=120)  # also when a step failed half-way
    assert status == 0, (
        f"{block.label} failed (exit {status}); the end of its output:\n" + (output[-6000:])
    )


@pytest.mark.timeout(WALKTHROUGH_HANG_S + 600)
@pytest.mark.parametrize("block", _blocks(), ids=_block_id)
def test_readme_block_runs_as_printed(
    block: Block, user: User, request: pytest.FixtureRequest
) -> None:
    _run_block(block, user, request)
