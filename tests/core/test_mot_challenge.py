"""MOTChallenge files from tracked boxes: numbering, line format, seqinfo.ini."""

from __future__ import annotations

from pathlib import Path

from agentic_labeling.mot_challenge import MotBox, SequenceInfo, mot_lines, write_sequence


def _box(frame: int, track: str, x: float = 1.0, confidence: float = 1.0) -> MotBox:
    return MotBox(frame, track, x, 2.0, 3.5, 4.0, confidence, class_number=1)


def test_tracks_are_numbered_from_1_in_order_of_their_first_frame() -> None:
    lines = mot_lines([_box(5, "tracks/a"), _box(2, "tracks/z"), _box(3, "tracks/a")])
    assert [line.split(",")[:2] for line in lines] == [["3", "1"], ["4", "2"], ["6", "2"]]


def test_a_line_has_nine_fields_with_1_based_frames_and_short_numbers() -> None:
    [line] = mot_lines([_box(0, "t", x=12.25, confidence=0.9123456)])
    assert line == "1,1,12.25,2,3.5,4,0.912346,1,1"


def test_seqinfo_leaves_out_an_unknown_frame_rate(tmp_path: Path) -> None:
    info = SequenceInfo(name="clip", length=3, width=64, height=48)
    gt = write_sequence(tmp_path, [_box(2, "t")], ["person"], info)
    assert gt == tmp_path / "gt" / "gt.txt"
    assert (tmp_path / "seqinfo.ini").read_text() == (
        "[Sequence]\nname=clip\nseqLength=3\nimWidth=64\nimHeight=48\n"
    )
    assert (tmp_path / "classes.txt").read_text() == "person\n"
