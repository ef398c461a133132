"""The one clock every live stream is stamped with, and the mapping from OpenXR's XrTime onto it.

xrseg time is ``int`` nanoseconds on the host's monotonic clock: ``CLOCK_MONOTONIC`` on Linux (what
:func:`time.monotonic_ns` reads), ``QueryPerformanceCounter`` on Windows (what :func:`time.perf_counter_ns`
reads). :func:`now_ns` reads it. Camera frames are stamped with it when they arrive.

OpenXR has its own time base, ``XrTime`` (int64 nanoseconds, epoch chosen by the runtime). The
``XR_KHR_convert_timespec_time`` (Linux) and ``XR_KHR_win32_convert_performance_counter_time`` (Windows)
extensions convert a host clock reading into XrTime; :class:`ClockMapping` is estimated from a few such
(host, XrTime) pairs and then converts both ways with plain integer arithmetic.
"""

from __future__ import annotations

import ctypes
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from xrseg.errors import InputError

NS_PER_S = 1_000_000_000


def now_ns() -> int:
    """The host monotonic clock in int nanoseconds (the clock of every ``timestamp_ns`` in a live session)."""
    if sys.platform == "win32":
        return time.perf_counter_ns()
    return time.monotonic_ns()


def xr_time_value(value: int | ctypes.c_int64) -> int:
    """The int nanoseconds in an XrTime, given as an ``int`` or a pyopenxr ``xr.Time`` (a ``c_int64``)."""
    if isinstance(value, ctypes.c_int64):
        return int(value.value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputError(f"an XrTime must be an int or xr.Time, got {type(value).__name__}")
    return value


def split_ns(timestamp_ns: int) -> tuple[int, int]:
    """Split nanoseconds into (seconds, nanoseconds in [0, 1e9)) as a ``struct timespec`` holds them."""
    seconds, nanoseconds = divmod(int(timestamp_ns), NS_PER_S)
    return seconds, nanoseconds


@dataclass(frozen=True)
class ClockMapping:
    """``xr_time_ns = host_ns + offset_ns``: a constant offset between XrTime and the host monotonic clock.

    Both clocks tick in nanoseconds and OpenXR runtimes derive XrTime from the host monotonic clock, so one
    offset is the whole mapping (drift between them is zero by construction on Monado, SteamVR and the Oculus
    runtime as far as we know; re-estimate per session anyway). ``spread_ns`` is how much the samples the offset
    came from disagreed (max - min), a measure of its uncertainty.
    """

    offset_ns: int
    spread_ns: int = 0
    exact: bool = True
    """True when estimated through a convert-time extension; False when guessed from a predicted display time."""

    def to_host_ns(self, xr_time: int | ctypes.c_int64) -> int:
        """XrTime (int or ``xr.Time``) -> host monotonic int nanoseconds."""
        return xr_time_value(xr_time) - self.offset_ns

    def to_xr_time(self, host_ns: int) -> int:
        """Host monotonic int nanoseconds -> XrTime as an int (wrap with ``xr.Time(...)`` for a call)."""
        return int(host_ns) + self.offset_ns

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[int, int | ctypes.c_int64]], exact: bool = True) -> ClockMapping:
        """Estimate from (host_ns, XrTime) pairs read as close together as possible: the median offset."""
        offsets = [xr_time_value(xr_time) - int(host_ns) for host_ns, xr_time in pairs]
        if not offsets:
            raise InputError("a clock mapping needs at least one (host_ns, XrTime) pair")
        offset = int(statistics.median_low(offsets))
        return cls(offset_ns=offset, spread_ns=max(offsets) - min(offsets), exact=exact)

    @classmethod
    def estimate(
        cls, sample: Callable[[], tuple[int, int | ctypes.c_int64]], count: int = 9, exact: bool = True
    ) -> ClockMapping:
        """Call ``sample() -> (host_ns, XrTime)`` ``count`` times and build the mapping from the pairs."""
        if count < 1:
            raise InputError(f"count must be at least 1, got {count}")
        return cls.from_pairs([sample() for _ in range(count)], exact=exact)
