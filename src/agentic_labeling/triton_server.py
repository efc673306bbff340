"""Start, watch and stop the real Triton Inference Server that serves the model repository.

`start_triton(TritonLaunch(...))` runs `tritonserver` and returns a `TritonHandle` once the server
is live and every model of the repository is READY; `alabel triton start|stop|status` is built on
it, with a state file (`TritonStateFile`) for a server that outlives the command.

Traps handled, and why (each seen on these machines):

- Where the binary is: `make setup` unpacks the tritonserver of the nvidia-pytriton wheel under
  the repository's `.triton/`; the NGC image has `tritonserver` on PATH or in /opt/tritonserver.
  `find_tritonserver` looks there, in that order. Backends sit beside `bin/` in both layouts.
- Python backend stub: it embeds one Python version. The stub in `backends/python/` must be the
  one built for the Python that runs the models (the wheel ships one per version under
  `python_backend_stubs/`); a stub for another version is refused before starting.
- `LD_LIBRARY_PATH` gets the LIBDIR of this Python (where its libpython lives): otherwise the
  stub loads another libpython and dies on its first C-extension import (`undefined symbol:
  _PyModule_Add` from `_ssl`).
- `PATH` starts with this interpreter's `bin/` (the venv): the stub's embedded interpreter finds
  its environment through `python3` on PATH. It ignores PYTHONPATH; without the PATH entry the
  models would import the base interpreter's packages (a numpy 2 outside the venv).
- numpy < 2 in that environment: with numpy 2 a BYTES (TYPE_STRING) tensor kills the stub.
  pyproject pins it; the launcher refuses to start when the installed numpy is 2 or later.
- Shared memory between Triton and each stub: `--backend-config=python,shm-default-byte-size`
  (allocated per stub at start) and `shm-growth-byte-size` (the step when a batch of images does
  not fit). The default 1 MiB steps are small for images; in Docker give /dev/shm room for
  (models x instances x the default size) plus the largest batch.
- `python,stub-timeout-seconds`: how long the backend waits for a stub to answer its IPC
  handshakes. Measured: it does not bound `initialize()` or the import of model.py (6 s of each
  passed with a 3 s timeout), so slow weight loading needs no larger value; a wedged stub is
  reported after this time instead of hanging.
- `--disable-auto-complete-config` (unless `auto_complete_config=True`): otherwise the Python
  backend starts one extra stub per model only to run `auto_complete_config`, importing model.py
  twice. Measured: a model whose import takes 6 s was READY after 13.5 s with auto-complete and
  6.2 s without; the three tiny models of model_repository/ after 13.0 s and 10.9 s (they load
  side by side). Model configs must therefore be complete (inputs, outputs, max_batch_size).
- `--model-control-mode=none` (or `explicit` with `--load-model=*`): every model loads at start.
  With `--exit-on-error=true` a model that fails to load stops the server instead of leaving a
  partial repository served, and `--strict-readiness=true` makes `/v2/health/ready` mean "every
  model is ready". Readiness is still checked model by model (`/v2/repository/index`).
- Ports: Triton needs concrete ports, so a port of 0 is replaced by a free one before starting.
  gRPC, HTTP and metrics bind to `host`, loopback by default. Metrics (`--allow-metrics`) get
  their own port so the orchestrator can expose Triton's Prometheus endpoint.
- Environment of the models: `ALABEL_*` variables of the caller are dropped (settings travel as
  flags: one settings object for every process); `ALABEL_MODELS_DIR` is set from the launch when
  given, `ALABEL_MAX_IMAGE_PIXELS` from the launch's `max_image_pixels` (the one setting the
  orchestrator and the registry apply too), and `ALABEL_TORCH_THREADS` plus `OMP_NUM_THREADS`
  cap each instance's threads (default: the CPUs divided by the number of models, at least 1)
  so several instances do not oversubscribe 2 cores.
- Logs: tritonserver's stdout and stderr go to one file, so the stubs' own output and
  tracebacks land beside Triton's log. The file is appended to, after a banner line naming the
  start, never overwritten (a second start must not wipe the log of a server still running).
  A failed start raises with the models' load errors (Triton writes them with escaped
  newlines; they are unescaped) and the last lines this start wrote.
- Students (issue 18): ExportRun writes trained YOLO models into the registry's student
  repository (`Settings.student_repository`, DATA_DIR/triton-models), never into the project's
  model_repository/. `TritonLaunch.student_repository` names it; when it holds at least one
  model (`*/config.pbtxt`) it is passed as a second `--model-repository` (tritonserver takes
  several) and its models count for readiness like the others. A model name in both
  repositories is refused before starting (Triton would not know which to load). A student
  exported while Triton runs is loaded at the next start (model control mode none).
- Before anything starts: the weights (`check_weights`: with a models dir, each model's
  directory and config.json; without one, the hub reachable or the weights cached, else one
  line instead of transformers' retries) and the ports. A port that is already taken is refused
  up front: tritonserver would die on it, while the server holding it (another Triton) would
  answer the readiness checks in its place. Readiness counts only while our process lives.
- Loopback HTTP polling bypasses any `http_proxy` of the environment, and status queries to a
  loopback gRPC address disable gRPC's proxy support, for the same reason.
- Stopping: SIGTERM lets Triton finish in-flight requests for up to `--exit-timeout-secs`
  (it polls once a second, so a stop takes 1 to 3 s); SIGKILL after the caller's grace. A
  server started in the background is not our child once the CLI exits, and this machine's
  init does not reap: a zombie counts as stopped.
- Background mode: the server gets its own session (it outlives the CLI and ignores the
  terminal's Ctrl-C); its pid and ports go to a JSON state file, written under a lock so two
  starts cannot race. A state file whose pid is gone (or is another process now: it started
  at another time, see `agentic_labeling.local.processes`) is stale.

Instance kind (checked by running tritonserver 2.51 here, no GPU): `instance_group [{ kind:
KIND_AUTO }]`, an instance group without `kind`, and no `instance_group` at all all give
KIND_CPU instances, while `KIND_GPU` fails to load ("no GPUs are available"). Triton documents
KIND_AUTO as GPU when the GPUs are available and CPU otherwise, so one config with
`kind: KIND_AUTO` serves both (the GPU half is documented, not run here: no GPU in this task).
model.py must follow `args["model_instance_kind"]` ("CPU" or "GPU") and
`args["model_instance_device_id"]`. `device="cpu"` hides GPUs from Triton
(`CUDA_VISIBLE_DEVICES=`), `device="gpu"` requires one and fails when a model lands on CPU.
"""

