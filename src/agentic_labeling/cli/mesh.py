"""`alabel up` and `alabel down`: the whole mesh on this machine, started and stopped together.

`up` starts tritonserver (through `agentic_labeling.triton_server`), the registry, the
orchestrator and the review web app as background processes that outlive the command, each
appending to a log file under `<data-dir>/run/`, and records them in `<data-dir>/run/mesh.json`
(see `mesh_state`) after each start, so that `down` can stop whatever was started even if
`up` itself was killed half-way.

Honest about what runs:
- A Triton that `alabel triton start` runs for the same data directory is adopted when it
  serves the same repository and models dir on the ports asked for (recorded as adopted: `down`
  stops it too), and refused with what differs otherwise; a second tritonserver is never
  started beside it.
- A mesh some of whose parts died (a crash, a SIGKILL) is repaired: the dead parts are started
  again on their recorded ports, the live ones are kept.
- Before printing, every part is checked once more: alive and serving.
- The registry gets the embedding length of the DINOv2 that Triton serves (asked from the
  model itself); a registry whose store holds another length stops `up` with one line.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.params import json_option, port_option
from agentic_labeling.cli.settings_options import current_settings
from agentic_labeling.settings import Settings

if TYPE_CHECKING:
    from agentic_labeling.cli.mesh_state import Component, MeshState, MeshStateFile
    from agentic_labeling.errors import Unavailable
    from agentic_labeling.triton_server import TritonHandle

__all__ = ["down", "up"]


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(Settings)}


def _state_file(settings: Settings) -> MeshStateFile:
    from agentic_labeling.cli.mesh_state import MeshStateFile

    return MeshStateFile(settings.data_dir / "run" / "mesh.json")


@click.command(
    "up",
    epilog="""\b
Examples:
  alabel up
  alabel --models-dir ~/weights up --device gpu
  alabel --triton-url gpu-box:8001 up
  alabel --data-dir /tmp/al --registry-port 0 --orchestrator-port 0 --review-port 0 up \\
      --triton-grpc-port 0 --triton-http-port 0 --triton-metrics-port 0 --json

\b
Exit status: 0 the mesh is up (parts that had died are started again); 1 it is already
running, or a part failed to start (the parts already started are stopped again and the tail
of the failed part's log is shown); 2 a bad setting, e.g. a --models-dir without the models.""",
)
@click.option(
    "--triton/--no-triton",
    default=True,
    show_default=True,
    help="Start a local tritonserver; --no-triton uses the server at --triton-url (a"
    " --triton-url other than the default implies it).",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="Where the local Triton runs the models; auto picks the GPU when one is visible.",
)
@port_option(
    "--triton-grpc-port",
    8001,
    "Port of the local Triton's gRPC endpoint (what the orchestrator uses)",
)
@port_option("--triton-http-port", 8000, "Port of the local Triton's HTTP/REST endpoint")
@port_option(
    "--triton-metrics-port", 8002, "Port of the local Triton's Prometheus metrics endpoint"
)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for every part to report ready.",
)
@json_option
def up(
    triton: bool,
    device: Literal["auto", "cpu", "gpu"],
    triton_grpc_port: int,
    triton_http_port: int,
    triton_metrics_port: int,
    ready_timeout: float,
    as_json: bool,
) -> None:
    """Start the whole mesh and print its endpoints.

    Starts, in the background, tritonserver with the models (weights from --models-dir), the
    registry (embedded Postgres and Qdrant under --data-dir unless --postgres-dsn / --qdrant-url
    are given), the orchestrator and the review web app (its page's URL is printed), waits until
    each is ready (Triton's models READY, the servers' health SERVING), and prints the
    addresses to give to `alabel label` or grpcurl. The servers listen on --host,
    --registry-port, --orchestrator-port and --review-port (0 picks a free port; the real ports
    are printed). Logs go to <data-dir>/run/*.log, pids and addresses
    to <data-dir>/run/mesh.json. `alabel down` stops them.

    Weights are checked before anything starts: a --models-dir without florence2/, sam2/ or
    dinov2/ (or with an unreadable config.json) is one error line. A Triton already started by
    `alabel triton start` for this --data-dir is adopted if it serves the same models on the
    ports asked for, and refused otherwise. If the mesh runs but some of its parts died, `up`
    starts those again and keeps the others. Logs are appended to, never overwritten.
    Students exported by `alabel runs export` (into <data-dir>/triton-models) are served by
    Triton beside florence2, sam2 and dinov2: `alabel label --detector yolo` uses one.

    The registry's embedding length follows the served DINOv2: a new --data-dir records it, a
    later `up` checks it. --embedding-dimension is needed only to override it for a new store;
    a value that contradicts the model or the store is an error.
    """
    settings = current_settings()
    _check_models_dir(settings)
    state_file = _state_file(settings)
    run_dir = state_file.path.parent
    external_triton = not triton or settings.triton_url != _DEFAULTS["triton_url"]
    start = _Start(
        settings=settings,
        run_dir=run_dir,
        device=device,
        triton_ports=(triton_grpc_port, triton_http_port, triton_metrics_port),
        ready_timeout=ready_timeout,
    )
    with state_file.lock():
        running = _running_mesh(state_file)
        if running is not None:
            state = _restart_dead_parts(running, state_file, start)
        else:
            state = _start_mesh(state_file, start, external_triton=external_triton)
    _print_up(state, state_file.path, as_json)


