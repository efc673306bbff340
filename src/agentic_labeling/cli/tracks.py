"""`alabel tracks ...`: objects of one video followed across frames.

List a video's tracks in time order with their frame range, times and average confidence;
show one with its objects; merge, split, create from objects, validate; export a video's tracks
in MOTChallenge format. A track is named by its UUID (or tracks/UUID), a source by its UUID
(or sources/UUID) or its file name. gRPC and the generated stubs are imported when a command
runs, so that `alabel --help` stays fast.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.groups import AlabelGroup
from agentic_labeling.cli.params import json_option, parse_name_list

if TYPE_CHECKING:
    from google.protobuf import duration_pb2

    from agentic_labeling.v1 import registry_pb2, registry_pb2_grpc

__all__ = ["tracks"]

_PAGE_SIZE = 1000
_TRACK_HEADERS = ("TRACK", "SOURCE", "CATEGORY", "FRAMES", "START", "END", "OBJECTS", "AVG CONF")


def _canonical(text: str, collection: str) -> str | None:
    raw = text.strip().removeprefix(collection + "/")
    try:
        return f"{collection}/{uuid.UUID(raw)}"
    except ValueError:
        return None


def _track_names(
    ctx: click.Context, param: click.Parameter, values: Sequence[str] | str
) -> tuple[str, ...] | str:
    """Track ids (`<uuid>` or `tracks/<uuid>`) -> `tracks/<uuid>` names; a usage error else."""
    single = isinstance(values, str)
    names = []
    for value in [values] if isinstance(values, str) else values:
        name = _canonical(value, "tracks")
        if name is None:
            raise click.BadParameter(
                f"{value!r} is not a track id (a UUID or tracks/UUID; `alabel tracks list`"
                " shows them)",
                ctx,
                param,
            )
        names.append(name)
    return names[0] if single else tuple(names)


def _object_names(
    ctx: click.Context, param: click.Parameter, values: Sequence[str]
) -> tuple[str, ...]:
    names = []
    for value in values:
        name = _canonical(value, "objects")
        if name is None:
            raise click.BadParameter(
                f"{value!r} is not an object id (a UUID or objects/UUID)", ctx, param
            )
        names.append(name)
    return tuple(names)


def _find_source(stub: registry_pb2_grpc.RegistryServiceStub, text: str) -> registry_pb2.Source:
    """The source named by `text`: its id (UUID or sources/UUID) or its display name."""
    import grpc

    from agentic_labeling.v1 import registry_pb2

    name = _canonical(text, "sources")
    if name is not None:
        try:
            found: registry_pb2.Source = stub.GetSource(
                registry_pb2.GetSourceRequest(name=name), timeout=30
            )
            return found
        except grpc.RpcError as err:
            if err.code() is not grpc.StatusCode.NOT_FOUND:
                raise
            raise CliFailure(f"no source {name}") from None
    quoted = '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    page = stub.ListSources(
        registry_pb2.ListSourcesRequest(filter=f"display_name = {quoted}", page_size=2),
        timeout=30,
    )
    if not page.sources:
        raise CliFailure(
            f"no source named {text!r}", details=["give its id (sources/UUID) or its file name"]
        )
    if len(page.sources) > 1:
        raise CliFailure(
            f"more than one source is named {text!r}",
            details=[f"give the id instead: {s.name}" for s in page.sources],
        )
    source: registry_pb2.Source = page.sources[0]
    return source


class _Names:
    """Display names of sources and categories, asked once each, for tables."""

    def __init__(self, stub: registry_pb2_grpc.RegistryServiceStub) -> None:
        self._stub = stub
        self._names: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        import grpc

        from agentic_labeling.cli.output import short_id
        from agentic_labeling.v1 import registry_pb2

        if not name:
            return "-"
        if name not in self._names:
            try:
                if name.startswith("sources/"):
                    found = self._stub.GetSource(
                        registry_pb2.GetSourceRequest(name=name), timeout=30
                    ).display_name
                else:
                    found = self._stub.GetCategory(
                        registry_pb2.GetCategoryRequest(name=name), timeout=30
                    ).display_name
                self._names[name] = found or short_id(name)
            except grpc.RpcError:
                self._names[name] = short_id(name)  # deleted meanwhile: show the id
        return self._names[name]


def _seconds(duration: duration_pb2.Duration) -> str:
    return f"{duration.seconds + duration.nanos / 1e9:.2f}s"


def _track_row(track: registry_pb2.Track, names: _Names) -> list[str]:
    from agentic_labeling.cli.output import short_id

    return [
        short_id(track.name),
        names(track.source),
        names(track.category),
        f"{track.first_frame_index}-{track.last_frame_index}",
        _seconds(track.first_frame_time),
        _seconds(track.last_frame_time),
        str(track.object_count),
        f"{track.average_confidence:.2f}",
    ]


def _echo_tracks(
    found: Sequence[registry_pb2.Track],
    stub: registry_pb2_grpc.RegistryServiceStub,
    as_json: bool,
    **extra: object,
) -> None:
    from agentic_labeling.cli.output import echo_json, echo_table, message_json

    if as_json:
        echo_json({"tracks": [message_json(t) for t in found], **extra})
        return
    echo_table(_TRACK_HEADERS, [_track_row(t, _Names(stub)) for t in found])


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


@click.group(
    cls=AlabelGroup,
    epilog="""\b