from __future__ import annotations

import dataclasses
import filecmp
import importlib.metadata
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from agentic_labeling.channel_options import channel_options
from agentic_labeling.errors import FailedPrecondition, InvalidArgument, Unavailable
from agentic_labeling.local.addresses import client_address, unused_port
from agentic_labeling.local.processes import (
    process_is_running,
    process_start_ticks,
    stop_child,
    stop_process,
)
from agentic_labeling.models.loading import check_hub_weights, check_models_dir
from agentic_labeling.settings import ENV_PREFIX
from agentic_labeling.state_file import StateFile

__all__ = [
    "ModelStatus",
    "TritonHandle",
    "TritonLaunch",
    "TritonStateFile",
    "TritonStatus",
    "check_weights",
    "default_model_repository",
    "default_torch_threads",
    "find_tritonserver",
    "query_status",
    "repository_models",
    "start_triton",
    "triton_command",
    "triton_environment",
]

MiB = 1024 * 1024
# The repository root when running from a source checkout (src/agentic_labeling/ -> ../..).
_SOURCE_ROOT = Path(__file__).resolve().parents[2]
_BUNDLED_BINARY = _SOURCE_ROOT / ".triton" / "pytriton" / "tritonserver" / "bin" / "tritonserver"
_NGC_BINARY = Path("/opt/tritonserver/bin/tritonserver")
_STUB = "triton_python_backend_stub"
_POLL_S = 0.1
_LOG_TAIL_LINES = 40
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Device = Literal["auto", "cpu", "gpu"]


# --- finding the server ----------------------------------------------------------------------


