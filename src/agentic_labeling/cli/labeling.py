"""`alabel label`: stream images through the mesh and register what it finds.

The files are found first (a bad path is a usage error before any network call), then sent
through one AutoLabel stream (`label_stream`) and reported as they are answered
(`label_report`). gRPC, protobuf and rich are imported when the command runs, so that
`alabel --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path

import click

from agentic_labeling.cli.params import json_option, parse_name_list
from agentic_labeling.cli.settings_options import current_settings

__all__ = ["label"]


@click.command(
    "label",
    epilog="""\b
Examples:
  alabel label ./photos --classes person,car
  alabel label a.jpg b.png --classes "traffic light,bicycle" --box-threshold 0.4
  alabel label ./photos --classes cat --json > results.jsonl
  alabel --orchestrator-url 10.0.0.7:50052 label ./photos --classes cat --in-flight 32

\b
Exit status: 0 every image labelled or already registered; 1 at least one image failed, or
the orchestrator could not be reached or went away (re-run the same command to finish);
2 bad usage (an unreadable path, no images found); 130 interrupted.""",
)
@click.argument(
    "paths",
    metavar="PATH...",
    nargs=-1,
    required=True,
    type=click.Path(exists=True, readable=True, path_type=Path),
)
@click.option(
    "--classes",
    callback=parse_name_list,
    required=True,
    metavar="NAME,NAME...",
    help="Class names to detect, comma-separated (synonyms resolve to their category).",
)
@click.option(
    "--box-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=0.3,
    show_default=True,
    help="Drop detections whose confidence is below this.",
)
@click.option(
    "--max-objects",
    type=click.IntRange(min=0),
    default=0,
    metavar="N",
    help="Keep at most N objects per image, most confident first.  [default: the"
    " orchestrator's limit]",
)
@click.option(
    "--in-flight",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    metavar="N",
    help="Images in flight at once; more lets Triton batch more.",
)
@click.option(
    "--recursive/--no-recursive",
    default=True,
    show_default=True,
    help="Descend into sub-folders of folder PATHs.",
)
@click.option(
    "--masks/--no-masks",
    default=True,
    show_default=True,
    help="Segment each detected box with SAM2.",
)
@click.option(
    "--embeddings/--no-embeddings",
    default=True,
    show_default=True,
    help="Embed each object with DINOv2 (needed by `alabel search`).",
)
@json_option
def label(
    paths: tuple[Path, ...],
    classes: tuple[str, ...],
    box_threshold: float,
    max_objects: int,
    in_flight: int,
    recursive: bool,
    masks: bool,
    embeddings: bool,
    as_json: bool,
) -> None:
    """Detect, segment, embed and register objects.

    PATHs are image files (jpg, jpeg, png, webp, bmp, tif, tiff) or folders of them.
    Images are streamed to the orchestrator at --orchestrator-url with several in flight, so
    Triton batches them; files are read one at a time as they are sent, so memory stays flat.
    Each image is registered once: re-running the same command after an interruption (or a
    crash of the orchestrator) skips what is already registered (by content hash) and
    finishes the rest. A bad image fails alone and is reported; a summary is printed at the
    end (images labelled, skipped, failed with reasons, objects per class). With --json, one
    JSON object per image and a final {"type": "summary"} object, one per line.
    """
    from agentic_labeling.cli.image_files import find_images

    files = find_images(paths, recursive=recursive)  # usage errors before any network call
    settings = current_settings()

    from agentic_labeling.cli.label_report import (
        JsonReport,
        LineReport,
        ProgressReport,
        Report,
        stdout_is_terminal,
    )
    from agentic_labeling.cli.label_stream import StreamBroken, StreamOptions, stream_images

    options = StreamOptions(
        orchestrator_url=settings.orchestrator_url,
        class_names=classes,
        min_confidence=box_threshold,
        max_objects_per_image=max_objects,
        skip_masks=not masks,
        skip_embeddings=not embeddings,
        in_flight=in_flight,
        max_message_bytes=settings.max_message_bytes,
    )
    report: Report
    if as_json:
        report = JsonReport(len(files))
    elif stdout_is_terminal():
        report = ProgressReport(len(files))
    else:
        report = LineReport(len(files))
    with report:
        try:
            for result in stream_images(options, files):
                report.add(result)
        except StreamBroken as broken:
            report.finish(complete=False, error=broken.failure.message)
            raise broken.failure from None
        except KeyboardInterrupt:
            report.finish(complete=False, error="interrupted")
            raise click.exceptions.Exit(130) from None
        report.finish(complete=True)
    if report.tally.failures:
        raise click.exceptions.Exit(1)
