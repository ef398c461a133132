"""`check_session` and the `xrseg session check|info` commands on real sessions on disk."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import pytest

from xrseg.cli import main
from xrseg.session import FixationTarget, GroundTruthObject, SessionHeader, SessionWriter
from xrseg.session.check import check_session, rate_hz
from xrseg.types import CameraModel, EventKind, Frame, GazeRay, GazeSample, HeadPose, InputEvent

CAMERA = CameraModel(40, 30, 35.0, 35.0, 19.5, 14.5)
MS = 1_000_000


def write_session(path: Path, *, source: str = "synthetic", frames: int = 11, with_objects: bool = True) -> Path:
    """1 s of data: frames at 10 Hz, head poses at 50 Hz, gaze at 120 Hz (every 3rd one a dropout)."""
    header = SessionHeader("checked", CAMERA, np.eye(4), source)
    with SessionWriter(path, header) as writer:
        for i in range(frames):
            depth = np.full((30, 40), 1.5, np.float32)
            writer.write_frame(Frame(i, 100 * MS * i, np.full((30, 40, 3), 9 * i, np.uint8), depth))
        for k in range(51):
            writer.write_head_pose(HeadPose(20 * MS * k, np.eye(4)))
        for k in range(121):
            direction = [np.nan] * 3 if k % 3 == 2 else [0.0, 0.0, -1.0]
            writer.write_gaze(GazeSample(round(k * 1e9 / 120), GazeRay([0.0, 0.0, 0.0], direction)))
        writer.write_event(InputEvent(500 * MS, EventKind.SELECT))
        if with_objects:
            writer.add_object(GroundTruthObject(3, "box"), o3d.geometry.TriangleMesh.create_box(0.1, 0.1, 0.1))
            writer.write_fixation_target(FixationTarget(200 * MS, 600 * MS, 3))
    return path


def test_rate_known_answers() -> None:
    assert rate_hz(np.array([0, 100 * MS, 200 * MS], dtype=np.int64)) == pytest.approx(10.0)
    assert rate_hz(np.array([5], dtype=np.int64)) == 0.0
    assert rate_hz(np.array([], dtype=np.int64)) == 0.0


def test_valid_session_summary(tmp_path: Path) -> None:
    report = check_session(write_session(tmp_path / "s"))
    assert report.ok and report.errors == [] and report.warnings == []
    assert report.frame_count == 11 and report.frame_rate_hz == pytest.approx(10.0)
    assert report.head_pose_count == 51 and report.head_rate_hz == pytest.approx(50.0)
    assert report.gaze_count == 121 and report.gaze_rate_hz == pytest.approx(120.0, rel=1e-6)
    assert report.valid_gaze_fraction == pytest.approx(81 / 121)
    assert report.duration_s == pytest.approx(1.0)
    assert report.has_depth and report.has_ground_truth
    assert (report.event_count, report.object_count, report.fixation_target_count) == (1, 1, 1)
    assert 0 < report.size_bytes < 200_000


def test_frame_of_wrong_size(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    ok, jpeg = cv2.imencode(".jpg", np.zeros((30, 41, 3), np.uint8))
    assert ok
    (session / "frames" / "rgb_000004.jpg").write_bytes(jpeg.tobytes())
    report = check_session(session)
    assert not report.ok
    assert report.errors == ["frame 4: rgb is 41x30 pixels but the camera model is 40x30"]


def test_depth_of_wrong_size(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    ok, png = cv2.imencode(".png", np.zeros((29, 40), np.uint16))
    assert ok
    (session / "frames" / "depth_000002.png").write_bytes(png.tobytes())
    report = check_session(session)
    assert report.errors == ["frame 2: depth is 40x29 pixels but the camera model is 40x30"]


def test_missing_mesh_and_unknown_fixation_object(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    (session / "meshes" / "object_00003.ply").unlink()
    with open(session / "fixation_targets.jsonl", "a") as handle:
        handle.write(json.dumps({"start_ns": 700 * MS, "end_ns": 800 * MS, "object_id": 8}) + "\n")
    report = check_session(session)
    assert not report.ok
    assert "object 3 (box): mesh file meshes/object_00003.ply is missing" in report.errors
    assert "fixation target at 700000000 ns refers to unknown object 8" in report.errors
    # The appended target also disagrees with the writer's closing counts.
    assert any("fixation_targets.jsonl has 2 records but the writer closed it with 1" in e for e in report.errors)


def test_several_errors_are_all_reported(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", with_objects=False)
    (session / "events.jsonl").unlink()
    gaze_lines = (session / "gaze.jsonl").read_bytes().splitlines(keepends=True)
    gaze_lines[5] = b"###\n"
    (session / "gaze.jsonl").write_bytes(b"".join(gaze_lines))
    report = check_session(session)
    assert report.errors[:2] == [
        "gaze.jsonl line 6: corrupted record: not valid JSON (Expecting value: line 1 column 1 (char 0))",
        "missing events.jsonl",
    ]
    assert report.frame_count == 11  # the healthy streams are still summarised


def test_frameless_session_is_valid_only_when_imported(tmp_path: Path) -> None:
    recorded = check_session(write_session(tmp_path / "rec", frames=0, with_objects=False))
    assert not recorded.ok
    assert recorded.errors == ["no frames: only imported sessions may be frame-less (source is 'synthetic')"]
    imported = check_session(write_session(tmp_path / "imp", source="imported", frames=0, with_objects=False))
    assert imported.ok
    assert imported.warnings == ["no frames: a gaze-only imported session (valid only for imports)"]


def test_unclean_session_warnings(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", with_objects=False)
    (session / "closed.json").unlink()
    (session / "frames" / ".tmp-rgb_000011.jpg").write_bytes(b"\xff\xd8")  # the crash happened mid-frame
    report = check_session(session)
    assert report.ok
    assert report.warnings == [
        "session was not closed cleanly (no closed.json): read up to the last complete record",
        "1 unfinished temporary files in frames/ (writer interrupted)",
    ]


def test_cli_check_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = write_session(tmp_path / "s")
    assert main(["session", "check", str(session)]) == 0
    out = capsys.readouterr().out
    assert "frames:           11 (10.00 Hz)" in out
    assert "gaze samples:     121 (120.00 Hz, 66.9% valid)" in out
    assert "depth:            yes" in out and "ground truth:     yes" in out and out.endswith("ok\n")

    header = json.loads((session / "header.json").read_text())
    header["format_version"] = 99
    (session / "header.json").write_text(json.dumps(header))
    assert main(["session", "check", str(session)]) == 2
    captured = capsys.readouterr()
    expected = "xrseg: error: header.json: unsupported format_version 99 (this xrseg reads version 1)\n"
    assert captured.err == expected

    assert main(["session", "check", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = write_session(tmp_path / "s")
    assert main(["session", "info", str(session)]) == 0
    out = capsys.readouterr().out
    assert "camera:           40x30 fx=35 fy=35 cx=19.5 cy=14.5 distortion=[]" in out
    assert "rgb:              jpeg (quality 92)" in out
    assert "depth:            yes (0.001 m per unit, up to 65.535 m)" in out
    (session / "gaze.jsonl").unlink()
    assert main(["session", "info", str(session)]) == 2
    assert capsys.readouterr().err == "xrseg: error: missing gaze.jsonl\n"
