"""A registry with objects to review and a review app (`alabel serve review`) on it, as real
processes; and a headless Chromium driven by Selenium, for the review app's tests and bench.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from dataset_mesh import DIM, HEIGHT, WIDTH, Mesh, bbox, photo, running_registry

from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.mask_codec import masks_to_rle
from agentic_labeling.v1 import common_pb2, registry_pb2

XSS_CLASS = "<img src=x onerror=alert(1)>"
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def chromium_missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for binary in ("chromium", "chromedriver"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (`make setup` installs it where apt is available)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    return None


def box_mask(x: int, y: int, w: int, h: int) -> np.ndarray:
    mask = np.zeros((HEIGHT, WIDTH), bool)
    mask[y : y + h, x : x + w] = True
    return mask


def add_objects(
    mesh: Mesh,
    seed: int,
    objects: list[tuple[str, float, list[float]]],
) -> list[registry_pb2.LabeledObject]:
    """A photo and its objects (class name, confidence, embedding), each with a mask."""
    source = mesh.registry.CreateSource(
        registry_pb2.CreateSourceRequest(
            source=registry_pb2.Source(
                kind=common_pb2.SOURCE_KIND_IMAGE,
                width=WIDTH,
                height=HEIGHT,
                display_name=f"photo {seed}.png",
            ),
            image_data=photo(seed),
            return_existing=True,
        ),
        timeout=30,
    )
    requests = []
    for i, (name, confidence, vector) in enumerate(objects):
        mask = box_mask(4 + 14 * (i % 6), 4 + 20 * (i // 6), 12, 16)
        requests.append(
            registry_pb2.CreateObjectRequest(
                object=registry_pb2.LabeledObject(
                    source=source.name,
                    category_name=name,
                    bbox=bbox(mask),
                    confidence=confidence,
                    detection_model="florence2",
                ),
                mask=common_pb2.Mask(
                    rle=common_pb2.RunLengthEncoding(
                        height=HEIGHT, width=WIDTH, counts=masks_to_rle(mask)
                    )
                ),
                embedding=common_pb2.Embedding(values=vector),
            )
        )
    created = mesh.registry.BatchCreateObjects(
        registry_pb2.BatchCreateObjectsRequest(
            request_id=str(uuid.uuid4()),
            create_missing_categories=True,
            duplicate_iou_threshold=1.0,
            requests=requests,
        ),
        timeout=30,
    )
    return list(created.objects)


def vector(axis: int, wobble: float = 0.0) -> list[float]:
    values = [0.0] * DIM
    values[axis] = 1.0
    values[(axis + 1) % DIM] = wobble
    return values


def start_review(workdir: Path, registry_address: str, data_dir: Path) -> ManagedProcess:
    return start_server_process(
        "review",
        workdir,
        ["--registry-url", registry_address, "--data-dir", str(data_dir)],
        metrics_port=None,
    )


def get_json(url: str) -> dict[str, object]:
    with _NO_PROXY.open(url, timeout=30) as reply:
        found: dict[str, object] = json.loads(reply.read())
        return found


def post(
    url: str, body: object, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(
        url,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
        method="POST",
    )
    try:
        with _NO_PROXY.open(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def page_token(base_url: str) -> str:
    """The CSRF token the page carries (what the browser's script sends)."""
    with _NO_PROXY.open(base_url, timeout=30) as reply:
        page = reply.read().decode()
    marker = 'name="review-token" content="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


@contextlib.contextmanager
def chromium() -> Iterator[object]:
    """A headless Chromium (Debian's) under Selenium; alerts fail the test that meets one."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-proxy-server",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=shutil.which("chromedriver"))
    )
    try:
        yield driver
    finally:
        driver.quit()


__all__ = [
    "XSS_CLASS",
    "Mesh",
    "add_objects",
    "chromium",
    "chromium_missing",
    "get_json",
    "page_token",
    "post",
    "running_registry",
    "start_review",
    "vector",
]
