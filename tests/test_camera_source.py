"""CameraSource on real video files written with OpenCV, and its errors."""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from xrseg.errors import DeviceError
from xrseg.sources.camera import CameraSource, DepthImageFolder, parse_camera_source
from xrseg.sources.capture_clock import CaptureClock, StampSource
from xrseg.sources.clock import now_ns


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


def test_live_frames_without_device_time_get_the_grab_time_minus_the_clock_offset() -> None:
    clock = CaptureClock(clock_offset_ns=30_000_000)
    assert clock.stamp(0.0, grab_ns=1_000_000_000) == 970_000_000
    assert clock.source is StampSource.GRAB
    # A stream position (seconds since the stream began) is not a time on our clock: ignored.
    assert clock.stamp(40.0, grab_ns=5_000_000_000) == 4_970_000_000
    assert clock.source is StampSource.GRAB


def test_live_frames_keep_their_device_timestamps_and_a_backlog_is_recognised() -> None:
    clock = CaptureClock(clock_offset_ns=30_000_000, max_latency_ns=500_000_000)
    # V4L2 reports each buffer's CLOCK_MONOTONIC time: frames that waited in the driver keep their capture
    # times, 200 ms apart, though they are grabbed 1 ms apart.
    stamps = [
        clock.stamp(device_ms, grab_ns)
        for device_ms, grab_ns in ((9000.0, 9_700_000_000), (9200.0, 9_701_000_000))
    ]
    assert stamps == [9_000_000_000, 9_200_000_000] and clock.source is StampSource.DEVICE
    assert clock.is_backlog(stamps[0], read_ns=9_700_000_000)  # 700 ms old when read: dropped
    assert not clock.is_backlog(stamps[1], read_ns=9_701_000_000)
    # A timestamp that does not advance falls back to the grab time.
    assert clock.stamp(9200.0, grab_ns=9_800_000_000) == 9_770_000_000
    assert clock.grab_was_buffered(1_000_000) and not clock.grab_was_buffered(150_000_000)


def test_a_paced_file_is_delivered_at_its_own_rate(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.avi", 4, fps=10.0)
    with CameraSource(str(video), realtime=True) as camera:
        frames = []
        for frame in camera:
            frames.append((frame, now_ns()))
    stamps = [f.timestamp_ns for f, _ in frames]
    np.testing.assert_allclose(np.diff(stamps), 100_000_000, atol=1_000)
    # Each frame is handed over no earlier than its own time: the file is not read ahead of the clock.
    assert all(arrived >= frame.timestamp_ns for frame, arrived in frames)


def test_parse_camera_source() -> None:
    assert parse_camera_source(2) == ("device", 2)
    assert parse_camera_source(" 1 ") == ("device", 1)
    assert parse_camera_source("rtsp://10.0.0.2/stream") == ("url", "rtsp://10.0.0.2/stream")
    assert parse_camera_source("clip.mp4") == ("file", "clip.mp4")


class _MJPEGStream:
    """A real MJPEG-over-HTTP camera (multipart/x-mixed-replace, as IP cameras and phone apps serve it) at 10 fps;
    frame ``i`` is grey level ``i`` so a test can tell which frame it got."""

    def __init__(self) -> None:
        import http.server
        import socketserver
        import time

        stream = self
        self.produced = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                start = time.monotonic()
                try:
                    for index in range(10_000):
                        _, jpeg = cv2.imencode(".jpg", np.full((48, 64, 3), index % 256, np.uint8))
                        head = b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n" % len(jpeg)
                        self.wfile.write(head + jpeg.tobytes() + b"\r\n")
                        self.wfile.flush()
                        stream.produced = index + 1
                        time.sleep(max(0.0, start + (index + 1) * 0.1 - time.monotonic()))
                except (BrokenPipeError, ConnectionResetError):
                    return

            def log_message(self, *args: object) -> None:
                return

        class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/stream.mjpg"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_a_stream_backlog_is_dropped_not_replayed() -> None:
    import time

    stream = _MJPEGStream()
    try:
        camera = CameraSource(stream.url)
        camera.open()  # reads one frame, then the model would load: frames queue in the socket meanwhile
        time.sleep(2.0)
        produced_before = stream.produced
        frames = []
        for frame in camera:
            frames.append(frame)
            if len(frames) == 3:
                break
        camera.close()
    finally:
        stream.close()
    assert camera.stats.backlog >= 1  # the queued frames were drained
    # The first frame delivered is a fresh one, not the frame read at open() or the ones queued since.
    assert int(frames[0].rgb[0, 0, 0]) >= produced_before - 2, (int(frames[0].rgb[0, 0, 0]), produced_before)
    assert all(b.timestamp_ns > a.timestamp_ns for a, b in itertools.pairwise(frames))