def find_tritonserver(explicit: Path | None = None) -> Path:
    """The tritonserver binary: `explicit`, else the checkout's `.triton/`, PATH, /opt/tritonserver.

    Raises FailedPrecondition, naming what to do, when none is installed.
    """
    if explicit is not None:
        if not explicit.is_file():
            raise FailedPrecondition(f"tritonserver not found at {explicit}", reason="NO_TRITON")
        return explicit
    on_path = shutil.which("tritonserver")
    for candidate in (_BUNDLED_BINARY, Path(on_path) if on_path else None, _NGC_BINARY):
        if candidate is not None and candidate.is_file():
            return candidate
    raise FailedPrecondition(
        "tritonserver is not installed: run `make setup` in the repository (it unpacks the"
        f" server from the nvidia-pytriton wheel into {_BUNDLED_BINARY.parents[2]}), or use the"
        " NGC tritonserver image, or pass --triton-url to use a running server",
        reason="NO_TRITON",
    )


def default_model_repository() -> Path:
    """The checkout's `model_repository/` (what `alabel triton start` serves by default)."""
    repository = _SOURCE_ROOT / "model_repository"
    if not repository.is_dir():
        raise FailedPrecondition(
            f"no model repository at {repository}; pass --model-repository",
            reason="NO_MODEL_REPOSITORY",
        )
    return repository


