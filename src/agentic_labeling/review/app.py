"""The review app's HTTP routes: the page, its JSON API, and the pictures.

Every route reads the registry through `RegistryGateway`; nothing is stored here but the
picture cache. JSON carries user data (class names, sources, attributes) as plain strings;
the page inserts them as text only, never as HTML. Mutating routes go through `security`.
Registry failures become JSON `{"error", "reason", "retry"}` with an HTTP status that says
whose fault it is: 4xx the request's, 503 the registry is down (the page retries).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from agentic_labeling.errors import DomainError, FailedPrecondition, InvalidArgument, Unavailable
from agentic_labeling.review.decisions import Decision, object_name, parse_decision
from agentic_labeling.review.gateway import Correction, RegistryGateway
from agentic_labeling.review.rendering import (
    Picture,
    PictureCache,
    class_color,
    decode_image,
    frame_jpeg,
    grey_canvas,
    mask_overlay,
    thumbnail,
)
from agentic_labeling.review.security import new_token, refusal
from agentic_labeling.v1 import common_pb2, registry_pb2

__all__ = ["ReviewConfig", "create_app"]

THUMB_SIZES = (96, 128, 160, 192, 256, 384)
_PAGE_SIZES = range(1, 1001)
_FRAME_INDEXES = range(0, 2**63 - 1)
_MAX_FILTER = 2000
_DEFAULT_ORDER = "confidence, create_time"
_SOURCE_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_HTTP_STATUS = {
    "INVALID_ARGUMENT": 400,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "FAILED_PRECONDITION": 409,
    "RESOURCE_EXHAUSTED": 429,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 503,
}
_IMMUTABLE = "private, max-age=86400, immutable"  # picture URLs carry the object's version
_IMAGES_KEPT = 8  # decoded source images: a page's cards come from few images
_SOURCES_KEPT = 1024


@dataclass
class ReviewConfig:
    """What the app needs: the registry's address and who is reviewing."""

    registry_url: str
    reviewer: str = "reviewer"
    deadline_s: float = 10.0
    token: str = field(default_factory=new_token)


class _State:
    def __init__(self, config: ReviewConfig) -> None:
        self.config = config
        self.gateway = RegistryGateway(config.registry_url, deadline_s=config.deadline_s)
        self.pictures = PictureCache()
        self.images: OrderedDict[tuple[str, int, int | None], Image.Image] = OrderedDict()
        # A source's size and image never change: one GetSource per source, not per picture.
        self.sources: OrderedDict[str, registry_pb2.Source] = OrderedDict()
        self.decisions = 0  # objects decided on: see `decision_round_trips`

    async def source(self, name: str) -> registry_pb2.Source:
        found = self.sources.get(name)
        if found is None:
            found = await self.gateway.get_source(name)
            self.sources[name] = found
            while len(self.sources) > _SOURCES_KEPT:
                self.sources.popitem(last=False)
        self.sources.move_to_end(name)
        return found

    async def image(self, source: registry_pb2.Source, frame_index: int = 0) -> Image.Image:
        """The upright image of `source` (of its frame `frame_index` for a video), fetched
        from the registry with GetSourceImage; grey when it was registered without its bytes."""
        frame = frame_index if source.kind == common_pb2.SOURCE_KIND_VIDEO else None
        key = (source.name, source.create_time.seconds, frame)
        found = self.images.get(key)
        if found is None:
            try:
                stored = await self.gateway.get_source_image(source.name, frame)
            except FailedPrecondition:  # registered without its image: boxes on grey
                found = grey_canvas(source.width, source.height)
            else:
                found = await asyncio.to_thread(
                    decode_image, stored.data, source.width, source.height
                )
            self.images[key] = found
            while len(self.images) > _IMAGES_KEPT:
                self.images.popitem(last=False)
        self.images.move_to_end(key)
        return found


def _version(stamp: Timestamp) -> str:
    return f"{stamp.seconds}.{stamp.nanos:09d}"


