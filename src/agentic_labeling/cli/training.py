"""`alabel train`, `alabel runs ...`, `alabel evaluate`, `alabel suggest`: the training loop.

Training runs on the registry's host (the `[train]` extra there; ultralytics is AGPL-3.0) as
a long-running operation that these commands follow with a progress bar. A dataset is named
by its display name or `datasets/<uuid>`, a run by `runs/<uuid>`, its UUID or `latest` (the
newest run).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import filter_option, json_option
from agentic_labeling.cli.settings_options import current_settings

if TYPE_CHECKING:
    import grpc

    from agentic_labeling.v1 import training_pb2, training_pb2_grpc

__all__ = ["evaluate", "runs", "suggest", "train"]

_MAP50 = "mAP50"


@contextmanager
def _training_service() -> Iterator[tuple[grpc.Channel, training_pb2_grpc.TrainingServiceStub]]:
    """A channel and stub on --registry-url; a failed call inside becomes a CLI failure."""
    from agentic_labeling.cli.channels import server_channel
    from agentic_labeling.v1 import training_pb2_grpc

    settings = current_settings()
    with server_channel(
        "registry", settings.registry_url, max_message_bytes=settings.max_message_bytes
    ) as ch:
        yield ch, training_pb2_grpc.TrainingServiceStub(ch)  # type: ignore[no-untyped-call]


def _dataset_name(channel: grpc.Channel, name: str) -> str:
    """`datasets/<uuid>` of the dataset NAME means (display name or resource name)."""
    from agentic_labeling.cli.datasets import _find
    from agentic_labeling.v1 import dataset_pb2_grpc

    stub = dataset_pb2_grpc.DatasetServiceStub(channel)  # type: ignore[no-untyped-call]
    return _find(stub, name).name


LATEST_RUN = "latest"


def _run_name(stub: training_pb2_grpc.TrainingServiceStub, text: str) -> str:
    """`runs/<uuid>` for a UUID, a resource name or `latest`; a usage error otherwise (exit 2)."""
    from agentic_labeling.v1 import training_pb2

    if text.strip() == LATEST_RUN:
        newest = stub.ListRuns(training_pb2.ListRunsRequest(page_size=1), timeout=30).runs
        if not newest:
            raise click.BadParameter("there is no run yet: start one with `alabel train DATASET`")
        return str(newest[0].name)
    try:
        return f"runs/{uuid.UUID(text.strip().removeprefix('runs/'))}"
    except ValueError:
        raise click.BadParameter(
            f"{text!r} is not a run: give runs/<uuid>, its UUID or {LATEST_RUN!r} "
            "(`alabel runs list` shows them)"
        ) from None


def _state(run: training_pb2.TrainingRun) -> str:
    from agentic_labeling.v1 import training_pb2

    return training_pb2.RunState.Name(run.state).removeprefix("RUN_STATE_").lower()


def _figure(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.3f}"


def _mlflow_hint() -> str:
    from agentic_labeling.training.mlflow_runs import default_tracking_uri

    settings = current_settings()
    uri = settings.mlflow_uri or default_tracking_uri(settings.data_dir)
    return f"mlflow ui --backend-store-uri {uri}"


def _echo_run(run: training_pb2.TrainingRun) -> None:
    click.echo(f"{run.name}  ({_state(run)})")
    click.echo(f"  dataset: {run.dataset}  classes: {', '.join(run.class_names)}")
    click.echo(
        f"  model:   {run.model} ({run.task or '-'}), {run.epochs_completed}/{run.epochs} epochs, "
        f"image size {run.image_size}, batch {run.batch}, device {run.device}"
    )
    if run.weights_uri:
        click.echo(f"  weights: {run.weights_uri}")
    if run.error_message:
        click.echo(f"  error:   {run.error_message}")
    if run.metrics:
        shown = ", ".join(f"{k} {v:.4g}" for k, v in sorted(run.metrics.items()))
        click.echo(f"  metrics: {shown}")
    if run.mlflow_run_id:
        click.echo(f"  mlflow:  run {run.mlflow_run_id}; open it with: {_mlflow_hint()}")


def _echo_evaluation(evaluation: training_pb2.Evaluation) -> None:
    from agentic_labeling.cli.output import echo_table

    what = evaluation.run or evaluation.detection_model
    click.echo(
        f"{evaluation.name}: {what} on {evaluation.split} of {evaluation.dataset} "
        f"({evaluation.image_count} images)"
    )
    click.echo(f"  mAP50 {_figure(evaluation.map50)}  mAP50-95 {_figure(evaluation.map50_95)}")
    echo_table(
        ["CLASS", "AP50", "AP50-95", "PRECISION", "RECALL", "SUPPORT"],
        [
            [
                c.class_name,
                _figure(c.ap50),
                _figure(c.ap50_95),
                _figure(c.precision),
                _figure(c.recall),
                str(c.support),
            ]
            for c in evaluation.per_class
        ],
        indent="  ",
    )
    labels = list(evaluation.confusion_matrix.labels)
    if labels:
        click.echo("  confusion matrix (rows predicted, columns ground truth):")
        counts = list(evaluation.confusion_matrix.counts)
        size = len(labels)
        echo_table(
            ["", *labels],
            [[labels[r], *(str(counts[r * size + c]) for c in range(size))] for r in range(size)],
            indent="    ",
        )


# --- alabel train ------------------------------------------------------------------------------


@click.command(
    "train",
    epilog="""\b
