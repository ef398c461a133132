"""Project Aria eye-gaze CSV import: axis conventions pinned by hand-computed answers, and the command."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.realdata import (
    mask_holds_prompt,
    read_selections,
    recording,
    run_without_vendor_readers,
    session_pixels,
)
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


# ---------------------------------------------------------------------------------------------------------------
# Project Aria VRS recordings (../shared/realdata) through the official reader: the `aria` extra.


def test_without_the_aria_extra_the_import_names_it(tmp_path: Path) -> None:
    done = run_without_vendor_readers(
        "session", "import-aria", str(tmp_path / "x.vrs"), "--out", str(tmp_path / "s")
    )
    assert done.returncode == 2
    assert "install the 'aria' extra (pip install 'xrseg[aria]')" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def aria_reader() -> Any:
    """projectaria_tools' calibration module, or a skip without the aria extra (the CSV tests above need none)."""
    return pytest.importorskip("projectaria_tools.core.calibration", reason="needs the aria extra")


GEN1 = "aria-everyday-activities"
GEN2 = "aria-gen2"
GEN2_VRS = "aria_gen2_unit_test_sequence_with_bluetooth.vrs"


@pytest.fixture(scope="module")
def gen1(tmp_path_factory: pytest.TempPathFactory) -> Path:
    aria_reader()
    folder = recording(GEN1)
    out = tmp_path_factory.mktemp("aria") / "gen1"
    assert (
        main(
            [
                "session",
                "import-aria",
                str(folder / "recording.vrs"),
                "--mps",
                str(folder / "mps"),
                "--out",
                str(out),
                "--select-at",
                "0.15",
                "0.3",
            ]
        )
        == 0
    )
    return out


@pytest.fixture(scope="module")
def gen2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    aria_reader()
    out = tmp_path_factory.mktemp("aria") / "gen2"
    # The snippet (0.3 s) is too short for a 500 ms dwell: two SELECT events, as button presses would be.
    args = [
        "session",
        "import-aria",
        str(recording(GEN2) / GEN2_VRS),
        "--out",
        str(out),
        "--select-at",
        "0.1",
        "0.27",
    ]
    assert main(args) == 0
    return out


def vendor_pixels(vrs: Path, eye_gazes: list, camera: CameraModel) -> np.ndarray:
    """Nx2: where Aria's own tools put each gaze on the RGB image (the tutorial's CPF point at the gaze depth,
    1 m without one, projected with the fisheye calibration), carried into the import's pinhole image through
    the reader's fisheye -> pinhole undistortion (Gen 1 turned upright as the reader's rotate utility does)."""
    from projectaria_tools.core import data_provider, mps

    calibration = aria_reader()
    device = data_provider.create_vrs_data_provider(str(vrs)).get_device_calibration()
    fisheye = device.get_camera_calib("camera-rgb")
    gen1 = device.get_device_version() == calibration.DeviceVersion.Gen1
    size = (camera.height_px, camera.width_px) if gen1 else (camera.width_px, camera.height_px)
    device_from_fisheye = fisheye.get_transform_device_camera().to_matrix()
    pinhole = calibration.get_linear_camera_calibration(
        *size, camera.fx_px, "camera-rgb", fisheye.get_transform_device_camera()
    )
    if gen1:
        pinhole = calibration.rotate_camera_calib_cw90deg(pinhole)
    pinhole_from_fisheye = np.linalg.inv(pinhole.get_transform_device_camera().to_matrix()) @ device_from_fisheye
    fisheye_from_cpf = np.linalg.inv(device_from_fisheye) @ device.get_transform_device_cpf().to_matrix()
    pixels = np.full((len(eye_gazes), 2), np.nan)
    for i, gaze in enumerate(eye_gazes):
        point_cpf = mps.get_eyegaze_point_at_depth(gaze.yaw, gaze.pitch, gaze.depth if gaze.depth > 0 else 1.0)
        fisheye_px = fisheye.project((fisheye_from_cpf @ np.append(point_cpf, 1.0))[:3])
        if fisheye_px is None:
            continue
        pinhole_px = pinhole.project(pinhole_from_fisheye[:3, :3] @ fisheye.unproject(fisheye_px))
        if pinhole_px is not None:
            pixels[i] = pinhole_px
    return pixels


