"""record_source: a session recorded from a replayed session is the same session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from xrseg.calibration import load_calibration
from xrseg.commands.record import record_source
from xrseg.errors import SessionError
from xrseg.session.format import SessionHeader
from xrseg.session.reader import Session
from xrseg.session.writer import SessionWriter
from xrseg.sources.base import SourceItem
from xrseg.sources.replay import ReplaySource
from xrseg.types import CameraModel, EventKind, Frame, GazeRay, GazeSample, HeadPose, InputEvent, Transform

REPO = Path(__file__).resolve().parents[1]
CALIBRATION = load_calibration(REPO / "calibration" / "synthetic.json")


def header(name: str) -> SessionHeader:
    return SessionHeader(
        name=name,
        camera=CALIBRATION.camera,
        head_from_camera=CALIBRATION.head_from_camera,
        source="recorded",
        rgb_encoding="png",
        has_depth=False,
    )


def pose(timestamp_ns: int, x_m: float) -> HeadPose:
    matrix = np.eye(4)
    matrix[0, 3] = x_m
    return HeadPose(timestamp_ns=timestamp_ns, world_from_head=matrix)


def gaze(timestamp_ns: int, valid: bool = True) -> GazeSample:
    ray = GazeRay(origin_m=[0.0, 0.0, 0.01], direction=[0.1, -0.05, -1.0])
    return GazeSample(timestamp_ns=timestamp_ns, ray=ray, valid=valid)


def frame(index: int, timestamp_ns: int) -> Frame:
    rgb = np.random.default_rng(index).integers(0, 255, size=(480, 640, 3), dtype=np.uint8)
    return Frame(index=index, timestamp_ns=timestamp_ns, rgb=rgb)


def make_session(path: Path) -> Path:
    with SessionWriter(path, header("original")) as writer:
        for k in range(6):
            writer.write_head_pose(pose(1_000_000_000 + 10_000_000 * k, 0.01 * k))
        for k in range(9):
            writer.write_gaze(gaze(1_000_000_000 + 6_000_000 * k, valid=k != 4))
        for k in range(3):
            writer.write_frame(frame(k, 1_005_000_000 + 20_000_000 * k))
        writer.write_event(InputEvent(timestamp_ns=1_030_000_000, kind=EventKind.SELECT))
    return path


def test_recorded_replay_round_trips(tmp_path: Path) -> None:
    original = Session.open(make_session(tmp_path / "original"))
    stats = record_source(ReplaySource(original), tmp_path / "copy", header("copy"))
    assert (stats.frames, stats.head_poses, stats.gaze_samples, stats.events, stats.skipped) == (3, 6, 9, 1, 0)
    assert stats.duration_ns == 1_050_000_000 - 1_000_000_000
    copy = Session.open(tmp_path / "copy")
    assert copy.warnings == []
    np.testing.assert_array_equal(copy.frame_timestamps_ns, original.frame_timestamps_ns)
    np.testing.assert_array_equal(copy.head_timestamps_ns, original.head_timestamps_ns)
    np.testing.assert_allclose(copy.world_from_head, original.world_from_head)
    for index in range(3):
        np.testing.assert_array_equal(copy.frame(index).rgb, original.frame(index).rgb)  # PNG: lossless
    copied, source = copy.gaze_samples(), original.gaze_samples()
    assert [g.valid for g in copied] == [g.valid for g in source]
    np.testing.assert_allclose([g.ray.direction for g in copied], [g.ray.direction for g in source])
    assert [(e.timestamp_ns, e.kind) for e in copy.events()] == [(1_030_000_000, EventKind.SELECT)]


def test_duration_limit_stops_the_recording(tmp_path: Path) -> None:
    original = Session.open(make_session(tmp_path / "original"))
    stats = record_source(ReplaySource(original), tmp_path / "short", header("short"), duration_s=0.02)
    copy = Session.open(tmp_path / "short")
    assert stats.duration_ns <= 20_000_000
    assert copy.frame_count == 1 and len(copy.head_poses()) == 3


class OutOfOrderSource:
    """A live-like source whose merged stream sometimes delivers a late item."""

    def __init__(self, items: list[SourceItem], camera: CameraModel, head_from_camera: Transform) -> None:
        self._items = items
        self.camera = camera
        self.head_from_camera = head_from_camera

    def __iter__(self) -> Iterator[SourceItem]:
        return iter(self._items)


def test_late_items_are_skipped_and_counted_not_fatal(tmp_path: Path) -> None:
    items: list[SourceItem] = [gaze(100), pose(100, 0.0), gaze(200), gaze(150), pose(100, 0.1), gaze(300)]
    source = OutOfOrderSource(items, CALIBRATION.camera, CALIBRATION.head_from_camera)
    stats = record_source(source, tmp_path / "late", header("late"))
    assert (stats.gaze_samples, stats.head_poses, stats.skipped) == (3, 1, 2)
    assert Session.open(tmp_path / "late").gaze_timestamps_ns.tolist() == [100, 200, 300]


def test_an_existing_session_is_never_overwritten_by_default(tmp_path: Path) -> None:
    path = make_session(tmp_path / "original")
    with pytest.raises(SessionError, match="already exists"):
        record_source(ReplaySource(Session.open(path)), path, header("again"))
    assert Session.open(path).frame_count == 3