def card(o: registry_pb2.LabeledObject) -> dict[str, Any]:
    """An object as the page shows it: user data as plain strings, never HTML."""
    return {
        "name": o.name,
        "id": o.name.removeprefix("objects/"),
        "category": o.category,
        "category_name": o.category_name,
        "color": "#{:02x}{:02x}{:02x}".format(*class_color(o.category_name)),
        "confidence": round(float(o.confidence), 4),
        "source": o.source,
        "frame_index": o.frame_index,
        "detection_model": o.detection_model,
        "is_validated": o.is_validated,
        "validated_by": o.validated_by,
        "bbox": [o.bbox.x, o.bbox.y, o.bbox.width, o.bbox.height],
        "has_mask": o.has_mask,
        "has_embedding": o.has_embedding,
        "attributes": dict(o.attributes),
        "version": _version(o.update_time),
    }


def _error(error: DomainError) -> JSONResponse:
    status = _HTTP_STATUS.get(error.grpc_code, 502)
    body: dict[str, Any] = {
        "error": error.message,
        "reason": error.reason,
        "retry": status in (429, 502, 503),
    }
    if isinstance(error, InvalidArgument):
        body["fields"] = [
            {"field": v.field, "description": v.description} for v in error.violations
        ]
    return JSONResponse(body, status_code=status)


def _state(request: Request) -> _State:
    state: _State = request.app.state.review
    return state


def _query_int(request: Request, name: str, default: int, allowed: range | tuple[int, ...]) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgument(f"{name} must be an integer", field=name) from None
    if value not in allowed:
        raise InvalidArgument(f"{name} must be one of {_describe(allowed)}", field=name)
    return value


def _describe(allowed: range | tuple[int, ...]) -> str:
    if isinstance(allowed, range):
        return f"{allowed.start}..{allowed.stop - 1}"
    return ", ".join(map(str, allowed))


def _filter(request: Request) -> str:
    value = request.query_params.get("filter", "")
    if len(value) > _MAX_FILTER:
        raise InvalidArgument(f"filter holds at most {_MAX_FILTER} characters", field="filter")
    return value


async def index(request: Request) -> Response:
    page = resources.files("agentic_labeling.review").joinpath("static/index.html").read_text()
    # The token is hex: nothing in it needs escaping.
    page = page.replace("{{TOKEN}}", _state(request).config.token)
    return Response(
        page,
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; "
            "style-src 'self'; script-src 'self'; object-src 'none'; frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
        },
    )


_STATIC_TYPES = {"app.js": "text/javascript", "app.css": "text/css"}


async def static(request: Request) -> Response:
    # Only the named files: the name is looked up in a fixed table, never used as a path.
    name = request.path_params["name"]
    media_type = _STATIC_TYPES.get(name)
    if media_type is None:
        return JSONResponse({"error": "no such file"}, status_code=404)
    text = resources.files("agentic_labeling.review").joinpath(f"static/{name}").read_text()
    return Response(text, media_type=media_type, headers={"Cache-Control": "no-cache"})


async def health(request: Request) -> Response:
    state = _state(request)
    up = await state.gateway.reachable()
    return JSONResponse(
        {
            "status": "SERVING",
            "registry": "up" if up else "unavailable",
            "decisions": state.decisions,
            "decision_round_trips": state.gateway.decision_round_trips,
        }
    )


async def list_objects(request: Request) -> Response:
    state = _state(request)
    page = await state.gateway.list_objects(
        filter=_filter(request),
        order_by=request.query_params.get("order_by", _DEFAULT_ORDER)[:200],
        page_size=_query_int(request, "page_size", 50, _PAGE_SIZES),
        page_token=request.query_params.get("page_token", "")[:2000],
    )
    return JSONResponse(
        {
            "objects": [card(o) for o in page.objects],
            "next_page_token": page.next_page_token,
            "total_size": page.total_size,
        }
    )