def test_gen1_imports_and_checks(gen1: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = Session.open(gen1)
    header = session.header
    assert session.frame_count == 8 and header.source == "imported" and not header.has_depth
    assert (header.camera.width_px, header.camera.height_px) == (704, 704) and not header.camera.has_distortion
    assert (
        len(session.gaze_samples()) == 4 and len(session.head_poses()) == 12
    )  # head fixed: a pose per frame and sample
    assert "head fixed" in header.description and "upright" in header.description
    # Frame conventions: the upright camera looks along the head's forward axis (-z), its image down is head -y.
    rotation = header.head_from_camera[:3, :3]
    assert (rotation @ [0, 0, 1])[2] < -0.95 and (rotation @ [0, 1, 0])[1] < -0.95
    assert session.frame(3).rgb.shape == (704, 704, 3)
    assert main(["session", "check", str(gen1)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")


def test_gen1_gaze_lands_where_aria_projects_it(gen1: Path) -> None:
    from projectaria_tools.core import mps

    csv_path = recording(GEN1) / "mps" / "eye_gaze" / "general_eye_gaze.csv"
    session = Session.open(gen1)
    expected = vendor_pixels(
        recording(GEN1) / "recording.vrs", list(mps.read_eyegaze(str(csv_path))), session.header.camera
    )
    ours = session_pixels(session, session.gaze_samples())
    assert np.all(np.isfinite(expected)) and np.all(np.isfinite(ours))
    assert np.abs(ours - expected).max() < 2.0


def test_gen1_replays_to_selections(gen1: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Gen 1's snippet has 4 MPS gaze samples, 100 ms apart, sweeping 20 degrees in 0.3 s: no fixation forms,
    and each of the two presses selects from the newest gaze sample (xrseg.select.gaze_path)."""
    assert main(["replay", str(gen1), "--out", str(tmp_path), "--no-video"]) == 0
    assert "no meshes: the session has no depth" in capsys.readouterr().out
    selections = read_selections(tmp_path)
    assert len(selections) == 2 and all(mask_holds_prompt(s) for s in selections)


def test_gen2_imports_with_device_gaze_and_vio(gen2: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = Session.open(gen2)
    header = session.header
    assert session.frame_count == 3 and (header.camera.width_px, header.camera.height_px) == (1008, 756)
    gaze = session.gaze_samples()
    assert len(gaze) == 9 and all(s.usable and s.vergence_depth_m for s in gaze)
    poses = session.head_poses()
    assert len(poses) > 100 and "device vio" in header.description and len(session.events()) == 2
    # VIO's odometry frame has gravity along -z: the wearer's head is upright (head +y near world +z).
    assert all((p.world_from_head[:3, :3] @ [0, 1, 0])[2] > 0.9 for p in poses)
    assert main(["session", "check", str(gen2)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")


def test_gen2_gaze_lands_where_aria_projects_it(gen2: Path) -> None:
    from projectaria_tools.core import data_provider

    vrs = recording(GEN2) / GEN2_VRS
    provider = data_provider.create_vrs_data_provider(str(vrs))
    stream = provider.get_stream_id_from_label("eyegaze")
    eye_gazes = [provider.get_eye_gaze_data_by_index(stream, i) for i in range(provider.get_num_data(stream))]
    session = Session.open(gen2)
    expected = vendor_pixels(vrs, eye_gazes, session.header.camera)
    ours = session_pixels(session, session.gaze_samples())
    assert np.all(np.isfinite(expected)) and np.abs(ours - expected).max() < 2.0


def test_gen2_replays_to_selections(gen2: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(gen2), "--out", str(tmp_path), "--no-video"]) == 0
    assert "no meshes: the session has no depth" in capsys.readouterr().out
    selections = read_selections(tmp_path)
    assert selections and all(mask_holds_prompt(s) for s in selections)
    assert all(
        s.record["depth_source"] == "vergence" and not s.record["mask_choice"].startswith("depth")
        for s in selections
    )


def test_unusable_recordings_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aria_reader()
    gen1_vrs = recording(GEN1) / "recording.vrs"
    assert main(["session", "import-aria", str(gen1_vrs), "--out", str(tmp_path / "a")]) == 2
    assert "no eye gaze stream (Gen 1 records none): pass --mps" in capsys.readouterr().err
    # The Gen 2 folder's MPS CSVs come from another recording: their clock does not overlap the frames.
    gen2 = recording(GEN2)
    args = [
        "session",
        "import-aria",
        str(gen2 / GEN2_VRS),
        "--mps",
        str(gen2 / "mps"),
        "--out",
        str(tmp_path / "b"),
    ]
    assert main(args) == 2
    assert "does not overlap the RGB frames" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


TRAJECTORY_COLUMNS = (
    "graph_uid,tracking_timestamp_us,utc_timestamp_ns,tx_world_device,ty_world_device,tz_world_device,"
    "qx_world_device,qy_world_device,qz_world_device,qw_world_device,device_linear_velocity_x_device,"
    "device_linear_velocity_y_device,device_linear_velocity_z_device,angular_velocity_x_device,"
    "angular_velocity_y_device,angular_velocity_z_device,gravity_x_world,gravity_y_world,gravity_z_world,"
    "quality_score,geo_available,tx_ecef_device,ty_ecef_device,tz_ecef_device,qx_ecef_device,qy_ecef_device,"
    "qz_ecef_device,qw_ecef_device"
)


def test_mps_trajectory_gives_the_head_poses(tmp_path: Path) -> None:
    """An MPS folder with a closed-loop trajectory (written here: the real one has none) drives the head poses:
    world_from_head = T_world_device @ T_device_cpf @ cpf_from_head, checked with the reader's own SE3s."""
    aria_reader()
    from projectaria_tools.core import data_provider, mps

    folder = recording(GEN1)
    (tmp_path / "mps" / "slam").mkdir(parents=True)
    (tmp_path / "mps" / "eye_gaze").mkdir()
    gaze_csv = (folder / "mps" / "eye_gaze" / "general_eye_gaze.csv").read_text()
    (tmp_path / "mps" / "eye_gaze" / "general_eye_gaze.csv").write_text(gaze_csv)
    rows = []
    for i, t_us in enumerate(range(86_300_000, 86_800_001, 50_000)):
        half_turn = 0.01 * i  # the device turns about world z and walks along x
        row = f"g,{t_us},0,{1 + 0.01 * i},2,0.5,0,0,{math.sin(half_turn)},{math.cos(half_turn)}" + ",0" * 9
        rows.append(row + ",1,0,0,0,0,0,0,0,1")
    trajectory = tmp_path / "mps" / "slam" / "closed_loop_trajectory.csv"
    trajectory.write_text(TRAJECTORY_COLUMNS + "\n" + "\n".join(rows) + "\n")
    out = tmp_path / "session"
    args = ["session", "import-aria", str(folder / "recording.vrs"), "--mps", str(tmp_path / "mps"), "--out"]
    assert main([*args, str(out)]) == 0
    session = Session.open(out)
    assert "mps closed-loop trajectory" in session.header.description
    device = data_provider.create_vrs_data_provider(str(folder / "recording.vrs")).get_device_calibration()
    head_from_cpf = np.diag([-1.0, 1.0, -1.0, 1.0])
    expected = [
        (p.transform_world_device @ device.get_transform_device_cpf()).to_matrix() @ head_from_cpf
        for p in mps.read_closed_loop_trajectory(str(trajectory))
    ]
    poses = session.head_poses()
    assert len(poses) == len(expected) == 11
    assert all(np.allclose(p.world_from_head, e, atol=1e-9) for p, e in zip(poses, expected, strict=True))
