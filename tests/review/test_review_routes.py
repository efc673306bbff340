"""The review app's HTTP routes against a real registry: cross-site refusal, bad input named
by field, cached pictures, and the health route."""

from __future__ import annotations

import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import registry_data_dir
from review_mesh import (
    add_objects,
    get_json,
    page_token,
    post,
    running_registry,
    start_review,
    vector,
)

from agentic_labeling.v1 import registry_pb2

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def status_of(url: str, headers: dict[str, str] | None = None) -> int:
    """The HTTP status a GET of `url` answers with."""
    try:
        with _NO_PROXY.open(urllib.request.Request(url, headers=headers or {}), timeout=30) as r:
            return int(r.status)
    except urllib.error.HTTPError as error:
        return error.code


class App:
    def __init__(self, base: str, mesh: Any, names: list[str]) -> None:
        self.base, self.mesh, self.names = base, mesh, names
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
        review = start_review(workdir, mesh.process.address, data_dir)
        try:
            yield App(f"http://{review.address}", mesh, [o.name for o in made])
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
