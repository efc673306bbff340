"""`video_frames` on videos FFmpeg cannot label: a codec it cannot decode and a video stream
without frames. The files are built here: a small MPEG-4 video (`write_demo_video`) whose
codec id is rewritten in place (same byte count, so the container's sizes stay valid), and
streams muxed and closed without a packet. Real PyAV/FFmpeg throughout.
"""

from __future__ import annotations

from pathlib import Path

import av
import av.logging
import pytest

from agentic_labeling.cli.demo_video import write_demo_video
from agentic_labeling.cli.video_frames import Sampling, VideoError, probe_video, sample_frames


def _recoded(tmp_path: Path, name: str, old: bytes, new: bytes, times: int = 1) -> Path:
    """The demo video in `name`'s container with its codec id `old` (there `times` times)
    replaced by `new`."""
    good = tmp_path / f"good-{name}"
    write_demo_video(good, frames=4, fps=4)
    data = good.read_bytes()
    assert data.count(old) == times, f"{old!r} is not {times} times in {good.name}"
    path = tmp_path / name
    path.write_bytes(data.replace(old, new.ljust(len(old), b"\0")))  # EBML strings pad with NULs
    return path


def _without_frames(tmp_path: Path, name: str) -> Path:
    """A container with one MPEG-4 video stream header and no packet."""
    path = tmp_path / name
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        assert isinstance(stream, av.VideoStream)
        stream.width, stream.height = 32, 32
        container.start_encoding()  # the header, then close: zero packets
    return path


@pytest.mark.parametrize(
    ("name", "old", "new", "times", "codec"),
    [
        ("unknown-id.mkv", b"V_MPEG4/ISO/ASP", b"V_NOSUCH/CODEC1", 1, "V_NOSUCH/CODEC1"),
        # The FourCC is in the AVI stream header and in its format block.
        ("unknown-fourcc.avi", b"FMP4", b"QQQQ", 2, "QQQQ"),
    ],
    ids=["matroska-codec-id", "avi-fourcc"],
)
def test_a_codec_ffmpeg_does_not_know_is_refused_naming_the_file_and_the_codec(
    tmp_path: Path, name: str, old: bytes, new: bytes, times: int, codec: str
) -> None:
    path = _recoded(tmp_path, name, old, new, times)
    with pytest.raises(VideoError) as raised:
        probe_video(path)
    message = str(raised.value)
    assert message.startswith(f"{path} uses the video codec {codec} (unknown to FFmpeg)")
    assert "re-encode it" in message


def test_a_codec_ffmpeg_knows_without_a_decoder_is_refused_naming_the_codec(
    tmp_path: Path,
) -> None:
    try:
        av.Codec("avs3", "r")
        pytest.skip("this FFmpeg build decodes AVS3")
    except av.codec.codec.UnknownCodecError:
        pass
    path = _recoded(tmp_path, "avs3.mkv", b"V_MPEG4/ISO/ASP", b"V_AVS3")
    with pytest.raises(VideoError, match=r"uses the video codec avs3, which this FFmpeg cannot"):
        probe_video(path)


def test_naming_an_undecodable_codec_leaves_ffmpeg_logging_as_it_was(tmp_path: Path) -> None:
    path = _recoded(tmp_path, "unknown.mkv", b"V_MPEG4/ISO/ASP", b"V_NOSUCH/CODEC1")
    before = av.logging.get_level()
    with pytest.raises(VideoError):
        probe_video(path)
    assert av.logging.get_level() == before


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # Matroska without a cluster: FFmpeg's demuxer meets the end of the file while opening.
        ("empty-stream.mkv", "is not a video FFmpeg can decode: it ends before its first frame"),
        ("empty-stream.avi", "has no frames that can be decoded"),
        ("empty-stream.mp4", "has no video stream"),  # the MP4 muxer drops an empty track
    ],
)
def test_a_video_stream_without_frames_is_refused_naming_the_file(
    tmp_path: Path, name: str, expected: str
) -> None:
    path = _without_frames(tmp_path, name)
    with pytest.raises(VideoError) as raised:
        probe_video(path)
    assert str(raised.value).startswith(str(path))
    assert expected in str(raised.value)


@pytest.mark.parametrize("name", ["empty-stream.avi", "empty-stream.mkv"])
def test_sampling_a_video_without_frames_raises_instead_of_yielding_nothing(
    tmp_path: Path, name: str
) -> None:
    path = _without_frames(tmp_path, name)
    with pytest.raises(VideoError, match=f"^{path} has no frames that can be decoded$"):
        list(sample_frames(path, Sampling()))


@pytest.mark.parametrize(
    "sampling",
    [Sampling(every=1000), Sampling(fps=0.001), Sampling(fps=1000.0), Sampling(keyframes=True)],
    ids=["every-1000", "fps-0.001", "fps-1000", "keyframes"],
)
def test_every_sampling_keeps_the_first_frame_so_a_video_never_gives_no_frame(
    tmp_path: Path, sampling: Sampling
) -> None:
    path = tmp_path / "one.mkv"
    write_demo_video(path, frames=1, fps=8)
    assert [frame.index for frame in sample_frames(path, sampling)] == [0]
