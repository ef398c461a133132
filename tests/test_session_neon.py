"""Pupil Labs Neon import (the `neon` extra): frame conventions pinned by known answers, and the real recording
in ../shared/realdata imported, checked, compared with the vendor reader's gaze pixels and replayed."""

from __future__ import annotations

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
from xrseg.geometry import project_points
from xrseg.session import Session
from xrseg.session.importers.neon import HEAD_FROM_SCENE_CAMERA, gaze_directions, imu_from_camera
from xrseg.types import CameraModel

NEON = "neon-multipart"
# 24 frames, every third: 2.3 s of the 4.75 s scene video, which holds the recording's first long fixation.
IMPORT_OPTIONS = ["--frame-step", "3", "--max-frames", "24"]


def test_imu_axes_known_answers() -> None:
    """Pupil Labs: the IMU's +y points forward and +z up; the scene camera is pitched 12 degrees down."""
    rotation = imu_from_camera()[:3, :3]
    forward, down = rotation @ [0.0, 0.0, 1.0], rotation @ [0.0, 1.0, 0.0]
    tilt = math.radians(12.0)
    assert np.allclose(forward, [0.0, math.cos(tilt), -math.sin(tilt)])  # optical axis: forward, 12 deg down
    assert np.allclose(down, [0.0, -math.sin(tilt), -math.cos(tilt)])  # image down: mostly IMU -z


def test_gaze_pixels_become_rays_that_project_back() -> None:
    camera = CameraModel(1600, 1200, 890.0, 889.0, 817.0, 613.0, (-0.13, 0.11, 0.0, 0.0, 0.0, 0.17, 0.05, 0.03))
    pixels = np.array([[817.0, 613.0], [100.0, 80.0], [1500.0, 1100.0], [np.nan, 3.0]])
    directions = gaze_directions(camera, pixels)
    # The principal point is the head's forward axis; the NaN pixel gives a NaN ray.
    assert np.allclose(directions[0], [0.0, 0.0, -1.0]) and np.all(np.isnan(directions[3]))
    camera_dirs = directions[:3] @ HEAD_FROM_SCENE_CAMERA[:3, :3]  # head -> camera (the matrix is its inverse)
    back, _ = project_points(camera, camera_dirs * 2.5)  # any distance: the rays start at the camera centre
    assert np.abs(back - pixels[:3]).max() < 1e-6


def test_without_the_neon_extra_the_import_names_it(tmp_path: Path) -> None:
    done = run_without_vendor_readers("session", "import-neon", str(tmp_path), "--out", str(tmp_path / "s"))
    assert done.returncode == 2
    assert "install the 'neon' extra (pip install 'xrseg[neon]')" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and not (tmp_path / "s").exists()


def neon_reader() -> Any:
    return pytest.importorskip("pupil_labs.neon_recording", reason="needs the neon extra")


@pytest.fixture(scope="module")
def neon(tmp_path_factory: pytest.TempPathFactory) -> Path:
    neon_reader()
    out = tmp_path_factory.mktemp("neon") / "session"
    assert main(["session", "import-neon", str(recording(NEON)), "--out", str(out), *IMPORT_OPTIONS]) == 0
    return out


def test_import_and_check(neon: Path, capsys: pytest.CaptureFixture[str]) -> None:
    session = Session.open(neon)
    header = session.header
    assert session.frame_count == 24 and header.source == "imported" and not header.has_depth
    assert header.camera.size == (1600, 1200) and len(header.camera.distortion) == 8
    assert session.frame(5).rgb.shape == (1200, 1600, 3)
    gaze = session.gaze_samples()
    assert len(gaze) > 150 and all(s.vergence_depth_m is None for s in gaze)
    poses = session.head_poses()
    assert len(poses) > 100 and "rotation only" in header.description
    # Rotation only (no translation); the IMU's world has +z up and the wearer's head was upright.
    assert all(np.array_equal(p.world_from_head[:3, 3], [0.0, 0.0, 0.0]) for p in poses)
    assert all((p.world_from_head[:3, :3] @ [0.0, 1.0, 0.0])[2] > 0.8 for p in poses)
    assert main(["session", "check", str(neon)]) == 0
    assert capsys.readouterr().out.strip().endswith("ok")


def test_gaze_lands_where_neon_reports_it(neon: Path) -> None:
    """Each imported gaze ray, projected by the pipeline, lands on the pixel the vendor reader gives."""
    reader = neon_reader().open(str(recording(NEON)))
    session = Session.open(neon)
    samples = session.gaze_samples()
    times = np.asarray(reader.gaze.time, dtype=np.int64)
    index = np.searchsorted(times, [s.timestamp_ns for s in samples])
    assert np.array_equal(times[index], [s.timestamp_ns for s in samples])
    expected = np.asarray(reader.gaze.point, dtype=np.float64)[index]
    ours = session_pixels(session, samples, fallback_depth_m=1.0)
    assert np.all(np.isfinite(ours)) and np.abs(ours - expected).max() < 2.0


def test_replays_to_selections(neon: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(neon), "--out", str(tmp_path), "--no-video"]) == 0
    assert "no meshes: the session has no depth" in capsys.readouterr().out
    selections = read_selections(tmp_path)
    assert selections and all(mask_holds_prompt(s) for s in selections)
    # No depth: gaze at the fallback distance, and no depth rule in the choice among SAM's masks.
    assert all(
        s.record["depth_source"] == "fixed" and not s.record["mask_choice"].startswith("depth") for s in selections
    )
