"""`alabel triton start|stop|status`: the local Triton Inference Server that serves the models.

`start` runs tritonserver in the background and records its pid and ports in
`<data-dir>/run/triton.json`; `stop` and `status` read that file. A --triton-url other than the
default names an external server: `start` refuses it, `status` asks it. The launcher itself is
`agentic_labeling.triton_server`, imported when a command runs so that `--help` stays fast.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import click

from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import json_option, port_option
from agentic_labeling.cli.settings_options import current_settings
from agentic_labeling.errors import AlreadyExists
from agentic_labeling.settings import Settings

if TYPE_CHECKING:
    from agentic_labeling.triton_server import TritonHandle, TritonStateFile, TritonStatus

__all__ = ["check_models_dir_setting", "triton"]


_DEFAULT_TRITON_URL = next(
    f.default for f in dataclasses.fields(Settings) if f.name == "triton_url"
)


def _external_url(settings: Settings) -> str | None:
    """The --triton-url (or ALABEL_TRITON_URL) when it names a server other than the default."""
    return settings.triton_url if settings.triton_url != _DEFAULT_TRITON_URL else None


def _state_file(settings: Settings) -> TritonStateFile:
    from agentic_labeling.triton_server import TritonStateFile

    return TritonStateFile(settings.data_dir / "run" / "triton.json")


def _report_stale(handle: TritonHandle) -> None:
    click.echo(
        f"removed a stale state file: tritonserver pid {handle.pid} (gRPC {handle.address})"
        " is no longer running",
        err=True,
    )


@click.group(cls=AlabelGroup)
def triton() -> None:
    """Start, stop and inspect the local Triton server.

    Triton Inference Server serves Florence-2, SAM2 and DINOv2 from the repository's
    model_repository/ with dynamic batching, so concurrent images share forward passes. To use a
    Triton server run elsewhere (e.g. the NGC image on a GPU machine), skip these commands and pass
    --triton-url.
    """


@triton.command(
    "start",
    epilog="""\b
