"""Damaged sessions on disk: truncated, corrupted, out of order, wrong version, unsafe paths."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from xrseg.errors import SessionError
from xrseg.session import Session, SessionHeader, SessionWriter
from xrseg.types import CameraModel, Frame, GazeRay, GazeSample, HeadPose

CAMERA = CameraModel(32, 24, 30.0, 30.0, 15.5, 11.5)


def write_session(path: Path, gaze_count: int = 5, frames: int = 2) -> Path:
    header = SessionHeader("damaged", CAMERA, np.eye(4), "recorded", has_depth=False)
    with SessionWriter(path, header) as writer:
        for i in range(frames):
            writer.write_frame(Frame(i, 100 * i, np.full((24, 32, 3), 40 * i, np.uint8)))
        for k in range(gaze_count):
            writer.write_gaze(GazeSample(10 * k, GazeRay([0, 0, 0], [0.0, 0.1 * k, -1.0])))
            writer.write_head_pose(HeadPose(10 * k, np.eye(4)))
    return path


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def test_missing_directory_and_header(tmp_path: Path) -> None:
    with pytest.raises(SessionError, match="does not exist"):
        Session.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(SessionError, match=re.escape("missing header.json")):
        Session.open(tmp_path / "empty")


def test_missing_stream_file(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    (session / "gaze.jsonl").unlink()
    with pytest.raises(SessionError, match=r"^missing gaze.jsonl$"):
        Session.open(session)


@pytest.mark.parametrize(("version", "message"), [(2, "unsupported format_version 2"), ("1", "unsupported")])
def test_unknown_format_version(tmp_path: Path, version: object, message: str) -> None:
    session = write_session(tmp_path / "s")
    header = json.loads((session / "header.json").read_text())
    header["format_version"] = version
    (session / "header.json").write_text(json.dumps(header))
    with pytest.raises(SessionError, match=message):
        Session.open(session)


def test_corrupted_header(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    (session / "header.json").write_bytes(b'{"format": "xrseg-session", "format_ver')
    with pytest.raises(SessionError, match=re.escape("header.json is corrupted")):
        Session.open(session)
    (session / "header.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(SessionError, match="not an xrseg session"):
        Session.open(session)


def test_bad_head_from_camera_in_header(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    header = json.loads((session / "header.json").read_text())
    header["head_from_camera"][0][0] = 2.0  # not a rotation
    (session / "header.json").write_text(json.dumps(header))
    with pytest.raises(SessionError, match="head_from_camera rotation part is not orthonormal"):
        Session.open(session)


def test_torn_last_record_is_dropped_with_a_warning(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", gaze_count=5)
    with open(session / "gaze.jsonl", "ab") as handle:
        handle.write(b'{"timestamp_ns":50,"valid":tr')  # a record cut short by a crash
    with open(session / "head_poses.jsonl", "ab") as handle:
        handle.write(b"\0" * 64)  # a zero-filled tail, as left by some filesystems after power loss
    opened = Session.open(session)
    assert [g.timestamp_ns for g in opened.gaze_samples()] == [0, 10, 20, 30, 40]
    assert opened.head_timestamps_ns.tolist() == [0, 10, 20, 30, 40]
    assert any("gaze.jsonl: dropped a torn last record (line 6" in w for w in opened.warnings)
    assert any("head_poses.jsonl: dropped 64 NUL bytes" in w for w in opened.warnings)


def test_truncated_closed_stream_is_an_error(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", gaze_count=5)
    lines = lines_of(session / "gaze.jsonl")
    (session / "gaze.jsonl").write_bytes(b"".join(lines[:3]))  # lost whole records after a clean close
    with pytest.raises(
        SessionError, match=re.escape("gaze.jsonl has 3 records but the writer closed it with 5: truncated")
    ):
        Session.open(session)


def test_garbage_in_the_middle_is_an_error(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", gaze_count=5)
    lines = lines_of(session / "gaze.jsonl")
    lines[2] = b'{"timestamp_ns": 20, "val\x00\x17garbage\n'
    (session / "gaze.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(SessionError, match=re.escape("gaze.jsonl line 3: corrupted record")):
        Session.open(session)


def test_record_with_wrong_fields(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", gaze_count=3)
    lines = lines_of(session / "gaze.jsonl")
    lines[1] = json.dumps({"timestamp_ns": 10.5, "valid": True, "origin_m": [0, 0, 0]}).encode() + b"\n"
    (session / "gaze.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(SessionError, match=re.escape("gaze.jsonl line 2: timestamp_ns must be an integer")):
        Session.open(session)


def test_out_of_order_timestamps(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", gaze_count=4)
    lines = lines_of(session / "head_poses.jsonl")
    lines[1], lines[2] = lines[2], lines[1]
    (session / "head_poses.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(
        SessionError, match=re.escape("head_poses.jsonl line 3: timestamp 10 is not after the previous 20")
    ):
        Session.open(session)


def test_nan_in_a_pose(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", gaze_count=3)
    lines = lines_of(session / "head_poses.jsonl")
    record = json.loads(lines[1])
    record["world_from_head"][0][3] = float("nan")
    lines[1] = json.dumps(record).encode() + b"\n"  # Python writes the non-standard NaN token
    (session / "head_poses.jsonl").write_bytes(b"".join(lines))
    with pytest.raises(
        SessionError, match=re.escape("head_poses.jsonl line 2: corrupted record: NaN is not JSON")
    ):
        Session.open(session)


def test_truncated_frame_image(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", frames=2)
    rgb = session / "frames" / "rgb_000001.jpg"
    rgb.write_bytes(rgb.read_bytes()[:40])
    opened = Session.open(session)  # the index is fine; the image fails when it is read
    assert opened.frame(0).rgb.shape == (24, 32, 3)
    with pytest.raises(
        SessionError, match=re.escape("rgb image rgb_000001.jpg is truncated or not a valid image")
    ):
        opened.frame(1)
    rgb.unlink()
    with pytest.raises(SessionError, match=re.escape("missing rgb image rgb_000001.jpg")):
        opened.frame(1)


def test_frame_paths_must_stay_inside_the_session(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", frames=1)
    record = json.loads((session / "frames.jsonl").read_text())
    record["rgb"] = "../../etc/passwd"
    (session / "frames.jsonl").write_text(json.dumps(record) + "\n")
    with pytest.raises(SessionError, match="must be a relative path inside the session"):
        Session.open(session).frame(0)


def test_frame_index_gap(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s", frames=3)
    lines = lines_of(session / "frames.jsonl")
    (session / "frames.jsonl").write_bytes(lines[0] + lines[2])
    with pytest.raises(SessionError, match="record 1 has index 2"):
        Session.open(session)