@dataclasses.dataclass(frozen=True)
class _Start:
    """What every start of a part needs from the `up` command line."""

    settings: Settings
    run_dir: Path
    device: Literal["auto", "cpu", "gpu"]
    triton_ports: tuple[int, int, int]
    ready_timeout: float


def _check_models_dir(settings: Settings) -> None:
    """A bad --models-dir is a bad setting (exit 2), reported before anything starts."""
    from agentic_labeling.cli.triton import check_models_dir_setting
    from agentic_labeling.triton_server import default_model_repository

    check_models_dir_setting(settings, default_model_repository())


def _running_mesh(state_file: MeshStateFile) -> MeshState | None:
    """The recorded mesh if any part of it still runs; a stale file is removed."""
    from agentic_labeling.errors import AlreadyExists

    state = state_file.load()
    if state is None:
        return None
    running = state.running()
    if not running:
        click.echo(
            f"removed a stale state file: nothing it names runs ({state_file.path})", err=True
        )
        state_file.remove()
        return None
    if not state.dead():
        parts = ", ".join(f"{c.name} {c.address} (pid {c.pid})" for c in running)
        raise AlreadyExists(
            f"the mesh is already running: {parts}; `alabel down` stops it",
            reason="MESH_RUNNING",
        )
    return state


def _start_mesh(state_file: MeshStateFile, start: _Start, *, external_triton: bool) -> MeshState:
    from agentic_labeling.cli.mesh_state import MeshState

    settings = start.settings
    state = MeshState()
    try:
        if external_triton:
            state.components.append(_external_triton(settings.triton_url, start.ready_timeout))
        else:
            state.components.append(_local_triton(start))
        state_file.save(state)
        triton_address = state.components[0].address
        state.components.append(_start_registry(start, triton_address))
        state_file.save(state)
        state.components.append(
            _start_orchestrator(start, state.components[1].address, triton_address)
        )
        state_file.save(state)
        state.components.append(_start_review(start, state.components[1].address))
        state_file.save(state)
        _check_still_up(state)
    except BaseException:
        # Nothing half-started is left behind: a failed `up` leaves no state and no process
        # of its own (an adopted Triton ran before and keeps running).
        for component in reversed(state.components):
            if not component.adopted:
                _stop(component, grace_s=10.0)
        state_file.remove()
        raise
    return state


def _restart_dead_parts(state: MeshState, state_file: MeshStateFile, start: _Start) -> MeshState:
    """Start the dead parts of a running mesh again, on their recorded ports."""
    for dead in state.dead():
        click.echo(
            f"{dead.name} (pid {dead.pid}) is not running any more: starting it again", err=True
        )
        try:
            again = _start_again(dead, state, start)
        except CliFailure as error:
            alive = ", ".join(c.name for c in state.running())
            raise CliFailure(
                f"could not start {dead.name} again: {error.message}",
                details=[
                    *error.details,
                    f"still running: {alive}; `alabel down` stops them, then `alabel up`",
                ],
            ) from None
        state.replace(again)
        state_file.save(state)
    _check_still_up(state, restarted=True)
    return state


def _port_of(address_or_url: str | None) -> int:
    if not address_or_url:
        return 0
    return int(address_or_url.rstrip("/").removesuffix("/metrics").rsplit(":", 1)[1])


