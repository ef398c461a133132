"""The no-runtime path through the real OpenXR loader, the live source's merge, and frame/pose pairing."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import xr

from xrseg.calibration import load_calibration
from xrseg.cli import main
from xrseg.errors import RuntimeUnavailableError
from xrseg.sources.camera import CameraSource
from xrseg.sources.live import LiveSource, ReorderBuffer, open_live_source, pair_frame_with_pose
from xrseg.sources.openxr import OpenXRSource, runtime_extensions
from xrseg.types import GazeRay, GazeSample, HeadPose

REPO = Path(__file__).resolve().parents[1]
SYNTHETIC = REPO / "calibration" / "synthetic.json"


def write_video(path: Path, count: int, size: tuple[int, int] = (640, 480), fps: float = 20.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for index in range(count):
        writer.write(np.full((size[1], size[0], 3), index * 20 % 256, dtype=np.uint8))
    writer.release()
    return path


# -- no runtime on this machine: the real loader's error


def test_runtime_probe_raises_from_the_real_loader_error() -> None:
    with pytest.raises(RuntimeUnavailableError, match="no OpenXR runtime is installed or running") as info:
        runtime_extensions()
    assert isinstance(info.value.__cause__, xr.RuntimeUnavailableError)


def test_entering_the_openxr_source_without_a_runtime_fails_cleanly() -> None:
    with pytest.raises(RuntimeUnavailableError, match="XR_RUNTIME_JSON"), OpenXRSource():
        pass


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "--calibration", str(SYNTHETIC)],
        ["run", "--calibration", str(SYNTHETIC), "--camera", "/no/such/video.avi"],
        ["record", "--out", "OUT", "--camera", "57"],
    ],
)
def test_cli_exits_2_with_one_line_naming_the_runtime(
    argv: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    argv = [str(tmp_path / "session") if a == "OUT" else a for a in argv]
    assert main(argv) == 2
    err = capfd.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # the loader's own chatter is silenced
    assert "OpenXR runtime" in err[0]
    assert not (tmp_path / "session").exists()  # checked before anything is created or opened


def test_open_live_source_checks_the_runtime_before_the_camera(tmp_path: Path) -> None:
    # The camera does not exist either; the runtime error must win (it is checked first).
    with pytest.raises(RuntimeUnavailableError):
        open_live_source(SYNTHETIC, str(tmp_path / "missing.avi"))


def test_live_source_reports_the_runtime_error_and_releases_the_camera(tmp_path: Path) -> None:
    video = write_video(tmp_path / "cam.avi", 5)
    camera = CameraSource(str(video), realtime=False)
    live = LiveSource(camera, load_calibration(SYNTHETIC))
    with pytest.raises(RuntimeUnavailableError), live:
        for _ in live:
            pass
    assert not camera.is_open  # opened for the check, released on the error
    assert live.camera.width_px == 640 and live.head_from_camera.shape == (4, 4)


# -- merging -------------------------------------------------------------------------------------------------


def gaze(timestamp_ns: int) -> GazeSample:
    return GazeSample(timestamp_ns=timestamp_ns, ray=GazeRay(origin_m=np.zeros(3), direction=[0.0, 0.0, -1.0]))


def test_reorder_buffer_releases_in_time_order_after_the_window() -> None:
    buffer = ReorderBuffer(window_ns=100)
    for stamp in (300, 100, 200, 100):
        buffer.push(gaze(stamp))
    assert [i.timestamp_ns for i in buffer.pop_ready(now_ns=250)] == [100, 100]
    assert len(buffer) == 2
    assert buffer.pop_ready(now_ns=299) == []
    assert [i.timestamp_ns for i in buffer.pop_ready(now_ns=300)] == [200]
    assert [i.timestamp_ns for i in buffer.flush()] == [300]
    assert len(buffer) == 0


# -- pairing frames with head poses


def yaw(deg: float, x_m: float) -> np.ndarray:
    c, s = math.cos(math.radians(deg)), math.sin(math.radians(deg))
    return np.array([[c, 0, s, x_m], [0, 1, 0, 0], [-s, 0, c, 0], [0, 0, 0, 1]], dtype=np.float64)


POSES = [
    HeadPose(timestamp_ns=1_000_000_000, world_from_head=yaw(0.0, 0.0)),
    HeadPose(timestamp_ns=1_010_000_000, world_from_head=yaw(20.0, 0.1)),
    HeadPose(timestamp_ns=1_500_000_000, world_from_head=yaw(40.0, 0.2)),
]


def test_pairing_interpolates_translation_and_rotation() -> None:
    match = pair_frame_with_pose(1_002_500_000, POSES)  # a quarter of the way from pose 0 to pose 1
    assert match.pose is not None and match.reason == ""
    np.testing.assert_allclose(match.pose.world_from_head, yaw(5.0, 0.025), atol=1e-9)
    assert match.pose.timestamp_ns == 1_002_500_000


def test_pairing_exact_time_returns_that_pose() -> None:
    match = pair_frame_with_pose(1_010_000_000, POSES)
    assert match.pose is POSES[1]


def test_pairing_out_of_range_gives_a_reason() -> None:
    before = pair_frame_with_pose(999_000_000, POSES)
    assert before.pose is None and "1.0 ms before the first" in before.reason
    after = pair_frame_with_pose(1_600_000_000, POSES)
    assert after.pose is None and "100.0 ms after the last" in after.reason
    assert pair_frame_with_pose(5, []).reason == "no head poses yet"


def test_pairing_refuses_to_bridge_a_tracking_gap() -> None:
    gap = pair_frame_with_pose(1_200_000_000, POSES)  # poses 1 and 2 are 490 ms apart
    assert gap.pose is None and "490.0 ms" in gap.reason
    bridged = pair_frame_with_pose(1_200_000_000, POSES, max_gap_ns=500_000_000)
    assert bridged.pose is not None
