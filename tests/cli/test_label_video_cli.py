"""`alabel label` on videos against the real mesh: tritonserver with the tiny models, a registry
and an orchestrator on loopback. The video is generated here (`alabel demo-video`: moving
coloured shapes, MPEG-4 through PyAV). The tiny models' boxes are meaningless: these tests check
the plumbing (one video source with its frames, objects with track ids that the tracker's rules
allow, nothing registered twice, bad videos refused precisely), never tracking quality, which
tests/tracking/ measures on synthetic detections.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import numpy as np
import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from google.rpc import error_details_pb2
from PIL import Image

from agentic_labeling.cli import cli
from agentic_labeling.cli.demo_video import write_demo_video
from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.triton_server import TritonHandle
from agentic_labeling.v1 import (
    common_pb2,
    labeling_pb2,
    labeling_pb2_grpc,
    registry_pb2,
    registry_pb2_grpc,
)

pytestmark = pytest.mark.slow

FRAMES = 16
FPS = 8
LABEL = ["--classes", "square,circle", "--box-threshold", "0", "--max-objects", "3"]


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def processes(
    served_triton: TritonHandle, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ManagedProcess, ManagedProcess]]:
    data_dirs = registry_data_dir()
    workdir = tmp_path_factory.mktemp("video-mesh")
    registry = start_server_process(
        "registry", workdir, ["--data-dir", str(next(data_dirs)), "--embedding-dimension", "32"]
    )
    try:
        orchestrator = start_server_process(
            "orchestrator",
            workdir / "orchestrator",
            ["--triton-url", served_triton.address, "--registry-url", registry.address],
        )
        yield registry, orchestrator
        assert orchestrator.stop() == 0, orchestrator.log.read_text()[-4000:]
    finally:
        registry.stop()
        next(data_dirs, None)


def alabel(processes: tuple[ManagedProcess, ManagedProcess], *args: str) -> Result:
    url = processes[1].address
    return CliRunner().invoke(cli, ["--orchestrator-url", url, "label", *args])


def _records(result: Result) -> list[dict[str, Any]]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _registry(processes: tuple[ManagedProcess, ManagedProcess]) -> Any:
    channel = grpc.insecure_channel(processes[0].address)
    return channel, registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]


def _objects(processes: tuple[ManagedProcess, ManagedProcess], source: str) -> list[Any]:
    channel, stub = _registry(processes)
    with channel:
        page = stub.ListObjects(
            registry_pb2.ListObjectsRequest(filter=f'source = "{source}"', page_size=1000),
            timeout=30,
        )
    return list(page.objects)


def _source_of(processes: tuple[ManagedProcess, ManagedProcess], sha256: str) -> Any:
    channel, stub = _registry(processes)
    with channel:
        page = stub.ListSources(registry_pb2.ListSourcesRequest(page_size=1000), timeout=30)
        [source] = [s for s in page.sources if s.content_sha256 == sha256]
        frames = stub.ListFrames(
            registry_pb2.ListFramesRequest(parent=source.name, page_size=1000), timeout=30
        )
    return source, list(frames.frames)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_demo_video(path, frames=FRAMES, fps=FPS)
    return path


@pytest.fixture(scope="module")
def tracked_run(processes: tuple[ManagedProcess, ManagedProcess], clip: Path) -> Result:
    return alabel(processes, str(clip), *LABEL, "--track", "--json")


def test_a_video_becomes_one_video_source_with_every_frame_at_its_index_and_time(
    tracked_run: Result, processes: tuple[ManagedProcess, ManagedProcess], clip: Path
) -> None:
    assert tracked_run.exit_code == 0, tracked_run.output
    *frames, summary = _records(tracked_run)
    assert sorted(r["frame_index"] for r in frames) == list(range(FRAMES))
    assert {r["status"] for r in frames} == {"labelled"}
    assert (summary["images"], summary["labelled"], summary["complete"]) == (FRAMES, FRAMES, True)
    source, registered = _source_of(processes, hashlib.sha256(clip.read_bytes()).hexdigest())
    assert {r["source"] for r in frames} == {source.name}
    assert source.kind == common_pb2.SOURCE_KIND_VIDEO
    assert (source.display_name, source.width, source.height) == ("clip.mp4", 96, 72)
    assert [f.frame_index for f in registered] == list(range(FRAMES))
    assert [f.timestamp.ToNanoseconds() for f in registered] == [
        i * 1_000_000_000 // FPS for i in range(FRAMES)
    ]


def test_tracked_objects_carry_track_ids_that_follow_the_trackers_rules(
    tracked_run: Result, processes: tuple[ManagedProcess, ManagedProcess]
) -> None:
    *frames, _ = _records(tracked_run)
    objects = _objects(processes, frames[0]["source"])
    assert objects
    assert {o.frame_index for o in objects} <= set(range(FRAMES))
    by_track: dict[str, list[Any]] = defaultdict(list)
    for item in objects:
        if item.track:
            by_track[item.track].append(item)
    assert by_track, "the tiny models' boxes repeat on a near-static video: some tracks form"
    for members in by_track.values():
        indexes = [o.frame_index for o in members]
        assert len(set(indexes)) == len(indexes), "one object per frame in a track"
        assert len({o.category_name for o in members}) == 1, "a track keeps its category"
        assert len(members) >= 2, "a track is confirmed after min_hits (2) frames"
    # What the answers said is what the registry holds.
    answered = {o["name"]: o.get("track", "") for r in frames for o in r["objects"]}
    assert answered == {o.name: o.track for o in objects}


def test_a_second_run_of_the_same_video_registers_nothing_new(
    tracked_run: Result, processes: tuple[ManagedProcess, ManagedProcess], clip: Path
) -> None:
    *frames, _ = _records(tracked_run)
    before = sorted((o.name, o.track) for o in _objects(processes, frames[0]["source"]))
    again = alabel(processes, str(clip), *LABEL, "--track", "--json")
    assert again.exit_code == 0, again.output
    *answers, summary = _records(again)
    assert (summary["already_registered"], summary["new_objects"]) == (FRAMES, 0)
    assert {r["source"] for r in answers} == {frames[0]["source"]}
    assert sorted((o.name, o.track) for o in _objects(processes, frames[0]["source"])) == before


def test_sampling_keeps_every_nth_frame_at_its_index_in_the_video(
    processes: tuple[ManagedProcess, ManagedProcess], tmp_path: Path
) -> None:
    path = tmp_path / "sampled.mkv"
    write_demo_video(path, frames=FRAMES, fps=FPS, width=80)
    result = alabel(processes, str(path), *LABEL, "--every", "5", "--json")
    assert result.exit_code == 0, result.output
    *frames, summary = _records(result)
    assert sorted(r["frame_index"] for r in frames) == [0, 5, 10, 15]
    assert summary["images"] == 4
    _, registered = _source_of(processes, hashlib.sha256(path.read_bytes()).hexdigest())
    assert [f.frame_index for f in registered] == [0, 5, 10, 15]
    assert registered[1].timestamp.ToNanoseconds() == 5 * 1_000_000_000 // FPS


def test_a_folder_mixing_images_and_a_video_labels_both(
    processes: tuple[ManagedProcess, ManagedProcess], tmp_path: Path
) -> None:
    write_demo_video(tmp_path / "walk.avi", frames=6, fps=FPS, width=64, height=48)
    pixels = np.random.default_rng(3).integers(0, 255, (40, 56, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "still.png")
    result = alabel(processes, str(tmp_path), *LABEL, "--fps", "4", "--json")
    assert result.exit_code == 0, result.output
    *items, summary = _records(result)
    assert sorted((Path(r["path"]).name, r["frame_index"]) for r in items) == [
        ("still.png", None),
        *[("walk.avi", i) for i in (0, 2, 4)],
    ]
    assert summary["labelled"] == 4


def _damaged(tmp_path: Path, name: str) -> Path:
    good = tmp_path / f"good-{name}"
    write_demo_video(good, frames=FRAMES, fps=FPS)
    data = good.read_bytes()
    path = tmp_path / name
    path.write_bytes(data[: len(data) // 2])
    return path


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("empty.mp4", b"", "is empty (0 bytes)"),
        (
            "corrupt.mp4",
            b"\x00\x00\x00\x18ftypmp42 not really a video" * 20,
            "not a video FFmpeg can decode",
        ),
        ("cut.mp4", None, "not a video FFmpeg can decode"),  # an MP4 cut in half loses its index
    ],
)
def test_a_video_that_cannot_be_decoded_is_a_usage_error_before_anything_is_sent(
    tmp_path: Path, name: str, content: bytes | None, expected: str
) -> None:
    path = _damaged(tmp_path, name) if content is None else tmp_path / name
    if content is not None:
        path.write_bytes(content)
    result = CliRunner().invoke(
        cli, ["--orchestrator-url", "127.0.0.1:1", "label", str(path), *LABEL]
    )
    assert result.exit_code == 2, result.output
    assert str(path) in result.stderr
    assert expected in result.stderr


def test_a_file_without_a_video_stream_is_a_usage_error(tmp_path: Path) -> None:
    import av

    path = tmp_path / "sound.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 800), np.int16), format="s16")
        frame.sample_rate = 8000
        assert isinstance(stream, av.AudioStream)
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    result = CliRunner().invoke(cli, ["--orchestrator-url", "127.0.0.1:1", "label", str(path)])
    assert result.exit_code == 2
    result = CliRunner().invoke(
        cli, ["--orchestrator-url", "127.0.0.1:1", "label", str(path), *LABEL]
    )
    assert result.exit_code == 2, result.output
    assert f"{path} has no video stream" in result.stderr


def _unknown_codec(path: Path) -> str:
    write_demo_video(path, frames=4, fps=4)  # Matroska's CodecID: same length, sizes stay valid
    path.write_bytes(path.read_bytes().replace(b"V_MPEG4/ISO/ASP", b"V_NOSUCH/CODEC1"))
    return f"{path} uses the video codec V_NOSUCH/CODEC1 (unknown to FFmpeg)"


def _no_frames(path: Path) -> str:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = 32, 32
        container.start_encoding()  # a stream header and not one packet
    return f"{path} has no frames that can be decoded"


@pytest.mark.parametrize("make", [_unknown_codec, _no_frames], ids=["unknown-codec", "no-frames"])
def test_an_undecodable_codec_or_a_stream_without_frames_is_a_usage_error_naming_it(
    tmp_path: Path, make: Callable[[Path], str]
) -> None:
    path = tmp_path / ("video.mkv" if make is _unknown_codec else "video.avi")
    expected = make(path)
    # An orchestrator that is not there: the refusal comes before anything is sent.
    result = CliRunner().invoke(
        cli, ["--orchestrator-url", "127.0.0.1:1", "label", str(path), *LABEL]
    )
    assert result.exit_code == 2, result.output
    assert expected in result.stderr
    assert "Traceback" not in result.output


def test_a_video_cut_part_way_labels_the_frames_before_the_cut_and_fails_once(
    processes: tuple[ManagedProcess, ManagedProcess], tmp_path: Path
) -> None:
    path = _damaged(tmp_path, "cut.mkv")  # Matroska streams: the first half still decodes
    result = alabel(processes, str(path), *LABEL, "--json")
    assert result.exit_code == 1, result.output
    *records, summary = _records(result)
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1
    assert failed[0]["frame_index"] is None
    assert "truncated or damaged" in failed[0]["error"]["message"]
    labelled = sorted(r["frame_index"] for r in records if r["status"] == "labelled")
    assert labelled
    assert labelled == list(range(len(labelled)))
    assert len(labelled) < FRAMES
    assert summary["complete"] is True


@pytest.mark.parametrize(
    "options",
    [["--fps", "0"], ["--fps", "-2"], ["--every", "0"], ["--every", "2", "--fps", "3"]],
    ids=["fps-0", "fps-negative", "every-0", "every-and-fps"],
)
def test_absurd_sampling_options_are_usage_errors(clip: Path, options: list[str]) -> None:
    result = CliRunner().invoke(
        cli, ["--orchestrator-url", "127.0.0.1:1", "label", str(clip), *LABEL, *options]
    )
    assert result.exit_code == 2, result.output
    assert options[0] in result.stderr


def _frame(
    client_id: str, key: str, index: int, frame_count: int = 0
) -> labeling_pb2.AutoLabelRequest:
    pixels = np.full((48, 64, 3), 20 + index, dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return labeling_pb2.AutoLabelRequest(
        item=labeling_pb2.AutoLabelItem(
            client_id=client_id,
            image=common_pb2.Image(data=buffer.getvalue()),
            frame=labeling_pb2.FramePosition(
                video_key=key, frame_index=index, video_frame_count=frame_count
            ),
        )
    )


def _refusal(answer: labeling_pb2.AutoLabelResponse) -> tuple[str, list[str]]:
    """The reason and the fields named by a refused answer."""
    info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
    for detail in answer.status.details:
        for message in (info, bad_request):
            if detail.Is(message.DESCRIPTOR):
                detail.Unpack(message)
    return info.reason, [v.field for v in bad_request.field_violations]


def _answers(
    processes: tuple[ManagedProcess, ManagedProcess],
    messages: list[labeling_pb2.AutoLabelRequest],
) -> dict[str, labeling_pb2.AutoLabelResponse]:
    with grpc.insecure_channel(processes[1].address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        return {a.client_id: a for a in stub.AutoLabel(iter(messages), timeout=120)}


def test_a_frame_beyond_the_videos_frame_count_fails_alone_and_leaves_the_order_alone(
    processes: tuple[ManagedProcess, ManagedProcess],
) -> None:
    config = labeling_pb2.AutoLabelConfig(
        class_names=["beyond cat"],
        track_objects=True,
        confidence_threshold=0,
        max_objects_per_image=2,
    )
    messages = [labeling_pb2.AutoLabelRequest(config=config)]
    sent = [("a", 0, 3), ("b", 1, 3), ("beyond", 3, 3), ("c", 2, 3), ("negative", 4, -1)]
    messages += [_frame(client_id, "beyond.mp4", i, count) for client_id, i, count in sent]
    answers = _answers(processes, messages)
    assert {k: a.status.code for k, a in answers.items() if a.status.code == 0} == {
        "a": 0,
        "b": 0,
        "c": 0,
    }
    assert _refusal(answers["beyond"]) == ("FRAME_BEYOND_VIDEO", ["item.frame.frame_index"])
    assert _refusal(answers["negative"])[1] == ["item.frame.video_frame_count"]


def test_with_tracking_a_repeated_or_earlier_frame_fails_alone_naming_frame_index(
    processes: tuple[ManagedProcess, ManagedProcess],
) -> None:
    config = labeling_pb2.AutoLabelConfig(
        class_names=["order cat"],
        track_objects=True,
        confidence_threshold=0,
        max_objects_per_image=2,
    )
    messages = [labeling_pb2.AutoLabelRequest(config=config)]
    sent = [("first", 0), ("third", 2), ("third-again", 2), ("second", 1), ("fourth", 3)]
    messages += [_frame(client_id, "order.mp4", i) for client_id, i in sent]
    with grpc.insecure_channel(processes[1].address) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        answers = list(stub.AutoLabel(iter(messages), timeout=120))
    refused = grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert {a.client_id: a.status.code for a in answers} == {
        "first": 0,
        "third": 0,
        "third-again": refused,
        "second": refused,
        "fourth": 0,
    }
    for answer in answers:
        if answer.status.code:
            info, bad_request = error_details_pb2.ErrorInfo(), error_details_pb2.BadRequest()
            for detail in answer.status.details:
                for message in (info, bad_request):
                    if detail.Is(message.DESCRIPTOR):
                        detail.Unpack(message)
            assert info.reason == "FRAME_OUT_OF_ORDER"
            assert [v.field for v in bad_request.field_violations] == ["item.frame.frame_index"]


def test_demo_video_writes_a_video_of_the_frames_and_size_asked_for(tmp_path: Path) -> None:
    from agentic_labeling.cli.video_frames import Sampling, probe_video, sample_frames

    path = tmp_path / "demo.mkv"
    result = CliRunner().invoke(
        cli, ["demo-video", str(path), "--frames", "10", "--size", "64x48", "--fps", "5"]
    )
    assert result.exit_code == 0, result.output
    info = probe_video(path)
    assert (info.width, info.height) == (64, 48)
    frames = list(sample_frames(path, Sampling()))
    assert [f.index for f in frames] == list(range(10))
    assert frames[5].timestamp_ns == 1_000_000_000


@pytest.mark.parametrize(
    ("args", "mentioned"),
    [(["clip.txt"], "PATH"), (["clip.mp4", "--size", "63x48"], "--size")],
    ids=["not-a-video-name", "odd-size"],
)
def test_demo_video_refuses_a_bad_name_or_size(
    tmp_path: Path, args: list[str], mentioned: str
) -> None:
    result = CliRunner().invoke(cli, ["demo-video", str(tmp_path / args[0]), *args[1:]])
    assert result.exit_code == 2, result.output
    assert mentioned in result.stderr
