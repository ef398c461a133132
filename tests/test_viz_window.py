"""ViewerSink: headless detection with one warning, keys to events, interleaving events into a source."""

from __future__ import annotations

import logging
import sys

import cv2
import pytest

from tests.test_viz_tracker import CAMERA, frame, sample, world_from_camera_at, world_from_head_at
from xrseg.sinks.base import FrameEvent, GazeEvent
from xrseg.sinks.viz.window import ViewerSink, display_problem, opencv_has_gui
from xrseg.types import EventKind, InputEvent


def test_headless_opencv_is_detected() -> None:
    gui_line = next(line for line in cv2.getBuildInformation().splitlines() if line.strip().startswith("GUI:"))
    assert opencv_has_gui() == (gui_line.split(":", 1)[1].strip().upper() != "NONE")
    if not opencv_has_gui():
        problem = display_problem()
        assert problem is not None and "opencv-python-headless" in problem


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY/WAYLAND_DISPLAY matter on Linux only")
def test_no_display_without_gui_or_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert display_problem() is not None


@pytest.mark.skipif(display_problem() is None, reason="a display is available here: a window would open")
def test_headless_viewer_warns_once_and_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="xrseg.sinks.viz.window"):
        viewer = ViewerSink(CAMERA)
        for i in range(5):
            viewer.on_frame(FrameEvent(frame(i, i * 100_000_000), world_from_camera_at(0.0)))
            gaze = sample(i * 100_000_000 + 1)
            viewer.on_gaze(GazeEvent(gaze, gaze, world_from_head_at(0.0)))
        viewer.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "carrying on without a window" in warnings[0].getMessage()
    assert viewer.headless and viewer.headless_reason
    assert viewer.last_timestamp_ns == 400_000_001


def test_keys_become_events_stamped_with_the_stream_time() -> None:
    received: list[InputEvent] = []
    viewer = ViewerSink(CAMERA, on_event=received.append)
    viewer.on_frame(FrameEvent(frame(0, 5_000), world_from_camera_at(0.0)))
    for key in (ord("+"), ord("-"), ord("r"), ord("="), -1, ord("x")):
        viewer.handle_key(key)
    assert [e.kind for e in received] == [EventKind.LARGER, EventKind.SMALLER, EventKind.REJECT, EventKind.LARGER]
    assert all(e.timestamp_ns == 5_000 for e in received)
    viewer.handle_key(ord(" "))
    assert viewer.paused
    viewer.handle_key(ord(" "))
    assert not viewer.paused
    viewer.handle_key(ord("n"))
    assert viewer.paused  # stepping pauses
    viewer.handle_key(0x100 | ord("q"))  # waitKey may set high bits
    assert viewer.quit_requested


def test_interleave_inserts_queued_events_and_stops_on_quit() -> None:
    viewer = ViewerSink(CAMERA)
    items = [frame(i, i * 100) for i in range(5)]
    out = []
    for item in viewer.interleave(items):
        out.append(item)
        if item is items[1]:
            viewer.on_frame(FrameEvent(items[1], world_from_camera_at(0.0)))
            viewer.handle_key(ord("-"))
        if item is items[2]:
            viewer.handle_key(ord("q"))
    assert out[:2] == items[:2]
    assert isinstance(out[2], InputEvent) and out[2] == InputEvent(100, EventKind.SMALLER)
    assert out[3] is items[2] and len(out) == 4  # q stops before the next item
    assert viewer.pending_events() == []
