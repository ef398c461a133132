"""Project Aria eye-gaze CSV import: axis conventions pinned by hand-computed answers, and the command."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from xrseg.cli import main
from xrseg.errors import InputError
from xrseg.session import Session
from xrseg.session.importers.aria_mps import (
    HEAD_FROM_FORWARD_CAMERA,
    cpf_direction,
    head_direction,
    import_aria_eye_gaze,
    load_calibration,
    read_aria_eye_gaze,
)
from xrseg.types import CameraModel

CAMERA = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5)
S2 = math.sqrt(0.5)

NEW_COLUMNS = (
    "tracking_timestamp_us,left_yaw_rads_cpf,right_yaw_rads_cpf,pitch_rads_cpf,depth_m,"
    "tx_left_eye_cpf,ty_left_eye_cpf,tz_left_eye_cpf,tx_right_eye_cpf,ty_right_eye_cpf,tz_right_eye_cpf,session_uid"
)


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text(header + "\n" + "\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_direction_known_answers() -> None:
    assert np.allclose(cpf_direction(0.0, 0.0), [0.0, 0.0, 1.0])  # CPF: +Z forward
    assert np.allclose(head_direction(0.0, 0.0), [0.0, 0.0, -1.0])  # head: -z forward
    # yaw = 45 deg: CPF (1, 0, 1)/sqrt2 with +X to the wearer's left -> head (-1, 0, -1)/sqrt2 (left is -x)
    assert np.allclose(head_direction(math.pi / 4, 0.0), [-S2, 0.0, -S2])
    # pitch = 45 deg looks up: +y in both frames
    assert np.allclose(head_direction(0.0, math.pi / 4), [0.0, S2, -S2])
    # yaw = pitch = atan(0.5): normalize(0.5, 0.5, 1) = (1, 1, 2)/sqrt6
    assert np.allclose(head_direction(math.atan(0.5), math.atan(0.5)), np.array([-1.0, 1.0, -2.0]) / math.sqrt(6))


def test_old_schema(tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path / "eye_gaze.csv",
        "tracking_timestamp_us,yaw_rads_cpf,pitch_rads_cpf,depth_m,yaw_low_rads_cpf,pitch_low_rads_cpf,session_uid",
        [
            "1000,0.0,0.0,0.8,0,0,abc",
            "1008.5,0.7853981633974483,0.0,,0,0,abc",  # fractional microseconds convert exactly
            "1017,,0.1,0.0,0,0,abc",  # a dropout: kept, invalid
        ],
    )
    samples = read_aria_eye_gaze(csv_path)
    assert [s.timestamp_ns for s in samples] == [1_000_000, 1_008_500, 1_017_000]
    assert np.allclose(samples[0].ray.direction, [0.0, 0.0, -1.0]) and samples[0].usable
    assert np.array_equal(samples[0].ray.origin_m, [0.0, 0.0, 0.0])
    assert samples[0].vergence_depth_m == 0.8
    assert np.allclose(samples[1].ray.direction, [-S2, 0.0, -S2]) and samples[1].vergence_depth_m is None
    assert not samples[2].valid and not samples[2].usable and samples[2].vergence_depth_m is None
    assert all(s.left is None and s.right is None for s in samples)


def test_new_schema_with_per_eye_rays(tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path / "general_eye_gaze.csv",
        NEW_COLUMNS,
        ["5,0.1,-0.1,0.2,1.5,0.0315,0.0,0.0,-0.0315,0.0,0.0,u", "10,0.1,0.1,0.0,0.5,0.0315,0.0,0.0,-0.0315,0,0,u"],
    )
    first, second = read_aria_eye_gaze(csv_path)
    # Combined yaw is the mean of the two eyes': 0 here, so the ray only pitches up by 0.2 rad.
    assert np.allclose(first.ray.direction, [0.0, math.sin(0.2), -math.cos(0.2)])
    assert first.vergence_depth_m == 1.5
    assert first.left is not None and first.right is not None
    # The left eye sits at CPF +X = wearer's left = head -x.
    assert np.allclose(first.left.origin_m, [-0.0315, 0.0, 0.0])
    assert np.allclose(first.right.origin_m, [0.0315, 0.0, 0.0])
    left_cpf = np.array([math.tan(0.1), math.tan(0.2), 1.0])
    assert np.allclose(first.left.direction, left_cpf * [-1, 1, -1] / np.linalg.norm(left_cpf))
    assert np.allclose(second.ray.direction, head_direction(0.1, 0.0))


def test_bad_csvs(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        read_aria_eye_gaze(tmp_path / "missing.csv")
    no_yaw = write_csv(tmp_path / "a.csv", "tracking_timestamp_us,pitch_rads_cpf", ["1,0"])
    with pytest.raises(InputError, match="not an Aria eye gaze CSV: missing yaw_rads_cpf or left_yaw"):
        read_aria_eye_gaze(no_yaw)
    text = write_csv(tmp_path / "b.csv", "tracking_timestamp_us,yaw_rads_cpf,pitch_rads_cpf", ["1,0,0", "2,x,0"])
    with pytest.raises(InputError, match="line 3: yaw_rads_cpf is not a number: 'x'"):
        read_aria_eye_gaze(text)
    backwards = write_csv(
        tmp_path / "c.csv", "tracking_timestamp_us,yaw_rads_cpf,pitch_rads_cpf", ["9,0,0", "3,0,0"]
    )
    with pytest.raises(InputError, match="line 3: tracking_timestamp_us goes back in time"):
        read_aria_eye_gaze(backwards)
    repeated = write_csv(
        tmp_path / "d.csv", "tracking_timestamp_us,yaw_rads_cpf,pitch_rads_cpf", ["3,0,0", "3,1,0"]
    )
    assert [s.timestamp_ns for s in read_aria_eye_gaze(repeated)] == [3000]


def test_import_writes_a_gaze_only_session(tmp_path: Path) -> None:
    csv_path = write_csv(
        tmp_path / "g.csv", "tracking_timestamp_us,yaw_rads_cpf,pitch_rads_cpf,depth_m", ["100,0,0,1", "108,0,0,1"]
    )
    result = import_aria_eye_gaze(csv_path, tmp_path / "out", CAMERA)
    assert (result.gaze_count, result.valid_count) == (2, 2)
    session = Session.open(tmp_path / "out")
    assert session.header.source == "imported" and not session.header.has_depth and session.frame_count == 0
    assert session.header.name == "g"
    assert np.array_equal(session.header.head_from_camera, HEAD_FROM_FORWARD_CAMERA)
    assert session.gaze_timestamps_ns.tolist() == [100_000, 108_000]


def test_calibration_file(tmp_path: Path) -> None:
    calib = tmp_path / "calib.json"
    calib.write_text(
        json.dumps(
            {
                "camera": {
                    "width_px": 1408,
                    "height_px": 1408,
                    "fx_px": 610.0,
                    "fy_px": 610.0,
                    "cx_px": 703.5,
                    "cy_px": 703.5,
                    "distortion": [0.1, 0.0, 0.0, 0.0],
                }
            }
        )
    )
    camera, head_from_camera = load_calibration(calib)
    assert camera == CameraModel(1408, 1408, 610.0, 610.0, 703.5, 703.5, (0.1, 0.0, 0.0, 0.0))
    assert np.array_equal(head_from_camera, HEAD_FROM_FORWARD_CAMERA)
    calib.write_text("{}")
    with pytest.raises(InputError, match="has no 'camera' object"):
        load_calibration(calib)


def test_import_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    csv_path = write_csv(tmp_path / "g.csv", NEW_COLUMNS, ["1,0,0,0,1.0,0.03,0,0,-0.03,0,0,u", "9,,,,,,,,,,,u"])
    out = tmp_path / "imported"
    args = ["session", "import-aria", str(csv_path), "--out", str(out), "--name", "walk"]
    assert main([*args, "--intrinsics", "640", "480", "500", "500", "319.5", "239.5"]) == 0
    assert "2 gaze samples (1 valid), no frames" in capsys.readouterr().out
    assert main(["session", "check", str(out)]) == 0
    assert "warning: no frames: a gaze-only imported session" in capsys.readouterr().out
    # A second import to the same place needs --overwrite; a session header works as a calibration file.
    assert main([*args, "--calibration", str(out / "header.json")]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main([*args, "--calibration", str(out / "header.json"), "--overwrite"]) == 0
    assert Session.open(out).header.camera == CAMERA
