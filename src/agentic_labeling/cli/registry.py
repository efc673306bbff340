"""Commands that read and curate the registry: search, objects, validate, stats, reconcile.

Each command opens one channel to --registry-url (and, for `search --like IMAGE`, one to
--orchestrator-url), makes its calls, and turns a failed call into one clear line (code,
message, field) with exit status 1. gRPC and the generated stubs are imported when a command
runs, so that `alabel --help` stays fast.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import filter_option, json_option, yes_option
from agentic_labeling.cli.settings_options import current_settings

if TYPE_CHECKING:
    from agentic_labeling.v1 import registry_pb2, registry_pb2_grpc

__all__ = ["objects", "registry", "registry_stub", "search", "stats", "validate"]

# The registry's largest page, and how many objects one ValidateObjects call carries.
_PAGE_SIZE = 1000
_VALIDATE_CHUNK = 500


@contextmanager
def registry_stub() -> Iterator[registry_pb2_grpc.RegistryServiceStub]:
    """A stub on --registry-url; a failed call inside becomes one clear CLI failure."""
    from agentic_labeling.cli.channels import server_channel
    from agentic_labeling.v1 import registry_pb2_grpc

    settings = current_settings()
    with server_channel(
        "registry", settings.registry_url, max_message_bytes=settings.max_message_bytes
    ) as ch:
        yield registry_pb2_grpc.RegistryServiceStub(ch)  # type: ignore[no-untyped-call]


def _object_names(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[str, ...]:
    """Object ids (`<uuid>` or `objects/<uuid>`) -> canonical `objects/<uuid>` names."""
    from agentic_labeling.cli.output import object_name

    names = []
    for value in values:
        name = object_name(value)
        if name is None:
            raise click.BadParameter(
                f"{value!r} is not an object id (a UUID or objects/UUID)", ctx, param
            )
        names.append(name)
    return tuple(dict.fromkeys(names))


class _SourceNames:
    """Display names of sources (the file names), asked once each, for tables."""

    def __init__(self, stub: registry_pb2_grpc.RegistryServiceStub) -> None:
        self._stub = stub
        self._names: dict[str, str] = {}

    def __call__(self, source: str) -> str:
        import grpc

        from agentic_labeling.cli.output import short_id
        from agentic_labeling.v1 import registry_pb2

        if source not in self._names:
            try:
                found = self._stub.GetSource(registry_pb2.GetSourceRequest(name=source), timeout=30)
                self._names[source] = found.display_name or short_id(source)
            except grpc.RpcError:
                self._names[source] = short_id(source)  # deleted meanwhile: show the id
        return self._names[source]


def _list_objects(
    stub: registry_pb2_grpc.RegistryServiceStub,
    *,
    filter_expr: str | None,
    order_by: str | None = None,
    limit: int | None = None,
) -> tuple[list[registry_pb2.LabeledObject], int]:
    """Objects matching the filter, page after page up to `limit`; and how many match."""
    from agentic_labeling.v1 import registry_pb2

    found: list[registry_pb2.LabeledObject] = []
    token = ""
    total = 0
    while limit is None or len(found) < limit:
        size = _PAGE_SIZE if limit is None else min(_PAGE_SIZE, limit - len(found))
        page = stub.ListObjects(
            registry_pb2.ListObjectsRequest(
                page_size=size,
                page_token=token,
                filter=filter_expr or "",
                order_by=order_by or "",
            ),
            timeout=60,
        )
        found.extend(page.objects)
        total = page.total_size
        token = page.next_page_token
        if not token:
            break
    return found, total


def _object_rows(
    found: Sequence[registry_pb2.LabeledObject], source_name: Callable[[str], str]
) -> list[list[str]]:
    from agentic_labeling.cli.output import bbox_text, short_id

    return [
        [
            short_id(o.name),
            o.category_name,
            f"{o.confidence:.3f}",
            bbox_text(o.bbox),
            source_name(o.source),
            f"yes ({o.validated_by})" if o.is_validated else "no",
        ]
        for o in found
    ]


_OBJECT_HEADERS = ("OBJECT", "CATEGORY", "CONF", "BBOX (x,y,w,h)", "SOURCE", "VALIDATED")


@click.command(
    "search",
    epilog="""\b
