"""`alabel tracks list|show|merge|split|create|validate|export` against a real registry
process; the MOTChallenge export is read back by py-motmetrics."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import motmetrics as mm
import pytest
from click.testing import CliRunner, Result
from conftest import registry_data_dir
from dataset_mesh import Mesh, running_registry
from track_fixtures import Box, Video, register_video

from agentic_labeling.cli import cli

FRAMES = 10


@pytest.fixture(autouse=True)
def _no_alabel_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("ALABEL_"):
            monkeypatch.delenv(name)


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    data_dirs = registry_data_dir()
    with running_registry(tmp_path_factory.mktemp("registry"), next(data_dirs)) as mesh:
        yield mesh
    next(data_dirs, None)


def _alabel(mesh: Mesh, *args: str) -> Result:
    return CliRunner().invoke(cli, ["--registry-url", mesh.process.address, *args])


def _two_cars(mesh: Mesh) -> Video:
    """Two cars driving side by side through FRAMES frames, one of them tracked from frame 2."""
    return register_video(
        mesh.registry,
        uuid.uuid4().hex,
        {
            "left": [Box(f, 10 + 5 * f, confidence=0.9) for f in range(FRAMES)],
            "right": [
                Box(f, 10 + 5 * f, y=150, confidence=0.5, category="bus") for f in range(2, FRAMES)
            ],
        },
        frames=FRAMES,
    )


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def test_tracks_list_shows_a_videos_tracks_in_time_order_with_their_statistics(
    mesh: Mesh,
) -> None:
    video = _two_cars(mesh)
    listed = _alabel(mesh, "tracks", "list", "--source", video.source.display_name)
    assert listed.exit_code == 0, listed.output
    header, left, right, summary = listed.output.splitlines()
    assert header.split() == [
        "TRACK", "SOURCE", "CATEGORY", "FRAMES", "START", "END", "OBJECTS", "AVG", "CONF",
    ]  # fmt: skip
    assert left.split() == [
        _short(video.tracks["left"]), video.source.display_name, "car", "0-9", "0.00s",
        "0.90s", "10", "0.90",
    ]  # fmt: skip
    assert right.split()[2:] == ["bus", "2-9", "0.20s", "0.90s", "8", "0.50"]
    assert summary == "2 track(s)"


def test_tracks_show_lists_the_objects_in_frame_order(mesh: Mesh) -> None:
    video = _two_cars(mesh)
    shown = _alabel(mesh, "tracks", "show", _short(video.tracks["right"]))
    assert shown.exit_code == 0, shown.output
    rows = shown.output.splitlines()[4:]
    assert [row.split()[0] for row in rows] == [str(f) for f in range(2, FRAMES)]


def test_tracks_split_then_merge_restores_one_track(mesh: Mesh) -> None:
    video = _two_cars(mesh)
    track = video.tracks["left"]
    split = _alabel(mesh, "tracks", "split", track, "4", "--json")
    assert split.exit_code == 0, split.output
    before, after = json.loads(split.stdout)["tracks"]
    assert (before["last_frame_index"], after["first_frame_index"]) == (3, 4)
    merged = _alabel(mesh, "tracks", "merge", track, after["name"])
    assert merged.exit_code == 0, merged.output
    assert f"merged 2 tracks into {track}" in merged.output
    assert "0-9" in merged.output


def test_tracks_create_and_validate_work_on_whole_tracks(mesh: Mesh) -> None:
    video = register_video(
        mesh.registry, uuid.uuid4().hex, {}, frames=2, untracked=[Box(0, 10), Box(1, 12)]
    )
    names = [_short(o.name) for o in video.objects[""]]
    created = _alabel(mesh, "tracks", "create", video.source.name, *names)
    assert created.exit_code == 0, created.output
    track = created.output.splitlines()[0].removeprefix("created ")
    validated = _alabel(mesh, "tracks", "validate", track, "--by", "ann")
    assert validated.exit_code == 0, validated.output
    assert "2 object(s) of 1 track(s) validated by ann" in validated.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["show", "not-a-track"], "is not a track id"),
        (["merge", str(uuid.UUID(int=1))], "at least two tracks"),
        (["split", str(uuid.UUID(int=1)), "-1"], "FRAME"),
        (["create", "clip.mp4", "nope"], "is not an object id"),
        (["export", "clip.mp4"], "--out"),
        (["validate", str(uuid.UUID(int=1)), "--by", " "], "must not be empty"),
    ],
    ids=["show", "merge", "split", "create", "export", "validate"],
)
def test_tracks_usage_errors_exit_2_saying_what_to_change(mesh: Mesh, args, message) -> None:
    result = _alabel(mesh, "tracks", *args)
    assert result.exit_code == 2
    assert message in result.output


def test_tracks_of_an_unknown_source_exit_1(mesh: Mesh) -> None:
    result = _alabel(mesh, "tracks", "list", "--source", "never-registered.mp4")
    assert result.exit_code == 1
    assert "no source named 'never-registered.mp4'" in result.output


def test_tracks_create_across_two_sources_exits_1_naming_the_object(mesh: Mesh) -> None:
    one = register_video(mesh.registry, uuid.uuid4().hex, {}, frames=1, untracked=[Box(0, 1)])
    two = register_video(mesh.registry, uuid.uuid4().hex, {}, frames=1, untracked=[Box(0, 1)])
    result = _alabel(
        mesh, "tracks", "create", one.source.name, one.objects[""][0].name, two.objects[""][0].name
    )
    assert result.exit_code == 1
    assert "objects[1]" in result.output


# --- MOTChallenge export, read back by py-motmetrics --------------------------------------


def _export(mesh: Mesh, video: Video, out: Path) -> Path:
    result = _alabel(mesh, "tracks", "export", video.source.display_name, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "exported 2 track(s), 18 box(es)" in result.output
    return out / "gt" / "gt.txt"


def _metrics(gt: object, hypotheses: object) -> dict[str, float]:
    accumulator = mm.utils.compare_to_groundtruth(gt, hypotheses, "iou", distth=0.5)
    summary = mm.metrics.create().compute(
        accumulator, metrics=["mota", "idf1", "num_switches", "num_objects"], name="video"
    )
    return {k: float(v) for k, v in summary.loc["video"].items()}


def test_the_mot_export_matches_itself_perfectly(mesh: Mesh, tmp_path: Path) -> None:
    video = _two_cars(mesh)
    register_video(  # another video's tracks must stay out of this export
        mesh.registry, uuid.uuid4().hex, {"x": [Box(0, 10)]}, frames=1
    )
    gt_path = _export(mesh, video, tmp_path / "clip")
    gt = mm.io.loadtxt(str(gt_path), fmt="mot15-2D")
    assert sorted(gt.index.get_level_values("FrameId").unique()) == list(range(1, FRAMES + 1))
    assert sorted(gt.index.get_level_values("Id").unique()) == [1, 2]
    assert _metrics(gt, gt) == {"mota": 1.0, "idf1": 1.0, "num_switches": 0.0, "num_objects": 18}
    assert (tmp_path / "clip" / "classes.txt").read_text() == "bus\ncar\n"
    seqinfo = (tmp_path / "clip" / "seqinfo.ini").read_text().splitlines()
    assert seqinfo[2:] == ["frameRate=10", f"seqLength={FRAMES}", "imWidth=320", "imHeight=240"]


def test_swapped_ids_in_a_copy_of_the_mot_export_count_as_two_switches(
    mesh: Mesh, tmp_path: Path
) -> None:
    video = _two_cars(mesh)
    gt_path = _export(mesh, video, tmp_path / "clip")
    swapped = []
    for line in gt_path.read_text().splitlines():
        frame, track, rest = line.split(",", 2)
        if int(frame) > 6:  # from frame 7 on, the tracker mixed the two cars up
            track = {"1": "2", "2": "1"}[track]
        swapped.append(",".join([frame, track, rest]))
    perturbed = tmp_path / "swapped.txt"
    perturbed.write_text("\n".join(swapped) + "\n")
    gt = mm.io.loadtxt(str(gt_path), fmt="mot15-2D")
    found = _metrics(gt, mm.io.loadtxt(str(perturbed), fmt="mot15-2D"))
    assert found["num_switches"] == 2
    assert found["mota"] == pytest.approx(1 - 2 / 18)
    # Best one-to-one ids: car 1 keeps id 1 for frames 1-6, car 2 keeps id 2 for frames 3-6:
    # 10 of the 18 boxes on each side.
    assert found["idf1"] == pytest.approx(10 / 18)


def test_the_mot_export_can_keep_only_some_classes_in_a_given_order(
    mesh: Mesh, tmp_path: Path
) -> None:
    video = _two_cars(mesh)
    result = _alabel(
        mesh,
        "tracks",
        "export",
        video.source.name,
        "--out",
        str(tmp_path / "cars"),
        "--classes",
        "car",
    )
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "cars" / "gt" / "gt.txt").read_text().splitlines()
    assert len(lines) == FRAMES
    assert {line.split(",")[7] for line in lines} == {"1"}
    assert lines[0] == "1,1,10,20,30,30,0.9,1,1"
