"""AutoLabel: one bidirectional stream of images in and labelled, registered objects out.

The client sends a config, then images (a later config applies to the images after it). Each
image is worked on concurrently with the others (servers/labeling_pipeline.py) and answered as
soon as it is done, tagged with its client_id, so answers come back out of order.

The window. All streams of a server share one `LabelingWindow` (servers/labeling_window.py):
`settings.labeling_window` slots that an image holds for its model stages only, which fill
Triton's queues with concurrent requests that its dynamic batcher turns into batches, and
`settings.registration_queue` slots that it holds for its registry calls instead. Both bound
the work (and the memory) of the whole server.

Flow control. Each stream also has `labeling_window + registration_queue` credits, enough to
fill both at once. Reading a message takes
a credit; the credit comes back when the message's answer has been handed to gRPC (a config
gives it back at once). So a stream reads its next image only while it has fewer than that
many images unanswered (waiting for the window, in work, or answered but not yet sent), and
gRPC's HTTP/2 flow control holds the rest of a 10,000-image stream in the client. A client
that stops reading answers stops the server from reading its images too: memory stays flat in
both directions. The window is taken after reading, not before, so an idle stream (a client
thinking between images) never holds a slot that other streams could use.

Exactly once. Each image is registered with one BatchCreateObjects whose request_id is derived
from the client's id and the image's content (see servers/labeling_pipeline.py), so a retried
image, even in a new stream after a crash, is registered once.

Errors.
- One image fails alone, with its status in its answer; the stream goes on: INVALID_ARGUMENT
  for a corrupt, empty, oversized or unsupported image, an empty or too long client_id, a
  client_id still in flight in this stream (reason DUPLICATE_CLIENT_ID) or a bad frame
  position; FAILED_PRECONDITION for an image before any config (reason CONFIG_REQUIRED) or a
  server-side URI; UNAVAILABLE when Triton or the registry cannot be reached; an unexpected
  exception is INTERNAL with an incident id (its traceback is in the server log).
- With `track_objects`, a video frame that is not after the last frame read for its video
  (repeated or out of order) fails alone: INVALID_ARGUMENT on `item.frame.frame_index`, reason
  FRAME_OUT_OF_ORDER (servers/frame_tracking.py).
- The stream itself fails only for what every later image depends on: a bad config
  (INVALID_ARGUMENT naming the `config.` field), a message with neither config nor item
  (INVALID_ARGUMENT naming `payload`), a chosen detector that Triton does not serve, is not
  ready or cannot detect the config's classes (NOT_FOUND, FAILED_PRECONDITION or
  INVALID_ARGUMENT: servers/detector_choice.py). The server stops
  reading, answers every image it had read, then ends the stream with that status.
- Cancellation and deadlines: when the client cancels or its deadline passes, gRPC cancels
  the handler and every image task of the stream is cancelled with it, their Triton and
  registry calls included; each call carries what is left of the deadline. The registry
  writes a batch all or nothing, so nothing is left half written, and the window's slots come
  back (GetMeshStatus: images_in_flight).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterable

from google.protobuf import duration_pb2

from agentic_labeling.errors import DomainError, FailedPrecondition, InvalidArgument
from agentic_labeling.rpc_status import status_code_for
from agentic_labeling.servers.auto_label_requests import (
    LabelingConfig,
    check_client_id,
    check_config,
)
from agentic_labeling.servers.detector_choice import require_detector
from agentic_labeling.servers.error_status import status_message
from agentic_labeling.servers.frame_tracking import FrameTurn, StreamTracking
from agentic_labeling.servers.labeling_pipeline import Deadline, LabelingPipeline, VideoSources
from agentic_labeling.servers.labeling_window import LabelingWindow
from agentic_labeling.servers.metrics import LabelingMetrics
from agentic_labeling.settings import Settings
from agentic_labeling.v1 import labeling_pb2

__all__ = ["METHOD", "AutoLabelStream"]

logger = logging.getLogger(__name__)

METHOD = "/agentic_labeling.v1.LabelingService/AutoLabel"


class AutoLabelStream:
    """The state of one AutoLabel call: its config, credits, images in work and answers."""

    def __init__(
        self,
        pipeline: LabelingPipeline,
        window: LabelingWindow,
        videos: VideoSources,
        settings: Settings,
        remaining: Deadline,
        metrics: LabelingMetrics | None = None,
    ) -> None:
        self._metrics = metrics
        self._pipeline = pipeline
        self._window = window
        self._videos = videos
        self._settings = settings
        self._remaining = remaining
        # Enough credits to fill the window and the registration queue at once.
        self._credits = asyncio.Semaphore(window.images)
        # None marks the end: every image read has been answered.
        self._answers: asyncio.Queue[labeling_pb2.AutoLabelResponse | None] = asyncio.Queue()
        self._tasks: set[asyncio.Task[None]] = set()
        self._client_ids: set[str] = set()  # of the images in work
        self._config: LabelingConfig | None = None
        self._failure: DomainError | None = None
        self._tracking = StreamTracking()  # used by frames read under track_objects

    async def responses(
        self, requests: AsyncIterable[labeling_pb2.AutoLabelRequest]
    ) -> AsyncGenerator[labeling_pb2.AutoLabelResponse, None]:
        """The answers, as they finish; raises the stream's failure after the last one."""
        reader = asyncio.create_task(self._read(requests))
        try:
            while (answer := await self._answers.get()) is not None:
                yield answer
                self._credits.release()
            await reader  # a bug in the reader ends the stream as INTERNAL
            if self._failure is not None:
                raise self._failure
        finally:
            # Cancelled, or the client went away: stop the reader and every image in work.
            pending = [task for task in (reader, *self._tasks) if not task.done()]
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _read(self, requests: AsyncIterable[labeling_pb2.AutoLabelRequest]) -> None:
        messages = aiter(requests)
        try:
            while True:
                await self._credits.acquire()
                try:
                    request = await anext(messages)
                except StopAsyncIteration:
                    break
                if not self._accept(request, received=time.perf_counter()):
                    break
                if request.HasField("config") and not await self._detector_ready():
                    break
            if self._tasks:
                await asyncio.wait(set(self._tasks))
        finally:
            self._answers.put_nowait(None)

    async def _detector_ready(self) -> bool:
        """Whether the config's detector can label its classes (servers/detector_choice.py),
        asked before any image after the config is read; False fails the stream."""
        config = self._config
        if config is None:  # not reached: a config was just accepted
            return True
        try:
            await require_detector(self._settings.triton_url, config.detector, config.class_names)
        except DomainError as exc:
            self._failure = exc
            return False
        return True

    def _accept(self, request: labeling_pb2.AutoLabelRequest, *, received: float) -> bool:
        """Act on one message; False when the stream must stop reading (it failed)."""
        kind = request.WhichOneof("payload")
        if kind != "item":
            self._credits.release()  # nothing will be answered for this message
            try:
                if kind is None:
                    raise InvalidArgument(
                        "the message is empty: set config or item", field="payload"
                    )
                self._config = check_config(request.config, self._settings)
            except DomainError as exc:
                self._failure = exc
                return False
            return True
        item = request.item
        try:
            if self._config is None:
                raise FailedPrecondition(
                    "send an AutoLabelConfig (class names) before the first image",
                    reason="CONFIG_REQUIRED",
                )
            check_client_id(item.client_id)
            if item.client_id in self._client_ids:
                raise InvalidArgument(
                    f"client_id {item.client_id!r} is already in work in this stream; "
                    "client ids must be unique among the images in flight",
                    field="item.client_id",
                    reason="DUPLICATE_CLIENT_ID",
                )
            # The frame's place in its video's order is taken now, while reading in order.
            turn = (
                self._tracking.ticket(item.frame, self._config.min_confidence)
                if self._config.track_objects and item.HasField("frame")
                else None
            )
        except DomainError as exc:
            self._answer(self._failed(item.client_id, exc, received))
            return True
        self._client_ids.add(item.client_id)
        task = asyncio.create_task(self._label(item, self._config, received, turn))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return True

    async def _label(
        self,
        item: labeling_pb2.AutoLabelItem,
        config: LabelingConfig,
        received: float,
        turn: FrameTurn | None,
    ) -> None:
        try:
            answer = await self._pipeline.label(
                item,
                config,
                self._videos,
                self._remaining,
                received=received,
                window=self._window,
                turn=turn,
            )
        except Exception as exc:  # the image fails alone; cancellation passes
            answer = self._failed(item.client_id, exc, received)
        finally:
            if turn is not None:  # the next frame of the video must not wait for this one
                turn.finish()
            self._client_ids.discard(item.client_id)
        self._answer(answer)

    def _answer(self, answer: labeling_pb2.AutoLabelResponse) -> None:
        """Queue an image's answer, counting its outcome for the metrics."""
        if self._metrics is not None:
            if answer.status.code != 0:
                self._metrics.image_done("failed")
            elif answer.already_registered:
                self._metrics.image_done("skipped")
            else:
                self._metrics.image_done("ok")
                self._metrics.objects_registered(len(answer.objects))
        self._answers.put_nowait(answer)

    def _failed(
        self, client_id: str, exc: Exception, received: float
    ) -> labeling_pb2.AutoLabelResponse:
        if isinstance(exc, DomainError):
            logger.info(
                "image failed",
                extra={
                    "client_id": client_id,
                    "code": status_code_for(exc).name,
                    "reason": exc.reason,
                    "error": exc.message,
                },
            )
        total = duration_pb2.Duration()
        total.FromNanoseconds(round((time.perf_counter() - received) * 1e9))
        return labeling_pb2.AutoLabelResponse(
            client_id=client_id,
            status=status_message(exc, method=METHOD),
            timings=labeling_pb2.StageTimings(total=total),
        )
