"""The client side of one AutoLabel stream: files in with a bounded window, results out.

`stream_images` yields one `ImageResult` per file as answers arrive (not in file order). Files
are read one at a time, just before they are sent, and at most `in_flight` images are
outstanding: memory stays flat whatever the number of files, and the orchestrator's window (and
so Triton's batching) stays busy.

Threads: gRPC's sync bidi call reads the request iterator on a thread of its own, and the answers
are read on another; both hand events to the caller's thread through one queue, so the caller
(progress bar, Ctrl-C) never blocks inside gRPC.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from agentic_labeling.cli.channels import StatusSummary, failure_from_rpc_error, open_channel
from agentic_labeling.cli.failures import CliFailure
from agentic_labeling.v1 import common_pb2, labeling_pb2, labeling_pb2_grpc, registry_pb2

__all__ = [
    "ImageResult",
    "StreamBroken",
    "StreamOptions",
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

    def config(self) -> labeling_pb2.AutoLabelConfig:
        config = labeling_pb2.AutoLabelConfig(
            class_names=list(self.class_names),
            max_objects_per_image=self.max_objects_per_image,
            skip_masks=self.skip_masks,
            skip_embeddings=self.skip_embeddings,
            # Re-running the same command after an interruption finishes the job; with
            # reprocess, registered images are labelled again (their matches merge).
            skip_registered=not self.reprocess,
        )
        if self.min_confidence is not None:
            config.confidence_threshold = self.min_confidence
        return config


@dataclass(frozen=True)
class ImageResult:
    """The outcome for one file: labelled, already registered, or failed with a status."""

    path: Path
    error: StatusSummary | None = None
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


def _local_failure(path: Path, message: str) -> ImageResult:
    return ImageResult(path, error=StatusSummary.local(grpc.StatusCode.INVALID_ARGUMENT, message))


@dataclass
class _Stream:
    options: StreamOptions
    files: Sequence[Path]
    events: queue.Queue[object] = field(default_factory=queue.Queue)
    stopped: threading.Event = field(default_factory=threading.Event)
    # client_id -> path of every image sent and not answered yet
    pending: dict[str, Path] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    sent_all: bool = False

    def __post_init__(self) -> None:
        self.window = threading.Semaphore(self.options.in_flight)

    def requests(self) -> Iterator[labeling_pb2.AutoLabelRequest]:
        yield labeling_pb2.AutoLabelRequest(config=self.options.config())
        limit = self.options.max_message_bytes - _ENVELOPE_BYTES
        for path in self.files:
            while not self.window.acquire(timeout=_POLL_S):
                if self.stopped.is_set():
                    return
            if self.stopped.is_set():
                return
            try:
                size = path.stat().st_size
                if size > limit:
                    raise ValueError(
                        f"the file has {size} bytes; one message carries at most {limit}"
                        " (--max-message-bytes)"
                    )
                data = path.read_bytes()
            except (OSError, ValueError) as error:
                self.window.release()
                reason = error.strerror if isinstance(error, OSError) else str(error)
                self.events.put(_local_failure(path, f"cannot send {path}: {reason}"))
                continue
            client_id = str(path)
            with self.lock:
                self.pending[client_id] = path
            yield labeling_pb2.AutoLabelRequest(
                item=labeling_pb2.AutoLabelItem(
                    client_id=client_id,
                    image=common_pb2.Image(data=data),
                    display_name=path.name,
                )
            )
        self.sent_all = True

    def read_answers(self, call: Iterator[labeling_pb2.AutoLabelResponse]) -> None:
        try:
            for response in call:
                self.window.release()
                with self.lock:
                    path = self.pending.pop(response.client_id, None)
                if path is None:
                    continue  # not ours (an answer is given once per image)
                self.events.put(_result(path, response))
            self.events.put(None)
        except grpc.RpcError as error:
            self.events.put(error)


def _result(path: Path, response: labeling_pb2.AutoLabelResponse) -> ImageResult:
    status = StatusSummary(response.status)
    if not status.ok:
        return ImageResult(path, error=status)
    return ImageResult(
        path,
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


def stream_images(options: StreamOptions, files: Sequence[Path]) -> Iterator[ImageResult]:
    """Label `files` through AutoLabel; one result per file, in the order answers arrive.

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
                raise StreamBroken(failure, unanswered=len(files) - answered)
        finally:
            state.stopped.set()
            call.cancel()
            reader.join(timeout=5)
    missing = len(files) - answered
    if missing:
        raise StreamBroken(
            CliFailure(
                f"orchestrator at {options.orchestrator_url} closed the stream with"
                f" {missing} image(s) unanswered"
            ),
            unanswered=missing,
        )
