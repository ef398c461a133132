"""The sinks' events (xrseg/sinks/base.py, made by xrseg/select/sink_events.py): a selection is lifted once for
every sink, the newest usable gaze is projected into each frame, and every sink finishes before any closes."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_viz_tracker import frame, make_selection, sample, sink_events, world_from_camera_at
from xrseg.sinks.base import Sink, finish_and_close


def test_a_selection_is_lifted_once_for_every_sink() -> None:
    events = sink_events((0, 0.0))
    key = frame(0, 0)
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:40] = True
    event = events.selection(make_selection(1, mask, key), key, world_from_camera_at(0.0))
    first = event.lifted()
    assert first is not None and not first.is_empty
    assert event.lifted() is first, "a second sink gets the same points, not a second lift"
    np.testing.assert_allclose(first.points_world_m[:, 2], -2.0, atol=1e-4)  # the wall 2 m ahead (-z)
    flat = frame(1, 0, depth_m=None)
    assert events.selection(make_selection(2, mask, flat), flat, world_from_camera_at(0.0)).lifted() is None


def test_each_frame_carries_the_newest_usable_gaze_and_its_poses() -> None:
    events = sink_events((0, 0.0), (100_000_000, 0.1))
    assert events.frame(frame(0, 0)).gaze is None, "no gaze yet"
    pose = events.poses.world_from_head_at(50_000_000)
    assert pose is not None
    gaze = events.gaze(sample(50_000_000), sample(50_000_000), pose)
    assert gaze.world_from_head is pose
    event = events.frame(frame(1, 100_000_000))
    assert event.world_from_head is not None and event.world_from_head[0, 3] == pytest.approx(0.1)
    assert event.world_from_camera is not None
    np.testing.assert_allclose(event.world_from_camera, world_from_camera_at(0.1))
    assert event.gaze is not None and event.gaze.sample is gaze.sample
    # The sample was taken with the head at 0.05 m; seen from 0.1 m on the 2 m wall: 50 * 0.05 / 2 px left.
    assert event.gaze.projection.pixel_xy == pytest.approx((32.0 - 1.25, 24.0))
    assert (
        events.fixation(make_selection(1, np.ones((48, 64), bool), frame(0, 0)).fixation).world_from_head
        is not None
    )


class _Log(Sink):
    def __init__(self, name: str, calls: list[str], fail: bool = False) -> None:
        self.name, self.calls, self.fail = name, calls, fail

    def finish(self) -> None:
        self.calls.append(f"finish {self.name}")
        if self.fail:
            raise RuntimeError(f"{self.name} failed")

    def close(self) -> None:
        self.calls.append(f"close {self.name}")


def test_every_sink_finishes_before_any_closes_and_all_close_after_a_failure() -> None:
    calls: list[str] = []
    finish_and_close([_Log("a", calls), _Log("b", calls)])
    assert calls == ["finish a", "finish b", "close a", "close b"]
    calls.clear()
    with pytest.raises(RuntimeError, match="a failed"):
        finish_and_close([_Log("a", calls, fail=True), _Log("b", calls)])
    assert calls == ["finish a", "close a", "close b"]