Examples:
  alabel train street --epochs 50
  alabel train street --model yolo11s-seg.yaml --image-size 1024 --device 0
  alabel train street --model /models/best.pt --epochs 20 --no-wait

\b
Ctrl-C cancels the run: the server stops it at the next epoch boundary.
One training at a time per device; later ones wait QUEUED in the order they came.""",
)
@click.argument("dataset")
@click.option(
    "--model",
    default="yolo11n.yaml",
    show_default=True,
    help="ultralytics model spec: a .yaml trains from scratch (no download), a .pt file on the"
    " registry's host fine-tunes; a -seg model trains on masks.",
)
@click.option(
    "--epochs",
    type=click.IntRange(1, 10_000),
    default=50,
    show_default=True,
    help="Passes over the training split.",
)
@click.option(
    "--image-size",
    type=click.IntRange(32, 8192),
    default=640,
    show_default=True,
    help="Training image size in pixels (a multiple of 32).",
)
@click.option(
    "--batch",
    type=click.IntRange(-1, 1024),
    default=16,
    show_default=True,
    help="Images per batch; -1: ultralytics chooses from the device's memory.",
)
@click.option(
    "--device",
    default="auto",
    show_default=True,
    help="cpu, a CUDA device index such as 0, or auto (a GPU when the registry's host has one).",
)
@click.option("--no-wait", is_flag=True, help="Print the run and its operation, and return.")
@json_option
def train(
    dataset: str,
    model: str,
    epochs: int,
    image_size: int,
    batch: int,
    device: str,
    no_wait: bool,
    as_json: bool,
) -> None:
    """Train a YOLO model on the built dataset DATASET.

    Shows a progress bar per epoch with the losses and mAP so far, and ends with the run's
    name, weights and metrics. Parameters, per-epoch metrics and artifacts are logged to MLflow.
    """
    from agentic_labeling.cli.operations import follow
    from agentic_labeling.cli.output import echo_json, message_json
    from agentic_labeling.v1 import common_pb2, training_pb2

    if image_size % 32:
        raise click.BadParameter(
            f"{image_size} is not a multiple of 32 (try {image_size // 32 * 32 or 32})",
            param_hint="--image-size",
        )
    if batch == 0:
        raise click.BadParameter("0 images per batch; give -1 or 1..1024", param_hint="--batch")
    with _training_service() as (channel, stub):
        operation = stub.StartTraining(
            training_pb2.StartTrainingRequest(
                dataset=_dataset_name(channel, dataset),
                model=model,
                epochs=epochs,
                image_size=image_size,
                batch=batch,
                device="" if device == "auto" else device,
                request_id=str(uuid.uuid4()),
            ),
            timeout=60,
        )
        progress = common_pb2.OperationProgress()
        operation.metadata.Unpack(progress)
        run_name = progress.target
        if no_wait:
            if as_json:
                echo_json({"run": run_name, "operation": operation.name})
            else:
                click.echo(f"started {run_name} (operation {operation.name})")
                click.echo(f"  follow it: alabel runs show {run_name}")
            return
        follow(channel, operation, training_pb2.TrainingRun(), what=f"training {run_name}")
        run = stub.GetRun(training_pb2.GetRunRequest(name=run_name), timeout=30)
    if as_json:
        echo_json(message_json(run))
        return
    _echo_run(run)


# --- alabel runs ---------------------------------------------------------------------------------


@click.group(
    cls=AlabelGroup,
    epilog="""\b
