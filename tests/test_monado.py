"""Against a real OpenXR runtime (Monado's simulated HMD, headless): recording a paced video file.

Skipped unless XR_RUNTIME_JSON names an existing runtime manifest (see docs/headsets.md for Monado). Run with
``XR_RUNTIME_JSON=/path/to/openxr_monado-dev.json XRT_COMPOSITOR_NULL=1 pytest tests/test_monado.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from xrseg.session.check import check_session
from xrseg.session.reader import Session

MANIFEST = os.environ.get("XR_RUNTIME_JSON", "")
pytestmark = pytest.mark.skipif(
    not MANIFEST or not Path(MANIFEST).is_file(),
    reason="needs an OpenXR runtime: XR_RUNTIME_JSON is unset or names no file (see docs/headsets.md, Monado)",
)
SYNTHETIC = Path(__file__).resolve().parents[1] / "calibration" / "synthetic.json"


def write_video(path: Path, count: int, fps: float = 5.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (640, 480))
    assert writer.isOpened()
    for index in range(count):
        writer.write(np.full((480, 640, 3), index * 9 % 256, dtype=np.uint8))
    writer.release()
    return path


def record(tmp_path: Path, video: Path, *extra: str) -> subprocess.Popen[str]:
    env = {**os.environ, "XRT_COMPOSITOR_NULL": os.environ.get("XRT_COMPOSITOR_NULL", "1")}
    argv = [sys.executable, "-m", "xrseg.cli", "record", "--out", str(tmp_path / "rec")]
    argv += ["--calibration", str(SYNTHETIC), "--camera", str(video), *extra]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def assert_spans_agree(path: Path) -> Session:
    report = check_session(path)
    assert report.ok and not [w for w in report.warnings if "overlap" in w], report
    session = Session.open(path)
    frames, poses = session.frame_timestamps_ns, session.head_timestamps_ns
    interval = int(np.median(np.diff(frames)))
    assert abs(int(frames[0]) - int(poses[0])) <= interval, (frames[0], poses[0])
    assert abs(int(frames[-1]) - int(poses[-1])) <= interval, (frames[-1], poses[-1])
    return session


def test_record_of_a_video_file_gives_overlapping_streams(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 15)  # 3 s at 5 fps, paced
    done = record(tmp_path, video)
    out, err = done.communicate(timeout=120)
    assert done.returncode == 0, err
    assert "the camera ended" in out
    session = assert_spans_agree(tmp_path / "rec")
    assert session.frame_count == 15 and session.duration_ns > 2_500_000_000


def test_sigint_ends_a_recording_cleanly(tmp_path: Path) -> None:
    video = write_video(tmp_path / "clip.mp4", 100)  # 20 s
    running = record(tmp_path, video)
    time.sleep(6.0)
    running.send_signal(signal.SIGINT)
    out, err = running.communicate(timeout=60)
    assert running.returncode == 0, err
    assert "stopped by SIGINT" in out
    assert assert_spans_agree(tmp_path / "rec").frame_count >= 3
