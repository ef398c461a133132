"""The mask ready at the click: the fixation in progress is decoded ahead, so a SELECT finds its mask made.

In asynchronous mode (live, ``--realtime``) the pipeline decodes what a SELECT press would select, every
``speculate_ms`` while a fixation is in progress and at once when a new one begins, on the newest usable
keyframe; each look-ahead is also shown as a hover preview (:class:`~xrseg.sinks.base.PreviewEvent`). A press
during the same fixation takes the latest look-ahead instead of decoding again: click-to-mask becomes the time to
publish.

*The same fixation* is judged by where it looks, not by its start time: the fixation detector revises a
fixation's start as samples arrive (by tens of milliseconds), so the look-ahead counts when it was made at
most one interval before the start of the fixation in progress at the press, and its fixation's world gaze
direction is within :data:`SAME_TARGET_DEG` of that fixation's. A saccade to another object fails the angle;
a look-ahead from an earlier visit to the same object fails the time. Within the fixation the look-ahead does
not go stale: its keyframe passed the head-motion test, and a keyframe encoded since would be newer, not more
right (the prompter projects every gaze sample with the head pose at its own time). Otherwise the press is
decoded as before. The cost is decoder time while the person looks around, on the gaze path, which is idle
between clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.geometry import PoseTrack, angle_between_deg, transform_directions
from xrseg.sam.embeddings import Keyframe
from xrseg.select.selector import Decision
from xrseg.sync.poses import PoseHistory
from xrseg.types import Fixation, GazeSample, Transform

__all__ = ["SAME_TARGET_DEG", "Made", "Speculator"]

_MS = 1_000_000

SAME_TARGET_DEG = 1.0
"""Largest angle between the world gaze directions of a look-ahead's fixation and a press's for the press to
take the look-ahead: about the dispersion of one fixation, well under the 3-10 deg of a saccade between
neighbouring objects."""


@dataclass(frozen=True)
class Made:
    """A decision with what it was made from: the keyframe, the camera pose there, the head-pose track and the
    fixation's raw gaze samples (before the bias correction)."""

    keyframe: Keyframe
    world_from_camera: Transform
    track: PoseTrack
    samples: tuple[GazeSample, ...]
    decision: Decision


@dataclass(frozen=True)
class _Ahead:
    made_at_ns: int
    direction_world: npt.NDArray[np.float64]
    """3 float64: the look-ahead's fixation's gaze direction in the world frame."""
    made: Made


class Speculator:
    """Holds the latest look-ahead decision and says when the next one is due (module docstring)."""

    def __init__(self, interval_ms: float, poses: PoseHistory) -> None:
        self.interval_ns = int(interval_ms * _MS)
        self._poses = poses
        self._ahead: _Ahead | None = None
        self._last_ns: int | None = None
        self._last_start_ns: int | None = None

    def due(self, now_ns: int, fixation_start_ns: int | None) -> bool:
        """True when the last look-ahead is at least one interval old (gaze time), or the fixation in progress
        (its start, None between fixations) is not the one it was tried on: a new fixation is decoded at once,
        which is what a press soon after a saccade needs."""
        if self._last_ns is None or now_ns - self._last_ns >= self.interval_ns:
            return True
        return fixation_start_ns is not None and fixation_start_ns != self._last_start_ns

    def tried(self, now_ns: int, fixation_start_ns: int) -> None:
        """A look-ahead was attempted at ``now_ns`` (made or not) on the fixation that started at
        ``fixation_start_ns``: the next is due one interval later, or at the next fixation."""
        self._last_ns = now_ns
        self._last_start_ns = fixation_start_ns

    def clear(self) -> None:
        """Forget the look-ahead (the prompt's inputs changed, e.g. a REJECT added a negative point)."""
        self._ahead = None

    def _direction_world(self, fixation: Fixation) -> npt.NDArray[np.float64] | None:
        world_from_head = self._poses.world_from_head_at(fixation.centre_ns)
        if world_from_head is None:
            return None
        return transform_directions(world_from_head, np.asarray(fixation.direction, dtype=np.float64))[0]

    def keep(self, now_ns: int, fixation: Fixation, made: Made) -> None:
        """Hold ``made``, decided at ``now_ns`` for the fixation in progress (as far as it had come)."""
        direction_world = self._direction_world(fixation)
        self._ahead = None if direction_world is None else _Ahead(now_ns, direction_world, made)

    def take(self, fixation_start_ns: int | None, fixation: Fixation) -> Made | None:
        """The look-ahead for a press on ``fixation`` (the press's trigger), whose whole fixation started at
        ``fixation_start_ns``, or None when it was made for another fixation (module docstring). Taken once."""
        ahead, self._ahead = self._ahead, None
        direction_world = self._direction_world(fixation)
        if ahead is None or fixation_start_ns is None or direction_world is None:
            return None
        if ahead.made_at_ns < fixation_start_ns - self.interval_ns:
            return None
        if not float(angle_between_deg(ahead.direction_world, direction_world)) <= SAME_TARGET_DEG:
            return None
        return ahead.made