def _start_again(dead: Component, state: MeshState, start: _Start) -> Component:
    parts = {c.name: c for c in state.components}
    if dead.name == "triton":
        triton_ports = (
            _port_of(dead.address),
            _port_of(dead.urls.get("http")),
            _port_of(dead.urls.get("metrics")),
        )
        return _start_triton(dataclasses.replace(start, triton_ports=triton_ports))
    metrics = _port_of(dead.urls.get("metrics"))
    ports: dict[str, object] = {f"{dead.name}_port": _port_of(dead.address)}
    if metrics:
        ports[f"{dead.name}_metrics_port"] = metrics
    again = dataclasses.replace(start, settings=start.settings.replace(**ports))
    if dead.name == "registry":
        return _start_registry(again, parts["triton"].address)
    if dead.name == "review":
        return _start_review(again, parts["registry"].address)
    return _start_orchestrator(again, parts["registry"].address, parts["triton"].address)


def _check_still_up(state: MeshState, *, restarted: bool = False) -> None:
    """Right before `up` reports success: every part alive and serving, or a failure."""
    from agentic_labeling.local.launcher import ready
    from agentic_labeling.triton_server import query_status

    problems = []
    for c in state.components:
        if c.managed and not c.is_running():
            problems.append(f"{c.name} (pid {c.pid}) is not running")
        elif c.name == "triton" and not query_status(c.address).all_ready:
            problems.append(f"triton at {c.address} is not ready")
        elif c.name != "triton" and not ready(c.name, c.address):
            problems.append(f"{c.name} at {c.address} is not serving")
    if problems:
        then = "`alabel down`, then `alabel up`" if restarted else "`alabel up` again"
        raise CliFailure(
            f"the mesh did not stay up: {'; '.join(problems)}",
            details=[
                f"logs are under {state.components[0].log_file or 'the run directory'}; try {then}"
            ],
        )


def _external_triton(url: str, ready_timeout: float) -> Component:
    """The Triton at `url`, once it answers with every model READY."""
    from agentic_labeling.cli.mesh_state import Component
    from agentic_labeling.triton_server import query_status

    deadline = time.monotonic() + ready_timeout
    while True:
        status = query_status(url)
        if status.all_ready:
            return Component("triton", url)
        if time.monotonic() > deadline:
            not_ready = [m.name for m in status.models if not m.ready]
            why = status.error or (f"models not ready: {', '.join(not_ready)}" if not_ready else "")
            raise CliFailure(
                f"Triton at {url} is not ready within {ready_timeout:g} s ({why or 'not ready'})",
                details=["start it, or leave out --no-triton / --triton-url to start one here"],
            )
        time.sleep(0.5)


def _local_triton(start: _Start) -> Component:
    """Adopt the Triton `alabel triton start` runs for this data directory, else start one."""
    from agentic_labeling.triton_server import TritonStateFile

    triton_state = TritonStateFile(start.run_dir / "triton.json")
    with triton_state.lock():
        running = triton_state.load_running()
        if running is not None:
            return _adopt(running, start)
    return _start_triton(start)


def _adopt(handle: TritonHandle, start: _Start) -> Component:
    from agentic_labeling.cli.mesh_processes import process_start_ticks
    from agentic_labeling.cli.mesh_state import Component
    from agentic_labeling.triton_server import default_model_repository, query_status

    settings = start.settings
    wanted_models = settings.models_dir.expanduser().resolve() if settings.models_dir else None
    differences = []
    if handle.model_repository != default_model_repository().resolve():
        differences.append(f"model repository {handle.model_repository}")
    if handle.models_dir != wanted_models:
        differences.append(
            f"--models-dir {handle.models_dir or '(none: hub ids)'}"
            f" (asked: {wanted_models or '(none: hub ids)'})"
        )
    if handle.host != settings.host:
        differences.append(f"--host {handle.host} (asked: {settings.host})")
    names = ("gRPC", "HTTP", "metrics")
    ports = (handle.grpc_port, handle.http_port, handle.metrics_port)
    for name, port, asked in zip(names, ports, start.triton_ports, strict=True):
        if asked and asked != port:
            differences.append(f"{name} port {port} (asked: {asked})")
    where = f"pid {handle.pid}, gRPC {handle.address}"
    if differences:
        raise CliFailure(
            f"Triton started by `alabel triton start` already runs for this --data-dir ({where})"
            f" with {'; '.join(differences)}: `alabel triton stop` stops it, or run `alabel up`"
            " with the settings it was started with"
        )
    status = query_status(handle.address)
    if not status.all_ready:
        raise CliFailure(
            f"Triton started by `alabel triton start` ({where}) is not ready"
            f" ({status.error or 'models not ready'}): `alabel triton status` shows why"
        )
    click.echo(f"using the Triton that `alabel triton start` started ({where})", err=True)
    return Component(
        "triton",
        handle.address,
        pid=handle.pid,
        start_ticks=process_start_ticks(handle.pid),
        log_file=str(handle.log_file),
        urls={"http": handle.http_url, "metrics": handle.metrics_url},
        adopted=True,
    )