Examples:
  alabel search --like 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15
  alabel search --like objects/3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 --top-k 5
  alabel search --like query.jpg --filter 'category = "car"' --top-k 20 --json""",
)
@click.option(
    "--like",
    required=True,
    metavar="OBJECT_ID|IMAGE",
    help="An object id from the registry (UUID or objects/UUID), or an image file (embedded"
    " whole with DINOv2 on the orchestrator at --orchestrator-url first).",
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
def search(like: str, filter_expr: str | None, top_k: int, exact: bool, as_json: bool) -> None:
    """Find objects similar to an object or an image.

    Similarity is the cosine between DINOv2 embeddings, searched in Qdrant; --filter is applied
    inside the search, so the top-k are all matches. An object is never its own result.
    Prints score, object id, category, source and confidence, most similar first.
    """
    from agentic_labeling.cli.output import echo_json, message_json, object_name, short_id
    from agentic_labeling.v1 import registry_pb2

    request = registry_pb2.SearchSimilarRequest(filter=filter_expr or "", top_k=top_k, exact=exact)
    image = Path(like)
    name = object_name(like)
    if image.is_file():
        request.vector.values.extend(_embed_image(image))
        query: dict[str, Any] = {"image": str(image)}
    elif name is not None:
        request.object = name
        query = {"object": name}
    else:
        raise click.BadParameter(
            f"{like!r} is neither an object id (UUID or objects/UUID) nor an image file",
            param_hint="'--like'",
        )
    with registry_stub() as stub:
        response = stub.SearchSimilar(request, timeout=120)
        source_name = _SourceNames(stub)
        if as_json:
            results = [
                {"score": r.score, "object": message_json(r.object)} for r in response.results
            ]
            echo_json({"query": query, "results": results})
            return
        if not response.results:
            click.echo("no similar objects found")
            return
        from agentic_labeling.cli.output import echo_table

        echo_table(
            ("SCORE", "OBJECT", "CATEGORY", "SOURCE", "CONF"),
            [
                [
                    f"{r.score:.4f}",
                    short_id(r.object.name),
                    r.object.category_name,
                    source_name(r.object.source),
                    f"{r.object.confidence:.3f}",
                ]
                for r in response.results
            ],
        )


def _embed_image(path: Path) -> list[float]:
    """The DINOv2 embedding of a whole image, from the orchestrator's Embed."""
    from agentic_labeling.cli.channels import server_channel
    from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc

    settings = current_settings()
    try:
        data = path.read_bytes()
    except OSError as error:
        raise click.BadParameter(
            f"cannot read {path}: {error.strerror}", param_hint="'--like'"
        ) from None
    with server_channel(
        "orchestrator", settings.orchestrator_url, max_message_bytes=settings.max_message_bytes
    ) as ch:
        stub = labeling_pb2_grpc.LabelingServiceStub(ch)  # type: ignore[no-untyped-call]
        response = stub.Embed(
            labeling_pb2.EmbedRequest(image=common_pb2.Image(data=data)), timeout=120
        )
    return list(response.embeddings[0].values)


@click.group(cls=AlabelGroup)
def objects() -> None:
    """List, show and delete registered objects."""


