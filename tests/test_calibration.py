"""Calibration profiles, checkerboard intrinsics on rendered views, and the gaze rotation solver."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from xrseg.calibration import (
    DeviceCalibration,
    GazeTarget,
    apply_gaze_correction,
    calibrate_camera_images,
    calibration_to_json,
    check_fits,
    gaze_observations,
    load_calibration,
    load_gaze_targets,
    save_calibration,
    solve_gaze_rotation,
)
from xrseg.cli import main
from xrseg.errors import CalibrationError
from xrseg.geometry import unproject_pixels
from xrseg.tools.scenes.recipe import CameraSpec
from xrseg.tools.scenes.rig import camera_model, head_from_camera
from xrseg.types import CameraModel, Frame, GazeRay, GazeSample

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "calibration" / "synthetic.json"


def rotation(axis: str, deg: float) -> npt.NDArray[np.float64]:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    if axis == "x":
        return np.array([[1, 0, 0], [0, c, -s], [0, s, c]], dtype=np.float64)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]], dtype=np.float64)


# -- profiles ------------------------------------------------------------------------------------------------


def test_synthetic_profile_matches_the_scene_generator_rig() -> None:
    calibration = load_calibration(SYNTHETIC)
    spec = CameraSpec()
    assert calibration.camera == camera_model(spec)
    np.testing.assert_allclose(calibration.head_from_camera, head_from_camera(spec), atol=1e-12)
    assert calibration.camera.fx_px == pytest.approx(320.0 / math.tan(math.radians(35.0)))
    assert calibration.clock_offset_ns == 0 and calibration.gaze_correction is None


def test_save_and_load_round_trip_with_a_gaze_correction(tmp_path: Path) -> None:
    base = load_calibration(SYNTHETIC)
    profile = DeviceCalibration(
        device_name="rig",
        camera=base.camera,
        head_from_camera=base.head_from_camera,
        clock_offset_ns=25_000_000,
        gaze_correction=rotation("x", 2.0),
        reprojection_rms_px=0.31,
        notes="bench rig",
    )
    path = tmp_path / "rig.json"
    save_calibration(profile, path)
    loaded = load_calibration(path)
    assert calibration_to_json(loaded) == calibration_to_json(profile)
    assert loaded.clock_offset_ns == 25_000_000 and loaded.reprojection_rms_px == 0.31


def broken(tmp_path: Path, change: dict[str, object] | None = None, drop: str | None = None) -> Path:
    value = json.loads(SYNTHETIC.read_text())
    value.update(change or {})
    if drop:
        del value[drop]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(value))
    return path


@pytest.mark.parametrize(
    ("change", "drop", "message"),
    [
        (None, "camera", "missing field 'camera'"),
        ({"cameras": {}}, None, "unknown field 'cameras'"),
        ({"schema": "xrseg.calibration/9"}, None, "schema must be"),
        ({"clock_offset_ns": 1.5}, None, "clock_offset_ns must be an integer"),
        ({"head_from_camera": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, None, "4 rows of 4 numbers"),
        ({"head_from_camera": [[2, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]}, None, "orthonormal"),
        ({"gaze_correction": [[1, 0, 0], [0, 1, 0], [0, 0, -1]]}, None, "reflection"),
        ({"device_name": ""}, None, "device_name"),
    ],
)
def test_invalid_profiles_give_one_clear_line(
    tmp_path: Path, change: dict[str, object] | None, drop: str | None, message: str
) -> None:
    path = broken(tmp_path, change, drop)
    with pytest.raises(CalibrationError, match=message) as info:
        load_calibration(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_bad_camera_block_and_unreadable_files(tmp_path: Path) -> None:
    value = json.loads(SYNTHETIC.read_text())
    value["camera"]["distortion"] = [0.1, 0.2, 0.3]
    path = tmp_path / "cam.json"
    path.write_text(json.dumps(value))
    with pytest.raises(CalibrationError, match="distortion needs 0, 4, 5 or 8"):
        load_calibration(path)
    with pytest.raises(CalibrationError, match="no such file"):
        load_calibration(tmp_path / "absent.json")
    (tmp_path / "bad.json").write_text("{ not json")
    with pytest.raises(CalibrationError, match="not valid JSON"):
        load_calibration(tmp_path / "bad.json")


def test_check_fits() -> None:
    calibration = load_calibration(SYNTHETIC)
    check_fits(calibration, 640, 480)
    with pytest.raises(CalibrationError, match="640x480 camera but the camera delivers 1280x720"):
        check_fits(calibration, 1280, 720)


# -- checkerboard intrinsics on rendered views

BOARD = (9, 6)
SQUARE_M = 0.025
TRUE_CAMERA = CameraModel(640, 480, 500.0, 500.0, 320.0, 240.0, (-0.12, 0.03, 0.001, -0.0005, 0.0))


def render_board(camera: CameraModel, rvec: npt.NDArray[np.float64], tvec: npt.NDArray[np.float64]) -> np.ndarray:
    """Render a 10x7-square checkerboard (9x6 inner corners) seen through ``camera`` (with its distortion).

    Inverse mapping: every pixel is undistorted to a ray (OpenCV), intersected with the board plane and
    coloured by the square it hits; a white margin surrounds the squares, grey beyond.
    """
    height, width = camera.height_px, camera.width_px
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float64), np.arange(height, dtype=np.float64))
    pixels = np.stack([xs.ravel(), ys.ravel()], axis=1).reshape(-1, 1, 2)
    rays = cv2.undistortPoints(pixels, camera.intrinsic_matrix(), camera.distortion_coeffs()).reshape(-1, 2)
    rays = np.column_stack([rays, np.ones(len(rays))])
    board_from_camera_r = cv2.Rodrigues(rvec)[0].T
    normal = board_from_camera_r.T[:, 2]
    scale = (normal @ tvec) / (rays @ normal)
    points = (rays * scale[:, None] - tvec) @ board_from_camera_r.T
    u, v = points[:, 0] / SQUARE_M, points[:, 1] / SQUARE_M
    squares = (np.floor(u) + np.floor(v)).astype(np.int64) % 2
    inside = (u >= -1) & (u < BOARD[0]) & (v >= -1) & (v < BOARD[1])
    margin = (u >= -2) & (u < BOARD[0] + 1) & (v >= -2) & (v < BOARD[1] + 1)
    image = np.where(inside, np.where(squares == 0, 20, 235), np.where(margin, 235, 128)).astype(np.uint8)
    return cv2.GaussianBlur(image.reshape(height, width), (3, 3), 0.8)


def board_views() -> list[np.ndarray]:
    rng = np.random.default_rng(7)
    centre = np.array([(BOARD[0] - 1) * SQUARE_M / 2, (BOARD[1] - 1) * SQUARE_M / 2, 0.0])
    views = []
    for _ in range(12):
        angles = np.radians([rng.uniform(-30, 30), rng.uniform(-30, 30), rng.uniform(-15, 15)])
        rvec = cv2.Rodrigues(rotation("x", math.degrees(angles[0])) @ rotation("y", math.degrees(angles[1])))[0]
        r = cv2.Rodrigues(rvec)[0]
        target = np.array([rng.uniform(-0.06, 0.06), rng.uniform(-0.04, 0.04), rng.uniform(0.35, 0.5)])
        views.append(render_board(TRUE_CAMERA, rvec.ravel(), target - r @ centre))
    return views


@pytest.fixture(scope="module")
def views() -> list[np.ndarray]:
    return board_views()


def test_checkerboard_calibration_recovers_the_camera(views: list[np.ndarray]) -> None:
    result = calibrate_camera_images(views, BOARD, SQUARE_M)
    assert len(result.used) >= 10
    assert result.camera.fx_px == pytest.approx(500.0, rel=0.01)
    assert result.camera.fy_px == pytest.approx(500.0, rel=0.01)
    assert result.camera.cx_px == pytest.approx(320.0, abs=4.0)
    assert result.camera.cy_px == pytest.approx(240.0, abs=4.0)
    assert result.camera.distortion[0] == pytest.approx(-0.12, abs=0.03)
    assert result.rms_px < 0.5


def test_checkerboard_calibration_needs_enough_boards(views: list[np.ndarray]) -> None:
    blank = [np.full((480, 640), 128, dtype=np.uint8)] * 3
    with pytest.raises(CalibrationError, match="found in 2 of 5 images"):
        calibrate_camera_images(views[:2] + blank, BOARD, SQUARE_M)


def test_calibrate_camera_command_writes_a_profile(
    views: list[np.ndarray], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    paths = []
    for index, view in enumerate(views[:8]):
        path = tmp_path / f"view{index}.png"
        cv2.imwrite(str(path), view)
        paths.append(str(path))
    out = tmp_path / "cam.json"
    assert main(["calibrate", "camera", *paths, "--board", "9x6", "--square-mm", "25", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "RMS reprojection error" in printed and "fx, fy" in printed
    profile = load_calibration(out)
    assert profile.camera.fx_px == pytest.approx(500.0, rel=0.02)
    assert profile.reprojection_rms_px is not None and profile.reprojection_rms_px < 0.5


# -- gaze offset


def test_solve_gaze_rotation_recovers_a_known_small_rotation() -> None:
    truth = rotation("x", 2.0) @ rotation("y", -1.5)
    targets = np.array([[0, 0, -1], [0.3, 0.1, -1], [-0.3, 0.2, -1], [0.1, -0.3, -1], [-0.2, -0.2, -1]], float)
    targets /= np.linalg.norm(targets, axis=1, keepdims=True)
    measured = targets @ truth  # the tracker is off by truth^-1: truth @ measured = target
    fit = solve_gaze_rotation(measured, targets)
    np.testing.assert_allclose(fit.rotation, truth, atol=1e-9)
    assert np.all(fit.residuals_after_deg < 1e-6)
    assert fit.residuals_before_deg.min() > 1.0
    expected_angle = math.degrees(math.acos((np.trace(truth) - 1) / 2))
    assert fit.angle_deg == pytest.approx(expected_angle, abs=1e-6)


def test_solve_gaze_rotation_refuses_too_few_or_parallel_targets() -> None:
    forward = np.array([[0.0, 0.0, -1.0]] * 3)
    with pytest.raises(CalibrationError, match="at least 3"):
        solve_gaze_rotation(forward[:2], forward[:2])
    with pytest.raises(CalibrationError, match="one direction"):
        solve_gaze_rotation(forward, forward)


def test_gaze_observations_and_fit_from_a_synthetic_stream() -> None:
    calibration = load_calibration(SYNTHETIC)
    camera, head_from_cam = calibration.camera, calibration.head_from_camera
    pixels = [(320.0, 240.0), (100.0, 80.0), (540.0, 90.0), (120.0, 400.0), (520.0, 380.0)]
    error = rotation("y", 1.0) @ rotation("x", -0.5)  # what the tracker adds to the true direction
    items: list[object] = []
    targets = []
    for index, (x, y) in enumerate(pixels):
        start = 1_000_000_000 * (index + 1)
        targets.append(GazeTarget(start, start + 500_000_000, x, y))
        point_cam = unproject_pixels(camera, [[x, y]], [1.0])[0]
        direction = head_from_cam[:3, :3] @ point_cam + head_from_cam[:3, 3]
        for k in range(10):
            ray = GazeRay(origin_m=np.zeros(3), direction=error @ direction)
            items.append(GazeSample(timestamp_ns=start + 40_000_000 * k, ray=ray))
        items.append(Frame(index=index, timestamp_ns=start + 1, rgb=np.zeros((480, 640, 3), np.uint8)))
    observations = gaze_observations(items, targets, camera, head_from_cam, distance_m=1.0)
    assert [o.sample_count for o in observations] == [10] * 5
    fit = solve_gaze_rotation(
        [o.measured_direction for o in observations], [o.target_direction for o in observations]
    )
    np.testing.assert_allclose(fit.rotation, error.T, atol=1e-6)
    corrected = apply_gaze_correction(items[0], fit.rotation)  # type: ignore[arg-type]
    np.testing.assert_allclose(corrected.ray.direction, observations[0].target_direction, atol=1e-6)


def test_load_gaze_targets(tmp_path: Path) -> None:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps({"targets": [{"start_ns": 1, "end_ns": 5, "x_px": 10, "y_px": 20.5}]}))
    assert load_gaze_targets(path) == [GazeTarget(1, 5, 10.0, 20.5)]
    path.write_text(json.dumps({"targets": [{"start_ns": 5, "end_ns": 1, "x_px": 0, "y_px": 0}]}))
    with pytest.raises(CalibrationError, match="end_ns > start_ns"):
        load_gaze_targets(path)