Examples:
  alabel tracks list --source clip.mp4
  alabel tracks show 5b0c2d4e-8f1a-4c3b-9d2e-7a6f1b0c9d8e
  alabel tracks merge TRACK_ID OTHER_TRACK_ID
  alabel tracks export clip.mp4 --out mot/clip""",
)
def tracks() -> None:
    """List, review and fix tracks: one object followed across a video's frames.

    `alabel label VIDEO --track` makes them; these commands show them in time order with their
    statistics, repair a tracker's mistakes (merge two tracks of one object, split one that
    jumped to another object, build one from objects by hand), validate whole tracks and
    export a video's tracks for MOT tools.
    """


@tracks.command(
    "list",
    epilog="""\b
Examples:
  alabel tracks list
  alabel tracks list --source clip.mp4 --category person
  alabel tracks list --filter 'object_count >= 10' --order-by 'average_confidence desc' --json""",
)
@click.option("--source", metavar="SOURCE", help="Only the tracks of SOURCE (id or file name).")
@click.option("--category", metavar="NAME", help="Only tracks whose category (by vote) is NAME.")
@click.option(
    "--filter",
    "filter_expr",
    metavar="EXPR",
    help="Only tracks matching EXPR over source, category and object_count, e.g."
    " 'object_count >= 10'.",
)
@click.option(
    "--order-by",
    metavar="FIELD [asc|desc],...",
    help="Sort order over source, first_frame_index, last_frame_index, object_count,"
    " average_confidence, create_time. Default: per source, by first frame.",
)
@click.option(
    "--limit",
    type=click.IntRange(min=1),
    default=100,
    show_default=True,
    metavar="N",
    help="Show at most N tracks.",
)
@json_option
def tracks_list(
    source: str | None,
    category: str | None,
    filter_expr: str | None,
    order_by: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List tracks in time order: frames, start and end times, objects, average confidence.

    START and END are the presentation times of the track's first and last frames; AVG CONF
    is the mean detection confidence of its objects; CATEGORY is the one most of its objects
    have.
    """
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        parts = [f"({filter_expr})"] if filter_expr else []
        if source is not None:
            parts.append(f"source = {_quoted(_find_source(stub, source).name)}")
        if category is not None:
            parts.append(f"category = {_quoted(category)}")
        found: list[registry_pb2.Track] = []
        token = ""
        while len(found) < limit:
            page = stub.ListTracks(
                registry_pb2.ListTracksRequest(
                    filter=" AND ".join(parts),
                    order_by=order_by or "",
                    page_size=min(_PAGE_SIZE, limit - len(found)),
                    page_token=token,
                ),
                timeout=60,
            )
            found.extend(page.tracks)
            token = page.next_page_token
            if not token:
                break
        if as_json:
            _echo_tracks(found, stub, True, next_page_token=token)
            return
        if not found:
            click.echo("no tracks" + (" match" if parts else ""))
            return
        _echo_tracks(found, stub, False)
    more = f" (--limit {limit}; more match)" if token else ""
    click.echo(f"{len(found)} track(s){more}")


@tracks.command(
    "show",
    epilog="""\b
Examples:
  alabel tracks show 5b0c2d4e-8f1a-4c3b-9d2e-7a6f1b0c9d8e
  alabel tracks show tracks/5b0c2d4e-8f1a-4c3b-9d2e-7a6f1b0c9d8e --json""",
)
@click.argument("track", callback=_track_names)
@json_option
def tracks_show(track: str, as_json: bool) -> None:
    """Show a track's statistics and its objects in frame order."""
    from agentic_labeling.cli.output import bbox_text, echo_json, echo_table, message_json
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        found = stub.GetTrack(registry_pb2.GetTrackRequest(name=track), timeout=60)
        if as_json:
            echo_json(message_json(found))
            return
        _echo_tracks([found], stub, False)
    click.echo("")
    echo_table(
        ("FRAME", "OBJECT", "CATEGORY", "CONF", "BBOX (x,y,w,h)", "VALIDATED"),
        [
            [
                str(o.frame_index),
                o.name.rsplit("/", 1)[-1],
                o.category_name,
                f"{o.confidence:.2f}",
                bbox_text(o.bbox),
                f"by {o.validated_by}" if o.is_validated else "no",
            ]
            for o in found.objects
        ],
    )