@objects.command(
    "list",
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
def objects_list(filter_expr: str | None, order_by: str | None, limit: int, as_json: bool) -> None:
    """List registered objects, filtered and sorted.

    Shows id, category, confidence, bbox, source (its file name) and validation of each, and
    how many objects match in all. Pages through the registry up to --limit.
    """
    from agentic_labeling.cli.output import echo_json, echo_table, message_json

    with registry_stub() as stub:
        found, total = _list_objects(stub, filter_expr=filter_expr, order_by=order_by, limit=limit)
        if as_json:
            echo_json({"objects": [message_json(o) for o in found], "total_size": total})
            return
        if not found:
            click.echo("no objects" + (" match the filter" if filter_expr else ""))
            return
        echo_table(_OBJECT_HEADERS, _object_rows(found, _SourceNames(stub)))
    more = f" (--limit {limit}; more match)" if total > len(found) else ""
    click.echo(f"{len(found)} of {total} objects{more}")


@objects.command(
    "get",
    epilog="""\b
Examples:
  alabel objects get 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15
  alabel objects get objects/3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 --save-mask mask.png --json""",
)
@click.argument("object_id", callback=lambda ctx, p, v: _object_names(ctx, p, [v])[0])
@click.option(
    "--save-mask",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the object's mask to FILE as a PNG (the size of its source image).",
)
@json_option
def objects_get(object_id: str, save_mask: Path | None, as_json: bool) -> None:
    """Show every field of one object.

    OBJECT_ID is the object's UUID (or objects/UUID); --save-mask also writes its mask.
    """
    from agentic_labeling.cli.output import bbox_text, echo_json, message_json
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        found = stub.GetObject(registry_pb2.GetObjectRequest(name=object_id), timeout=30)
        source = _SourceNames(stub)(found.source)
        mask = None
        if save_mask is not None:
            if not found.has_mask:
                raise CliFailure(f"{object_id} has no mask; nothing written to {save_mask}")
            mask = stub.GetObjectMask(registry_pb2.GetObjectMaskRequest(name=object_id), timeout=60)
    if mask is not None and save_mask is not None:
        try:
            save_mask.write_bytes(mask.png)
        except OSError as error:
            raise CliFailure(f"cannot write {save_mask}: {error.strerror}") from None
    if as_json:
        data = message_json(found)
        data["mask_file"] = str(save_mask) if mask is not None else None
        echo_json(data)
        return
    validated = (
        f"yes, by {found.validated_by} at {found.validate_time.ToJsonString()}"
        if found.is_validated
        else "no"
    )
    fields = [
        ("object", found.name),
        ("category", f"{found.category_name} ({found.category})"),
        ("confidence", f"{found.confidence:.4f}"),
        ("bbox (x,y,w,h)", bbox_text(found.bbox)),
        ("area", f"{found.area:.1f} px"),
        ("source", f"{found.source} ({source})"),
        ("frame", str(found.frame_index)),
        ("mask", "yes" if found.has_mask else "no"),
        ("embedding", "yes" if found.has_embedding else "no"),
        ("quality", f"{found.quality_score:.4f}"),
        ("model", found.detection_model),
        ("validated", validated),
        ("track", found.track or "-"),
        ("created", found.create_time.ToJsonString()),
        ("updated", found.update_time.ToJsonString()),
    ]
    fields += [(f"attribute {k}", v) for k, v in sorted(found.attributes.items())]
    width = max(len(key) for key, _ in fields)
    for key, value in fields:
        click.echo(f"{key.ljust(width)}  {value}")
    if mask is not None:
        click.echo(f"mask written to {save_mask} ({mask.width}x{mask.height} PNG)")


@objects.command(
    "delete",
    epilog="""\b
Examples:
  alabel objects delete 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15
  alabel objects delete ID1 ID2 --yes""",
)
@click.argument(
    "object_ids", metavar="OBJECT_ID...", nargs=-1, required=True, callback=_object_names
)
@yes_option
def objects_delete(object_ids: tuple[str, ...], yes: bool) -> None:
    """Delete objects with their embeddings and masks.

    Removes each object's row, its vector in Qdrant and its mask file, together. Asks first
    unless --yes is given; without a terminal to ask on, --yes is required. Every object is
    tried; exit status 1 when any could not be deleted.
    """
    from agentic_labeling.cli.channels import failure_from_rpc_error

    count = f"{len(object_ids)} object{'s' if len(object_ids) != 1 else ''}"
    if not yes:
        if not sys.stdin.isatty():
            raise click.UsageError(f"deleting {count} needs --yes when not run at a terminal")
        click.confirm(f"Delete {count} with their masks and embeddings?", abort=True, err=True)
    import grpc

    from agentic_labeling.v1 import registry_pb2

    settings = current_settings()
    failed: list[CliFailure] = []
    with registry_stub() as stub:
        for name in object_ids:
            try:
                stub.DeleteObject(registry_pb2.DeleteObjectRequest(name=name), timeout=60)
            except grpc.RpcError as err:
                failed.append(failure_from_rpc_error(err, "registry", settings.registry_url))
                continue
            click.echo(f"deleted {name}")
    for failure in failed:
        failure.show()
    if failed:
        raise click.exceptions.Exit(1)


@click.command(
    "validate",
    epilog="""\b
Examples:
  alabel validate 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 --by alice
  alabel validate --filter 'category = "dog" AND confidence >= 0.9' --by alice
  alabel validate 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 --by alice --category cat
  alabel validate 3f2b9c1e-5d7a-4e0b-9a41-2c6f0d8e7b15 --by alice --category truck \\
      --create-category""",
)
@click.argument("object_ids", metavar="[OBJECT_ID]...", nargs=-1, callback=_object_names)
@filter_option
@click.option("--by", "validated_by", required=True, metavar="NAME", help="Who validates.")
@click.option(
    "--category",
    metavar="NAME",
    help="Correct the category of the validated objects to NAME (an existing category or"
    " one of its synonyms; see --create-category).",
)
@click.option(
    "--create-category",
    is_flag=True,
    help="Create the --category first when no category has that name.",
)
def validate(
    object_ids: tuple[str, ...],
    filter_expr: str | None,
    validated_by: str,
    category: str | None,
    create_category: bool,
) -> None:
    """Mark objects as validated by a reviewer.

    Validates the objects given by id, or every object matching --filter. Validated objects carry
    who validated them and when; datasets can be limited to them. With --category, each is
    also corrected to that category. The objects given by id are validated all or nothing.
    """
    if not object_ids and not filter_expr:
        raise click.UsageError("name the objects to validate: OBJECT_ID... or --filter")
    if not validated_by.strip():
        raise click.BadParameter("must not be empty", param_hint="'--by'")
    if create_category and not category:
        raise click.UsageError("--create-category needs --category NAME")
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        if category:
            _ensure_category(stub, category, create=create_category)
        names = list(object_ids)
        if filter_expr:
            matching, _ = _list_objects(stub, filter_expr=filter_expr)
            names += [o.name for o in matching if o.name not in object_ids]
        if not names:
            click.echo("no objects match the filter; nothing validated")
            return
        validated: list[registry_pb2.LabeledObject] = []
        for start in range(0, len(names), _VALIDATE_CHUNK):
            chunk = names[start : start + _VALIDATE_CHUNK]
            request = registry_pb2.ValidateObjectsRequest(
                validated_by=validated_by, is_validated=True
            )
            if category:
                request.corrections.extend(
                    registry_pb2.ObjectCorrection(object=name, category_name=category)
                    for name in chunk
                )
            else:
                request.names.extend(chunk)
            validated.extend(stub.ValidateObjects(request, timeout=120).objects)
    from agentic_labeling.cli.output import short_id

    for obj in validated:
        click.echo(f"validated {short_id(obj.name)}  {obj.category_name}  by {obj.validated_by}")
    what = f" as {category}" if category else ""
    click.echo(f"{len(validated)} object(s) validated by {validated_by}{what}")


def _ensure_category(
    stub: registry_pb2_grpc.RegistryServiceStub, name: str, *, create: bool
) -> None:
    """Check that category `name` exists before any object is touched; create it if asked."""
    import shlex

    from agentic_labeling.cli.categories import find_category
    from agentic_labeling.v1 import registry_pb2

    if find_category(stub, name) is not None:
        return
    if not create:
        raise CliFailure(
            f"category {name!r} does not exist; pass --create-category to create it, or run"
            f" `alabel categories create {shlex.quote(name)}` first"
        )
    stub.CreateCategory(
        registry_pb2.CreateCategoryRequest(category=registry_pb2.Category(display_name=name)),
        timeout=30,
    )
    click.echo(f"created category {name}")


@click.command(
    "stats",
    epilog="""\b
Examples:
  alabel stats
  alabel stats --filter 'confidence >= 0.5' --json""",
)
@filter_option
@json_option
def stats(filter_expr: str | None, as_json: bool) -> None:
    """Count objects per category, source and model.

    Also shows the validated fraction and a histogram of confidences.
    """
    from agentic_labeling.cli.output import echo_json, message_json
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        found = stub.GetStats(registry_pb2.GetStatsRequest(filter=filter_expr or ""), timeout=120)
    if as_json:
        echo_json(message_json(found))
        return
    _print_stats(found, filtered=bool(filter_expr))


def _print_stats(found: registry_pb2.Stats, *, filtered: bool) -> None:
    from agentic_labeling.cli.output import echo_table

    scope = " matching the filter" if filtered else ""
    click.echo(
        f"{found.object_count} objects{scope} in {found.source_count} sources,"
        f" {found.validated_fraction:.1%} validated"
    )
    if found.object_count == 0:
        return
    for title, entries in (
        ("category", found.per_category),
        ("source", found.per_source),
        ("model", found.per_model),
    ):
        click.echo("")
        echo_table(
            (title.upper(), "OBJECTS"),
            [[e.display_name or e.key, str(e.count)] for e in entries],
        )
    if found.confidence_histogram:
        click.echo("")
        click.echo("CONFIDENCE")
        peak = max(b.count for b in found.confidence_histogram) or 1
        for b in found.confidence_histogram:
            bar = "#" * round(30 * b.count / peak)
            click.echo(f"  {b.lower:.2f}-{b.upper:.2f}  {str(b.count).rjust(6)}  {bar}")


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

    from agentic_labeling.rpc_status import describe_rpc_error
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
