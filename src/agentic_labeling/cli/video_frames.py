"""Frames out of a video file for `alabel label`: probe, hash, sample, encode.

PyAV (FFmpeg inside its wheel) decodes. Frames are numbered in decoding order from 0 over every
frame of the first video stream, so a frame's index does not depend on the sampling: a run with
`--every 5` and one with `--every 10` agree on what frame 10 is, and re-running registers
nothing twice. Sampling keeps every N-th frame, about F frames per second of video time, or the
keyframes (the encoder's, usually scene changes and fixed intervals); the first frame is always
kept. Each kept frame is sent as a JPEG (quality 95: a fraction of PNG's bytes; the encoder is
deterministic, so a re-run sends the same bytes and the registry recognises them).

`probe_video` opens the file and decodes its first frame before anything is sent, so an empty,
corrupt or truncated-at-the-start file, one with no video stream or no frames, or a codec FFmpeg
cannot decode (named in the message) is refused up front (`VideoError`, a usage error for the
command). Damage later in the file shows up while decoding: `sample_frames` raises `VideoError`
after the frames before it.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "VIDEO_EXTENSIONS",
    "Sampling",
    "VideoError",
    "VideoFrame",
    "VideoInfo",
    "probe_video",
    "sample_frames",
    "video_sha256",
]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg", ".ts", ".wmv", ".flv"}
)
_JPEG_QUALITY = 95
_HASH_CHUNK = 1 << 20


class VideoError(Exception):
    """The video cannot be read (the message says why, naming the file)."""


@dataclass(frozen=True)
class Sampling:
    """Which frames to keep: every `every`-th, about `fps` per second, or the keyframes."""

    every: int = 1
    fps: float | None = None
    keyframes: bool = False

    def __post_init__(self) -> None:
        if self.every < 1:
            raise ValueError(f"every must be at least 1, got {self.every}")
        if self.fps is not None and not (math.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"fps must be above 0, got {self.fps}")


@dataclass(frozen=True)
class VideoInfo:
    width: int
    height: int
    frame_count: int  # from the container; 0 when it does not say
    duration_s: float  # 0 when the container does not say
    codec: str

    def expected_frames(self, sampling: Sampling) -> int | None:
        """About how many frames `sampling` keeps (for the progress bar); None: unknown."""
        if sampling.keyframes:
            return None
        if sampling.fps is not None:
            return max(1, math.ceil(self.duration_s * sampling.fps)) if self.duration_s else None
        return max(1, math.ceil(self.frame_count / sampling.every)) if self.frame_count else None


@dataclass(frozen=True)
class VideoFrame:
    index: int  # in decoding order over every frame of the video, from 0
    timestamp_ns: int  # presentation time from the first frame
    width: int
    height: int
    data: bytes  # JPEG


def video_sha256(path: Path) -> str:
    """SHA-256 of the file's bytes: the video's key, so a re-run finds its source again."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _describe(error: BaseException) -> str:
    # FFmpegError's str() carries the errno and the path; its strerror says just what happened.
    text = (getattr(error, "strerror", None) or str(error)).strip() or type(error).__name__
    return text[0].lower() + text[1:] if text else text


def _duration_s(container: object, stream: object) -> float:
    """The video's announced length: its stream's, else the container's; 0 when unknown."""
    import av

    duration, time_base = getattr(stream, "duration", None), getattr(stream, "time_base", None)
    if duration and time_base is not None:
        return float(duration * time_base)
    whole = getattr(container, "duration", None)
    return whole / av.time_base if whole else 0.0


_UNKNOWN_CODEC_ID = re.compile(r"unknown/unsupported (?:AVCodecID|codec id)\s+(\S+?)\.?\s*$", re.I)
_DUMPED_VIDEO_CODEC = re.compile(r"Stream #0:\d+\S*: Video: ([^,\n]+)")
_UNKNOWN_TAG = re.compile(r"none \((\S+) / 0x[0-9A-Fa-f]+\)")


def _undecodable_codec(path: Path) -> str:
    """The video codec, named as FFmpeg's summary of the file names it, for a stream that
    has no decoder: PyAV exposes a codec's name only through its decoder. Only this failure
    path turns FFmpeg's logging on, and for this one open."""
    import av
    import av.logging

    level = av.logging.get_level()
    av.logging.set_level(av.logging.INFO)
    try:
        with av.logging.Capture() as logs, av.open(str(path)) as container:
            # Every container has it at run time; PyAV's stub lists it for output ones only.
            summary = container.dumps_format()  # type: ignore[attr-defined,unused-ignore]
    except (av.FFmpegError, UnicodeDecodeError, ValueError):
        return "an unknown codec"
    finally:
        av.logging.set_level(level)
    for _, _, message in logs:  # a container's own codec id that FFmpeg does not know
        if match := _UNKNOWN_CODEC_ID.search(message.strip()):
            return f"{match.group(1)} (unknown to FFmpeg)"
    match = _DUMPED_VIDEO_CODEC.search(summary)
    name = match.group(1).strip() if match else "none"
    if tag := _UNKNOWN_TAG.match(name):  # "none (QQQQ / 0x51515151)": a FourCC it does not know
        return f"{tag.group(1)} (unknown to FFmpeg)"
    return "an unknown codec" if name == "none" else name


