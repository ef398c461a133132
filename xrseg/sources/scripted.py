"""A scripted headset: head poses and gaze played in real time, with the OpenXR source's interface.

:class:`ScriptedHeadset` is a :class:`~xrseg.sources.live.HeadsetProducer`, so a :class:`LiveSource` can run
the whole live path (producer threads, camera pacing, reorder buffer, pose pairing, clean shutdown) without an
OpenXR runtime: in CI, or to try a camera and a calibration before a headset is at hand. The script is a list
of head poses, gaze samples and input events (the controller's SELECT button) with timestamps on any time base
(a recorded session's, for example);
:meth:`ScriptedHeadset.stream` delivers each item when its time comes, re-stamped onto xrseg's clock from the
moment streaming starts (:attr:`ScriptedHeadset.start_ns` is where script time ``script_start_ns`` landed).
"""

from __future__ import annotations

import dataclasses
import heapq
import logging
import threading
from collections.abc import Iterator, Sequence
from types import TracebackType

from xrseg.errors import InputError
from xrseg.sources.clock import now_ns
from xrseg.types import GazeSample, HeadPose, InputEvent

logger = logging.getLogger(__name__)

__all__ = ["ScriptedHeadset"]


class ScriptedHeadset:
    """Plays ``head_poses``, ``gaze`` and ``events`` (each ascending in ``timestamp_ns``) at their own pace."""

    def __init__(
        self,
        head_poses: Sequence[HeadPose],
        gaze: Sequence[GazeSample] = (),
        events: Sequence[InputEvent] = (),
    ) -> None:
        if not head_poses:
            raise InputError("a scripted headset needs at least one head pose")
        self._poses = list(head_poses)
        self._gaze = list(gaze)
        self._events = list(events)
        streams = (self._poses, self._gaze, self._events)
        self.script_start_ns = min(stream[0].timestamp_ns for stream in streams if stream)
        """Script time of the first item."""
        self.start_ns: int | None = None
        """xrseg clock time at which the script's first item was due (None before streaming)."""
        self.delivered = 0
        self._stop = threading.Event()

    def __enter__(self) -> ScriptedHeadset:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """End the stream (from any thread)."""
        self._stop.set()

    def stream(self) -> Iterator[HeadPose | GazeSample | InputEvent]:
        """Each item at its time, re-stamped onto xrseg's clock, until the script ends or :meth:`stop`."""
        start_ns = now_ns()
        self.start_ns = start_ns
        items: Iterator[HeadPose | GazeSample | InputEvent] = heapq.merge(
            self._poses, self._gaze, self._events, key=lambda item: item.timestamp_ns
        )
        for item in items:
            due_ns = start_ns + item.timestamp_ns - self.script_start_ns
            wait_ns = due_ns - now_ns()
            if (wait_ns > 0 and self._stop.wait(wait_ns / 1e9)) or self._stop.is_set():
                break
            self.delivered += 1
            yield dataclasses.replace(item, timestamp_ns=due_ns)
        logger.info("scripted headset: %d items delivered", self.delivered)