Examples:
  alabel triton start
  alabel --models-dir ~/weights triton start --device gpu
  alabel --data-dir /tmp/al triton start --grpc-port 0 --http-port 0 --metrics-port 0 --json""",
)
@click.option(
    "--model-repository",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Model repository to serve.  [default: the project's model_repository/]",
)
@click.option(
    "--device",
    type=click.Choice(["auto", "cpu", "gpu"]),
    default="auto",
    show_default=True,
    help="Where model instances run; auto picks the GPU when one is visible.",
)
@port_option("--grpc-port", 8001, "Port of Triton's gRPC endpoint (what --triton-url names)")
@port_option("--http-port", 8000, "Port of Triton's HTTP/REST endpoint")
@port_option("--metrics-port", 8002, "Port of Triton's Prometheus metrics endpoint")
@click.option(
    "--torch-threads",
    type=click.IntRange(min=1),
    metavar="N",
    help="CPU threads per model instance.  [default: CPUs / number of models, at least 1]",
)
@click.option(
    "--ready-timeout",
    type=click.FloatRange(min=0),
    default=300.0,
    show_default=True,
    metavar="SECONDS",
    help="How long to wait for every model to be READY before giving up.",
)
@click.option(
    "--log-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write tritonserver's log here.  [default: <data-dir>/run/tritonserver.log]",
)
@json_option
def triton_start(
    model_repository: Path | None,
    device: Literal["auto", "cpu", "gpu"],
    grpc_port: int,
    http_port: int,
    metrics_port: int,
    torch_threads: int | None,
    ready_timeout: float,
    log_file: Path | None,
    as_json: bool,
) -> None:
    """Start tritonserver and wait until the models are ready.

    The server runs in the background on --host (loopback by default) and keeps running after
    this command returns; `alabel triton stop` stops it. Weights come from --models-dir
    (transformers format; `alabel models make-tiny` builds tiny random ones for trying things
    out). Returns once every model of the repository reports READY; if one fails to load, the
    server is stopped and its error (e.g. a model.py traceback) is shown. A --models-dir
    without florence2/, sam2/ and dinov2/ (each with a readable config.json) is refused before
    anything starts; without --models-dir the real checkpoints come from the Hugging Face cache
    or hub, and an unreachable hub without them cached is one error line. The log is appended
    to, never overwritten; `alabel up` adopts a server started here.

    Students exported by `alabel runs export` (into <data-dir>/triton-models) are served
    beside the repository's models; one exported while Triton runs loads at the next start.
    """
    from agentic_labeling.triton_server import TritonLaunch, default_model_repository, start_triton

    settings = current_settings()
    external = _external_url(settings)
    if external is not None:
        raise CliFailure(
            f"--triton-url {external} names an external Triton server; `alabel triton start`"
            " runs a local one (choose its ports with --grpc-port, --http-port, --metrics-port)",
            details=[f"to check the external server: alabel --triton-url {external} triton status"],
        )
    run_dir = settings.data_dir / "run"
    check_models_dir_setting(settings, model_repository or default_model_repository())
    _refuse_if_up_runs_triton(run_dir)
    state = _state_file(settings)
    with state.lock():
        running = state.load_running(on_stale=_report_stale)
        if running is not None:
            raise AlreadyExists(
                f"Triton is already running (pid {running.pid}, gRPC {running.address});"
                " `alabel triton stop` stops it",
                reason="TRITON_RUNNING",
            )
        launch = TritonLaunch(
            model_repository=model_repository or default_model_repository(),
            host=settings.host,
            grpc_port=grpc_port,
            http_port=http_port,
            metrics_port=metrics_port,
            models_dir=settings.models_dir,
            student_repository=settings.student_repository,
            log_file=log_file or run_dir / "tritonserver.log",
            torch_threads=torch_threads,
            max_image_pixels=settings.max_image_pixels,
            device=device,
            ready_timeout_s=ready_timeout,
            detached=True,
        )
        handle = start_triton(launch)
        try:
            state.save(handle)
        except BaseException:
            handle.stop()  # a server nobody can find again must not keep running
            raise
    status = handle.status()
    if as_json:
        click.echo(json.dumps({**handle.to_json(), "status": status.to_json()}, indent=2))
        return
    click.echo(f"Triton is ready (pid {handle.pid})")
    click.echo(f"  gRPC     {handle.address}   (--triton-url)")
    click.echo(f"  HTTP     {handle.http_url}")
    click.echo(f"  metrics  {handle.metrics_url}")
    click.echo(f"  log      {handle.log_file}")
    for model in status.models:
        click.echo(f"  model    {model.name} (version {model.version}) {model.state}")
    if not status.models:
        click.echo(f"  no models in {handle.model_repository}")


def check_models_dir_setting(settings: Settings, model_repository: Path) -> None:
    """A --models-dir without the weights of `model_repository`'s models is a bad setting
    (exit 2), reported before anything starts; `alabel up` checks with the same rule."""
    from agentic_labeling.cli.failures import BadSetting
    from agentic_labeling.errors import InvalidArgument
    from agentic_labeling.models.loading import check_models_dir
    from agentic_labeling.triton_server import repository_models

    if settings.models_dir is None:
        return
    try:
        check_models_dir(settings.models_dir, repository_models(model_repository))
    except InvalidArgument as error:
        raise BadSetting(error.message) from None


def _refuse_if_up_runs_triton(run_dir: Path) -> None:
    """`alabel up` already runs a Triton for this data directory: a second would die on its
    ports (or, on other ports, serve the same models twice)."""
    from agentic_labeling.cli.mesh_state import MeshStateFile

    mesh = MeshStateFile(run_dir / "mesh.json").load()
    ours = [c for c in (mesh.components if mesh else []) if c.name == "triton" and c.is_running()]
    if ours:
        raise AlreadyExists(
            f"the mesh started by `alabel up` runs Triton (pid {ours[0].pid}, gRPC"
            f" {ours[0].address}); `alabel down` stops the mesh",
            reason="TRITON_RUNNING",
        )


@triton.command("stop")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    metavar="SECONDS",
    help="Time given to in-flight inferences before the server is killed.",
)
def triton_stop(grace: float) -> None:
    """Stop the tritonserver that `alabel triton start` started.

    Sends SIGTERM, waits --grace seconds, then kills it. Nothing to stop is not an error. A
    server at an external --triton-url is never stopped.
    """
    settings = current_settings()
    state = _state_file(settings)
    with state.lock():
        handle = state.load_running(on_stale=_report_stale)
        if handle is None:
            click.echo(
                f"no Triton server started by `alabel triton start` under {settings.data_dir}"
            )
            return
        handle.stop(grace_s=grace)
        state.remove()
    click.echo(f"stopped Triton (pid {handle.pid}, gRPC {handle.address})")


@triton.command("status")
@json_option
def triton_status(as_json: bool) -> None:
    """Show whether Triton is live and each model's state.

    Asks the server at --triton-url when one is given, else the server `alabel triton start`
    started, else the default address. For each model: READY or the reason it is not, version,
    and its statistics since start (requests, executions and the average batch size,
    inference_count / execution_count). Exit status 0 when the server is live and every model
    is READY, 1 otherwise.
    """
    from agentic_labeling.triton_server import query_status

    settings = current_settings()
    handle = None
    if _external_url(settings) is None:
        handle = _state_file(settings).load_running(on_stale=_report_stale)
    address = handle.address if handle is not None else settings.triton_url
    status = query_status(address)
    if as_json:
        report = {**status.to_json(), "server": handle.to_json() if handle else None}
        click.echo(json.dumps(report, indent=2))
    else:
        _print_status(status, handle)
    if not status.all_ready:
        raise click.exceptions.Exit(1)


def _print_status(status: TritonStatus, handle: TritonHandle | None) -> None:
    started = f" (started by alabel, pid {handle.pid})" if handle is not None else ""
    if not status.live:
        click.echo(f"Triton at {status.address}{started}: not reachable ({status.error})")
        return
    click.echo(
        f"Triton at {status.address}{started}: live, {'ready' if status.ready else 'NOT ready'}"
    )
    if not status.models:
        click.echo("  no models")
        return
    rows = [("MODEL", "VERSION", "STATE", "REQUESTS", "FAILED", "EXECUTIONS", "AVG BATCH")]
    for m in status.models:
        average = m.average_batch_size
        rows.append(
            (
                m.name,
                m.version,
                m.state if m.ready else f"{m.state}: {m.reason}".rstrip(": "),
                str(m.requests),
                str(m.failed_requests),
                str(m.execution_count),
                f"{average:.2f}" if average is not None else "-",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        click.echo("  " + "  ".join([*cells, row[-1]]))
