"""Which press takes a look-ahead (xrseg.select.speculation): the same fixation by where it looks in the world,
made during it; not a saccade's neighbour, not an earlier visit to the same object."""

from __future__ import annotations

import math
from typing import cast

import numpy as np

from tests.test_geometry import yaw
from xrseg.select.speculation import SAME_TARGET_DEG, Made, Speculator
from xrseg.sync.poses import PoseHistory
from xrseg.types import Fixation, HeadPose

_MS = 1_000_000
INTERVAL_MS = 100.0
LOOK_AHEAD = cast(Made, object())
"""What a look-ahead decided is opaque to the speculator: it only hands it back (or not)."""


def _poses(yaw_deg_at: dict[int, float]) -> PoseHistory:
    """Head poses turned by ``yaw_deg_at[t_ms]`` degrees about +y at those times (milliseconds)."""
    poses = PoseHistory(60_000 * _MS, np.eye(4))
    for t_ms, degrees in sorted(yaw_deg_at.items()):
        poses.push(HeadPose(t_ms * _MS, yaw(degrees)))
    return poses


def _fixation(start_ms: int, end_ms: int, right_deg: float = 0.0) -> Fixation:
    """A fixation looking ``right_deg`` to the right of straight ahead (-z), in the head frame."""
    angle = math.radians(right_deg)
    return Fixation(start_ms * _MS, end_ms * _MS, (0.0, 0.0, 0.0), (math.sin(angle), 0.0, -math.cos(angle)), 0.3)


def test_a_press_takes_the_look_ahead_of_its_fixation_once() -> None:
    speculator = Speculator(INTERVAL_MS, _poses({0: 0.0, 5000: 0.0}))
    speculator.keep(1200 * _MS, _fixation(1000, 1200), LOOK_AHEAD)
    # The detector revised the fixation's start from 1000 to 1250 ms (later than the look-ahead) by the press.
    assert speculator.take(1250 * _MS, _fixation(1250, 1600, right_deg=0.3)) is LOOK_AHEAD
    assert speculator.take(1250 * _MS, _fixation(1250, 1600, right_deg=0.3)) is None  # taken once


def test_a_saccade_to_a_neighbour_makes_it_stale() -> None:
    speculator = Speculator(INTERVAL_MS, _poses({0: 0.0, 5000: 0.0}))
    speculator.keep(1200 * _MS, _fixation(1000, 1200), LOOK_AHEAD)
    assert speculator.take(1300 * _MS, _fixation(1300, 1500, right_deg=4.0)) is None


def test_an_earlier_visit_to_the_same_object_is_not_this_fixation() -> None:
    speculator = Speculator(INTERVAL_MS, _poses({0: 0.0, 5000: 0.0}))
    speculator.keep(1200 * _MS, _fixation(1000, 1200), LOOK_AHEAD)
    assert speculator.take(2000 * _MS, _fixation(2000, 2300)) is None


def test_the_same_world_target_counts_through_a_head_turn() -> None:
    """The head turns 10 deg left during the fixation and the eyes counter-rotate (VOR): in the head frame
    the gaze moved 10 deg, in the world it did not."""
    speculator = Speculator(INTERVAL_MS, _poses({0: 0.0, 1000: 0.0, 2000: 10.0}))
    speculator.keep(1100 * _MS, _fixation(1000, 1000), LOOK_AHEAD)  # centre 1000 ms: head at 0 deg
    # Centre 2000 ms: head turned 10 deg left, so the same world direction is 10 deg right in the head frame.
    assert speculator.take(1000 * _MS, _fixation(1500, 2500, right_deg=10.0)) is LOOK_AHEAD
    speculator.keep(1100 * _MS, _fixation(1000, 1000), LOOK_AHEAD)
    assert speculator.take(1000 * _MS, _fixation(1500, 2500, right_deg=10.0 + 2 * SAME_TARGET_DEG)) is None


def test_a_new_fixation_is_looked_ahead_at_once_not_an_interval_later() -> None:
    speculator = Speculator(INTERVAL_MS, _poses({0: 0.0}))
    assert speculator.due(1000 * _MS, 1000 * _MS)
    speculator.tried(1030 * _MS, 1000 * _MS)
    assert not speculator.due(1060 * _MS, 1000 * _MS)  # the same fixation: one interval later
    assert not speculator.due(1060 * _MS, None)  # between fixations
    assert speculator.due(1080 * _MS, 1070 * _MS)  # a saccade, then a new fixation
    assert speculator.due(1130 * _MS, 1000 * _MS)
