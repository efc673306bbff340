"""`alabel datasets ...`: datasets built from registered objects, split, exported, imported.

A dataset is named on the command line by its display name (what `create` was given) or by
its resource name `datasets/<uuid>`. Build, export and import are long-running operations on
the registry; the commands follow them with a progress bar and print the result. Paths:
`export --out` is relative to the registry's export root (`--export-root`, by default
DATA_DIR/exports), `import DIR` must be readable by the registry (it reads it itself).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import (
    filter_option,
    json_option,
    parse_name_list,
    parse_split_ratios,
    yes_option,
)
from agentic_labeling.cli.settings_options import current_settings

if TYPE_CHECKING:
    import grpc

    from agentic_labeling.v1 import dataset_pb2, dataset_pb2_grpc

__all__ = ["datasets"]

_FORMATS = {"yolo-detect": 1, "yolo-segment": 2, "coco": 3}  # dataset_pb2.ExportFormat
_LABEL_FORMATS = {"coco": 1, "yolo": 2}  # dataset_pb2.LabelFormat


@contextmanager
def _dataset_service() -> Iterator[tuple[grpc.Channel, dataset_pb2_grpc.DatasetServiceStub]]:
    """A channel and stub on --registry-url; a failed call inside becomes a CLI failure."""
    from agentic_labeling.cli.channels import server_channel
    from agentic_labeling.v1 import dataset_pb2_grpc

    settings = current_settings()
    with server_channel(
        "registry", settings.registry_url, max_message_bytes=settings.max_message_bytes
    ) as ch:
        yield ch, dataset_pb2_grpc.DatasetServiceStub(ch)  # type: ignore[no-untyped-call]


def _all_datasets(stub: dataset_pb2_grpc.DatasetServiceStub) -> list[dataset_pb2.Dataset]:
    from agentic_labeling.v1 import dataset_pb2

    found: list[dataset_pb2.Dataset] = []
    token = ""
    while True:
        page = stub.ListDatasets(
            dataset_pb2.ListDatasetsRequest(page_size=1000, page_token=token), timeout=60
        )
        found.extend(page.datasets)
        token = page.next_page_token
        if not token:
            return found


def _resource_name(text: str) -> str | None:
    """`datasets/<uuid>` for a UUID or a resource name; None for a display name."""
    candidate = text.removeprefix("datasets/")
    try:
        return f"datasets/{uuid.UUID(candidate)}"
    except ValueError:
        return None


def _find(stub: dataset_pb2_grpc.DatasetServiceStub, name: str) -> dataset_pb2.Dataset:
    """The dataset NAME means: by resource name or UUID, else the one with that display name."""
    from agentic_labeling.v1 import dataset_pb2

    resource = _resource_name(name)
    if resource is not None:
        found: dataset_pb2.Dataset = stub.GetDataset(
            dataset_pb2.GetDatasetRequest(name=resource), timeout=30
        )
        return found
    matches = [d for d in _all_datasets(stub) if d.display_name == name]
    if not matches:
        raise CliFailure(f"no dataset is named {name!r}; `alabel datasets list` shows them")
    if len(matches) > 1:
        raise CliFailure(
            f"{len(matches)} datasets are named {name!r}; give one of "
            + ", ".join(d.name for d in matches)
        )
    return matches[0]


def _state(dataset: dataset_pb2.Dataset) -> str:
    from agentic_labeling.v1 import dataset_pb2

    return dataset_pb2.DatasetState.Name(dataset.state).removeprefix("DATASET_STATE_").lower()


def _split_text(dataset: dataset_pb2.Dataset) -> str:
    stats = {s.split: s for s in dataset.split_stats}
    if not stats:
        return "-"
    counts = (stats[s].image_count if s in stats else 0 for s in ("train", "val", "test"))
    return " / ".join(str(count) for count in counts)


def _echo_dataset(dataset: dataset_pb2.Dataset, as_json: bool) -> None:
    from agentic_labeling.cli.output import echo_json, echo_table, message_json

    if as_json:
        echo_json(message_json(dataset))
        return
    ratios = dataset.split_ratios
    click.echo(f"{dataset.display_name}  ({dataset.name}, {_state(dataset)})")
    click.echo(f"  classes: {', '.join(dataset.class_names)}")
    click.echo(f"  filter:  {dataset.filter or '(all objects)'}")
    click.echo(
        f"  split:   train {ratios.train:g}, val {ratios.val:g}, test {ratios.test:g}; "
        f"seed {dataset.seed}"
    )
    if dataset.split_stats:
        headers = ["SPLIT", "IMAGES", "OBJECTS", *dataset.class_names]
        rows = [
            [
                s.split,
                str(s.image_count),
                str(s.object_count),
                *(str(s.objects_per_class.get(c, 0)) for c in dataset.class_names),
            ]
            for s in dataset.split_stats
        ]
        echo_table(headers, rows, indent="  ")


@click.group(
    cls=AlabelGroup,
    epilog="""\b
