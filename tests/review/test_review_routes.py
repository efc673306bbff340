"""The review app's HTTP routes against a real registry: cross-site refusal, bad input named
by field, cached pictures, and the health route."""

from __future__ import annotations

import hashlib
import io
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import registry_data_dir
from dataset_mesh import HEIGHT, WIDTH
from PIL import Image
from review_mesh import (
    add_objects,
    get_json,
    page_token,
    post,
    running_registry,
    start_review,
    vector,
)

from agentic_labeling.v1 import common_pb2, registry_pb2

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_GREY = (96, 96, 96)


def add_unstored_object(mesh: Any) -> registry_pb2.LabeledObject:
    """An object on a source registered without its image bytes (only their hash)."""
    source = mesh.registry.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=WIDTH,
                height=HEIGHT,
                content_sha256=hashlib.sha256(b"kept elsewhere").hexdigest(),
            )
        ),
        timeout=30,
    )
    created = mesh.registry.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            requests=[
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source.name,
                        category_name="cat",
                        bbox=common_pb2.BoundingBox(x=10, y=10, width=30, height=30),
                        confidence=0.9,
                        detection_model="florence2",
                    ),
                    embedding=common_pb2.Embedding(values=vector(2)),
                )
            ],
        ),
        timeout=30,
    )
    return created.objects[0]


