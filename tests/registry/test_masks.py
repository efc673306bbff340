"""Mask files: exact round trip, 1-bit PNG, the 100 KB bound, atomic writes, safe paths."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import threading
import time
import uuid
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from PIL import Image

from agentic_labeling.errors import InvalidArgument, NotFound, ResourceExhausted
from agentic_labeling.registry.files.masks import (
    MAX_MASK_BYTES,
    MaskStore,
    decode_mask_png,
    encode_mask_png,
)


def complex_mask(seed: int, height: int = 3000, width: int = 4000) -> npt.NDArray[np.bool_]:
    """A large mask with realistic structure: organic blobs (a smooth random field, as SAM2's
    upsampled logits give) plus dozens of ellipses, most of them with holes."""
    rng = np.random.default_rng(seed)
    low = rng.normal(size=(12, 16)).astype(np.float32)
    field = cv2.resize(low, (width, height), interpolation=cv2.INTER_CUBIC)
    mask = (field > 0.4).astype(np.uint8)
    for _ in range(40):
        center = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        axes = (int(rng.integers(30, 250)), int(rng.integers(30, 250)))
        angle = float(rng.uniform(0, 180))
        cv2.ellipse(mask, center, axes, angle, 0, 360, 1, -1)
        for _ in range(int(rng.integers(1, 3))):
            hole = (
                center[0] + int(rng.integers(-axes[0] // 3, axes[0] // 3 + 1)),
                center[1] + int(rng.integers(-axes[1] // 3, axes[1] // 3 + 1)),
            )
            cv2.ellipse(mask, hole, (axes[0] // 5 + 3, axes[1] // 5 + 3), angle, 0, 360, 0, -1)
    return mask.astype(bool)


@pytest.fixture(scope="module")
def large_mask() -> npt.NDArray[np.bool_]:
    return complex_mask(0)


@pytest.fixture
def store(tmp_path: Path) -> MaskStore:
    return MaskStore(tmp_path)


def files_under(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def test_round_trip_is_exact_for_a_large_complex_mask(
    store: MaskStore, large_mask: npt.NDArray[np.bool_]
) -> None:
    object_id = uuid.uuid4()
    store.write(object_id, large_mask)
    back = store.read(object_id)
    assert back.dtype == np.bool_
    assert back.shape == (3000, 4000)
    assert np.array_equal(back, large_mask)


def test_large_complex_mask_is_under_100_kb(
    store: MaskStore, large_mask: npt.NDArray[np.bool_]
) -> None:
    blobs = cv2.connectedComponents(large_mask.astype(np.uint8), connectivity=8)[0] - 1
    holes_and_outside = cv2.connectedComponents((~large_mask).astype(np.uint8), connectivity=4)[0]
    assert blobs >= 15
    assert holes_and_outside - 1 >= 30  # really complex: dozens of holes
    object_id = uuid.uuid4()
    size = store.write(object_id, large_mask)
    assert size == store.path(object_id).stat().st_size
    assert size < MAX_MASK_BYTES, size


def test_file_is_a_1_bit_grayscale_png(store: MaskStore) -> None:
    object_id = uuid.uuid4()
    mask = np.zeros((7, 13), dtype=bool)
    mask[2:5, 3:11] = True
    store.write(object_id, mask)
    data = store.read_png(object_id)
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert data[12:16] == b"IHDR"
    width, height, bit_depth, color_type = struct.unpack(">IIBB", data[16:26])
    assert (width, height, bit_depth, color_type) == (13, 7, 1, 0)
    assert np.array_equal(decode_mask_png(data), mask)


@pytest.mark.parametrize(
    "mask",
    [
        np.zeros((1, 1), dtype=bool),
        np.ones((1, 1), dtype=bool),
        np.ones((3, 9), dtype=bool),  # width not a multiple of 8
        np.eye(17, 5, dtype=bool),
    ],
    ids=["blank-pixel", "full-pixel", "full-odd-width", "diagonal"],
)
def test_round_trip_is_exact_for_edge_shapes(store: MaskStore, mask: npt.NDArray[np.bool_]) -> None:
    object_id = uuid.uuid4()
    store.write(object_id, mask)
    assert np.array_equal(store.read(object_id), mask)


def test_path_is_sharded_by_the_sha256_of_the_id(store: MaskStore, tmp_path: Path) -> None:
    object_id = uuid.UUID("0188f3a0-0000-7000-8000-000000000001")
    digest = hashlib.sha256(object_id.bytes).hexdigest()
    expected = tmp_path / "masks" / digest[:2] / digest[2:4] / f"{object_id}.png"
    assert store.path(object_id) == expected
    assert store.path(str(object_id).upper()) == expected  # any spelling of the same UUID


def test_time_ordered_ids_spread_over_directories(store: MaskStore) -> None:
    # UUIDv7-like ids created in the same millisecond share their first hex digits.
    prefix = "0188f3a0-1234-7"
    ids = [uuid.UUID(f"{prefix}{n:03x}-8000-{n:012x}") for n in range(200)]
    directories = {store.path(key).parent for key in ids}
    assert len(directories) > 150


def test_write_replaces_an_existing_mask(store: MaskStore) -> None:
    object_id = uuid.uuid4()
    store.write(object_id, np.zeros((4, 4), dtype=bool))
    store.write(object_id, np.ones((5, 6), dtype=bool))
    assert np.array_equal(store.read(object_id), np.ones((5, 6), dtype=bool))
    assert len(files_under(store.root)) == 1


def test_too_large_mask_is_refused_and_nothing_is_written(store: MaskStore) -> None:
    noise = np.random.default_rng(1).random((3000, 4000)) < 0.5
    object_id = uuid.uuid4()
    with pytest.raises(ResourceExhausted) as caught:
        store.write(object_id, noise)
    assert caught.value.reason == "MASK_TOO_LARGE"
    assert caught.value.metadata["object_id"] == str(object_id)
    assert int(caught.value.metadata["size_bytes"]) > MAX_MASK_BYTES
    assert str(object_id) in caught.value.message
    assert files_under(store.root) == []


def test_limit_is_configurable(tmp_path: Path) -> None:
    store = MaskStore(tmp_path, max_bytes=50)
    with pytest.raises(ResourceExhausted):
        store.write(uuid.uuid4(), np.eye(64, dtype=bool))


def test_failed_replace_leaves_no_temp_file_and_keeps_the_old_mask(
    store: MaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    object_id = uuid.uuid4()
    old = np.zeros((8, 8), dtype=bool)
    store.write(object_id, old)

    def crash(source: str, target: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        store.write(object_id, np.ones((8, 8), dtype=bool))
    monkeypatch.undo()
    assert files_under(store.root) == [store.path(object_id)]
    assert np.array_equal(store.read(object_id), old)


def test_failed_fsync_leaves_no_file_at_all(
    store: MaskStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def crash(descriptor: int) -> None:
        raise OSError("fsync failed")

    monkeypatch.setattr(os, "fsync", crash)
    object_id = uuid.uuid4()
    with pytest.raises(OSError, match="fsync failed"):
        store.write(object_id, np.ones((8, 8), dtype=bool))
    monkeypatch.undo()
    assert files_under(store.root) == []
    assert not store.exists(object_id)


def test_readers_never_see_a_partial_file_during_rewrites(
    store: MaskStore, large_mask: npt.NDArray[np.bool_]
) -> None:
    object_id = uuid.uuid4()
    masks = [large_mask, ~large_mask]
    store.write(object_id, masks[0])
    done = threading.Event()
    seen: list[bool] = []

    def reader() -> None:
        while not done.is_set():
            back = store.read(object_id)
            seen.append(any(np.array_equal(back, mask) for mask in masks))

    thread = threading.Thread(target=reader)
    thread.start()
    try:
        for n in range(6):
            store.write(object_id, masks[n % 2])
    finally:
        done.set()
        thread.join()
    assert seen
    assert all(seen)


def test_concurrent_writers_of_one_mask_leave_one_whole_file(store: MaskStore) -> None:
    object_id = uuid.uuid4()
    candidates = [np.eye(64, k=k, dtype=bool) for k in range(8)]
    threads = [threading.Thread(target=store.write, args=(object_id, mask)) for mask in candidates]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    back = store.read(object_id)
    assert any(np.array_equal(back, mask) for mask in candidates)
    assert files_under(store.root) == [store.path(object_id)]


def test_read_of_a_missing_mask_is_not_found(store: MaskStore) -> None:
    object_id = uuid.uuid4()
    with pytest.raises(NotFound) as caught:
        store.read(object_id)
    assert caught.value.name == str(object_id)
    with pytest.raises(NotFound):
        store.read_png(object_id)


def test_delete_removes_the_mask_and_a_missing_one_is_fine(store: MaskStore) -> None:
    object_id = uuid.uuid4()
    store.write(object_id, np.ones((2, 2), dtype=bool))
    assert store.exists(object_id)
    assert store.delete(object_id) is True
    assert not store.exists(object_id)
    assert store.delete(object_id) is False
    assert store.delete(uuid.uuid4()) is False


def test_iter_ids_lists_stored_masks_and_skips_strays(store: MaskStore) -> None:
    ids = {uuid.uuid4() for _ in range(25)}
    for key in ids:
        store.write(key, np.ones((2, 3), dtype=bool))
    some = next(iter(ids))
    shard = store.path(some).parent
    (shard / f".{some}.abc.tmp").write_bytes(b"partial")
    (shard / "notes.txt").write_text("not a mask")
    stray = uuid.uuid4()
    (shard / f"{stray}.png").write_bytes(b"misplaced")  # not at its own path
    (store.directory / "zz").mkdir()
    (store.directory / "readme").write_text("not a shard")
    assert set(store.iter_ids()) == ids


def test_iter_ids_of_an_empty_store_is_empty(store: MaskStore) -> None:
    assert list(store.iter_ids()) == []
    assert store.remove_stale_temp_files() == 0


def test_stale_temp_files_are_removed_and_fresh_ones_kept(store: MaskStore) -> None:
    object_id = uuid.uuid4()
    store.write(object_id, np.ones((2, 2), dtype=bool))
    shard = store.path(object_id).parent
    stale = shard / f".{object_id}.old.tmp"
    fresh = shard / f".{object_id}.new.tmp"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    long_ago = time.time() - 7200
    os.utime(stale, (long_ago, long_ago))
    assert store.remove_stale_temp_files(older_than_s=3600) == 1
    assert not stale.exists()
    assert fresh.exists()
    assert store.exists(object_id)


@pytest.mark.parametrize(
    "bad_id", ["../../etc/passwd", "", "not-a-uuid", "0" * 31, 42, None], ids=repr
)
def test_ids_that_are_not_uuids_are_refused(store: MaskStore, bad_id: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        store.write(bad_id, np.ones((2, 2), dtype=bool))  # type: ignore[arg-type]
    assert caught.value.violations[0].field == "object_id"
    with pytest.raises(InvalidArgument):
        store.read(bad_id)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument):
        store.delete(bad_id)  # type: ignore[arg-type]
    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "mask",
    [
        np.ones((2, 2), dtype=np.uint8),
        np.ones((2, 2, 1), dtype=bool),
        np.ones((0, 5), dtype=bool),
        [[True, False]],
    ],
    ids=["uint8", "3-d", "empty", "list"],
)
def test_masks_that_are_not_2d_bool_arrays_are_refused(store: MaskStore, mask: object) -> None:
    with pytest.raises(InvalidArgument) as caught:
        store.write(uuid.uuid4(), mask)  # type: ignore[arg-type]
    assert caught.value.violations[0].field == "mask"
    assert files_under(store.root) == []


def test_decoding_refuses_data_that_is_not_a_1_bit_png() -> None:
    with pytest.raises(InvalidArgument, match="not a PNG"):
        decode_mask_png(b"GIF89a")
    gray = encode_mask_png(np.ones((2, 2), dtype=bool))
    buffer = io.BytesIO()
    Image.new("L", (2, 2)).save(buffer, format="PNG")
    with pytest.raises(InvalidArgument, match="1-bit"):
        decode_mask_png(buffer.getvalue())
    with pytest.raises(InvalidArgument, match="cannot be read"):
        decode_mask_png(gray[:40])
