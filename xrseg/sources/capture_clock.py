"""Capture times of live camera frames on xrseg's clock, and which frames are a stale backlog.

A frame's time should be when it was captured, not when Python got round to reading it: frames that queued
in the driver or the network stack while the model loaded would otherwise arrive in a burst with nearly the
same time and pair with the wrong head poses.

- *Device timestamps* where the camera gives them: OpenCV's V4L2 backend reports each buffer's kernel
  timestamp (``CAP_PROP_POS_MSEC``), which is ``CLOCK_MONOTONIC``, xrseg's own clock. A device timestamp is
  used when it is within ``device_window_ns`` of the grab time and advances; otherwise (streams, whose
  ``POS_MSEC`` is a stream position, and cameras without timestamps) the frame is stamped with the time the
  grab returned minus the profile's ``clock_offset_ns`` (the delay from exposure to arrival).
- *Backlog*: a frame whose capture time is more than ``max_latency_ns`` before the time it is read is stale and
  is dropped rather than replayed. Without device timestamps staleness shows as grabs that return at once: a
  camera delivers a fresh frame only every frame interval, so a grab faster than ``buffered_grab_ns`` took a
  frame that was already waiting (:meth:`CaptureClock.grab_was_buffered`); the reader drains those at start.
"""

from __future__ import annotations

import enum
import logging

from xrseg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["CaptureClock", "StampSource"]


class StampSource(enum.Enum):
    DEVICE = "device"
    """The camera's own capture timestamp (on the host monotonic clock)."""
    GRAB = "grab"
    """The time the grab returned, minus the calibrated clock offset."""


class CaptureClock:
    """Stamps live frames (see the module docstring). Pure: the caller passes every time it read."""

    def __init__(
        self,
        clock_offset_ns: int = 0,
        *,
        max_latency_ns: int = 500_000_000,
        device_window_ns: int = 1_000_000_000,
        buffered_grab_ns: int = 10_000_000,
    ) -> None:
        if max_latency_ns <= 0 or device_window_ns <= 0 or buffered_grab_ns < 0:
            raise InputError("max_latency_ns and device_window_ns must be positive, buffered_grab_ns >= 0")
        self.clock_offset_ns = int(clock_offset_ns)
        self.max_latency_ns = int(max_latency_ns)
        self.device_window_ns = int(device_window_ns)
        self.buffered_grab_ns = int(buffered_grab_ns)
        self.source: StampSource | None = None
        """How the last frame was stamped (None before the first)."""
        self._last_device_ns: int | None = None

    def stamp(self, device_ms: float, grab_ns: int) -> int:
        """Capture time of a frame whose grab returned at ``grab_ns``, given its ``CAP_PROP_POS_MSEC``."""
        device_ns = round(device_ms * 1e6) if device_ms > 0 else None
        usable = (
            device_ns is not None
            and abs(grab_ns - device_ns) <= self.device_window_ns
            and (self._last_device_ns is None or device_ns > self._last_device_ns)
        )
        source = StampSource.DEVICE if usable else StampSource.GRAB
        if source is not self.source:
            logger.info("camera frames are stamped with %s time", source.value)
            self.source = source
        if usable and device_ns is not None:
            self._last_device_ns = device_ns
            return device_ns
        return grab_ns - self.clock_offset_ns

    def is_backlog(self, timestamp_ns: int, read_ns: int) -> bool:
        """True when a frame captured at ``timestamp_ns`` is too old at ``read_ns`` to be worth delivering."""
        return read_ns - timestamp_ns > self.max_latency_ns + max(0, self.clock_offset_ns)

    def grab_was_buffered(self, grab_duration_ns: int) -> bool:
        """True when a grab returned so fast that its frame was already waiting (a backlog)."""
        return grab_duration_ns < self.buffered_grab_ns
