"""`alabel label`: stream images and video frames through the mesh and register what it finds.

The files are found first, and each video opened, hashed and its first frame decoded (a bad
path, an unreadable video or a bad sampling option is a usage error before any network call),
then sent
through one AutoLabel stream (`label_stream`) and reported as they are answered
(`label_report`). gRPC, protobuf and rich are imported when the command runs, so that
`alabel --help` stays fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from agentic_labeling.cli.params import json_option, parse_class_list
from agentic_labeling.cli.settings_options import current_settings
from agentic_labeling.labeling_defaults import DEFAULT_MIN_CONFIDENCE

if TYPE_CHECKING:
    from agentic_labeling.cli.label_stream import VideoInput
    from agentic_labeling.cli.video_frames import Sampling

__all__ = ["label"]


@click.command(
    "label",
    epilog="""\b
Examples:
  alabel label ./photos --classes person,car
  alabel label a.jpg b.png --classes "traffic light,bicycle" --box-threshold 0.4
  alabel label ./photos --classes cat --json > results.jsonl
  alabel label ./photos --classes person,car,truck --reprocess
  alabel --orchestrator-url 10.0.0.7:50052 label ./photos --classes cat --in-flight 32
  alabel label clip.mp4 --classes person,car --track
  alabel label clip.mp4 --classes person --fps 2
  alabel label ./recordings --classes forklift --every 10 --track
  alabel label clip.mp4 --classes person --keyframes
  alabel label ./more-photos --classes person,car --detector yolo