async def categories(request: Request) -> Response:
    found = await _state(request).gateway.categories()
    return JSONResponse(
        {
            "categories": [
                {
                    "name": c.name,
                    "display_name": c.display_name,
                    "synonyms": list(c.synonyms),
                    "object_count": c.object_count,
                    "color": "#{:02x}{:02x}{:02x}".format(*class_color(c.display_name)),
                }
                for c in found
            ]
        }
    )


async def similar(request: Request) -> Response:
    name = object_name(request.query_params.get("object", ""), "object")
    top_k = _query_int(request, "top_k", 24, range(1, 1001))
    results = await _state(request).gateway.similar(name, top_k=top_k, filter=_filter(request))
    return JSONResponse(
        {"results": [{**card(r.object), "score": round(float(r.score), 4)} for r in results]}
    )


async def stats(request: Request) -> Response:
    bins = _query_int(request, "bins", 10, range(1, 101))
    s = await _state(request).gateway.stats(filter=_filter(request), bins=bins)
    return JSONResponse(
        {
            "object_count": s.object_count,
            "source_count": s.source_count,
            "validated_fraction": s.validated_fraction,
            "per_category": [
                {"key": e.key, "display_name": e.display_name, "count": e.count}
                for e in s.per_category
            ],
            "per_model": [{"key": e.key, "count": e.count} for e in s.per_model],
            "confidence_histogram": [
                {"lower": b.lower, "upper": b.upper, "count": b.count}
                for b in s.confidence_histogram
            ],
        }
    )


async def frame(request: Request) -> Response:
    """The image view's data: the image of an object and every object on it."""
    state = _state(request)
    target = await state.gateway.get_object(
        object_name(request.query_params.get("object"), "object")
    )
    source = await state.gateway.get_source(target.source)
    objects: list[registry_pb2.LabeledObject] = []
    token = ""
    while True:
        page = await state.gateway.list_objects(
            filter=f'source = "{target.source}" AND frame_index = {target.frame_index}',
            order_by="create_time",
            page_size=1000,
            page_token=token,
        )
        objects.extend(page.objects)
        token = page.next_page_token
        if not token or len(objects) >= 5000:
            break
    return JSONResponse(
        {
            "object": target.name,
            "source": {
                "name": source.name,
                "id": source.name.removeprefix("sources/"),
                "display_name": source.display_name,
                "width": source.width,
                "height": source.height,
                "version": _version(source.create_time),
            },
            "frame_index": target.frame_index,
            "objects": [card(o) for o in objects],
        }
    )