def _start_triton(start: _Start) -> Component:
    from agentic_labeling.cli.mesh_processes import process_start_ticks
    from agentic_labeling.cli.mesh_state import Component
    from agentic_labeling.errors import DomainError
    from agentic_labeling.triton_server import TritonLaunch, default_model_repository, start_triton

    settings = start.settings
    grpc_port, http_port, metrics_port = start.triton_ports
    log_file = start.run_dir / "tritonserver.log"
    try:
        handle = start_triton(
            TritonLaunch(
                model_repository=default_model_repository(),
                host=settings.host,
                grpc_port=grpc_port,
                http_port=http_port,
                metrics_port=metrics_port,
                models_dir=settings.models_dir,
                student_repository=settings.student_repository,
                log_file=log_file,
                max_image_pixels=settings.max_image_pixels,
                device=start.device,
                ready_timeout_s=start.ready_timeout,
                detached=True,
            )
        )
    except DomainError as error:
        first, *rest = error.message.splitlines()
        raise CliFailure(f"triton failed to start: {first}", details=rest) from None
    return Component(
        "triton",
        handle.address,
        pid=handle.pid,
        start_ticks=process_start_ticks(handle.pid),
        log_file=str(log_file),
        urls={"http": handle.http_url, "metrics": handle.metrics_url},
    )


def _served_dimension(triton_address: str, timeout_s: float) -> int | None:
    """The embedding length of the DINOv2 that Triton serves; None when it cannot say."""
    import asyncio

    from agentic_labeling.clients.mesh_probe import served_embedding_dimension
    from agentic_labeling.errors import DomainError

    try:
        return asyncio.run(served_embedding_dimension(triton_address, timeout_s=timeout_s))
    except DomainError as error:
        click.echo(f"could not ask the served DINOv2 for its embedding length: {error}", err=True)
        return None


def _start_registry(start: _Start, triton_address: str) -> Component:
    """The registry, told the served DINOv2's embedding length (or the one asked for)."""
    settings = start.settings
    asked = settings.embedding_dimension
    served = _served_dimension(triton_address, timeout_s=min(start.ready_timeout, 60.0) or 1.0)
    if asked is not None and served is not None and asked != served:
        raise CliFailure(
            f"the served DINOv2 gives {served}-dimensional embeddings; --embedding-dimension"
            f" {asked} contradicts it: leave the flag out"
        )
    chosen = asked if asked is not None else served
    try:
        return _start_server(
            "registry",
            settings.replace(embedding_dimension=chosen),
            start.run_dir,
            start.ready_timeout,
        )
    except _PartRefused as refused:
        error = refused.error
        recorded = error.metadata.get("error.recorded")
        if asked is None and recorded is not None and "error.stored" not in error.metadata:
            from agentic_labeling.registry.vectors.embedding_dimension import where_stored

            other = "--postgres-dsn" if settings.postgres_dsn else "--data-dir"
            raise CliFailure(
                f"{where_stored(settings)} holds {recorded}-dimensional embeddings; the served"
                f" DINOv2 gives {served}: serve the DINOv2 it was created with (--models-dir),"
                f" or use another {other}"
            ) from None
        raise CliFailure(f"{error.message}; the other parts were stopped") from None


def _start_orchestrator(start: _Start, registry_address: str, triton_address: str) -> Component:
    settings = start.settings.replace(registry_url=registry_address, triton_url=triton_address)
    try:
        return _start_server("orchestrator", settings, start.run_dir, start.ready_timeout)
    except _PartRefused as refused:
        raise CliFailure(f"{refused.error.message}; the other parts were stopped") from None


def _start_review(start: _Start, registry_address: str) -> Component:
    """The review web app, on the registry `up` started (its page: `http://<address>/`)."""
    settings = start.settings.replace(registry_url=registry_address)
    try:
        component = _start_server("review", settings, start.run_dir, start.ready_timeout)
    except _PartRefused as refused:
        raise CliFailure(f"{refused.error.message}; the other parts were stopped") from None
    return dataclasses.replace(component, urls={"page": f"http://{component.address}/"})


class _PartRefused(Exception):
    """A server that said why it did not start (its `.error` file)."""

    def __init__(self, error: Unavailable) -> None:
        super().__init__(error.message)
        self.error = error


