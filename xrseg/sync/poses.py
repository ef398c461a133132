"""The run's head-pose track: every stage asks it for ``world_from_head`` at a sample's own time."""

from __future__ import annotations

from collections import deque

import numpy as np

from xrseg.geometry import PoseTrack
from xrseg.types import HeadPose, Transform, as_transform

__all__ = ["PoseHistory"]


class PoseHistory:
    """The head poses of the last ``history_ns`` nanoseconds, as a :class:`~xrseg.geometry.PoseTrack`.

    Poses arrive in time order; one not after the newest is ignored (a repeated or late pose). The track is
    rebuilt lazily after new poses, so a burst of gaze samples between two poses shares one track.
    """

    def __init__(self, history_ns: int, head_from_camera: Transform) -> None:
        self.history_ns = history_ns
        self.head_from_camera = as_transform(head_from_camera, "head_from_camera")
        self._times: deque[int] = deque()
        self._poses: deque[np.ndarray] = deque()
        self._track: PoseTrack | None = None

    def push(self, pose: HeadPose) -> bool:
        """Add ``pose``; False when it was ignored (not after the newest)."""
        if self._times and pose.timestamp_ns <= self._times[-1]:
            return False
        self._times.append(pose.timestamp_ns)
        self._poses.append(pose.world_from_head)
        self._track = None
        while self._times and pose.timestamp_ns - self._times[0] > self.history_ns:
            self._times.popleft()
            self._poses.popleft()
        return True

    def track(self) -> PoseTrack | None:
        """The poses so far as a track (None before the first pose)."""
        if self._track is None and self._times:
            # Each pose was checked once as a HeadPose and times ascend (push): no re-check per rebuild.
            self._track = PoseTrack.from_checked(self._times, np.stack(list(self._poses)))
        return self._track

    def world_from_head_at(self, timestamp_ns: int) -> Transform | None:
        """The head's pose at ``timestamp_ns`` (4x4 float64), or None (no pose near that time)."""
        track = self.track()
        return track.at(timestamp_ns) if track is not None else None

    def world_from_camera_at(self, timestamp_ns: int) -> Transform | None:
        """The camera's pose at ``timestamp_ns`` (4x4 float64), or None."""
        world_from_head = self.world_from_head_at(timestamp_ns)
        return None if world_from_head is None else world_from_head @ self.head_from_camera
