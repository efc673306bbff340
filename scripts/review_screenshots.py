"""Screenshots of the review page for `make demo` and the README: the queue and the image
view, taken in Debian's headless Chromium through Selenium (skipped, saying why, without)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

__all__ = ["missing", "take"]

_WAIT_S = 60


def missing() -> str | None:
    """Why no screenshot can be taken here, or None."""
    for binary in ("chromium", "chromedriver"):
        if shutil.which(binary) is None:
            return f"{binary} is not installed (`make browser` installs it)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def _until(driver: object, script: str) -> None:
    deadline = time.monotonic() + _WAIT_S
    while not driver.execute_script(script):  # type: ignore[attr-defined]
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page never satisfied: {script}")
        time.sleep(0.1)


def _shrink(path: Path) -> None:
    """256 colours: a page screenshot reads the same at a third of the bytes in git."""
    from PIL import Image

    with Image.open(path) as shot:
        small = shot.convert("RGB").quantize(256)
    small.save(path, optimize=True)


def take(url: str, queue_png: Path, image_png: Path) -> None:
    """Open the review page at `url`; save the queue, then the first card's image view."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    options.add_argument("--window-size=1280,900")
    options.add_argument("--no-proxy-server")
    driver = webdriver.Chrome(
        options=options, service=Service(executable_path=shutil.which("chromedriver"))
    )
    try:
        driver.get(url)
        _until(
            driver,
            "const imgs = Array.from(document.querySelectorAll('#queue img'));"
            "return Number(document.body.dataset.loaded || 0) > 0 &&"
            " imgs.every(i => i.complete);",
        )
        queue_png.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(queue_png))
        _shrink(queue_png)
        ActionChains(driver).send_keys("i").perform()
        _until(
            driver,
            "const img = document.getElementById('frame-img');"
            "return img.complete && img.naturalWidth > 0 &&"
            " document.querySelectorAll('#frame-svg circle.handle').length > 0;",
        )
        time.sleep(0.5)  # the mask overlays, loaded by the SVG
        driver.save_screenshot(str(image_png))
        _shrink(image_png)
    finally:
        driver.quit()
