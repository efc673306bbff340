"""`alabel up` and `alabel down`: the whole mesh on this machine, started and stopped together.

`up` starts tritonserver (through `agentic_labeling.triton_server`), the registry and the
orchestrator as background processes that outlive the command, each logging to a file under
`<data-dir>/run/`, and records them in `<data-dir>/run/mesh.json` (see `mesh_state`) after each
start, so that `down` can stop whatever was started even if `up` itself was killed half-way.
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
  alabel --data-dir /tmp/al --registry-port 0 --orchestrator-port 0 up --triton-grpc-port 0 \\
      --triton-http-port 0 --triton-metrics-port 0 --json

\b
Exit status: 0 the mesh is up; 1 it is already running, or a part failed to start (the parts
already started are stopped again and the tail of the failed part's log is shown).""",
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
    are given) and the orchestrator, waits until each is ready (Triton's models READY, the
    servers' gRPC health SERVING), and prints the addresses to give to `alabel label` or
    grpcurl. The servers listen on --host, --registry-port and --orchestrator-port (0 picks a
    free port; the real ports are printed). Logs go to <data-dir>/run/*.log, pids and addresses
    to <data-dir>/run/mesh.json. `alabel down` stops them.

    The registry's --embedding-dimension must match the embedding model's (768 for DINOv2
    base; the tiny test models have 32): it is fixed when the registry's store is created.
    """
    from agentic_labeling.cli.mesh_state import MeshState

    settings = current_settings()
    state_file = _state_file(settings)
    run_dir = state_file.path.parent
    external_triton = not triton or settings.triton_url != _DEFAULTS["triton_url"]
    with state_file.lock():
        _refuse_if_running(state_file)
        state = MeshState()
        try:
            if external_triton:
                state.components.append(_external_triton(settings.triton_url, ready_timeout))
            else:
                state.components.append(
                    _start_triton(
                        settings,
                        run_dir,
                        device=device,
                        ports=(triton_grpc_port, triton_http_port, triton_metrics_port),
                        ready_timeout=ready_timeout,
                    )
                )
            state_file.save(state)
            registry = _start_server("registry", settings, run_dir, ready_timeout)
            state.components.append(registry)
            state_file.save(state)
            orchestrator = _start_server(
                "orchestrator",
                settings.replace(
                    registry_url=registry.address, triton_url=state.components[0].address
                ),
                run_dir,
                ready_timeout,
            )
            state.components.append(orchestrator)
            state_file.save(state)
        except BaseException:
            # Nothing half-started is left behind: a failed `up` leaves no state and no process.
            for component in reversed(state.components):
                _stop(component, grace_s=10.0)
            state_file.remove()
            raise
    _print_up(state, state_file.path, as_json)


def _refuse_if_running(state_file: MeshStateFile) -> None:
    from agentic_labeling.errors import AlreadyExists

    state = state_file.load()
    if state is None:
        return
    running = state.running()
    if not running:
        click.echo(
            f"removed a stale state file: nothing it names runs ({state_file.path})", err=True
        )
        state_file.remove()
        return
    parts = ", ".join(f"{c.name} {c.address} (pid {c.pid})" for c in running)
    raise AlreadyExists(
        f"the mesh is already running: {parts}; `alabel down` stops it",
        reason="MESH_RUNNING",
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


def _start_triton(
    settings: Settings,
    run_dir: Path,
    *,
    device: Literal["auto", "cpu", "gpu"],
    ports: tuple[int, int, int],
    ready_timeout: float,
) -> Component:
    from agentic_labeling.cli.mesh_processes import process_start_ticks
    from agentic_labeling.cli.mesh_state import Component
    from agentic_labeling.errors import DomainError
    from agentic_labeling.triton_server import TritonLaunch, default_model_repository, start_triton

    grpc_port, http_port, metrics_port = ports
    log_file = run_dir / "tritonserver.log"
    try:
        handle = start_triton(
            TritonLaunch(
                model_repository=default_model_repository(),
                host=settings.host,
                grpc_port=grpc_port,
                http_port=http_port,
                metrics_port=metrics_port,
                models_dir=settings.models_dir,
                log_file=log_file,
                device=device,
                ready_timeout_s=ready_timeout,
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
        log = error.metadata.get("log")
        raise CliFailure(
            f"{error.message}; the other parts were stopped. Last lines of {log}:",
            details=log_tail(log),
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
        rows.append([c.name, c.address, pid, c.log_file or "-"])
    echo_table(("PART", "ADDRESS", "PROCESS", "LOG"), rows, indent="  ")
    for c in state.components:
        for kind, url in sorted(c.urls.items()):
            click.echo(f"  {c.name} {kind}: {url}")
    click.echo(f"state: {state_path}")
    flags = [
        f"--{c.name}-url {c.address}"
        for c in state.components
        if c.name != "triton" and c.address != _DEFAULTS[f"{c.name}_url"]
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

    Stops the orchestrator first, then the registry, then Triton, each with SIGTERM: in-flight
    work is finished or cancelled, never left half-written; a part still running after --grace
    seconds is killed. A Triton that `alabel up` did not start (--triton-url) is left running.
    Nothing to stop is not an error.
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
        state_file.remove()
