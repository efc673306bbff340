"""The client side of one AutoLabel stream: files in with a bounded window, results out.

`stream_images` yields one `ImageResult` per image file and per sampled video frame as answers
arrive (not in file order). Files are read, and videos decoded, one frame at a time, just
before they are sent, and at most `in_flight` images are outstanding: memory stays flat
whatever the number or length of the files, and the orchestrator's window (and so Triton's
batching) stays busy.

Videos. A video's frames go in index order, each with a FramePosition whose video_key is the
SHA-256 of the video file: the orchestrator registers one video source per file content with
its frames (index, timestamp, size), and a re-run finds that source again, so nothing is
registered twice. A video that stops decoding part way (truncated, damaged) gets one local
failure after the frames before the damage.

Threads: gRPC's sync bidi call reads the request iterator on a thread of its own, and the answers
are read on another; both hand events to the caller's thread through one queue, so the caller
(progress bar, Ctrl-C) never blocks inside gRPC.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import duration_pb2

from agentic_labeling.cli.channels import StatusSummary, failure_from_rpc_error, open_channel
from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.cli.video_frames import Sampling, VideoError, VideoFrame, sample_frames
from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc, registry_pb2

__all__ = [
    "ImageResult",
    "StreamBroken",
    "StreamOptions",
    "VideoInput",
    "served_random_weights",
    "stream_images",
]

_POLL_S = 0.2
_STATUS_TIMEOUT_S = 10.0
_STATUS_MESSAGE_BYTES = 4 * 1024 * 1024  # gRPC's default: a MeshStatus is small
# Room left in a message for everything but the image bytes.
_ENVELOPE_BYTES = 64 * 1024


@dataclass(frozen=True)
class StreamOptions:
    """What the stream asks for and how it is sent."""

    orchestrator_url: str
    class_names: Sequence[str]
    min_confidence: float | None = None  # None: the orchestrator's default
    reprocess: bool = False
    max_objects_per_image: int = 0
    skip_masks: bool = False
    skip_embeddings: bool = False
    in_flight: int = 16
    max_message_bytes: int = 64 * 1024 * 1024
    sampling: Sampling = field(default_factory=Sampling)  # of video frames
    track_objects: bool = False  # link each video's objects into tracks
    detector: str = ""  # the Triton model that detects; empty: the orchestrator's default

    def config(self) -> labeling_pb2.AutoLabelConfig:
        config = labeling_pb2.AutoLabelConfig(
            class_names=list(self.class_names),
            max_objects_per_image=self.max_objects_per_image,
            skip_masks=self.skip_masks,
            skip_embeddings=self.skip_embeddings,
            track_objects=self.track_objects,
            detector=self.detector,
            # Re-running the same command after an interruption finishes the job; with
            # reprocess, registered images are labelled again (their matches merge).
            skip_registered=not self.reprocess,
        )
        if self.min_confidence is not None:
            config.confidence_threshold = self.min_confidence
        return config


@dataclass(frozen=True)
class VideoInput:
    """A video file to send frame by frame (probed and hashed before the stream starts)."""

    path: Path
    sha256: str  # the video_key: the same file finds the same source again


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one image file or video frame: labelled, already registered, or failed
    with a status. A failure of a whole video (it stopped decoding) has no frame_index."""

    path: Path
    error: StatusSummary | None = None
    frame_index: int | None = None  # set for a video frame
    source: str = ""
    objects: tuple[registry_pb2.LabeledObject, ...] = ()
    already_registered: bool = False
    # Names of the objects (of `objects`) that existed before: a re-labelled image's matches.
    merged: frozenset[str] = frozenset()

    @property
    def new_objects(self) -> int:
        return 0 if self.already_registered else len(self.objects) - len(self.merged)


class StreamBroken(Exception):
    """The stream ended before every image was answered (orchestrator gone, refused, ...).

    `failure` is what to tell the user (its exit status included).
    """

    def __init__(self, failure: CliFailure, unanswered: int) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.unanswered = unanswered


def _local_failure(path: Path, message: str, frame_index: int | None = None) -> ImageResult:
    return ImageResult(
        path,
        error=StatusSummary.local(grpc.StatusCode.INVALID_ARGUMENT, message),
        frame_index=frame_index,
    )


def _frame_item(video: VideoInput, frame: VideoFrame) -> labeling_pb2.AutoLabelItem:
    timestamp = duration_pb2.Duration()
    timestamp.FromNanoseconds(frame.timestamp_ns)
    return labeling_pb2.AutoLabelItem(
        client_id=f"{video.path}#{frame.index}",
        image=common_pb2.Image(data=frame.data),
        display_name=video.path.name,
        frame=labeling_pb2.FramePosition(
            video_key=video.sha256,
            frame_index=frame.index,
            timestamp=timestamp,
            video_width=frame.width,
            video_height=frame.height,
        ),
    )


