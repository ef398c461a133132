"""CameraSource on real video files written with OpenCV, and its errors."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from xrseg.errors import DeviceError
from xrseg.sources.camera import CameraSource, DepthImageFolder, parse_camera_source


def write_video(path: Path, count: int, fps: float = 20.0, size: tuple[int, int] = (64, 48)) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
    assert writer.isOpened()
    for index in range(count):
        image = np.zeros((size[1], size[0], 3), dtype=np.uint8)
        image[..., 2] = 40 * index  # red in OpenCV's BGR
        writer.write(image)
    writer.release()
    return path


def test_video_file_frames_arrive_in_order_with_file_timestamps(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 5, fps=20.0)
    with CameraSource(str(video)) as camera:
        frames = list(camera)
        assert (camera.width_px, camera.height_px) == (64, 48)
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    steps = np.diff([f.timestamp_ns for f in frames])
    np.testing.assert_allclose(steps, 50_000_000, atol=1_000)  # 20 fps -> 50 ms apart
    reds = [float(f.rgb[..., 0].mean()) for f in frames]  # BGR red became RGB channel 0
    np.testing.assert_allclose(reds, [0, 40, 80, 120, 160], atol=4)
    assert frames[0].rgb.shape == (48, 64, 3) and frames[0].rgb.dtype == np.uint8
    assert camera.stats.captured == 5 and camera.stats.delivered == 5 and camera.stats.dropped == 0


def test_latest_wins_drops_the_oldest_and_counts_it(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 6)
    camera = CameraSource(str(video), queue_size=2, latest_wins=True)
    camera.start()
    assert camera.finished.wait(10.0)  # the reader ran to the end before anyone consumed
    frames = list(camera)
    camera.close()
    assert [f.index for f in frames] == [4, 5]
    assert camera.stats.dropped == 4 and camera.stats.captured == 6


def test_depth_from_a_folder_of_16_bit_pngs(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 2)
    depth_dir = tmp_path / "depth"
    depth_dir.mkdir()
    cv2.imwrite(str(depth_dir / "depth_000001.png"), np.full((48, 64), 1500, dtype=np.uint16))
    with CameraSource(str(video), depth=DepthImageFolder(depth_dir, scale_m=0.001)) as camera:
        frames = list(camera)
    assert frames[0].depth_m is None
    assert frames[1].depth_m is not None and frames[1].depth_m.dtype == np.float32
    np.testing.assert_allclose(frames[1].depth_m, 1.5, rtol=1e-6)


def test_missing_device_and_missing_file_are_device_errors(tmp_path: Path) -> None:
    with pytest.raises(DeviceError, match="cannot open device 57"):
        CameraSource(57).open()
    with pytest.raises(DeviceError, match="does not exist"):
        CameraSource(str(tmp_path / "nope.avi")).open()
    not_video = tmp_path / "notes.avi"
    not_video.write_text("not a video")
    with pytest.raises(DeviceError):
        CameraSource(str(not_video)).open()


def test_live_timestamps_subtract_the_clock_offset() -> None:
    camera = CameraSource(0, clock_offset_ns=30_000_000)
    assert camera._timestamp(3, 0.0, arrival_ns=1_000_000_000, start_ns=0) == 970_000_000


def test_parse_camera_source() -> None:
    assert parse_camera_source(2) == ("device", 2)
    assert parse_camera_source(" 1 ") == ("device", 1)
    assert parse_camera_source("rtsp://10.0.0.2/stream") == ("url", "rtsp://10.0.0.2/stream")
    assert parse_camera_source("clip.mp4") == ("file", "clip.mp4")