@tracks.command(
    "merge",
    epilog="""\b
Examples:
  alabel tracks merge 5b0c2d4e-8f1a-4c3b-9d2e-7a6f1b0c9d8e 0e9d8c7b-6a5f-4e3d-2c1b-0a9f8e7d6c5b""",
)
@click.argument("track_names", metavar="TRACK TRACK...", nargs=-1, callback=_track_names)
@json_option
def tracks_merge(track_names: tuple[str, ...], as_json: bool) -> None:
    """Merge tracks of one video into the first one named (the tracker lost the object).

    The other tracks' objects move into the first track and the others are deleted.
    """
    if len(track_names) < 2:
        raise click.UsageError("name at least two tracks to merge: TRACK TRACK...")
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        merged = stub.MergeTracks(
            registry_pb2.MergeTracksRequest(names=list(track_names)), timeout=60
        )
        if not as_json:
            click.echo(f"merged {len(track_names)} tracks into {merged.name}")
        _echo_tracks([merged], stub, as_json)


@tracks.command(
    "split",
    epilog="""\b
Examples:
  alabel tracks split 5b0c2d4e-8f1a-4c3b-9d2e-7a6f1b0c9d8e 120""",
)
@click.argument("track", callback=_track_names)
@click.argument("frame_index", metavar="FRAME", type=click.IntRange(min=0))
@json_option
def tracks_split(track: str, frame_index: int, as_json: bool) -> None:
    """Split a track at FRAME (the tracker jumped to another object there).

    Objects at FRAME and later move to a new track; both parts must keep an object.
    """
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        result = stub.SplitTrack(
            registry_pb2.SplitTrackRequest(name=track, frame_index=frame_index), timeout=60
        )
        if not as_json:
            click.echo(f"split {track} at frame {frame_index}: {result.after.name} is new")
        _echo_tracks([result.before, result.after], stub, as_json)


@tracks.command(
    "create",
    epilog="""\b
Examples:
  alabel tracks create clip.mp4 OBJECT_ID OBJECT_ID OBJECT_ID
  alabel tracks create sources/9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d OBJECT_ID \\
      --track-id 5b0c2d4e-8f1a-4c3b-9d2e-7a6f1b0c9d8e""",
)
@click.argument("source")
@click.argument(
    "object_names", metavar="OBJECT...", nargs=-1, required=True, callback=_object_names
)
@click.option(
    "--track-id",
    metavar="UUID",
    help="The new track's id; running the same command again then changes nothing.",
)
@json_option
def tracks_create(
    source: str, object_names: tuple[str, ...], track_id: str | None, as_json: bool
) -> None:
    """Make one track of objects of SOURCE, at most one per frame, all or nothing.

    Objects in another track leave it (a track left empty is deleted).
    """
    if track_id is not None and _canonical(track_id, "tracks") is None:
        raise click.BadParameter(f"{track_id!r} is not a UUID", param_hint="'--track-id'")
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        created = stub.CreateTrack(
            registry_pb2.CreateTrackRequest(
                source=_find_source(stub, source).name,
                objects=list(object_names),
                track_id=str(uuid.UUID(track_id)) if track_id else "",
            ),
            timeout=60,
        )
        if not as_json:
            click.echo(f"created {created.name}")
        _echo_tracks([created], stub, as_json)


@tracks.command(
    "validate",
    epilog="""\b
Examples:
  alabel tracks validate 5b0c2d4e-8f1a-4c3b-9d2e-7a6f1b0c9d8e --by alice""",
)
@click.argument("track_names", metavar="TRACK...", nargs=-1, required=True, callback=_track_names)
@click.option("--by", "validated_by", required=True, metavar="NAME", help="Who validates.")
def tracks_validate(track_names: tuple[str, ...], validated_by: str) -> None:
    """Mark every object of the tracks as validated, all or nothing."""
    if not validated_by.strip():
        raise click.BadParameter("must not be empty", param_hint="'--by'")
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.v1 import registry_pb2

    with registry_stub() as stub:
        validated = stub.ValidateObjects(
            registry_pb2.ValidateObjectsRequest(
                tracks=list(track_names), validated_by=validated_by, is_validated=True
            ),
            timeout=120,
        ).objects
    click.echo(
        f"{len(validated)} object(s) of {len(track_names)} track(s) validated by {validated_by}"
    )