Examples:
  alabel runs list
  alabel runs show latest
  alabel runs show runs/3f2b...
  alabel runs export latest""",
)
def runs() -> None:
    """Training runs: list, show, export to Triton.

    Every run is also an MLflow run; `alabel runs show` prints how to open MLflow's UI.
    """


def _all_runs(stub: training_pb2_grpc.TrainingServiceStub) -> list[training_pb2.TrainingRun]:
    from agentic_labeling.v1 import training_pb2

    found: list[training_pb2.TrainingRun] = []
    token = ""
    while True:
        page = stub.ListRuns(
            training_pb2.ListRunsRequest(page_size=1000, page_token=token), timeout=60
        )
        found.extend(page.runs)
        token = page.next_page_token
        if not token:
            return found


@runs.command("list")
@json_option
def runs_list(as_json: bool) -> None:
    """List training runs, newest first, with their state and mAP."""
    from agentic_labeling.cli.output import echo_json, echo_table, message_json, short_id

    with _training_service() as (_, stub):
        found = _all_runs(stub)
    if as_json:
        echo_json([message_json(r) for r in found])
        return
    rows = [
        [
            short_id(r.name),
            _state(r),
            short_id(r.dataset),
            r.model,
            f"{r.epochs_completed}/{r.epochs}",
            _figure(r.metrics[_MAP50]) if _MAP50 in r.metrics else "-",
            r.create_time.ToDatetime().strftime("%Y-%m-%d %H:%M"),
        ]
        for r in found
    ]
    echo_table(["RUN", "STATE", "DATASET", "MODEL", "EPOCHS", "mAP50", "CREATED (UTC)"], rows)
    click.echo(f"{len(found)} runs")


@runs.command("show")
@click.argument("run")
@json_option
def runs_show(run: str, as_json: bool) -> None:
    """Show run RUN: parameters, metrics, weights, its evaluations and its MLflow run."""
    from agentic_labeling.cli.output import echo_json, message_json
    from agentic_labeling.v1 import training_pb2

    with _training_service() as (_, stub):
        name = _run_name(stub, run)
        found = stub.GetRun(training_pb2.GetRunRequest(name=name), timeout=30)
        evaluations = stub.ListEvaluations(
            training_pb2.ListEvaluationsRequest(run=name, page_size=1000), timeout=30
        ).evaluations
    if as_json:
        echo_json(
            {"run": message_json(found), "evaluations": [message_json(e) for e in evaluations]}
        )
        return
    _echo_run(found)
    for evaluation in evaluations:
        _echo_evaluation(evaluation)


@runs.command(
    "export",
    epilog="""\b
Examples:
  alabel runs export latest
  alabel runs export latest --model-name yolo-street
  alabel runs export runs/3f2b... --model-repository /srv/triton/models""",
)
@click.argument("run")
@click.option(
    "--model-repository",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    metavar="DIR",
    help="Triton model repository on the registry's host to add the model to.  [default: the"
    " registry's <data-dir>/triton-models, served by `alabel up` and `alabel triton start`]",
)
@click.option(
    "--model-name",
    default="yolo",
    show_default=True,
    help="Triton model name, for `alabel label --detector`.",
)
@json_option
def runs_export(run: str, model_repository: Path | None, model_name: str, as_json: bool) -> None:
    """Export run RUN to ONNX as a Triton model (a student detector).

    RUN is runs/<uuid>, its UUID, or latest. By default the model goes to the registry's
    <data-dir>/triton-models, which Triton serves beside florence2, sam2 and dinov2 from its
    next start on (`alabel down` then `alabel up`, or `alabel triton stop` then `alabel triton
    start`); then `alabel label DIR --classes ... --detector yolo` labels with it. A model of
    the same name is replaced.
    """
    from agentic_labeling.cli.operations import follow
    from agentic_labeling.cli.output import echo_json, message_json
    from agentic_labeling.v1 import training_pb2

    with _training_service() as (channel, stub):
        name = _run_name(stub, run)
        operation = stub.ExportRun(
            training_pb2.ExportRunRequest(
                name=name,
                model_repository=str(model_repository.resolve()) if model_repository else "",
                model_name=model_name,
            ),
            timeout=30,
        )
        written = follow(
            channel, operation, training_pb2.ExportRunResponse(), what=f"exporting {name}"
        )
    if as_json:
        echo_json(message_json(written))
        return
    click.echo(f"wrote Triton model {written.model_name} to {written.model_dir}")
    click.echo(f"  classes: {', '.join(written.class_names)}")
    # Triton runs with model control mode none: it reads its repositories only when it starts.
    if model_repository is None:
        click.echo(
            "Triton loads it at its next start: `alabel down` then `alabel up` (or `alabel"
            " triton stop` then `alabel triton start`); then label with"
            f" `alabel label DIR --classes ... --detector {written.model_name}`"
        )
    else:
        click.echo(f"Triton loads it at its next start on {model_repository}")


# --- alabel evaluate -----------------------------------------------------------------------------


@click.command(
    "evaluate",
    epilog="""\b
