"""Replay a recorded session as a :class:`xrseg.sources.base.Source`.

Items (Frame, HeadPose, GazeSample, InputEvent) come out merged in ascending ``timestamp_ns`` with
``heapq.merge`` over one iterator per stream; frames are decoded lazily, one at a time. At equal timestamps
the order is head pose, frame, gaze sample, event, so a frame's pose is already known when it arrives.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Iterator

from xrseg.errors import InputError
from xrseg.session.reader import Session
from xrseg.sources.base import SourceItem
from xrseg.types import CameraModel, Frame, Transform

logger = logging.getLogger(__name__)


class ReplaySource:
    """Items of ``session`` in timestamp order.

    With ``realtime`` the iterator sleeps so that item timestamps are paced at ``speed`` times the recorded
    speed (measured from the first item, on ``time.monotonic_ns``); otherwise items come as fast as they are
    consumed. Each iteration starts a fresh pass over the session. Timestamps are not rewritten.
    """

    def __init__(self, session: Session, realtime: bool = False, speed: float = 1.0) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise InputError(f"replay speed must be a positive number, got {speed}")
        self.session = session
        self.realtime = realtime
        self.speed = speed

    @property
    def camera(self) -> CameraModel:
        return self.session.header.camera

    @property
    def head_from_camera(self) -> Transform:
        return self.session.header.head_from_camera

    def _frames(self) -> Iterator[Frame]:
        for index in range(self.session.frame_count):
            yield self.session.frame(index)

    def items(self) -> Iterator[SourceItem]:
        """All items in ascending timestamp order, without pacing."""
        session = self.session
        streams: list[Iterator[SourceItem]] = [
            iter(session.head_poses()),
            self._frames(),
            iter(session.gaze_samples()),
            iter(session.events()),
        ]
        return heapq.merge(*streams, key=lambda item: item.timestamp_ns)

    def __iter__(self) -> Iterator[SourceItem]:
        if not self.realtime:
            yield from self.items()
            return
        start_wall_ns: int | None = None
        start_item_ns = 0
        for item in self.items():
            if start_wall_ns is None:
                start_wall_ns = time.monotonic_ns()
                start_item_ns = item.timestamp_ns
            due_ns = start_wall_ns + int((item.timestamp_ns - start_item_ns) / self.speed)
            wait_ns = due_ns - time.monotonic_ns()
            if wait_ns > 0:
                time.sleep(wait_ns / 1e9)
            yield item