\b
Exit status: 0 every image labelled or already registered; 1 at least one image failed, or
the orchestrator could not be reached or went away (re-run the same command to finish);
2 bad usage (an unreadable path, no images found, a bad class list, a video that cannot be
decoded, a bad sampling option); 130 interrupted.""",
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
    callback=parse_class_list,
    required=True,
    metavar="NAME,NAME...",
    help="Class names to detect, separated by commas; quote the whole list when a name has a"
    ' space: "traffic light,bicycle". Not a JSON list. At most 256 names. Synonyms resolve to'
    " their category.",
)
@click.option(
    "--box-threshold",
    type=click.FloatRange(0.0, 1.0),
    default=None,
    metavar="FLOAT",
    help=f"Drop detections whose confidence is below this.  [default: {DEFAULT_MIN_CONFIDENCE};"
    " 0 when the mesh serves random-weight tiny models, with a warning]",
)
@click.option(
    "--reprocess",
    is_flag=True,
    help="Label images that are already registered again, for the classes given (say, new"
    " ones). A detection that matches a stored object merges into it; only new objects are"
    " added. Without it, registered images are skipped.",
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
@click.option(
    "--every",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Videos: label every N-th frame (frame 0, N, 2N...).  [default: 1, every frame]",
)
@click.option(
    "--fps",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="F",
    help="Videos: label about F frames per second of video (the first frame of each 1/F seconds).",
)
@click.option(
    "--keyframes",
    is_flag=True,
    help="Videos: label only the encoder's keyframes (scene changes and regular intervals).",
)
@click.option(
    "--track",
    is_flag=True,
    help="Videos: follow objects across frames (motion, overlap and DINOv2 appearance) and"
    " group them into tracks (`alabel tracks`).",
)
@click.option(
    "--detector",
    default="",
    metavar="NAME",
    help="The Triton model that detects: a trained student served beside Florence-2 (say"
    " yolo, from `alabel runs export`). It detects only the classes it was trained on: another"
    " class, or a model Triton does not serve, stops the run before any image is labelled."
    "  [default: florence2]",
)
@json_option
def label(
    paths: tuple[Path, ...],
    classes: tuple[str, ...],
    box_threshold: float | None,
    reprocess: bool,
    max_objects: int,
    in_flight: int,
    recursive: bool,
    masks: bool,
    embeddings: bool,
    every: int | None,
    fps: float | None,
    keyframes: bool,
    track: bool,
    detector: str,
    as_json: bool,
) -> None:
    """Detect, segment, embed and register objects in images and videos.

    PATHs are image files (jpg, jpeg, png, webp, bmp, tif, tiff), video files (mp4, mov,
    mkv, avi, webm, ...) or folders of them.
    Images are streamed to the orchestrator at --orchestrator-url with several in flight, so
    Triton batches them; files are read one at a time as they are sent, so memory stays flat.
    Each image is registered once: re-running the same command after an interruption (or a
    crash of the orchestrator) skips what is already registered (by content hash) and
    finishes the rest; --reprocess labels registered images again instead (for new classes).
    A bad image fails alone and is reported; a summary is printed at the end (images
    labelled, skipped, failed with reasons, objects per class). With --json, one JSON object
    per image and a final {"type": "summary"} object, one per line.

    Threshold: detections below --box-threshold are dropped; without it the orchestrator's
    default applies (0.5, for real checkpoints), except when the mesh serves random-weight
    tiny models (`alabel models make-tiny`): then one warning is printed and 0 is used, so
    their near-0 confidences still give boxes.

    Videos are decoded here (PyAV) and their frames streamed in order: every frame by
    default, or --every N, --fps F or --keyframes (one of them). Each video becomes one video
    source keyed by the file's SHA-256, with its frames (index, timestamp, size); re-running
    registers nothing twice. With --track the orchestrator links each video's objects into
    tracks; a resumed run starts new tracks where it resumes.
    """
    from agentic_labeling.cli.image_files import find_images

    sampling = _sampling(every, fps, keyframes)
    files = find_images(paths, recursive=recursive)  # usage errors before any network call
    inputs, expected = _prepare(files, sampling)
    settings = current_settings()

    from agentic_labeling.cli.label_report import (
        JsonReport,
        LineReport,
        ProgressReport,
        Report,
        stdout_is_terminal,
    )
    from agentic_labeling.cli.label_stream import StreamBroken, StreamOptions, stream_images

    if box_threshold is None:
        box_threshold = _threshold_for_served_models(settings.orchestrator_url)
    options = StreamOptions(
        orchestrator_url=settings.orchestrator_url,
        class_names=classes,
        min_confidence=box_threshold,
        reprocess=reprocess,
        max_objects_per_image=max_objects,
        skip_masks=not masks,
        skip_embeddings=not embeddings,
        in_flight=in_flight,
        max_message_bytes=settings.max_message_bytes,
        sampling=sampling,
        track_objects=track,
        detector=detector,
    )
    report: Report
    if as_json:
        report = JsonReport(expected, reprocess=reprocess)
    elif stdout_is_terminal():
        report = ProgressReport(expected, reprocess=reprocess)
    else:
        report = LineReport(expected, reprocess=reprocess)
    with report:
        try:
            for result in stream_images(options, inputs):
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


def _sampling(every: int | None, fps: float | None, keyframes: bool) -> Sampling:
    from agentic_labeling.cli.video_frames import Sampling

    chosen = [f for f, on in (("--every", every), ("--fps", fps), ("--keyframes", keyframes)) if on]
    if len(chosen) > 1:
        raise click.UsageError(f"{' and '.join(chosen)} cannot be combined: give one of them")
    return Sampling(every=every or 1, fps=fps, keyframes=keyframes)


def _prepare(files: list[Path], sampling: Sampling) -> tuple[list[Path | VideoInput], int]:
    """The stream's inputs (videos probed and hashed) and about how many images and frames
    they give (the progress bar's total). Raises click.UsageError for a video that cannot be
    labelled at all, before anything is sent."""
    from agentic_labeling.cli.image_files import is_video
    from agentic_labeling.cli.label_stream import VideoInput
    from agentic_labeling.cli.video_frames import VideoError, probe_video, video_sha256

    inputs: list[Path | VideoInput] = []
    expected = 0
    for path in files:
        if not is_video(path):
            inputs.append(path)
            expected += 1
            continue
        try:
            info = probe_video(path)
            inputs.append(VideoInput(path, video_sha256(path)))
        except VideoError as error:
            raise click.UsageError(f"{error}; remove it from the PATHs to label the rest") from None
        except OSError as error:
            raise click.UsageError(f"cannot read {path}: {error.strerror}") from None
        expected += info.expected_frames(sampling) or 1
    return inputs, expected


def _threshold_for_served_models(orchestrator_url: str) -> float | None:
    """The threshold when --box-threshold is not given: None (the orchestrator's default, for
    real checkpoints), or 0 with one warning when the mesh says it serves random-weight tiny
    models. A mesh that cannot say (unreachable, older) gets the default: the stream that
    follows reports an unreachable orchestrator."""
    from agentic_labeling.cli.label_stream import served_random_weights
    from agentic_labeling.labeling_defaults import RANDOM_WEIGHTS_MIN_CONFIDENCE

    if not served_random_weights(orchestrator_url):
        return None
    click.echo(
        "warning: random-weight tiny models: labels are meaningless; threshold"
        f" {RANDOM_WEIGHTS_MIN_CONFIDENCE:g} used so boxes are kept (--box-threshold overrides)",
        err=True,
    )
    return RANDOM_WEIGHTS_MIN_CONFIDENCE
