"""The start-up sweep of export staging directories: leftovers of a crash go, the staging
directory of an export still running (its token is live) and everything else stay."""

from __future__ import annotations

from pathlib import Path

from agentic_labeling.registry.datasets.export_target import (
    find_staging,
    staged_directory,
    sweep_staging,
)

LIVE = "a" * 32
DEAD = "0123456789abcdef"


def test_the_sweep_removes_leftovers_and_keeps_live_staging_and_exports(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    leftover = root / "team" / f".street.partial-{DEAD}"
    live = root / f".coco.partial-{LIVE}"
    export = root / "street"
    lookalike = root / ".notes.partial-draft"  # not a token: not ours
    for directory in (leftover / "images", live, export / "images", lookalike):
        directory.mkdir(parents=True)
    found = find_staging(root)
    assert found == {leftover: DEAD, live: LIVE}
    assert sweep_staging(found, {LIVE}) == [leftover]
    assert not leftover.exists()
    assert all(p.is_dir() for p in (live, export, lookalike))


def test_a_staging_directory_is_named_by_its_token(tmp_path: Path) -> None:
    with staged_directory(tmp_path / "out", overwrite=False, token=LIVE) as staged:
        assert staged == tmp_path / f".out.partial-{LIVE}"
        assert find_staging(tmp_path) == {staged: LIVE}
    assert (tmp_path / "out").is_dir()
    assert find_staging(tmp_path) == {}
