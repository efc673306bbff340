"""Commands that read and curate the registry: search, objects, validate, stats, reconcile."""

from __future__ import annotations

import json
from pathlib import Path

import click

from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import filter_option, json_option, yes_option
from agentic_labeling.cli.planned import PlannedCommand
from agentic_labeling.cli.settings_options import current_settings

__all__ = ["objects", "registry", "search", "stats", "validate"]


@click.command(
    "search",
    cls=PlannedCommand,
    plan="finds the registered objects most similar to an object or an image",
    epilog="""\b
Examples:
  alabel search --like 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15
  alabel search --like query.jpg --filter 'category = "car"' --top-k 20 --json""",
)
@click.option(
    "--like",
    required=True,
    metavar="OBJECT_ID|IMAGE",
    help="An object id from the registry, or an image file (embedded with DINOv2 first).",
)
@filter_option
@click.option(
    "--top-k",
    type=click.IntRange(1, 1000),
    default=10,
    show_default=True,
    help="How many results.",
)
@click.option(
    "--exact",
    is_flag=True,
    help="Scan every vector instead of the HNSW index (slow, exact; for checking recall).",
)
@json_option
def search(**options: object) -> None:
    """Find objects similar to an object or an image.

    Similarity is the cosine between DINOv2 embeddings, searched in Qdrant; --filter is applied
    inside the search, so the top-k are all matches. Prints object id, category, score, source.
    """


@click.group(cls=AlabelGroup)
def objects() -> None:
    """List, show and delete registered objects."""


@objects.command(
    "list",
    cls=PlannedCommand,
    plan="lists registered objects with filters, ordering and paging",
    epilog="""\b
Examples:
  alabel objects list --filter 'category = "car" AND is_validated = false'
  alabel objects list --order-by 'confidence desc' --limit 50 --json""",
)
@filter_option
@click.option(
    "--order-by",
    metavar="FIELD [asc|desc],...",
    help="Sort order, e.g. 'confidence desc, create_time'.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    metavar="N",
    help="Show at most N objects.",
)
@json_option
def objects_list(**options: object) -> None:
    """List registered objects, filtered and sorted.

    Shows id, category, confidence, bbox, source and validation of each.
    """


@objects.command(
    "get",
    cls=PlannedCommand,
    plan="shows one object with its box, mask, track and validation",
)
@click.argument("object_id")
@click.option(
    "--save-mask",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the object's mask to FILE as a PNG.",
)
@json_option
def objects_get(**options: object) -> None:
    """Show every field of one object.

    OBJECT_ID is the object's UUID; --save-mask also writes its mask.
    """


@objects.command(
    "delete",
    cls=PlannedCommand,
    plan="deletes objects with their embeddings and mask files",
)
@click.argument("object_ids", metavar="OBJECT_ID...", nargs=-1, required=True)
@yes_option
def objects_delete(**options: object) -> None:
    """Delete objects with their embeddings and masks.

    Removes each object's row, its vector in Qdrant and its mask file, together.
    """


@click.command(
    "validate",
    cls=PlannedCommand,
    plan="marks objects as reviewed, optionally correcting their category",
    epilog="""\b
Examples:
  alabel validate 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 --by alice
  alabel validate --filter 'category = "dog" AND confidence >= 0.9' --by alice
  alabel validate 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 --by alice --category cat""",
)
@click.argument("object_ids", metavar="[OBJECT_ID]...", nargs=-1)
@filter_option
@click.option("--by", "validated_by", required=True, metavar="NAME", help="Who validates.")
@click.option(
    "--category",
    metavar="NAME",
    help="Correct the category of the validated objects to NAME.",
)
def validate(**options: object) -> None:
    """Mark objects as validated by a reviewer.

    Validates the objects given by id, or every object matching --filter. Validated objects carry
    who validated them and when; datasets can be limited to them.
    """


@click.command(
    "stats",
    cls=PlannedCommand,
    plan="counts objects per category, source and model, with the validated share",
)
@filter_option
@json_option
def stats(**options: object) -> None:
    """Count objects per category, source and model.

    Also shows the validated fraction and a histogram of confidences.
    """


@click.group(cls=AlabelGroup)
def registry() -> None:
    """Maintain the registry's stores."""


@registry.command(
    "reconcile",
    epilog="""\b
Examples:
  alabel registry reconcile --dry-run
  alabel --registry-url 10.0.0.5:50051 registry reconcile --json""",
)
@click.option("--dry-run", is_flag=True, help="Report what would be fixed; change nothing.")
@json_option
def registry_reconcile(dry_run: bool, as_json: bool) -> None:
    """Repair Qdrant and the mask files from Postgres.

    Postgres is the source of truth. Applies vector writes still pending in the outbox,
    restores vectors that reached Postgres but not Qdrant, removes vectors and mask files of
    objects that no longer exist, clears has_mask where a mask file is lost, and reports what it
    fixed. Safe to run at any time; the registry also runs it at start-up.
    """
    # Imported here so that `alabel --help` loads no gRPC code.
    import grpc

    from agentic_labeling.servers.error_status import describe_rpc_error
    from agentic_labeling.v1 import registry_pb2, registry_pb2_grpc

    settings = current_settings()
    try:
        with grpc.insecure_channel(settings.registry_url) as channel:
            stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
            report = stub.ReconcileStores(
                registry_pb2.ReconcileStoresRequest(dry_run=dry_run), timeout=3600
            )
    except grpc.RpcError as err:
        raise CliFailure(
            f"registry at {settings.registry_url}: {describe_rpc_error(err)}"
        ) from None
    counts = {
        "outbox_applied": report.outbox_applied,
        "vectors_restored": report.vectors_restored,
        "vectors_removed": report.vectors_removed,
        "masks_missing": report.masks_missing,
        "masks_removed": report.masks_removed,
    }
    if as_json:
        click.echo(json.dumps({"dry_run": dry_run, **counts}))
        return
    verb = "would fix" if dry_run else "fixed"
    click.echo(f"reconcile {verb}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
