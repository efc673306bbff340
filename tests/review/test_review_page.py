"""The review page in a real browser (Debian's headless Chromium, through Selenium) against a
real registry process and a real `alabel serve review` process: each flow is asserted on what
the registry holds afterwards."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from conftest import registry_data_dir
from review_mesh import (
    XSS_CLASS,
    Mesh,
    add_objects,
    chromium,
    chromium_missing,
    get_json,
    running_registry,
    start_review,
    vector,
)

from agentic_labeling.local_mesh import ManagedProcess
from agentic_labeling.v1 import registry_pb2

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(chromium_missing() is not None, reason=str(chromium_missing())),
]

BIRDS = 5
WAIT_S = 30


class Page:
    """The review app, its registry, the objects made for each test, and the browser."""

    def __init__(self, mesh: Mesh, review: ManagedProcess, driver: Any, objects: dict[str, Any]):
        self.mesh = mesh
        self.review = review
        self.driver = driver
        self.objects = objects
        self.base = f"http://{review.address}"

    def get(self, name: str) -> registry_pb2.LabeledObject:
        return self.mesh.registry.GetObject(registry_pb2.GetObjectRequest(name=name), timeout=10)

    def open_queue(self) -> None:
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get(self.base + "/")
        WebDriverWait(self.driver, WAIT_S).until(
            lambda d: int(d.find_element("tag name", "body").get_attribute("data-loaded") or 0)
        )

    def card(self, name: str) -> Any:
        return self.driver.find_element("css selector", f'#queue .card[data-name="{name}"]')

    def press(self, keys: str) -> None:
        from selenium.webdriver.common.action_chains import ActionChains

        ActionChains(self.driver).send_keys(keys).perform()

    def wait_for(self, what: Any, timeout_s: float = WAIT_S) -> None:
        """Until `what()` is true (the registry or the page catching up), or fail."""
        deadline = time.monotonic() + timeout_s
        while not what():
            assert time.monotonic() < deadline, f"still not true after {timeout_s} s"
            time.sleep(0.1)


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Page]:
    data_dirs = registry_data_dir()  # outside pytest's tmp: Postgres runs as another user
    data_dir = next(data_dirs)
    workdir = tmp_path_factory.mktemp("review-run")
    with running_registry(workdir, data_dir) as mesh:
        made = add_objects(
            mesh,
            1,
            [
                ("cat", 0.05, vector(0)),  # accepted with the keyboard
                ("cat", 0.10, vector(1)),  # relabelled
                ("cat", 0.15, vector(2)),  # rejected, then undone
                ("cat", 0.20, vector(3)),  # its box edited
                (XSS_CLASS, 0.50, vector(4)),
                *(("bird", 0.6 + i / 100, vector(6, i / 100)) for i in range(BIRDS)),
            ],
        )
        objects = {
            "accept": made[0],
            "relabel": made[1],
            "reject": made[2],
            "box": made[3],
            "xss": made[4],
            "birds": made[5:],
        }
        # A data dir of the review app's own: pictures come from the registry over gRPC.
        review = start_review(workdir, mesh.process.address, workdir / "review-data")
        try:
            with chromium() as driver:
                yield Page(mesh, review, driver, objects)
        finally:
            assert review.stop() == 0
    next(data_dirs, None)


def test_queue_shows_lowest_confidence_first(page: Page) -> None:
    page.open_queue()
    first = page.driver.find_element("css selector", "#queue .card")
    assert first.get_attribute("data-name") == page.objects["accept"].name
    assert "current" in first.get_attribute("class")


def test_a_key_accepts_the_current_object(page: Page) -> None:
    page.open_queue()
    target = page.objects["accept"].name
    page.card(target).click()
    page.press("a")
    page.wait_for(lambda: page.get(target).is_validated)
    assert page.get(target).category_name == "cat"


def test_c_key_relabels_with_autocomplete_and_validates(page: Page) -> None:
    page.open_queue()
    target = page.objects["relabel"].name
    page.card(target).click()
    page.press("c")
    field = page.driver.find_element("id", "relabel-input")
    options = page.driver.find_elements("css selector", "#category-list option")
    assert "bird" in {o.get_attribute("value") for o in options}
    field.send_keys("bird\n")
    page.wait_for(lambda: page.get(target).category_name == "bird")
    assert page.get(target).is_validated


def test_u_key_undoes_a_reject_before_it_is_sent(page: Page) -> None:
    page.open_queue()
    target = page.objects["reject"].name
    page.card(target).click()
    page.press("r")
    assert "rejected" in page.card(target).get_attribute("class")
    page.press("u")
    assert "rejected" not in page.card(target).get_attribute("class")
    time.sleep(3.5)  # past the reject's delay: had it been sent, the object would be gone
    assert page.get(target).name == target


def test_r_key_rejects_by_deleting_the_object(page: Page) -> None:
    page.open_queue()
    target = page.objects["reject"].name
    page.card(target).click()
    page.press("r")

    def deleted() -> bool:
        try:
            page.get(target)
        except grpc.RpcError as error:
            return bool(error.code() == grpc.StatusCode.NOT_FOUND)
        return False

    page.wait_for(deleted)


def test_bulk_validate_of_similar_objects_is_one_round_trip(page: Page) -> None:
    birds = page.objects["birds"]
    page.open_queue()
    page.card(birds[0].name).click()
    page.press("s")
    panel = page.driver.find_element("id", "similar-panel")
    page.wait_for(lambda: int(panel.get_attribute("data-count") or 0) > 0)
    before = get_json(page.base + "/healthz")
    for bird in birds[1:]:
        page.driver.find_element(
            "css selector", f'#similar .card[data-name="{bird.name}"] .pick'
        ).click()
    page.driver.find_element("id", "bulk-accept").click()
    page.wait_for(lambda: all(page.get(b.name).is_validated for b in birds[1:]))
    after = get_json(page.base + "/healthz")
    decisions = int(after["decisions"]) - int(before["decisions"])  # type: ignore[call-overload]
    trips = int(after["decision_round_trips"]) - int(before["decision_round_trips"])  # type: ignore[call-overload]
    assert (decisions, trips) == (BIRDS - 1, 1)
    assert not page.get(birds[0].name).is_validated


def test_dragging_a_box_corner_saves_the_new_box(page: Page) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    target = page.objects["box"]
    page.open_queue()
    page.card(target.name).click()
    page.press("i")
    page.wait_for(
        lambda: bool(page.driver.find_elements("css selector", "#frame-svg circle.handle"))
    )
    handle = page.driver.find_element("css selector", '#frame-svg circle[data-corner="br"]')
    ActionChains(page.driver).click_and_hold(handle).move_by_offset(60, 40).release().perform()
    page.driver.find_element("id", "save-box").click()
    old = target.bbox
    page.wait_for(lambda: page.get(target.name).bbox.width > old.width)
    new = page.get(target.name).bbox
    assert (new.x, new.y) == (old.x, old.y)
    assert new.width > old.width
    assert new.height > old.height


def test_image_view_toggles_a_class_off(page: Page) -> None:
    page.open_queue()
    page.card(page.objects["accept"].name).click()
    page.press("i")
    page.wait_for(lambda: bool(page.driver.find_elements("css selector", "#class-toggles input")))
    toggle = page.driver.find_element("css selector", '#class-toggles input[data-class="bird"]')
    toggle.click()
    hidden = page.driver.find_elements("css selector", '#frame-svg g.obj[data-class="bird"]')
    assert hidden
    assert all(not g.is_displayed() for g in hidden)


def test_class_name_with_html_renders_as_text(page: Page) -> None:
    page.open_queue()
    card = page.card(page.objects["xss"].name)
    assert card.find_element("css selector", ".label").text == XSS_CLASS
    assert not page.driver.find_elements("css selector", "#queue img[src='x']")
    page.press("p")
    page.wait_for(lambda: XSS_CLASS in page.driver.find_element("id", "charts").text)
    # An alert would be open now, and this raises NoAlertPresentException when none is.
    from selenium.common.exceptions import NoAlertPresentException

    with pytest.raises(NoAlertPresentException):
        page.driver.switch_to.alert.text  # noqa: B018


def test_progress_shows_counts_per_class_and_validated_share(page: Page) -> None:
    page.open_queue()
    page.press("p")
    page.wait_for(
        lambda: any(
            "validated" in e.text for e in page.driver.find_elements("id", "validated-share")
        )
    )
    charts = page.driver.find_element("id", "charts").text
    assert "Objects per class" in charts
    assert "bird" in charts
    assert "Confidence histogram" in charts


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_registry_down_keeps_the_decision_and_sends_it_when_back(tmp_path: Path) -> None:
    from dataset_mesh import DIM

    from agentic_labeling.local_mesh import start_server_process

    data_dirs = registry_data_dir()
    data_dir, port = next(data_dirs), _free_port()
    flags = ["--data-dir", str(data_dir), "--embedding-dimension", str(DIM)]
    flags += ["--registry-port", str(port)]

    def registry() -> ManagedProcess:
        return start_server_process("registry", tmp_path, flags)

    first = registry()
    mesh = Mesh(first, data_dir / "exports")
    (target,) = add_objects(mesh, 2, [("cat", 0.1, vector(0))])
    review = start_review(tmp_path, f"127.0.0.1:{port}", tmp_path / "review-data")
    again = None
    try:
        with chromium() as driver:
            page = Page(mesh, review, driver, {})
            page.open_queue()
            assert first.stop() == 0
            page.card(target.name).click()
            page.press("a")
            banner = driver.find_element("id", "banner")
            page.wait_for(lambda: "unavailable" in banner.text)
            assert "kept" in banner.text
            again = registry()
            page.wait_for(lambda: page.get(target.name).is_validated, timeout_s=60)
            page.wait_for(lambda: not banner.is_displayed())
    finally:
        mesh.channel.close()
        assert review.stop() == 0
        if again is not None:
            assert again.stop() == 0
        next(data_dirs, None)