A typical session:
  alabel datasets create street --classes person,car --filter 'is_validated = true'
  alabel datasets build street
  alabel datasets export street --format yolo-segment --out street-yolo""",
)
def datasets() -> None:
    """Build datasets, split them, export YOLO or COCO.

    A dataset is a filter over objects, a class list (its order gives the class ids), split
    ratios and a seed. Building it snapshots the membership: frames of one source never cross
    splits, and the same seed over the same data gives the same split.
    """


@datasets.command("create")
@click.argument("name")
@click.option(
    "--classes",
    callback=parse_name_list,
    required=True,
    metavar="NAME,NAME...",
    help="Classes in id order (0, 1, ...); objects of other categories are left out."
    " Synonyms resolve to their category.",
)
@filter_option
@click.option(
    "--split",
    callback=parse_split_ratios,
    default="0.8,0.1,0.1",
    show_default=True,
    metavar="TRAIN,VAL,TEST",
    help="Fractions of sources per split; they must add up to 1.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the split.")
@click.option(
    "--group-by-source/--no-group-by-source",
    default=True,
    show_default=True,
    help="Keep all frames of a source in one split (no leakage between splits).",
)
@json_option
def datasets_create(
    name: str,
    classes: tuple[str, ...],
    filter_expr: str | None,
    split: tuple[float, float, float],
    seed: int,
    group_by_source: bool,
    as_json: bool,
) -> None:
    """Create dataset NAME from the objects matching a filter.

    Only the definition is stored; `alabel datasets build` fills it.
    """
    from agentic_labeling.v1 import dataset_pb2

    with _dataset_service() as (_, stub):
        if any(d.display_name == name for d in _all_datasets(stub)):
            raise CliFailure(f"a dataset named {name!r} exists already; pick another name")
        created = stub.CreateDataset(
            dataset_pb2.CreateDatasetRequest(
                dataset=dataset_pb2.Dataset(
                    display_name=name,
                    filter=filter_expr or "",
                    class_names=classes,
                    split_ratios=dataset_pb2.SplitRatios(
                        train=split[0], val=split[1], test=split[2]
                    ),
                    seed=seed,
                    grouping=dataset_pb2.SPLIT_GROUPING_SOURCE
                    if group_by_source
                    else dataset_pb2.SPLIT_GROUPING_FRAME,
                )
            ),
            timeout=30,
        )
    _echo_dataset(created, as_json)


@datasets.command("list")
@json_option
def datasets_list(as_json: bool) -> None:
    """List datasets with their classes and split sizes.

    Shows name, state, classes, images per split (train / val / test) and when each was last
    built.
    """
    from agentic_labeling.cli.output import echo_json, echo_table, message_json

    with _dataset_service() as (_, stub):
        found = _all_datasets(stub)
    if as_json:
        echo_json([message_json(d) for d in found])
        return
    rows = [
        [
            d.display_name,
            _state(d),
            ",".join(d.class_names),
            _split_text(d),
            d.build_time.ToDatetime().strftime("%Y-%m-%d %H:%M") if d.build_time.seconds else "-",
            d.name,
        ]
        for d in found
    ]
    echo_table(["NAME", "STATE", "CLASSES", "IMAGES T/V/T", "BUILT (UTC)", "ID"], rows)
    click.echo(f"{len(found)} datasets")


@datasets.command("get")
@click.argument("name")
@json_option
def datasets_get(name: str, as_json: bool) -> None:
    """Show one dataset and its objects per split and class."""
    with _dataset_service() as (_, stub):
        found = _find(stub, name)
    _echo_dataset(found, as_json)


@datasets.command("build")
@click.argument("name")
@json_option
def datasets_build(name: str, as_json: bool) -> None:
    """Snapshot the membership of a dataset and split it.

    Shows a progress bar. Rebuilding picks up objects registered or validated since the last
    build; the same seed over the same data gives the same split.
    """
    from agentic_labeling.cli.operations import follow
    from agentic_labeling.v1 import dataset_pb2

    with _dataset_service() as (channel, stub):
        dataset = _find(stub, name)
        operation = stub.BuildDataset(
            dataset_pb2.BuildDatasetRequest(name=dataset.name), timeout=30
        )
        built = follow(channel, operation, dataset_pb2.Dataset(), what=f"building {name}")
    _echo_dataset(built, as_json)


@datasets.command(
    "export",
    epilog="""\b