def _start_server(kind: str, settings: Settings, run_dir: Path, ready_timeout: float) -> Component:
    from agentic_labeling.cli.mesh_processes import (
        log_tail,
        settings_environment,
        start_background_server,
    )
    from agentic_labeling.cli.mesh_state import Component
    from agentic_labeling.errors import Unavailable

    try:
        started = start_background_server(
            kind,
            settings_environment(settings),
            run_dir,
            host=settings.host,
            timeout_s=ready_timeout,
        )
    except Unavailable as error:
        if "reason" in error.metadata:  # its own one-line account of why
            raise _PartRefused(error) from None
        log = error.metadata.get("log")
        raise CliFailure(
            f"{error.message}; the other parts were stopped. Last lines of {log}:",
            details=log_tail(log, start=int(error.metadata.get("log_start", "0"))),
        ) from None
    return Component(
        kind,
        started.address,
        pid=started.pid,
        start_ticks=started.start_ticks,
        log_file=str(started.log_file),
        urls={"metrics": started.metrics_url} if started.metrics_url else {},
    )


def _stop(component: Component, grace_s: float) -> str | None:
    """Stop a part `alabel up` started; a line saying how, None for an external part."""
    from agentic_labeling.cli.mesh_processes import stop_process

    if component.pid is None:
        return None
    outcome = stop_process(component.pid, component.start_ticks, grace_s)
    what = f"{component.name} (pid {component.pid})"
    status = f", exit status {outcome.exit_status}" if outcome.exit_status is not None else ""
    if outcome.how == "not running":
        return f"{what} was not running any more{status}"
    if outcome.how == "killed":
        return f"killed {what}: still running {grace_s:g} s after SIGTERM{status}"
    return f"stopped {what} in {outcome.seconds:.1f} s{status}"


def _print_up(state: MeshState, state_path: Path, as_json: bool) -> None:
    from agentic_labeling.cli.output import echo_json, echo_table

    if as_json:
        echo_json(
            {"state_file": str(state_path), "components": [c.to_json() for c in state.components]}
        )
        return
    click.echo("the mesh is up; `alabel down` stops it")
    rows = []
    for c in state.components:
        pid = f"pid {c.pid}" if c.pid is not None else "external"
        pid += " (adopted)" if c.adopted else ""
        rows.append([c.name, c.address, pid, c.log_file or "-"])
    echo_table(("PART", "ADDRESS", "PROCESS", "LOG"), rows, indent="  ")
    for c in state.components:
        for kind, url in sorted(c.urls.items()):
            click.echo(f"  {c.name} {kind}: {url}")
    click.echo(f"state: {state_path}")
    flags = [
        f"--{c.name}-url {c.address}"
        for c in state.components
        if c.name in ("registry", "orchestrator") and c.address != _DEFAULTS[f"{c.name}_url"]
    ]
    if flags:
        click.echo("not the default addresses: give them to the other commands, e.g.")
        click.echo(f"  alabel {' '.join(flags)} label ./photos --classes person,car")


@click.command("down")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Time each part gets to finish in-flight work before it is killed.",
)
def down(grace: float) -> None:
    """Stop the mesh that `alabel up` started.

    Stops the review app and the orchestrator first, then the registry, then Triton, each with
    SIGTERM: in-flight
    work is finished or cancelled, never left half-written; a part still running after --grace
    seconds is killed. A Triton started by `alabel triton start` that `up` adopted is stopped
    too; one run elsewhere (--triton-url, --no-triton) is left running. Nothing to stop is not
    an error.
    """
    settings = current_settings()
    state_file = _state_file(settings)
    with state_file.lock():
        state = state_file.load()
        if state is None:
            click.echo(f"nothing to stop: no mesh started by `alabel up` under {settings.data_dir}")
            return
        for component in reversed(state.components):
            line = _stop(component, grace)
            if line is None:
                click.echo(f"left {component.name} at {component.address} running (external)")
            else:
                click.echo(line)
            if component.adopted:
                _forget_triton_start(settings, component)
        state_file.remove()


def _forget_triton_start(settings: Settings, component: Component) -> None:
    """Remove `alabel triton start`'s record of an adopted Triton that `down` stopped."""
    from agentic_labeling.triton_server import TritonStateFile

    triton_state = TritonStateFile(settings.data_dir / "run" / "triton.json")
    with triton_state.lock():
        handle = triton_state.load()
        if handle is not None and handle.pid == component.pid:
            triton_state.remove()