def repository_models(model_repository: Path) -> list[str]:
    """Names of the models in a repository: directories holding a config.pbtxt."""
    return sorted(p.parent.name for p in model_repository.glob("*/config.pbtxt"))


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def default_torch_threads(model_count: int) -> int:
    """Threads per model instance so that one instance of each model fills the CPUs once."""
    return max(1, _usable_cpus() // max(1, model_count))


# --- what to run -----------------------------------------------------------------------------


@dataclass(frozen=True)
class TritonLaunch:
    """Everything `start_triton` needs to know; ports of 0 are replaced by free ports."""

    model_repository: Path
    host: str = "127.0.0.1"
    grpc_port: int = 8001
    http_port: int = 8000
    metrics_port: int = 8002
    # Weights directory for the models (ALABEL_MODELS_DIR); None lets them use hub ids.
    models_dir: Path | None = None
    # Trained students (Settings.student_repository), served too when it holds a model.
    student_repository: Path | None = None
    # tritonserver's stdout and stderr (with the stubs' output); None: a new temporary file.
    log_file: Path | None = None
    # Threads per model instance (ALABEL_TORCH_THREADS, OMP_NUM_THREADS); None: see
    # default_torch_threads.
    torch_threads: int | None = None
    # Settings.max_image_pixels, passed to the models as ALABEL_MAX_IMAGE_PIXELS so that Triton
    # refuses what the orchestrator refuses; None: the setting's default.
    max_image_pixels: int | None = None
    device: Device = "auto"
    shm_default_bytes: int = 16 * MiB
    shm_growth_bytes: int = 16 * MiB
    stub_timeout_s: int = 60
    model_control_mode: Literal["none", "explicit"] = "none"
    strict_readiness: bool = True
    auto_complete_config: bool = False
    ready_timeout_s: float = 300.0
    # Seconds Triton itself waits for in-flight inferences after SIGTERM.
    exit_timeout_s: int = 30
    # Own session: the server outlives the starting process and its terminal's signals.
    detached: bool = False
    binary: Path | None = None
    extra_args: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for name in ("grpc_port", "http_port", "metrics_port"):
            port = getattr(self, name)
            if not 0 <= port <= 65535:
                raise InvalidArgument(f"{name} must be between 0 and 65535, got {port}", field=name)
        given = [p for p in (self.grpc_port, self.http_port, self.metrics_port) if p != 0]
        if len(set(given)) != len(given):
            raise InvalidArgument(
                "grpc_port, http_port and metrics_port must differ", field="grpc_port"
            )
        for name in ("shm_default_bytes", "shm_growth_bytes", "stub_timeout_s"):
            if getattr(self, name) <= 0:
                raise InvalidArgument(f"{name} must be positive", field=name)
        if self.torch_threads is not None and self.torch_threads <= 0:
            raise InvalidArgument("torch_threads must be positive", field="torch_threads")
        if self.max_image_pixels is not None and self.max_image_pixels <= 0:
            raise InvalidArgument("max_image_pixels must be positive", field="max_image_pixels")
        if self.device not in ("auto", "cpu", "gpu"):
            raise InvalidArgument("device must be auto, cpu or gpu", field="device")

    def repositories(self) -> list[Path]:
        """The model repositories to serve: model_repository, then the student repository when
        it holds at least one model (an empty or missing one is left out)."""
        served = [self.model_repository]
        student = self.student_repository
        if student is not None and student.is_dir() and repository_models(student):
            served.append(student)
        return served


# --- the running server ----------------------------------------------------------------------


@dataclass(frozen=True)
class ModelStatus:
    """One model as the server reports it, with its statistics since the server started."""

    name: str
    version: str
    state: str  # READY, LOADING, UNAVAILABLE, ...
    reason: str = ""
    requests: int = 0  # requests Triton completed, including those the model answered with
    # an error response (pb_utils.TritonError): Triton counts those as successes.
    failed_requests: int = 0  # requests Triton itself failed (bad shape, timeout, ...)
    inference_count: int = 0  # items inferred (each request counts its batch dimension)
    execution_count: int = 0  # model executions (one per batch)

    @property
    def ready(self) -> bool:
        return self.state == "READY"

    @property
    def average_batch_size(self) -> float | None:
        """inference_count / execution_count: above 1 when dynamic batching merged requests."""
        if self.execution_count == 0:
            return None
        return self.inference_count / self.execution_count

    def to_json(self) -> dict[str, object]:
        return {**dataclasses.asdict(self), "average_batch_size": self.average_batch_size}


@dataclass(frozen=True)
class TritonStatus:
    """Whether the server at `address` answers, is ready, and each model's state."""

    address: str
    live: bool
    ready: bool
    models: tuple[ModelStatus, ...] = ()
    error: str = ""  # why it could not be asked, when it could not

    @property
    def all_ready(self) -> bool:
        return self.live and self.ready and all(m.ready for m in self.models)

    def to_json(self) -> dict[str, object]:
        return {
            "address": self.address,
            "live": self.live,
            "ready": self.ready,
            "all_ready": self.all_ready,
            "error": self.error,
            "models": [m.to_json() for m in self.models],
        }


@dataclass
class TritonHandle:
    """A tritonserver process: where it listens, its log, and how to stop it."""

    pid: int
    host: str
    grpc_port: int
    http_port: int
    metrics_port: int
    log_file: Path
    model_repository: Path
    started_at: float = field(default_factory=time.time)
    # The weights it serves (None: the hub ids); `alabel up` adopts only a server with its own.
    models_dir: Path | None = None
    # When the process started (the PID-reuse guard); None in a state file written before it.
    start_ticks: int | None = None
    # Set when this process started it (and must reap it); None when read from a state file.
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)
    # Where this server's part of the (appended) log begins.
    log_start: int = field(default=0, repr=False, compare=False)

    @property
    def address(self) -> str:
        """The gRPC address (host:port), what --triton-url and tritonclient take."""
        return client_address(self.host, self.grpc_port)

    @property
    def http_url(self) -> str:
        return f"http://{client_address(self.host, self.http_port)}"

    @property
    def metrics_url(self) -> str:
        return f"http://{client_address(self.host, self.metrics_port)}/metrics"

    def is_running(self) -> bool:
        if self.process is not None:
            return self.process.poll() is None
        return process_is_running(self.pid, self.start_ticks)

    def status(self, timeout_s: float = 5.0) -> TritonStatus:
        return query_status(self.address, timeout_s=timeout_s)

    def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM, wait up to grace_s, then SIGKILL. The exit status when it was our child."""
        if self.process is not None:
            return stop_child(self.process, grace_s).exit_status
        stop_process(self.pid, self.start_ticks, grace_s, name="tritonserver")
        return None

    def to_json(self) -> dict[str, object]:
        return {
            "pid": self.pid,
            "host": self.host,
            "address": self.address,
            "grpc_port": self.grpc_port,
            "http_port": self.http_port,
            "metrics_port": self.metrics_port,
            "http_url": self.http_url,
            "metrics_url": self.metrics_url,
            "log_file": str(self.log_file),
            "model_repository": str(self.model_repository),
            "models_dir": None if self.models_dir is None else str(self.models_dir),
            "started_at": self.started_at,
            "start_ticks": self.start_ticks,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TritonHandle:
        return cls(
            pid=int(data["pid"]),
            host=str(data["host"]),
            grpc_port=int(data["grpc_port"]),
            http_port=int(data["http_port"]),
            metrics_port=int(data["metrics_port"]),
            log_file=Path(data["log_file"]),
            model_repository=Path(data["model_repository"]),
            started_at=float(data["started_at"]),
            models_dir=Path(data["models_dir"]) if data.get("models_dir") else None,
            start_ticks=int(data["start_ticks"]) if data.get("start_ticks") is not None else None,
        )


# --- starting --------------------------------------------------------------------------------


def _check_stub(binary: Path) -> Path:
    """The backends directory, after checking its Python stub suits this interpreter."""
    server = binary.parent.parent
    backends = server / "backends"
    stub = backends / "python" / _STUB
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not stub.is_file():
        raise FailedPrecondition(
            f"the Python backend stub is missing ({stub}): run `make setup`", reason="NO_STUB"
        )
    shipped = server / "python_backend_stubs"
    if shipped.is_dir():  # the wheel's layout: one stub per Python version
        ours = shipped / version / _STUB
        if not ours.is_file():
            raise FailedPrecondition(
                f"this tritonserver has no Python backend stub for Python {version}",
                reason="NO_STUB",
            )
        if not filecmp.cmp(ours, stub, shallow=False):
            raise FailedPrecondition(
                f"{stub} is not the stub for Python {version} (the Python that runs the models):"
                " run `make setup` again with this Python",
                reason="WRONG_STUB",
            )
    return backends


def _check_numpy() -> None:
    try:
        version = importlib.metadata.version("numpy")
    except importlib.metadata.PackageNotFoundError:
        return
    if int(version.split(".")[0]) >= 2:
        raise FailedPrecondition(
            f"numpy {version} is installed; the Python backend stub needs numpy < 2 (BYTES"
            " tensors kill it): pip install 'numpy<2'",
            reason="NUMPY_2",
        )


def _gpu_visible() -> bool:
    return any(Path("/dev").glob("nvidia[0-9]*"))


def _python_libdir() -> str | None:
    """The directory of this interpreter's shared libpython, when it has one."""
    libdir = sysconfig.get_config_var("LIBDIR")
    if libdir and any(Path(libdir).glob("libpython3*.so*")):
        return str(libdir)
    return None