Examples:
  alabel datasets export street --format yolo-detect --out street-yolo
  alabel datasets export street --format coco --out street-coco --link symlink""",
)
@click.argument("name")
@click.option(
    "--format",
    "export_format",
    type=click.Choice(list(_FORMATS)),
    required=True,
    help="yolo-detect / yolo-segment: data.yaml with images/ and labels/ per split, as"
    " ultralytics reads them; coco: instances JSON per split with RLE masks.",
)
@click.option(
    "--out",
    required=True,
    metavar="DIR",
    help="Target directory, relative to the registry's export root (--export-root; default"
    " DATA_DIR/exports). Written in full under a temporary name, then renamed.",
)
@click.option(
    "--link",
    type=click.Choice(["copy", "symlink", "hardlink"]),
    default="copy",
    show_default=True,
    help="How images get into the export: copies (portable), symbolic links (same machine) or"
    " hard links (same file system).",
)
@click.option("--overwrite", is_flag=True, help="Replace DIR if it exists.")
@json_option
def datasets_export(
    name: str, export_format: str, out: str, link: str, overwrite: bool, as_json: bool
) -> None:
    """Export a built dataset as YOLO or COCO.

    Shows progress; DIR is written in full or not at all, never half-written.
    """
    from agentic_labeling.cli.operations import follow
    from agentic_labeling.cli.output import echo_json, message_json
    from agentic_labeling.v1 import dataset_pb2

    transfer = {"copy": 1, "symlink": 2, "hardlink": 3}[link]
    with _dataset_service() as (channel, stub):
        dataset = _find(stub, name)
        operation = stub.ExportDataset(
            dataset_pb2.ExportDatasetRequest(
                name=dataset.name,
                format=_FORMATS[export_format],  # type: ignore[arg-type]
                output_dir=out,
                image_transfer=transfer,  # type: ignore[arg-type]
                overwrite=overwrite,
            ),
            timeout=30,
        )
        written = follow(
            channel, operation, dataset_pb2.ExportDatasetResponse(), what=f"exporting {name}"
        )
    if as_json:
        echo_json(message_json(written))
        return
    click.echo(
        f"exported {written.image_count} images and {written.object_count} objects of {name} "
        f"as {export_format} to {written.path}"
    )
    click.echo(f"  load: {written.entry_point}")


@datasets.command("import")
@click.argument("path", metavar="PATH", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--format",
    "import_format",
    type=click.Choice(list(_LABEL_FORMATS)),
    required=True,
    help="coco: an instances JSON, or a directory with annotations/instances_*.json;"
    " yolo: a data.yaml, or the directory holding it.",
)
@click.option(
    "--by",
    "validated_by",
    default="import",
    show_default=True,
    metavar="NAME",
    help="Recorded as the validator of the imported objects.",
)
@json_option
def datasets_import(path: Path, import_format: str, validated_by: str, as_json: bool) -> None:
    """Import COCO or YOLO labels as validated objects.

    Reads the label set and its images from PATH (the registry reads it: it must be on the
    registry's machine). Use it to load ground truth for evaluation and review; an export
    imports back unchanged, and importing the same labels again adds nothing.
    """
    from agentic_labeling.cli.operations import follow
    from agentic_labeling.cli.output import echo_json, message_json
    from agentic_labeling.v1 import dataset_pb2

    resolved = path.resolve()
    # The same label set gets the same request id: an interrupted import resumes, a
    # repeated one creates nothing twice.
    request_id = uuid.uuid5(uuid.NAMESPACE_URL, f"alabel-import:{import_format}:{resolved}")
    with _dataset_service() as (channel, stub):
        operation = stub.ImportLabels(
            dataset_pb2.ImportLabelsRequest(
                format=_LABEL_FORMATS[import_format],  # type: ignore[arg-type]
                path=str(resolved),
                validated_by=validated_by,
                request_id=str(request_id),
            ),
            timeout=60,
        )
        counts = follow(
            channel, operation, dataset_pb2.ImportLabelsResponse(), what=f"importing {path}"
        )
    if as_json:
        echo_json(message_json(counts))
        return
    click.echo(
        f"imported {counts.objects_created} objects ({counts.sources_created} new images, "
        f"{counts.categories_created} new categories) from {path}"
    )


@datasets.command("delete")
@click.argument("name")
@yes_option
def datasets_delete(name: str, yes: bool) -> None:
    """Delete a dataset; its objects stay in the registry."""
    from agentic_labeling.v1 import dataset_pb2

    with _dataset_service() as (_, stub):
        dataset = _find(stub, name)
        if not yes:
            click.confirm(f"delete dataset {name} ({dataset.name})?", abort=True)
        stub.DeleteDataset(dataset_pb2.DeleteDatasetRequest(name=dataset.name), timeout=30)
    click.echo(f"deleted {name} ({dataset.name}); its objects stay in the registry")