def probe_video(path: Path) -> VideoInfo:
    """What the video is; raises VideoError when it cannot be labelled at all."""
    import av

    if path.stat().st_size == 0:
        raise VideoError(f"{path} is empty (0 bytes)")
    codec = ""
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path} has no video stream")
            stream = container.streams.video[0]
            if stream.codec_context is None:  # FFmpeg has no decoder for it
                raise VideoError(
                    f"{path} uses the video codec {_undecodable_codec(path)}, which this FFmpeg"
                    " cannot decode: re-encode it (H.264, HEVC, VP9, AV1 and MPEG-4 decode)"
                )
            codec = stream.codec_context.name
            first = next(container.decode(stream), None)
            if first is None:
                raise VideoError(f"{path} has no frames that can be decoded")
            duration = _duration_s(container, stream)
            return VideoInfo(first.width, first.height, stream.frames or 0, duration, codec)
    except VideoError:
        raise
    except av.EOFError:  # a header and no frame: an empty stream, or cut before its first frame
        raise VideoError(
            f"{path} is not a video FFmpeg can decode: it ends before its first frame"
            " (no frames, or cut short)"
        ) from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        which = f" ({codec})" if codec else ""
        raise VideoError(
            f"{path} is not a video FFmpeg can decode{which}: {_describe(error)}"
        ) from None


def _encoded(frame: object) -> bytes:
    image = frame.to_image()  # type: ignore[attr-defined,unused-ignore]
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=_JPEG_QUALITY)
    return buffer.getvalue()


def _check_complete(
    path: Path, stream: object, seconds: float, decoded: int, last_offset: float
) -> None:
    """FFmpeg stops quietly at a truncated or damaged stretch: compare what was decoded with
    what the container announced (its frame count, else its duration)."""
    announced = getattr(stream, "frames", 0) or 0
    if announced and decoded < announced:
        raise VideoError(
            f"{path}: only {decoded} of its {announced} frames could be decoded"
            " (truncated or damaged)"
        )
    rate = getattr(stream, "average_rate", None) or getattr(stream, "guessed_rate", None)
    if announced or not seconds or not rate:
        return
    # The last frame starts one frame period before the end; allow two more for rounding.
    if last_offset + 3 / float(rate) < seconds:
        raise VideoError(
            f"{path}: decoding ended at {last_offset:.2f} s of its {seconds:.2f} s"
            " (truncated or damaged)"
        )


def sample_frames(path: Path, sampling: Sampling) -> Generator[VideoFrame, None, None]:
    """The kept frames in index order, decoded and encoded one at a time (memory stays flat).

    Raises VideoError when decoding fails part way (a truncated or damaged file) after
    yielding the frames before the damage.
    """
    import av

    index = -1
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            start: float | None = None
            next_due = 0.0  # video seconds from the first frame, for --fps
            for frame in container.decode(stream):
                index += 1
                seconds = float(frame.time) if frame.time is not None else 0.0
                if start is None:
                    start = seconds
                offset = max(0.0, seconds - start)
                if sampling.keyframes:
                    keep = index == 0 or bool(frame.key_frame)
                elif sampling.fps is not None:
                    keep = offset + 1e-9 >= next_due
                    if keep:  # the next slot after this frame's, skipping empty ones
                        next_due = (math.floor(offset * sampling.fps + 1e-9) + 1) / sampling.fps
                else:
                    keep = index % sampling.every == 0
                if keep:
                    yield VideoFrame(
                        index=index,
                        timestamp_ns=round(offset * 1e9),
                        width=frame.width,
                        height=frame.height,
                        data=_encoded(frame),
                    )
            if index < 0:  # probe_video refuses such a file: it changed since, or was not probed
                raise VideoError(f"{path} has no frames that can be decoded")
            seconds = _duration_s(container, stream)
            _check_complete(path, stream, seconds, index + 1, offset if start is not None else 0.0)
    except av.EOFError:
        if index >= 0:
            raise VideoError(
                f"{path}: decoding stopped after frame {index}: it ends early"
                " (truncated or damaged)"
            ) from None
        raise VideoError(f"{path} has no frames that can be decoded") from None
    except (av.FFmpegError, UnicodeDecodeError, ValueError) as error:
        raise VideoError(
            f"{path}: decoding stopped after frame {index}: {_describe(error)}"
        ) from None