@dataclass
class _Stream:
    options: StreamOptions
    files: Sequence[Path | VideoInput]
    events: queue.Queue[object] = field(default_factory=queue.Queue)
    stopped: threading.Event = field(default_factory=threading.Event)
    # client_id -> path and frame index of every image sent and not answered yet
    pending: dict[str, tuple[Path, int | None]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent_all: bool = False
    produced: int = 0  # results owed: images and frames sent, plus local failures

    def __post_init__(self) -> None:
        self.window = threading.Semaphore(self.options.in_flight)
        self.limit = self.options.max_message_bytes - _ENVELOPE_BYTES

    def _take_slot(self) -> bool:
        """Wait for room in the window; False when the stream has stopped."""
        while not self.window.acquire(timeout=_POLL_S):
            if self.stopped.is_set():
                return False
        return not self.stopped.is_set()

    def _fail_locally(self, result: ImageResult) -> None:
        self.window.release()
        self.produced += 1
        self.events.put(result)

    def _send(self, item: labeling_pb2.AutoLabelItem, path: Path, frame_index: int | None) -> None:
        with self.lock:
            self.pending[item.client_id] = (path, frame_index)
        self.produced += 1

    def requests(self) -> Iterator[labeling_pb2.AutoLabelRequest]:
        yield labeling_pb2.AutoLabelRequest(config=self.options.config())
        for entry in self.files:
            if isinstance(entry, VideoInput):
                if not (yield from self._video_requests(entry)):
                    return
                continue
            path = entry
            if not self._take_slot():
                return
            limit = self.limit
            try:
                size = path.stat().st_size
                if size > limit:
                    raise ValueError(
                        f"the file has {size} bytes; one message carries at most {limit}"
                        " (--max-message-bytes)"
                    )
                data = path.read_bytes()
            except (OSError, ValueError) as error:
                reason = error.strerror if isinstance(error, OSError) else str(error)
                self._fail_locally(_local_failure(path, f"cannot send {path}: {reason}"))
                continue
            item = labeling_pb2.AutoLabelItem(
                client_id=str(path), image=common_pb2.Image(data=data), display_name=path.name
            )
            self._send(item, path, None)
            yield labeling_pb2.AutoLabelRequest(item=item)
        self.sent_all = True

    def _video_requests(
        self, video: VideoInput
    ) -> Generator[labeling_pb2.AutoLabelRequest, None, bool]:
        """The video's sampled frames, decoded as the window has room; False when stopped."""
        frames = sample_frames(video.path, self.options.sampling)
        while True:
            if not self._take_slot():
                frames.close()
                return False
            try:
                frame = next(frames)
            except StopIteration:
                self.window.release()
                return True
            except (VideoError, OSError) as error:
                self._fail_locally(_local_failure(video.path, str(error)))
                return True
            if len(frame.data) > self.limit:
                message = (
                    f"frame {frame.index} of {video.path} is {len(frame.data)} bytes as a JPEG;"
                    f" one message carries at most {self.limit} (--max-message-bytes)"
                )
                self._fail_locally(_local_failure(video.path, message, frame.index))
                continue
            item = _frame_item(video, frame)
            self._send(item, video.path, frame.index)
            yield labeling_pb2.AutoLabelRequest(item=item)

    def read_answers(self, call: Iterator[labeling_pb2.AutoLabelResponse]) -> None:
        try:
            for response in call:
                self.window.release()
                with self.lock:
                    sent = self.pending.pop(response.client_id, None)
                if sent is None:
                    continue  # not ours (an answer is given once per image)
                self.events.put(_result(*sent, response))
            self.events.put(None)
        except grpc.RpcError as error:
            self.events.put(error)


def _result(
    path: Path, frame_index: int | None, response: labeling_pb2.AutoLabelResponse
) -> ImageResult:
    status = StatusSummary(response.status)
    if not status.ok:
        return ImageResult(path, error=status, frame_index=frame_index)
    return ImageResult(
        path,
        frame_index=frame_index,
        source=response.source,
        objects=tuple(response.objects),
        already_registered=response.already_registered,
        merged=frozenset(response.merged_objects),
    )


def served_random_weights(orchestrator_url: str) -> bool:
    """Whether the orchestrator says the mesh serves random-weight tiny models (GetMeshStatus);
    False when it cannot be asked (the stream then reports why)."""
    with open_channel(orchestrator_url, max_message_bytes=_STATUS_MESSAGE_BYTES) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        try:
            status = stub.GetMeshStatus(
                labeling_pb2.GetMeshStatusRequest(), timeout=_STATUS_TIMEOUT_S
            )
        except grpc.RpcError:
            return False
    return bool(status.random_weights)


def stream_images(
    options: StreamOptions, files: Sequence[Path | VideoInput]
) -> Iterator[ImageResult]:
    """Label `files` through AutoLabel; one result per image file and per sampled video frame
    (or per video that stopped decoding), in the order answers arrive.

    Raises `StreamBroken` when the stream fails as a whole (the orchestrator is unreachable,
    killed, or refuses the stream); the results yielded before stay valid. Closing the
    generator early (Ctrl-C) cancels the stream.
    """
    state = _Stream(options, files)
    with open_channel(
        options.orchestrator_url, max_message_bytes=options.max_message_bytes
    ) as channel:
        stub = labeling_pb2_grpc.LabelingServiceStub(channel)  # type: ignore[no-untyped-call]
        call = stub.AutoLabel(state.requests())
        reader = threading.Thread(target=state.read_answers, args=(call,), daemon=True)
        reader.start()
        answered = 0
        try:
            while True:
                event = state.events.get()
                if isinstance(event, ImageResult):
                    answered += 1
                    yield event
                    continue
                if event is None:  # the server closed the stream
                    break
                assert isinstance(event, grpc.RpcError)
                failure = failure_from_rpc_error(event, "orchestrator", options.orchestrator_url)
                raise StreamBroken(failure, unanswered=state.produced - answered)
        finally:
            state.stopped.set()
            call.cancel()
            reader.join(timeout=5)
    missing = state.produced - answered
    if missing or not state.sent_all:
        unsent = "" if state.sent_all else " before every image was sent"
        raise StreamBroken(
            CliFailure(
                f"orchestrator at {options.orchestrator_url} closed the stream{unsent} with"
                f" {missing} image(s) unanswered"
            ),
            unanswered=missing,
        )