@tracks.command(
    "export",
    epilog="""\b
Examples:
  alabel tracks export clip.mp4 --out mot/clip
  alabel tracks export clip.mp4 --out mot/clip --classes person,car

\b
Writes OUT/gt/gt.txt (frame,id,x,y,w,h,conf,class,vis; frames from 1), OUT/classes.txt and
OUT/seqinfo.ini. Read it with py-motmetrics:
  motmetrics.io.loadtxt("mot/clip/gt/gt.txt", fmt="mot15-2D")""",
)
@click.argument("source")
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    metavar="DIR",
    help="The sequence directory to write (created; an existing gt/gt.txt is replaced).",
)
@click.option(
    "--classes",
    callback=parse_name_list,
    metavar="NAME,...",
    help="Export only these categories, numbered 1, 2, ... in this order (default: every"
    " category of the tracks, by name).",
)
def tracks_export(source: str, out_dir: Path, classes: tuple[str, ...] | None) -> None:
    """Export the tracks of one video SOURCE in MOTChallenge format.

    Every tracked object becomes one line of gt.txt; untracked objects are left out. Track
    numbers follow the order in which tracks start; conf is the object's confidence.
    """
    from agentic_labeling.cli.registry import registry_stub
    from agentic_labeling.mot_challenge import MotBox, SequenceInfo, write_sequence

    with registry_stub() as stub:
        found = _find_source(stub, source)
        objects = _tracked_objects(stub, found.name)
        frames = _frames(stub, found.name)
    names = classes or tuple(sorted({o.category_name for o in objects}, key=str.casefold))
    numbers = {name.casefold(): number for number, name in enumerate(names, start=1)}
    boxes = [
        MotBox(
            frame_index=o.frame_index,
            track=o.track,
            x=o.bbox.x,
            y=o.bbox.y,
            width=o.bbox.width,
            height=o.bbox.height,
            confidence=o.confidence,
            class_number=numbers[o.category_name.casefold()],
        )
        for o in objects
        if o.category_name.casefold() in numbers
    ]
    info = SequenceInfo(
        name=Path(found.display_name).stem or found.name.rsplit("/", 1)[-1],
        length=max((f.frame_index + 1 for f in frames), default=0),
        width=found.width,
        height=found.height,
        frame_rate=_frame_rate(frames),
    )
    try:
        gt = write_sequence(out_dir, boxes, names, info)
    except OSError as error:
        raise CliFailure(f"cannot write {out_dir}: {error.strerror}") from None
    track_count = len({b.track for b in boxes})
    click.echo(f"exported {track_count} track(s), {len(boxes)} box(es) to {gt}")


def _tracked_objects(
    stub: registry_pb2_grpc.RegistryServiceStub, source: str
) -> list[registry_pb2.LabeledObject]:
    from agentic_labeling.v1 import registry_pb2

    found: list[registry_pb2.LabeledObject] = []
    token = ""
    while True:
        page = stub.ListObjects(
            registry_pb2.ListObjectsRequest(
                filter=f"source = {_quoted(source)}",
                order_by="frame_index",
                page_size=_PAGE_SIZE,
                page_token=token,
            ),
            timeout=60,
        )
        found.extend(o for o in page.objects if o.track)
        token = page.next_page_token
        if not token:
            return found


def _frames(stub: registry_pb2_grpc.RegistryServiceStub, source: str) -> list[registry_pb2.Frame]:
    from agentic_labeling.v1 import registry_pb2

    found: list[registry_pb2.Frame] = []
    token = ""
    while True:
        page = stub.ListFrames(
            registry_pb2.ListFramesRequest(parent=source, page_size=_PAGE_SIZE, page_token=token),
            timeout=60,
        )
        found.extend(page.frames)
        token = page.next_page_token
        if not token:
            return found


def _frame_rate(frames: Sequence[registry_pb2.Frame]) -> float | None:
    """The video's frames per second from its first and last registered frames' index and
    time (right for frames sampled every N-th); None when the times do not say."""
    if len(frames) < 2:
        return None
    first, last = frames[0], frames[-1]
    span = last.timestamp.ToTimedelta() - first.timestamp.ToTimedelta()
    if span.total_seconds() <= 0:
        return None
    return round((last.frame_index - first.frame_index) / span.total_seconds(), 3)
