"""Export targets: confined to the export root, never half-written, images placed as asked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentic_labeling.errors import AlreadyExists, FailedPrecondition, InvalidArgument
from agentic_labeling.registry.datasets.export_target import (
    place_image,
    resolve_target,
    staged_directory,
)
from agentic_labeling.registry.datasets.label_sets import ImageTransfer


def _tree(path: Path) -> list[str]:
    return sorted(str(item.relative_to(path)) for item in path.rglob("*"))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    root = tmp_path / "exports"
    root.mkdir()
    return root


@pytest.mark.parametrize(
    "relative", ["../x", "/abs", "a/../../x", "", "  ", "a\x00b", ".", "a/..", "x/../../exports2"]
)
def test_names_that_leave_the_root_are_refused_and_nothing_is_created(
    root: Path, relative: str
) -> None:
    before = _tree(root.parent)
    with pytest.raises(InvalidArgument) as raised:
        resolve_target(root, relative, overwrite=True)
    assert raised.value.violations[0].field == "output_dir"
    assert _tree(root.parent) == before


def test_a_symlink_inside_the_root_that_points_out_is_refused(root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "link").symlink_to(outside)
    with pytest.raises(InvalidArgument, match="outside the export root"):
        resolve_target(root, "link/run1", overwrite=False)
    assert list(outside.iterdir()) == []


def test_a_nested_relative_name_resolves_inside_the_root_without_creating_it(root: Path) -> None:
    target = resolve_target(root, "team/a/../run1", overwrite=False)
    assert target == root.resolve() / "team" / "run1"
    assert _tree(root) == []


def test_an_existing_target_is_already_exists_and_left_untouched(root: Path) -> None:
    (root / "run1").mkdir()
    (root / "run1" / "data.yaml").write_text("old")
    with pytest.raises(AlreadyExists):
        resolve_target(root, "run1", overwrite=False)
    assert (root / "run1" / "data.yaml").read_text() == "old"
    assert resolve_target(root, "run1", overwrite=True) == root.resolve() / "run1"


def test_an_existing_file_cannot_be_overwritten_by_an_export(root: Path) -> None:
    (root / "notes.txt").write_text("keep")
    with pytest.raises(InvalidArgument, match="not a directory"):
        resolve_target(root, "notes.txt", overwrite=True)


def test_staged_directory_appears_whole_under_the_target_name(root: Path) -> None:
    target = root / "team" / "run1"
    with staged_directory(target, overwrite=False) as staged:
        assert staged.parent == target.parent
        assert staged.name.startswith(".run1.partial-")
        assert not target.exists()
        (staged / "data.yaml").write_text("new")
    assert (target / "data.yaml").read_text() == "new"
    assert _tree(root / "team") == ["run1", "run1/data.yaml"]


def test_an_error_inside_leaves_no_temporary_directory_and_the_old_target(root: Path) -> None:
    target = root / "run1"
    target.mkdir()
    (target / "data.yaml").write_text("old")

    def write_then_fail() -> None:
        with staged_directory(target, overwrite=True) as staged:
            (staged / "data.yaml").write_text("new")
            raise RuntimeError("writer failed")

    with pytest.raises(RuntimeError, match="writer failed"):
        write_then_fail()
    assert _tree(root) == ["run1", "run1/data.yaml"]
    assert (target / "data.yaml").read_text() == "old"


def test_overwrite_replaces_the_old_export_and_leaves_nothing_beside_it(root: Path) -> None:
    target = root / "run1"
    target.mkdir()
    (target / "stale.txt").write_text("old")
    with staged_directory(target, overwrite=True) as staged:
        (staged / "data.yaml").write_text("new")
    assert _tree(root) == ["run1", "run1/data.yaml"]


def test_a_target_that_appears_meanwhile_is_not_replaced_without_overwrite(root: Path) -> None:
    target = root / "run1"

    def write_while_someone_else_does() -> None:
        with staged_directory(target, overwrite=False) as staged:
            (staged / "data.yaml").write_text("new")
            target.mkdir()
            (target / "theirs.txt").write_text("theirs")

    with pytest.raises(AlreadyExists):
        write_while_someone_else_does()
    assert _tree(root) == ["run1", "run1/theirs.txt"]


def test_copy_symlink_and_hardlink_place_the_same_bytes(tmp_path: Path) -> None:
    source = tmp_path / "store" / "abc"
    source.parent.mkdir()
    source.write_bytes(b"image bytes")
    out = tmp_path / "out"
    out.mkdir()
    place_image(source, out / "copy.png", ImageTransfer.COPY)
    place_image(
        tmp_path / "store" / ".." / "store" / "abc", out / "link.png", ImageTransfer.SYMLINK
    )
    place_image(source, out / "hard.png", ImageTransfer.HARDLINK)
    assert (out / "copy.png").read_bytes() == b"image bytes"
    assert not (out / "copy.png").is_symlink()
    assert os.readlink(out / "link.png") == str(source.resolve())
    assert (out / "hard.png").stat().st_ino == source.stat().st_ino


def test_a_hardlink_across_file_systems_is_failed_precondition(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if not other.is_dir() or other.stat().st_dev == tmp_path.stat().st_dev:
        pytest.skip("needs /dev/shm on a file system other than the test directory's")
    source = tmp_path / "abc"
    source.write_bytes(b"image bytes")
    destination = other / f"alabel-test-{os.getpid()}.png"
    try:
        with pytest.raises(FailedPrecondition, match="image_transfer") as raised:
            place_image(source, destination, ImageTransfer.HARDLINK)
        assert raised.value.metadata == {"field": "image_transfer"}
        assert not destination.exists()
    finally:
        destination.unlink(missing_ok=True)