def picture(url: str) -> Image.Image:
    """The image a GET of `url` answers with, decoded to RGB."""
    with _NO_PROXY.open(url, timeout=30) as reply:
        return Image.open(io.BytesIO(reply.read())).convert("RGB")


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status a GET of `url` answers with."""
    try:
        with _NO_PROXY.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code


class App:
    def __init__(
        self, base: str, mesh: Any, names: list[str], unstored: registry_pb2.LabeledObject
    ) -> None:
        self.base, self.mesh, self.names, self.unstored = base, mesh, names, unstored
        self.token = page_token(base + "/")

    def validated(self, name: str) -> bool:
        found = self.mesh.registry.GetObject(registry_pb2.GetObjectRequest(name=name), timeout=10)
        return bool(found.is_validated)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    data_dirs = registry_data_dir()  # outside pytest's tmp: Postgres runs as another user
    data_dir = next(data_dirs)
    workdir = tmp_path_factory.mktemp("routes-run")
    with running_registry(workdir, data_dir) as mesh:
        made = add_objects(mesh, 3, [("cat", 0.3, vector(0)), ("dog", 0.4, vector(1))])
        unstored = add_unstored_object(mesh)
        # The review app gets a data dir of its own: every picture must come over gRPC.
        review = start_review(workdir, mesh.process.address, workdir / "review-data")
        try:
            yield App(f"http://{review.address}", mesh, [o.name for o in made], unstored)
        finally:
            assert review.stop() == 0
    next(data_dirs, None)


def test_decision_without_the_page_token_is_refused(app: App) -> None:
    status, body = post(app.base + "/api/decisions", {"action": "accept", "names": app.names[:1]})
    assert (status, body["reason"]) == (403, "CROSS_SITE")
    assert not app.validated(app.names[0])


def test_decision_from_another_origin_is_refused_even_with_the_token(app: App) -> None:
    headers = {"X-Review-Token": app.token, "Origin": "http://evil.example"}
    status, _ = post(
        app.base + "/api/decisions", {"action": "accept", "names": app.names[:1]}, headers
    )
    assert status == 403
    assert not app.validated(app.names[0])


def test_decision_marked_cross_site_by_the_browser_is_refused(app: App) -> None:
    headers = {"X-Review-Token": app.token, "Sec-Fetch-Site": "cross-site"}
    status, _ = post(
        app.base + "/api/decisions", {"action": "accept", "names": app.names[:1]}, headers
    )
    assert status == 403
    assert not app.validated(app.names[0])


def test_decision_from_the_page_itself_is_applied(app: App) -> None:
    origin = app.base
    headers = {"X-Review-Token": app.token, "Origin": origin, "Sec-Fetch-Site": "same-origin"}
    status, body = post(
        app.base + "/api/decisions", {"action": "accept", "names": app.names[1:]}, headers
    )
    assert (status, body["decided"]) == (200, 1)
    assert app.validated(app.names[1])


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "explode", "names": ["x"]}, "action"),
        ({"action": "accept", "names": []}, "names"),
        ({"action": "accept", "names": ["objects/../../etc/passwd"]}, "names[0]"),
        (
            {"action": "relabel", "names": ["objects/00000000-0000-0000-0000-000000000000"]},
            "category_name",
        ),
        (
            {
                "action": "box",
                "names": ["00000000-0000-0000-0000-000000000000"],
                "bbox": [0, 0, -1, 2],
            },
            "bbox",
        ),
    ],
)
def test_bad_decision_is_400_naming_the_field(app: App, body: dict[str, Any], field: str) -> None:
    status, reply = post(app.base + "/api/decisions", body, {"X-Review-Token": app.token})
    assert status == 400
    assert reply["fields"][0]["field"] == field  # type: ignore[index]


def test_decision_on_a_missing_object_is_404(app: App) -> None:
    missing = "objects/00000000-0000-4000-8000-000000000000"
    status, reply = post(
        app.base + "/api/decisions",
        {"action": "accept", "names": [missing]},
        {"X-Review-Token": app.token},
    )
    assert status == 404
    assert reply["retry"] is False


def test_bad_filter_is_400_from_the_registry(app: App) -> None:
    assert status_of(app.base + "/api/objects?filter=nonsense%20%3D%3D%3D") == 400


def test_thumbnail_is_cached_with_an_etag(app: App) -> None:
    card = get_json(app.base + "/api/objects")["objects"][0]  # type: ignore[index]
    url = f"{app.base}/thumb/{card['id']}?s=128&v={card['version']}"
    with _NO_PROXY.open(url, timeout=30) as reply:
        etag, cache = reply.headers["ETag"], reply.headers["Cache-Control"]
        assert reply.headers["Content-Type"] == "image/jpeg"
    assert "max-age" in cache
    assert status_of(url, {"If-None-Match": etag}) == 304


def test_static_route_serves_only_its_own_files(app: App) -> None:
    assert status_of(app.base + "/static/..%2F..%2Fsettings.py") == 404
    assert status_of(app.base + "/static/app.js") == 200


def test_health_says_the_registry_is_up(app: App) -> None:
    health = get_json(app.base + "/healthz")
    assert (health["status"], health["registry"]) == ("SERVING", "up")


def test_whole_image_comes_from_the_registry_over_grpc_not_a_data_dir(app: App) -> None:
    obj = app.mesh.registry.GetObject(registry_pb2.GetObjectRequest(name=app.names[0]), timeout=10)
    stored = app.mesh.registry.GetSourceImage(
        registry_pb2.GetSourceImageRequest(name=obj.source), timeout=10
    )
    source_id = obj.source.removeprefix("sources/")

    shown = np.asarray(picture(f"{app.base}/image/{source_id}"), dtype=np.float32)

    original = np.asarray(Image.open(io.BytesIO(stored.data)).convert("RGB"), dtype=np.float32)
    assert shown.shape == original.shape
    # The photo (random pixels) through JPEG: close to it, and nothing like the grey stand-in.
    assert float(np.corrcoef(shown.ravel(), original.ravel())[0, 1]) > 0.6


def test_source_registered_without_bytes_shows_a_grey_thumbnail(app: App) -> None:
    thumb = picture(f"{app.base}/thumb/{app.unstored.name.removeprefix('objects/')}?s=96")

    # Inside the box drawn on it: flat grey, nothing like a photo's pixels.
    inside = np.asarray(thumb, dtype=np.float32)[15:30, 15:30].reshape(-1, 3)
    assert np.abs(inside.mean(axis=0) - np.array(_GREY)).max() <= 10
    assert float(inside.std()) <= 10
