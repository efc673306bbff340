"""Review page: load time of a page of cards, and decisions per registry round trip.

A real registry process (embedded Postgres and Qdrant) gets `--cards` objects, ten per
640 x 480 photo, each with a mask and an embedding; a real `alabel serve review` process
serves the page on loopback. Measured:

- page load, in headless Chromium (Debian's, through Selenium) when it is installed: from
  navigation until every card is on the page and every thumbnail has decoded. "cold" is the
  first load (the server draws every thumbnail); "warm" a fresh browser (no browser cache) on
  the server's warm picture cache, median of `--repeat`; "reload" the same browser again (its
  cache holds the immutable thumbnail URLs).
- the same page's requests over plain HTTP (the JSON and every thumbnail, six at a time like a
  browser), warm: the server's own share of the load time.
- decisions per round trip: `--similar` objects validated one by one (one ValidateObjects
  each) against "more like this" then one bulk validation (one ValidateObjects for all), read
  from the app's own counters (/healthz).

    python -m bench.review_page --cards 100 --repeat 5 --out review_page.json
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import numpy as np
from PIL import Image

from agentic_labeling.local_mesh import ManagedProcess, start_server_process
from agentic_labeling.models.mask_codec import masks_to_rle
from agentic_labeling.v1 import common_pb2, registry_pb2, registry_pb2_grpc
from bench.machine import cpu_machine

WIDTH, HEIGHT = 640, 480
PER_IMAGE = 10
DIM = 16
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _photo(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (HEIGHT // 16, WIDTH // 16, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize((WIDTH, HEIGHT), Image.Resampling.BILINEAR)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def _populate(stub: Any, cards: int) -> list[str]:
    """`cards` objects, ten per photo; the first photo's all share one embedding."""
    names: list[str] = []
    for image_index in range((cards + PER_IMAGE - 1) // PER_IMAGE):
        source = stub.CreateSource(
            registry_pb2.CreateSourceRequest(
                source=registry_pb2.Source(
                    kind=common_pb2.SOURCE_KIND_IMAGE,
                    width=WIDTH,
                    height=HEIGHT,
                    display_name=f"photo-{image_index}.jpg",
                ),
                image_data=_photo(image_index),
            ),
            timeout=60,
        )
        requests = []
        for i in range(min(PER_IMAGE, cards - len(names) - len(requests))):
            x, y = 20 + (i % 5) * 120, 40 + (i // 5) * 200
            mask = np.zeros((HEIGHT, WIDTH), bool)
            mask[y : y + 150, x : x + 100] = True
            vector = [0.0] * DIM
            vector[0 if image_index == 0 else 1 + (image_index + i) % (DIM - 1)] = 1.0
            requests.append(
                registry_pb2.CreateObjectRequest(
                    object=registry_pb2.LabeledObject(
                        source=source.name,
                        category_name=("cat", "dog", "car")[i % 3],
                        bbox=common_pb2.BoundingBox(x=x, y=y, width=100, height=150),
                        confidence=0.3 + 0.06 * i,
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
        created = stub.BatchCreateObjects(
            registry_pb2.BatchCreateObjectsRequest(
                request_id=str(uuid.uuid4()),
                requests=requests,
                create_missing_categories=True,
                duplicate_iou_threshold=1.0,
            ),
            timeout=60,
        )
        names.extend(o.name for o in created.objects)
    return names


def _get(url: str) -> bytes:
    with _NO_PROXY.open(url, timeout=60) as reply:
        data: bytes = reply.read()
        return data


def _http_page(base: str, cards: int) -> float:
    """Seconds to fetch the page's JSON and every thumbnail, six at a time."""
    started = time.perf_counter()
    page = json.loads(_get(f"{base}/api/objects?page_size={cards}"))
    urls = [f"{base}/thumb/{c['id']}?s=160&v={c['version']}" for c in page["objects"]]
    with ThreadPoolExecutor(6) as pool:
        list(pool.map(_get, urls))
    return time.perf_counter() - started


def _browser_load(driver: Any, base: str, cards: int) -> float:
    """Seconds from navigation until `cards` cards show and every thumbnail has decoded."""
    started = time.perf_counter()
    driver.get(base + "/")
    deadline = started + 120
    script = (
        "const imgs = Array.from(document.querySelectorAll('#queue img'));"
        "return Number(document.body.dataset.loaded || 0) >= arguments[0] &&"
        " imgs.every(i => i.complete && i.naturalWidth > 0);"
    )
    while not driver.execute_script(script, cards):
        if time.perf_counter() > deadline:
            raise TimeoutError("the page did not load within 120 s")
        time.sleep(0.005)
    return time.perf_counter() - started


def _decide(base: str, token: str, names: list[str]) -> None:
    request = urllib.request.Request(
        f"{base}/api/decisions",
        data=json.dumps({"action": "accept", "names": names}).encode(),
        headers={"Content-Type": "application/json", "X-Review-Token": token},
        method="POST",
    )
    with _NO_PROXY.open(request, timeout=60) as reply:
        reply.read()


def _counters(base: str) -> tuple[int, int]:
    health = json.loads(_get(f"{base}/healthz"))
    return int(health["decisions"]), int(health["decision_round_trips"])


def _decisions_per_round_trip(
    base: str, one_by_one: list[str], similar: list[str]
) -> dict[str, Any]:
    page = _get(base + "/").decode()
    marker = 'name="review-token" content="'
    start = page.index(marker) + len(marker)
    token = page[start : page.index('"', start)]
    results = {}
    for how, batches in (
        ("one by one", [[n] for n in one_by_one]),
        ("more like this, bulk", [similar]),
    ):
        before = _counters(base)
        started = time.perf_counter()
        for batch in batches:
            _decide(base, token, batch)
        seconds = time.perf_counter() - started
        after = _counters(base)
        decisions, trips = after[0] - before[0], after[1] - before[1]
        results[how] = {
            "decisions": decisions,
            "round_trips": trips,
            "decisions_per_round_trip": decisions / trips,
            "seconds": seconds,
        }
    return results


def _chromium() -> Any:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from review_mesh import chromium, chromium_missing

    return None if chromium_missing() else chromium


def measure(cards: int, repeat: int, similar: int, browser: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="review-bench-") as tmp:
        workdir, data_dir = Path(tmp), Path(tmp) / "data"
        registry = start_server_process(
            "registry",
            workdir,
            ["--data-dir", str(data_dir), "--embedding-dimension", str(DIM)],
            metrics_port=-1,
        )
        review: ManagedProcess | None = None
        try:
            with grpc.insecure_channel(registry.address) as channel:
                stub = registry_pb2_grpc.RegistryServiceStub(channel)  # type: ignore[no-untyped-call]
                names = _populate(stub, max(cards, 2 * similar + PER_IMAGE))
                first = names[0]
                found = stub.SearchSimilar(
                    registry_pb2.SearchSimilarRequest(object=first, top_k=similar), timeout=60
                )
            review = start_server_process(
                "review",
                workdir,
                ["--registry-url", registry.address, "--data-dir", str(data_dir)],
                metrics_port=None,
            )
            base = f"http://{review.address}"
            report: dict[str, Any] = {"cards": cards, "machine": cpu_machine()}
            chromium = _chromium() if browser else None
            if chromium is not None:
                with chromium() as driver:
                    report["browser_cold_s"] = _browser_load(driver, base, cards)
                    report["browser_reload_s"] = _browser_load(driver, base, cards)
                warm = []
                for _ in range(repeat):
                    with chromium() as driver:
                        warm.append(_browser_load(driver, base, cards))
                report["browser_warm_s"] = statistics.median(warm)
            else:
                _http_page(base, cards)  # warms the server's cache, as the cold load does
            report["http_warm_s"] = statistics.median(
                _http_page(base, cards) for _ in range(repeat)
            )
            similar_names = [r.object.name for r in found.results]
            one_by_one = [n for n in names if n not in similar_names and n != first][:similar]
            report["decisions"] = _decisions_per_round_trip(base, one_by_one, similar_names)
            return report
        finally:
            if review is not None:
                review.stop()
            registry.stop()


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"Review page, {report['cards']} cards on loopback "
        f"({report['machine']['cpus']} CPUs, {report['machine']['processor']}):",
        "",
        "| Measure | Seconds |",
        "|---|---|",
    ]
    for key, what in (
        ("browser_cold_s", "Chromium, first load (server draws every thumbnail)"),
        ("browser_warm_s", "Chromium, new browser, server cache warm (median)"),
        ("browser_reload_s", "Chromium, reload (browser cache)"),
        ("http_warm_s", "HTTP only: JSON + thumbnails, 6 at a time (median)"),
    ):
        if key in report:
            lines.append(f"| {what} | {report[key]:.3f} |")
    lines += [
        "",
        "| Review | Decisions | Round trips | Decisions per round trip |",
        "|---|---|---|---|",
    ]
    for how, d in report["decisions"].items():
        per_trip = d["decisions_per_round_trip"]
        lines.append(f"| {how} | {d['decisions']} | {d['round_trips']} | {per_trip:.0f} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.review_page", description=__doc__)
    parser.add_argument("--cards", type=int, default=100, help="cards on the page (<= 1000)")
    parser.add_argument("--repeat", type=int, default=5, help="warm loads to take the median of")
    parser.add_argument("--similar", type=int, default=9, help="objects decided each way")
    parser.add_argument("--no-browser", action="store_true", help="HTTP only, even with Chromium")
    parser.add_argument("--out", type=Path, help="write every figure as JSON here")
    args = parser.parse_args(argv)
    if not 1 <= args.cards <= 1000:
        parser.error("--cards must be between 1 and 1000")
    if args.repeat < 1 or args.similar < 1 or args.similar >= PER_IMAGE:
        parser.error(f"--repeat must be >= 1 and --similar between 1 and {PER_IMAGE - 1}")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    report = measure(args.cards, args.repeat, args.similar, not args.no_browser)
    print(markdown(report))
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
