"""Crash safety: a writer process killed with SIGKILL mid-recording leaves a readable session."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xrseg.session import Session

WRITER_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np
    from xrseg.session import GroundTruthObject, SessionHeader, SessionWriter
    from xrseg.types import CameraModel, EventKind, Frame, GazeRay, GazeSample, HeadPose, InputEvent

    camera = CameraModel(48, 32, 40.0, 40.0, 23.5, 15.5)
    header = SessionHeader("crash", camera, np.eye(4), "recorded")
    writer = SessionWriter(sys.argv[1], header)  # never closed: the process is killed
    writer.add_object(GroundTruthObject(1, "cube"))
    k = 0
    while True:
        t = k * 1_000_000
        writer.write_gaze(GazeSample(t, GazeRay([0.0, 0.0, 0.0], [0.0, 0.0, -1.0])))
        writer.write_head_pose(HeadPose(t, np.eye(4)))
        if k % 5 == 0:
            rgb = np.full((32, 48, 3), k % 256, np.uint8)
            depth = np.full((32, 48), 1.0 + k / 1000, np.float32)
            writer.write_frame(Frame(k // 5, t, rgb, depth))
        if k % 7 == 0:
            writer.write_event(InputEvent(t, EventKind.SELECT))
        print(k, flush=True)  # everything for step k has been written
        k += 1
    """
)


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")
def test_sigkilled_writer_leaves_a_readable_session(tmp_path: Path) -> None:
    target = tmp_path / "session"
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(target)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    last_done = -1
    try:
        for line in process.stdout:
            last_done = int(line)
            if last_done >= 60:
                break
        process.send_signal(signal.SIGKILL)  # mid-write of some later record
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert last_done >= 60, process.stderr.read() if process.stderr else ""
    assert process.returncode == -signal.SIGKILL

    session = Session.open(target)
    assert any("not closed cleanly" in w for w in session.warnings)
    gaze = session.gaze_samples()
    # Everything reported done is there, in order, and nothing after the last complete record is invented.
    assert len(gaze) >= last_done + 1
    assert [g.timestamp_ns for g in gaze] == [k * 1_000_000 for k in range(len(gaze))]
    assert session.head_timestamps_ns.size >= last_done + 1
    assert session.frame_count >= last_done // 5 + 1
    assert len(session.events()) >= last_done // 7 + 1
    for index in (0, session.frame_count - 1):  # every indexed frame has its images in place
        frame = session.frame(index)
        assert frame.rgb[0, 0, 0] == (5 * index) % 256
        assert frame.depth_m is not None and abs(float(frame.depth_m[0, 0]) - (1.0 + 5 * index / 1000)) < 1e-3
    assert [o.name for o in session.objects()] == ["cube"]