def _picture_response(request: Request, picture: Picture, etag: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": _IMMUTABLE, "X-Content-Type-Options": "nosniff"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(picture.data, media_type=picture.media_type, headers=headers)


async def _object_and_mask(
    state: _State, name: str
) -> tuple[registry_pb2.LabeledObject, registry_pb2.Source, bytes]:
    o = await state.gateway.get_object(name)
    source = await state.source(o.source)
    mask = (await state.gateway.get_mask(name)).png if o.has_mask else b""
    return o, source, mask


async def thumb(request: Request) -> Response:
    """An object's crop with its mask outlined; `v` (its version) makes the URL immutable."""
    state = _state(request)
    name = object_name(request.path_params["object_id"], "object")
    size = _query_int(request, "s", 160, THUMB_SIZES)
    wanted = request.query_params.get("v", "")[:40]
    key = ("thumb", name, wanted, size)
    picture = state.pictures.peek(key) if wanted else None
    if picture is None:
        o, source, mask = await _object_and_mask(state, name)
        image = await state.image(source, o.frame_index)
        bbox = (o.bbox.x, o.bbox.y, o.bbox.width, o.bbox.height)
        key = ("thumb", name, _version(o.update_time), size)
        picture = state.pictures.get_or_make(key, lambda: thumbnail(image, bbox, mask, size))
    return _picture_response(request, picture, _etag(key))


async def overlay(request: Request) -> Response:
    """An object's mask as a transparent PNG the size of its image, in its class colour."""
    state = _state(request)
    name = object_name(request.path_params["object_id"], "object")
    wanted = request.query_params.get("v", "")[:40]
    key = ("overlay", name, wanted)
    picture = state.pictures.peek(key) if wanted else None
    if picture is None:
        o, source, mask = await _object_and_mask(state, name)
        size, color = (source.width, source.height), class_color(o.category_name)
        key = ("overlay", name, _version(o.update_time))
        picture = state.pictures.get_or_make(key, lambda: mask_overlay(mask, size, color))
    return _picture_response(request, picture, _etag(key))


async def source_image(request: Request) -> Response:
    """The whole image of a source, or of its frame `frame` (a video's)."""
    state = _state(request)
    source_id = request.path_params["source_id"]
    if not _SOURCE_ID.fullmatch(source_id):
        raise InvalidArgument("source must be a uuid", field="source")
    frame_index = _query_int(request, "frame", 0, _FRAME_INDEXES)
    source = await state.gateway.get_source(f"sources/{source_id}")
    key = ("image", source.name, _version(source.create_time), frame_index)
    image = await state.image(source, frame_index)
    picture = state.pictures.get_or_make(key, lambda: frame_jpeg(image))
    return _picture_response(request, picture, _etag(key))


def _etag(key: tuple[object, ...]) -> str:
    import hashlib

    return '"' + hashlib.sha256(repr(key).encode()).hexdigest()[:32] + '"'


async def decide(request: Request) -> Response:
    """One decision, one RPC (a reject of several: one DeleteObject each)."""
    state = _state(request)
    why = refusal(request, state.config.token)
    if why is not None:
        return JSONResponse({"error": why, "reason": "CROSS_SITE", "retry": False}, status_code=403)
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise InvalidArgument("the body must be JSON", field="body") from None
    decision = parse_decision(body)
    # Counted when sent, like the gateway's round trips, so the two always pair up.
    state.decisions += len(decision.names)
    objects = await _apply(state, decision)
    return JSONResponse({"objects": [card(o) for o in objects], "decided": len(decision.names)})


async def _apply(state: _State, d: Decision) -> list[registry_pb2.LabeledObject]:
    gateway, who = state.gateway, state.config.reviewer
    if d.action in ("accept", "unaccept"):
        return await gateway.validate(
            d.names, [], validated_by=who, is_validated=d.action == "accept"
        )
    if d.action in ("relabel", "restore"):
        corrections = [Correction(n, category_name=d.category_name) for n in d.names]
        validated = True if d.action == "relabel" else d.validated
        return await gateway.validate([], corrections, validated_by=who, is_validated=validated)
    if d.action == "box":
        assert d.bbox is not None
        return [await gateway.update_bbox(d.names[0], d.bbox)]
    for name in d.names:  # reject
        await gateway.delete(name)
    return []


async def _domain_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, DomainError)
    return _error(exc)


def create_app(config: ReviewConfig) -> Starlette:
    """The review app talking to the registry at `config.registry_url`."""

    @asynccontextmanager
    async def lifespan(app: Starlette):  # type: ignore[no-untyped-def]
        app.state.review = _State(config)
        try:
            yield
        finally:
            await app.state.review.gateway.close()

    routes = [
        Route("/", index),
        Route("/healthz", health),
        Route("/static/{name}", static),
        Route("/api/objects", list_objects),
        Route("/api/categories", categories),
        Route("/api/similar", similar),
        Route("/api/stats", stats),
        Route("/api/frame", frame),
        Route("/api/decisions", decide, methods=["POST"]),
        Route("/thumb/{object_id}", thumb),
        Route("/overlay/{object_id}", overlay),
        Route("/image/{source_id}", source_image),
    ]
    return Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={DomainError: _domain_error, Unavailable: _domain_error},
    )