def triton_environment(
    launch: TritonLaunch,
    torch_threads: int,
    base: Mapping[str, str] | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The environment tritonserver (and so every stub) runs with; `extra` is added last."""
    source = os.environ if base is None else base
    env = {k: v for k, v in source.items() if not k.startswith(ENV_PREFIX)}
    env.update(extra or {})
    # sys.executable unresolved: the venv's bin/, not the base interpreter its python links to.
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), *filter(None, [env.get("PATH")])]
    )
    libdir = _python_libdir()
    if libdir is not None:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            [libdir, *filter(None, [env.get("LD_LIBRARY_PATH")])]
        )
    if launch.models_dir is not None:
        env[ENV_PREFIX + "MODELS_DIR"] = str(launch.models_dir.expanduser().resolve())
    env[ENV_PREFIX + "TORCH_THREADS"] = str(torch_threads)
    if launch.max_image_pixels is not None:
        env[ENV_PREFIX + "MAX_IMAGE_PIXELS"] = str(launch.max_image_pixels)
    env["OMP_NUM_THREADS"] = str(torch_threads)
    if launch.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return env


def triton_command(launch: TritonLaunch, binary: Path, backends: Path) -> list[str]:
    """tritonserver's command line for `launch` (its ports must be concrete)."""
    python = "--backend-config=python,"
    command = [
        str(binary),
        *(f"--model-repository={repository.resolve()}" for repository in launch.repositories()),
        f"--backend-directory={backends}",
        f"--model-control-mode={launch.model_control_mode}",
        f"--strict-readiness={str(launch.strict_readiness).lower()}",
        "--exit-on-error=true",
        f"--exit-timeout-secs={launch.exit_timeout_s}",
        f"--grpc-address={launch.host}",
        f"--grpc-port={launch.grpc_port}",
        f"--http-address={launch.host}",
        f"--http-port={launch.http_port}",
        "--allow-metrics=true",
        f"--metrics-address={launch.host}",
        f"--metrics-port={launch.metrics_port}",
        f"{python}shm-default-byte-size={launch.shm_default_bytes}",
        f"{python}shm-growth-byte-size={launch.shm_growth_bytes}",
        f"{python}stub-timeout-seconds={launch.stub_timeout_s}",
    ]
    if launch.model_control_mode == "explicit":
        command.append("--load-model=*")
    if not launch.auto_complete_config:
        command.append("--disable-auto-complete-config")
    command.extend(launch.extra_args)
    return command


def _with_ports(launch: TritonLaunch) -> TritonLaunch:
    """`launch` with every port of 0 replaced by a free port (distinct from the others)."""
    probe_host = launch.host if launch.host not in ("", "0.0.0.0") else "127.0.0.1"
    chosen: list[int] = []
    for port in (launch.grpc_port, launch.http_port, launch.metrics_port):
        while port == 0 or port in chosen:
            port = unused_port(probe_host)
        chosen.append(port)
    grpc_port, http_port, metrics_port = chosen
    return dataclasses.replace(
        launch, grpc_port=grpc_port, http_port=http_port, metrics_port=metrics_port
    )


def start_triton(launch: TritonLaunch) -> TritonHandle:
    """Start tritonserver and return once it is live and every model is READY.

    On failure (the server exits, a model does not load, the timeout passes, Ctrl-C) the server
    is stopped and the error carries the models' load errors and the tail of Triton's log.
    """
    if not launch.model_repository.is_dir():
        raise InvalidArgument(
            f"model repository {launch.model_repository} is not a directory",
            field="model_repository",
        )
    binary = find_tritonserver(launch.binary)
    backends = _check_stub(binary)
    _check_numpy()
    if launch.device == "gpu" and not _gpu_visible():
        raise FailedPrecondition(
            "device gpu was asked for, but no NVIDIA GPU is visible on this machine",
            reason="NO_GPU",
        )
    # Weights are checked for the project's models; students carry their own (model.onnx).
    hub_environment = check_weights(launch.models_dir, repository_models(launch.model_repository))
    models = _served_models(launch)
    _check_ports_free(launch)
    launch = _with_ports(launch)
    threads = launch.torch_threads or default_torch_threads(len(models))
    log_file = launch.log_file or Path(tempfile.mkdtemp(prefix="tritonserver-")) / "triton.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    # Appended, never overwritten: the log of an earlier (maybe still running) server stays.
    with log_file.open("ab") as log:
        log_start = log.tell()
        log.write(_banner(launch).encode())
        log.flush()
        process = subprocess.Popen(
            triton_command(launch, binary, backends),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=triton_environment(launch, threads, extra=hub_environment),
            start_new_session=launch.detached,
        )
    handle = TritonHandle(
        pid=process.pid,
        host=launch.host,
        grpc_port=launch.grpc_port,
        http_port=launch.http_port,
        metrics_port=launch.metrics_port,
        log_file=log_file,
        model_repository=launch.model_repository.resolve(),
        models_dir=None if launch.models_dir is None else launch.models_dir.expanduser().resolve(),
        start_ticks=process_start_ticks(process.pid),
        process=process,
        log_start=log_start,
    )
    try:
        _wait_ready(handle, launch.ready_timeout_s, models)
        if launch.device == "gpu":
            _check_on_gpu(handle, models)
    except BaseException:
        handle.stop(grace_s=10.0)
        raise
    return handle


def _served_models(launch: TritonLaunch) -> list[str]:
    """Every model of every repository served; FailedPrecondition when a name is in two."""
    repositories = launch.repositories()
    names = [name for repository in repositories for name in repository_models(repository)]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise FailedPrecondition(
            f"model {', '.join(twice)} is both in {repositories[0]} and in the student"
            f" repository {repositories[-1]}: remove or rename one of them",
            reason="DUPLICATE_MODEL",
        )
    return sorted(names)


def check_weights(models_dir: Path | None, models: list[str]) -> dict[str, str]:
    """Before starting: the weights of `models` are there (one error line if not); returns the
    environment the models need to load them (HF_HUB_OFFLINE when the hub is unreachable)."""
    if models_dir is not None:
        check_models_dir(models_dir, models)
        return {}
    return check_hub_weights(models)


def _port_in_use(host: str, port: int) -> bool:
    probe_host = host if host not in ("", "0.0.0.0") else "127.0.0.1"
    family = socket.AF_INET6 if ":" in probe_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        # As the servers bind: only a listener holds the port, not old connections' TIME_WAIT.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((probe_host, port))
        except OSError:
            return True
    return False


def _check_ports_free(launch: TritonLaunch) -> None:
    """FailedPrecondition when a port asked for is taken: tritonserver would die on it, while
    whatever holds the port (another Triton) answered the readiness checks in its place."""
    for name in ("grpc_port", "http_port", "metrics_port"):
        port = getattr(launch, name)
        if port and _port_in_use(launch.host, port):
            flag = "--" + name.replace("_", "-")
            raise FailedPrecondition(
                f"{name.replace('_', ' ')} {port} on {launch.host} is in use (another"
                f" tritonserver? `alabel triton status` says): stop it, or choose another"
                f" {flag} (0 takes a free one)",
                reason="PORT_IN_USE",
                metadata={"port": str(port)},
            )


def _banner(launch: TritonLaunch) -> str:
    when = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    repositories = ", ".join(str(r) for r in launch.repositories())
    return (
        f"==== {when} alabel: starting tritonserver (gRPC {launch.host}:{launch.grpc_port},"
        f" repository {repositories}) ====\n"
    )


def _http(url: str, body: bytes | None = None, timeout_s: float = 2.0) -> tuple[int, Any]:
    """(status, parsed JSON body or None); status 0 when nothing answered."""
    request = urllib.request.Request(url, data=body, method="POST" if body is not None else "GET")
    try:
        with _NO_PROXY.open(request, timeout=timeout_s) as response:
            raw = response.read()
            return int(response.status), json.loads(raw) if raw else None
    except urllib.error.HTTPError as error:
        return int(error.code), None
    except (OSError, ValueError):  # refused, reset, timed out, half-written JSON
        return 0, None


def _wait_ready(handle: TritonHandle, timeout_s: float, models: list[str]) -> None:
    assert handle.process is not None
    deadline = time.monotonic() + timeout_s
    while True:
        if handle.process.poll() is not None:
            raise Unavailable(
                f"tritonserver exited with status {handle.process.returncode} before its models"
                f" were ready{_failure_details(handle.log_file, handle.log_start)}",
                reason="TRITON_START_FAILED",
            )
        status, _ = _http(handle.http_url + "/v2/health/ready")
        if status == 200:
            not_ready = _models_not_ready(handle, models)
            # Ready, and still our process that answered: never report a dead server as up.
            if not not_ready and handle.process.poll() is None:
                return
        else:
            not_ready = ["the server (not answering yet)"]
        if time.monotonic() > deadline:
            raise Unavailable(
                f"tritonserver was not ready within {timeout_s:g} s (waiting for"
                f" {', '.join(not_ready)}){_failure_details(handle.log_file, handle.log_start)}",
                reason="TRITON_START_TIMEOUT",
            )
        time.sleep(_POLL_S)


def _models_not_ready(handle: TritonHandle, models: list[str]) -> list[str]:
    """The models (of every repository served) not READY yet; one the index does not list
    counts as not ready."""
    status, index = _http(handle.http_url + "/v2/repository/index", body=b"{}")
    if status != 200 or not isinstance(index, list):
        return ["the repository index"]
    listed = {entry.get("name") for entry in index}
    return [
        f"{entry.get('name')} ({entry.get('state') or 'not loaded'}"
        + (f": {entry['reason']}" if entry.get("reason") else "")
        + ")"
        for entry in index
        if entry.get("state") != "READY"
    ] + [f"{name} (not listed yet)" for name in models if name not in listed]


def _check_on_gpu(handle: TritonHandle, models: list[str]) -> None:
    on_cpu = []
    for name in models:
        _, config = _http(f"{handle.http_url}/v2/models/{name}/config")
        kinds = {group.get("kind") for group in (config or {}).get("instance_group", [])}
        if kinds - {"KIND_GPU"}:
            on_cpu.append(f"{name} ({', '.join(sorted(str(k) for k in kinds))})")
    if on_cpu:
        raise FailedPrecondition(
            "device gpu was asked for, but these models have instances off the GPU: "
            + "; ".join(on_cpu)
            + " (use kind: KIND_AUTO or KIND_GPU in their instance_group)",
            reason="NOT_ON_GPU",
        )


_LOAD_FAILURE = re.compile(r"failed to load '([^']+)' version \d+: (.*?)\"?$")


def _failure_details(log_file: Path, start: int = 0) -> str:
    """The models' load errors (tracebacks unescaped) and the log's last lines, for an error;
    only what this server wrote, from `start` on (earlier starts append to the same file)."""
    try:
        with log_file.open("rb") as log:
            log.seek(start)
            lines = log.read().decode(errors="replace").splitlines()
    except OSError:
        return f"\n(no log at {log_file})"
    parts = []
    for line in lines:
        found = _LOAD_FAILURE.search(line)
        if found:
            reason = found.group(2).replace("\\n", "\n").replace('\\"', '"').rstrip()
            parts.append(f"model {found.group(1)!r}: {reason}")
    # Triton's summary tables repeat what the lines above say; keep the log's own lines.
    tail = [line for line in lines if not line.startswith(("+", "|"))][-_LOG_TAIL_LINES:]
    parts.append(f"last lines of {log_file}:\n" + "\n".join(tail))
    return "\n" + "\n".join(parts)


# --- asking a server -------------------------------------------------------------------------


def _count(stats: Mapping[str, Any], *path: str) -> int:
    value: Any = stats
    for key in path:
        value = value.get(key, {}) if isinstance(value, Mapping) else {}
    return int(value) if isinstance(value, str | int) else 0


def query_status(address: str, timeout_s: float = 5.0) -> TritonStatus:
    """Ask the Triton server at the gRPC `address` whether it is live, ready, and its models."""
    import tritonclient.grpc as triton_grpc
    from tritonclient.utils import InferenceServerException

    channel_args = channel_options(address) or None  # None: tritonclient's own defaults
    client = triton_grpc.InferenceServerClient(address, channel_args=channel_args)
    try:
        live = bool(client.is_server_live(client_timeout=timeout_s))
        ready = bool(client.is_server_ready(client_timeout=timeout_s))
        index = client.get_model_repository_index(as_json=True, client_timeout=timeout_s)
        stats = client.get_inference_statistics(as_json=True, client_timeout=timeout_s)
    except InferenceServerException as error:
        return TritonStatus(address, live=False, ready=False, error=str(error.message()))
    finally:
        client.close()
    by_model = {(s["name"], s.get("version", "")): s for s in stats.get("model_stats", [])}
    models = []
    for entry in index.get("models", []):
        name, version = entry["name"], entry.get("version", "")
        model_stats = by_model.get((name, version), {})
        models.append(
            ModelStatus(
                name=name,
                version=version,
                state=entry.get("state", "") or "UNKNOWN",
                reason=entry.get("reason", ""),
                requests=_count(model_stats, "inference_stats", "success", "count"),
                failed_requests=_count(model_stats, "inference_stats", "fail", "count"),
                inference_count=_count(model_stats, "inference_count"),
                execution_count=_count(model_stats, "execution_count"),
            )
        )
    return TritonStatus(address, live=live, ready=ready, models=tuple(models))


# --- the state file of a server started in the background ------------------------------------


class TritonStateFile(StateFile[TritonHandle]):
    """`<data_dir>/run/triton.json`: the pid and ports of the server `alabel triton start` ran."""

    def __init__(self, path: Path) -> None:
        super().__init__(
            path,
            decode=TritonHandle.from_json,
            encode=TritonHandle.to_json,
            written_by="alabel triton start",
            busy="another `alabel triton` command is starting or stopping the server",
            busy_reason="TRITON_BUSY",
        )

    def load_running(
        self, on_stale: Callable[[TritonHandle], None] | None = None
    ) -> TritonHandle | None:
        """The recorded server if it still runs; a stale file is removed (and reported)."""
        handle = self.load()
        if handle is None or handle.is_running():
            return handle
        self.remove()
        if on_stale is not None:
            on_stale(handle)
        return None