Examples:
  alabel evaluate street --run runs/3f2b...
  alabel evaluate street --detection-model florence2 --split test --json""",
)
@click.argument("dataset")
@click.option(
    "--run",
    "run",
    metavar="RUN",
    help="Score the weights of this training run (runs/<uuid>, its UUID or latest).",
)
@click.option(
    "--detection-model",
    metavar="NAME",
    help="Score the registry's objects of this detection model (e.g. florence2).",
)
@click.option(
    "--split",
    type=click.Choice(["train", "val", "test"]),
    default="val",
    show_default=True,
    help="Split whose validated objects are the ground truth.",
)
@click.option(
    "--iou",
    type=click.FloatRange(0, 1, min_open=True),
    default=0.5,
    show_default=True,
    help="IoU at which a prediction matches a box, for the confusion matrix.",
)
@json_option
def evaluate(
    dataset: str,
    run: str | None,
    detection_model: str | None,
    split: str,
    iou: float,
    as_json: bool,
) -> None:
    """Score predictions against the validated objects of DATASET (COCO protocol).

    Give --run (a trained model) or --detection-model (the auto-labeller). Prints mAP50,
    mAP50-95, a per-class table and a confusion matrix; the figures are stored and logged to
    MLflow.
    """
    from agentic_labeling.cli.operations import follow
    from agentic_labeling.cli.output import echo_json, message_json
    from agentic_labeling.v1 import training_pb2

    if (run is None) == (detection_model is None):
        raise click.UsageError("give exactly one of --run and --detection-model")
    with _training_service() as (channel, stub):
        source: dict[str, Any] = (
            {"run": _run_name(stub, run)}
            if run is not None
            else {"detection_model": detection_model}
        )
        operation = stub.Evaluate(
            training_pb2.EvaluateRequest(
                dataset=_dataset_name(channel, dataset),
                split=split,
                iou_threshold=iou,
                request_id=str(uuid.uuid4()),
                **source,
            ),
            timeout=30,
        )
        result = follow(
            channel, operation, training_pb2.Evaluation(), what=f"evaluating on {dataset}"
        )
    if as_json:
        echo_json(message_json(result))
        return
    _echo_evaluation(result)


# --- alabel suggest ------------------------------------------------------------------------------


@click.command(
    "suggest",
    epilog="""\b
Examples:
  alabel suggest --n 50
  alabel suggest --run runs/3f2b... --disagreement 1 --uncertainty 0.5
  alabel suggest --filter 'category = "car"' --json""",
)
@click.option(
    "--n",
    "count",
    type=click.IntRange(1, 1000),
    default=50,
    show_default=True,
    help="How many suggestions.",
)
@filter_option
@click.option(
    "--uncertainty",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Weight of confidence near the threshold (all weights 0: equal).",
)
@click.option(
    "--diversity",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Weight of being unlike validated objects (DINOv2 embeddings).",
)
@click.option(
    "--disagreement",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Weight of disagreement (with --run: trained model vs auto-labels).",
)
@click.option(
    "--run",
    "run",
    metavar="RUN",
    help="A succeeded run whose predictions disagree (refused while a training holds the "
    "run's device).",
)
@click.option(
    "--threshold",
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
    default=0.5,
    show_default=True,
    help="Confidence at which a detection is kept; uncertainty peaks here.",
)
@json_option
def suggest(
    count: int,
    filter_expr: str | None,
    uncertainty: float,
    diversity: float,
    disagreement: float,
    run: str | None,
    threshold: float,
    as_json: bool,
) -> None:
    """Suggest what to review next (active learning).

    Ranks unvalidated objects (and images where a trained model found an object the
    auto-labels lack) by uncertainty, diversity and disagreement, and prints each with its
    reasons.
    """
    from agentic_labeling.cli.output import echo_json, echo_table, message_json
    from agentic_labeling.v1 import training_pb2

    with _training_service() as (_, stub):
        response = stub.SuggestForReview(
            training_pb2.SuggestForReviewRequest(
                filter=filter_expr or "",
                count=count,
                strategy=training_pb2.ReviewStrategy(
                    uncertainty=uncertainty, diversity=diversity, disagreement=disagreement
                ),
                run=_run_name(stub, run) if run is not None else "",
                decision_threshold=threshold,
            ),
            timeout=120,
        )
    if as_json:
        echo_json([message_json(s) for s in response.suggestions])
        return
    echo_table(["SCORE", "OBJECT", "CLASS", "BOX", "WHY"], _suggestion_rows(response.suggestions))
    click.echo(f"{len(response.suggestions)} suggestions")


def _suggestion_rows(suggestions: Sequence[training_pb2.ReviewSuggestion]) -> list[list[str]]:
    from agentic_labeling.cli.output import bbox_text

    rows = []
    for s in suggestions:
        if s.HasField("object"):
            what, name, box = s.object.name, s.object.category_name, bbox_text(s.object.bbox)
        else:
            what = f"{s.source} frame {s.frame_index} (missed)"
            name, box = s.missed_class_name, bbox_text(s.missed_box)
        rows.append([f"{s.score:.3f}", what, name, box, "; ".join(s.reasons)])
    return rows
