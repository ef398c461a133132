"""LiveSource's streams without a runtime or the model: a scripted headset and a paced video file.

The camera starts with the first head pose, the headset outlives a camera that ran out until the last frame
is covered, ``duration_s``, request_stop and SIGINT end the iteration normally, and a recording of it passes
``session check`` with pose and frame spans that agree within one frame interval.
"""

from __future__ import annotations

import math
import os
import signal
import threading
from pathlib import Path

import cv2
import numpy as np

from xrseg.calibration import load_calibration
from xrseg.commands.record import record_source
from xrseg.session.check import check_session
from xrseg.session.format import SessionHeader
from xrseg.session.reader import Session
from xrseg.sources.camera import CameraSource
from xrseg.sources.live import LiveSource
from xrseg.sources.scripted import ScriptedHeadset
from xrseg.types import Frame, GazeRay, GazeSample, HeadPose

SYNTHETIC = Path(__file__).resolve().parents[1] / "calibration" / "synthetic.json"
MS = 1_000_000


def write_video(path: Path, count: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (640, 480))
    assert writer.isOpened()
    for index in range(count):
        writer.write(np.full((480, 640, 3), index * 20 % 256, dtype=np.uint8))
    writer.release()
    return path


def script(seconds: float) -> ScriptedHeadset:
    """A head turning slowly, sampled at 90 Hz, with straight-ahead gaze at 120 Hz."""
    poses = []
    for i in range(int(seconds * 90)):
        angle = math.radians(5.0 * i / 90)
        matrix = np.eye(4)
        matrix[:3, :3] = [[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]]
        poses.append(HeadPose(timestamp_ns=i * 1_000_000_000 // 90, world_from_head=matrix))
    ray = GazeRay(origin_m=np.zeros(3), direction=np.array([0.0, 0.0, -1.0]))
    gaze = [GazeSample(timestamp_ns=i * 1_000_000_000 // 120, ray=ray) for i in range(int(seconds * 120))]
    return ScriptedHeadset(poses, gaze)


def live(tmp_path: Path, frames: int, seconds: float, **kwargs: object) -> tuple[LiveSource, ScriptedHeadset]:
    camera = CameraSource(str(write_video(tmp_path / "cam.avi", frames, fps=10.0)), realtime=True)
    headset = script(seconds)
    return LiveSource(camera, load_calibration(SYNTHETIC), headset=headset, **kwargs), headset  # type: ignore[arg-type]


def spans(items: list[object]) -> tuple[list[int], list[int]]:
    frames = [i.timestamp_ns for i in items if isinstance(i, Frame)]
    poses = [i.timestamp_ns for i in items if isinstance(i, HeadPose)]
    return frames, poses


def test_the_headset_covers_a_camera_that_ran_out(tmp_path: Path) -> None:
    source, headset = live(tmp_path, frames=8, seconds=10.0)
    with source:
        items = list(source)
    frames, poses = spans(items)
    assert len(frames) == 8 and source.stop_reason == "the camera ended"
    assert poses[0] <= frames[0] and poses[-1] >= frames[-1]  # no frame outside the poses
    assert frames[0] - poses[0] < 100 * MS  # the camera started with the first pose
    assert poses[-1] - frames[-1] < 100 * MS  # and the headset stopped soon after the last frame
    assert headset.delivered < 10 * 90 + 10 * 120  # it did not play the whole 10 s script
    assert set(source.frame_lag_ms) == {"mean", "max"} and source.frame_lag_ms["max"] > 0


def test_duration_and_request_stop_end_the_iteration_normally(tmp_path: Path) -> None:
    source, _ = live(tmp_path, frames=60, seconds=10.0, duration_s=0.5)
    with source:
        frames, _ = spans(list(source))
    assert source.stop_reason == "ran for 0.5 s" and 1 <= len(frames) < 60

    source, _ = live(tmp_path, frames=60, seconds=10.0)
    threading.Timer(0.5, source.request_stop, args=("stopped by the test",)).start()
    with source:
        frames, _ = spans(list(source))
    assert source.stop_reason == "stopped by the test" and 1 <= len(frames) < 60


def test_sigint_stops_a_recording_that_then_passes_session_check(tmp_path: Path) -> None:
    source, _ = live(tmp_path, frames=60, seconds=10.0)
    header = SessionHeader(
        name="rec",
        camera=source.camera,
        head_from_camera=source.head_from_camera,
        source="recorded",
        has_depth=False,
    )
    threading.Timer(1.0, os.kill, args=(os.getpid(), signal.SIGINT)).start()
    with source, source.stop_on_signals():
        stats = record_source(source, tmp_path / "rec", header)
    assert source.stop_reason == "stopped by SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored after the block
    report = check_session(tmp_path / "rec")
    assert report.ok and not [w for w in report.warnings if "overlap" in w], report
    session = Session.open(tmp_path / "rec")
    frames, poses = session.frame_timestamps_ns, session.head_timestamps_ns
    interval = int(np.median(np.diff(frames)))
    assert abs(int(frames[0]) - int(poses[0])) <= interval and abs(int(frames[-1]) - int(poses[-1])) <= interval
    assert stats.frames == session.frame_count >= 5


def test_session_check_warns_when_streams_do_not_overlap(tmp_path: Path) -> None:
    source, _ = live(tmp_path, frames=20, seconds=10.0)
    header = SessionHeader(
        name="rec",
        camera=source.camera,
        head_from_camera=source.head_from_camera,
        source="recorded",
        has_depth=False,
    )
    with source:
        items = list(source)
    from xrseg.session.writer import SessionWriter

    with SessionWriter(tmp_path / "cut", header) as writer:  # only the first 300 ms of head poses kept
        first = items[0].timestamp_ns
        for item in items:
            if isinstance(item, Frame):
                writer.write_frame(item)
            elif isinstance(item, HeadPose) and item.timestamp_ns - first < 300 * MS:
                writer.write_head_pose(item)
    report = check_session(tmp_path / "cut")
    assert report.ok
    assert any("streams do not overlap: head poses span" in w for w in report.warnings), report.warnings
