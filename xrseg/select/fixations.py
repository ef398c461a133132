"""Fixation records and the classic streaming fixation detectors (I-VT, I-DT).

Everything here is streaming: push samples in ascending ``timestamp_ns`` order as they arrive. Invalid or
non-finite samples are gaps, never errors. Directions are unit vectors in the head frame (OpenXR axes); angles
are measured between directions, so the detectors do not care which way the head frame points.

A fixation's ``start_ns`` / ``end_ns`` are the timestamps of its first and last sample, so a fixation of 36
samples at 120 Hz lasts 35/120 s = 291.7 ms.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError, check_non_negative, check_positive
from xrseg.geometry import angle_between_deg
from xrseg.types import Fixation, GazeSample

logger = logging.getLogger(__name__)

__all__ = [
    "FixationDetector",
    "IDTDetector",
    "IVTDetector",
    "TimestampOrder",
    "dispersion_deg",
    "fixation_from_samples",
]

_NS_PER_S = 1_000_000_000
_MS = 1_000_000


class TimestampOrder:
    """Admits gaze samples in strictly ascending ``timestamp_ns``: a sample not after the previous admitted one is
    refused with a warning on ``log`` (the detector's own logger), so one clock glitch costs one sample."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._previous_ns: int | None = None

    def admit(self, timestamp_ns: int) -> bool:
        """True (and remembered) when ``timestamp_ns`` is after the previous admitted sample's, else False."""
        previous_ns = self._previous_ns
        if previous_ns is not None and timestamp_ns <= previous_ns:
            self._log.warning(
                "dropping gaze sample at %d ns: not after the previous one (%d ns)", timestamp_ns, previous_ns
            )
            return False
        self._previous_ns = timestamp_ns
        return True


# --------------------------------------------------------------------------------------------------------------
# Fixation records


def _tangent_coordinates_deg(
    directions: npt.NDArray[np.float64], centre: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    """Nx2 float64 angular coordinates (degrees) of Nx3 unit directions about a unit centre direction."""
    helper = np.array([0.0, 1.0, 0.0]) if abs(centre[1]) < 0.9 else np.array([1.0, 0.0, 0.0])
    u = np.cross(helper, centre)
    u /= np.linalg.norm(u)
    v = np.cross(centre, u)
    along = directions @ centre
    return np.degrees(np.column_stack([np.arctan2(directions @ u, along), np.arctan2(directions @ v, along)]))


def _mean_direction(directions: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    mean = directions.mean(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm < 1e-12:
        raise InputError("gaze directions cancel out: no mean direction")
    result: npt.NDArray[np.float64] = mean / norm
    return result


def dispersion_deg(directions: npt.ArrayLike) -> float:
    """Salvucci and Goldberg's dispersion of Nx3 unit directions, in degrees.

    (max - min) of the horizontal plus (max - min) of the vertical angular coordinate, measured in the tangent
    plane about the mean direction. 0.0 for fewer than two directions.
    """
    dirs = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
    if dirs.shape[0] < 2:
        return 0.0
    coords = _tangent_coordinates_deg(dirs, _mean_direction(dirs))
    return float(np.sum(coords.max(axis=0) - coords.min(axis=0)))


def fixation_from_samples(samples: Sequence[GazeSample]) -> Fixation:
    """A Fixation from usable samples (ascending time): mean origin, mean unit direction, dispersion, median
    vergence depth of the samples that report one."""
    if not samples:
        raise InputError("a fixation needs at least one sample")
    dirs = np.stack([s.ray.direction for s in samples])
    origins = np.stack([s.ray.origin_m for s in samples])
    vergences = [
        s.vergence_depth_m
        for s in samples
        if s.vergence_depth_m is not None and math.isfinite(s.vergence_depth_m) and s.vergence_depth_m > 0
    ]
    direction = _mean_direction(dirs)
    origin = origins.mean(axis=0)
    direction.setflags(write=False)
    origin.setflags(write=False)
    return Fixation(
        start_ns=samples[0].timestamp_ns,
        end_ns=samples[-1].timestamp_ns,
        origin_m=origin,
        direction=direction,
        dispersion_deg=dispersion_deg(dirs),
        sample_timestamps_ns=tuple(int(s.timestamp_ns) for s in samples),
        vergence_depth_m=float(np.median(vergences)) if vergences else None,
    )


def _is_usable(sample: GazeSample) -> bool:
    return sample.usable and abs(float(np.linalg.norm(sample.ray.direction)) - 1.0) < 1e-6


class FixationDetector(Protocol):
    """What the runtime needs of a streaming fixation detector."""

    def push(self, sample: GazeSample) -> list[Fixation]:
        """Add one sample (ascending time); return the fixations that completed with it."""
        ...

    def current(self) -> Fixation | None:
        """The fixation in progress, or None."""
        ...

    def last_ended(self) -> Fixation | None:
        """The most recent fixation that has ended (even if not yet returned by push), or None."""
        ...

    def flush(self) -> list[Fixation]:
        """End the stream: return the remaining fixations and reset."""
        ...


# --------------------------------------------------------------------------------------------------------------
# I-VT


class IVTDetector:
    """Streaming velocity-threshold (I-VT) fixation detector, following Tobii's I-VT fixation filter.

    Defaults are Tobii's (Olsen 2012, "The Tobii I-VT Fixation Filter"): ``velocity_threshold_deg_s=30``;
    ``velocity_window_ns=20 ms`` (the angular velocity of a sample is measured between the samples up to
    10 ms either side of it, at least its immediate neighbours); ``max_gap_ns=75 ms`` (shorter gaps in valid
    data, e.g. dropped samples, are bridged; longer ones end a fixation); ``merge_max_gap_ns=75 ms`` and
    ``merge_max_angle_deg=0.5`` (adjacent fixations closer than that in time and angle are merged).
    ``min_fixation_ns=100 ms`` discards shorter fixations (Tobii's own default is 60 ms; 100 ms is the common
    research choice and avoids triggering on glances). Runs of below-threshold samples shorter than the velocity
    window are dropped before merging: a single tracker glitch inside a fixation then costs a few samples
    instead of splitting the fixation in two.

    Latency: a sample is classified once the samples 10 ms after it have arrived, and a completed fixation is
    held for up to ``merge_max_gap_ns`` in case the next one merges with it. :meth:`current` has no such
    delay beyond classification, so dwell triggers are not slowed down.
    """

    def __init__(
        self,
        velocity_threshold_deg_s: float = 30.0,
        min_fixation_ns: int = 100 * _MS,
        max_gap_ns: int = 75 * _MS,
        merge_max_gap_ns: int = 75 * _MS,
        merge_max_angle_deg: float = 0.5,
        velocity_window_ns: int = 20 * _MS,
    ) -> None:
        check_positive("velocity_threshold_deg_s", velocity_threshold_deg_s)
        check_non_negative("min_fixation_ns", min_fixation_ns)
        check_positive("max_gap_ns", max_gap_ns)
        check_non_negative("merge_max_gap_ns", merge_max_gap_ns)
        check_non_negative("merge_max_angle_deg", merge_max_angle_deg)
        check_non_negative("velocity_window_ns", velocity_window_ns)
        self.velocity_threshold_deg_s = float(velocity_threshold_deg_s)
        self.min_fixation_ns = int(min_fixation_ns)
        self.max_gap_ns = int(max_gap_ns)
        self.merge_max_gap_ns = int(merge_max_gap_ns)
        self.merge_max_angle_deg = float(merge_max_angle_deg)
        self.velocity_window_ns = int(velocity_window_ns)
        self._reset()

    def _reset(self) -> None:
        self._segment: list[GazeSample] = []  # usable samples of the current gap-free segment, recent only
        self._classified = 0  # how many of self._segment are classified
        self._run: list[GazeSample] = []
        self._pending: list[GazeSample] = []
        self._pending_fixation: Fixation | None = None
        self._last_ended: Fixation | None = None
        self._last_usable_ns: int | None = None
        self._order = TimestampOrder(logger)

    # -- classification

    def _velocity_deg_s(self, index: int) -> float:
        seg = self._segment
        half = self.velocity_window_ns // 2
        t = seg[index].timestamp_ns
        lo = index
        while lo > 0 and (lo == index or t - seg[lo - 1].timestamp_ns <= half):
            lo -= 1
        hi = index
        while hi < len(seg) - 1 and (hi == index or seg[hi + 1].timestamp_ns - t <= half):
            hi += 1
        if lo == hi:
            return 0.0
        dt_s = (seg[hi].timestamp_ns - seg[lo].timestamp_ns) / _NS_PER_S
        return float(angle_between_deg(seg[lo].ray.direction, seg[hi].ray.direction)) / dt_s

    def _classify(self, final: bool) -> list[Fixation]:
        """Classify every segment sample whose look-ahead window is complete (all of them when ``final``)."""
        out: list[Fixation] = []
        half = self.velocity_window_ns // 2
        seg = self._segment
        while self._classified < len(seg):
            i = self._classified
            if not final:
                latest = seg[-1].timestamp_ns
                if i == len(seg) - 1 or latest - seg[i].timestamp_ns < half:
                    break
            sample = seg[i]
            if self._velocity_deg_s(i) < self.velocity_threshold_deg_s:
                self._run.append(sample)
            else:
                out.extend(self._end_run())
            self._classified += 1
            out.extend(self._release_pending(sample.timestamp_ns))
        # Keep only what the velocity window can still need.
        keep_from = max(0, self._classified - 8)
        while keep_from > 0 and seg[self._classified - 1].timestamp_ns - seg[keep_from - 1].timestamp_ns <= half:
            keep_from -= 1
        if keep_from > 0:
            del seg[:keep_from]
            self._classified -= keep_from
        return out

    # -- runs, merging, emission

    def _mergeable(self, first: Fixation, second: Fixation) -> bool:
        return (
            second.start_ns - first.end_ns <= self.merge_max_gap_ns
            and float(angle_between_deg(first.direction, second.direction)) <= self.merge_max_angle_deg
        )

    def _end_run(self) -> list[Fixation]:
        if not self._run:
            return []
        run, self._run = self._run, []
        if run[-1].timestamp_ns - run[0].timestamp_ns < min(self.velocity_window_ns, self.min_fixation_ns):
            # Shorter than the velocity window: a sample between two velocity peaks (a glitch), not a fixation.
            # Dropping it lets the fixations either side of the glitch merge.
            return []
        out: list[Fixation] = []
        fixation = fixation_from_samples(run)
        if self._pending_fixation is not None and self._mergeable(self._pending_fixation, fixation):
            self._pending = self._pending + run
        else:
            out.extend(self._emit_pending())
            self._pending = run
        self._pending_fixation = fixation_from_samples(self._pending)
        if self._pending_fixation.duration_ns >= self.min_fixation_ns:
            self._last_ended = self._pending_fixation
        return out

    def _emit_pending(self) -> list[Fixation]:
        fixation, self._pending, self._pending_fixation = self._pending_fixation, [], None
        if fixation is None or fixation.duration_ns < self.min_fixation_ns:
            return []
        return [fixation]

    def _release_pending(self, now_ns: int) -> list[Fixation]:
        """Emit the held fixation once no run that could merge with it can still start."""
        pending = self._pending_fixation
        if pending is None:
            return []
        deadline = pending.end_ns + self.merge_max_gap_ns
        if self._run:
            if self._run[0].timestamp_ns > deadline:
                return self._emit_pending()
            return []
        if now_ns > deadline:
            return self._emit_pending()
        return []

    def _break_segment(self, now_ns: int) -> list[Fixation]:
        """A gap longer than max_gap_ns: classify what is buffered, end the run, release held fixations."""
        out = self._classify(final=True)
        out.extend(self._end_run())
        self._segment.clear()
        self._classified = 0
        out.extend(self._release_pending(now_ns))
        return out

    # -- public interface

    def push(self, sample: GazeSample) -> list[Fixation]:
        """Add one sample (ascending ``timestamp_ns``); return the fixations completed by it (usually none).

        Unusable samples (invalid flag, NaN or zero direction) are gaps. Samples older than the previous one
        are dropped with a warning.
        """
        t = int(sample.timestamp_ns)
        if not self._order.admit(t):
            return []
        out: list[Fixation] = []
        gap_too_long = self._last_usable_ns is not None and t - self._last_usable_ns > self.max_gap_ns
        if gap_too_long and self._segment:
            out.extend(self._break_segment(t))
        if not _is_usable(sample):
            out.extend(self._release_pending(t))
            return out
        self._last_usable_ns = t
        self._segment.append(sample)
        out.extend(self._classify(final=False))
        return out

    def current(self) -> Fixation | None:
        """The fixation in progress (merged with the held previous one when they will merge), or None."""
        if not self._run:
            return None
        fixation = fixation_from_samples(self._run)
        if self._pending_fixation is not None and self._mergeable(self._pending_fixation, fixation):
            return fixation_from_samples(self._pending + self._run)
        return fixation

    def last_ended(self) -> Fixation | None:
        """The most recent fixation (at least ``min_fixation_ns`` long) that has ended, possibly still held."""
        return self._last_ended

    def flush(self) -> list[Fixation]:
        """End of stream: classify everything, return the remaining fixations and reset the detector."""
        out = self._classify(final=True)
        out.extend(self._end_run())
        out.extend(self._emit_pending())
        self._reset()
        return out


# --------------------------------------------------------------------------------------------------------------
# I-DT


class IDTDetector:
    """Streaming dispersion-threshold (I-DT) fixation detector (Salvucci and Goldberg 2000).

    A window of at least ``min_fixation_ns`` whose dispersion (see :func:`dispersion_deg`: horizontal plus
    vertical extent in degrees) is at most ``dispersion_threshold_deg`` starts a fixation; the fixation grows
    while the dispersion stays under the threshold. Defaults: 1.0 degree and 100 ms (Salvucci and Goldberg's
    suggested ranges: 0.5-1 degree, 100-200 ms). Gaps in valid data longer than ``max_gap_ns`` (75 ms) end a
    fixation. Same interface as :class:`IVTDetector`.
    """

    def __init__(
        self, dispersion_threshold_deg: float = 1.0, min_fixation_ns: int = 100 * _MS, max_gap_ns: int = 75 * _MS
    ) -> None:
        check_positive("dispersion_threshold_deg", dispersion_threshold_deg)
        check_positive("min_fixation_ns", min_fixation_ns)
        check_positive("max_gap_ns", max_gap_ns)
        self.dispersion_threshold_deg = float(dispersion_threshold_deg)
        self.min_fixation_ns = int(min_fixation_ns)
        self.max_gap_ns = int(max_gap_ns)
        self._reset()

    def _reset(self) -> None:
        self._window: deque[GazeSample] = deque()
        self._in_fixation = False
        self._last_ended: Fixation | None = None
        self._last_usable_ns: int | None = None
        self._order = TimestampOrder(logger)

    def _dispersion(self, samples: Iterable[GazeSample]) -> float:
        return dispersion_deg(np.stack([s.ray.direction for s in samples]))

    def _end_fixation(self) -> list[Fixation]:
        out: list[Fixation] = []
        if self._in_fixation and self._window:
            fixation = fixation_from_samples(list(self._window))
            self._last_ended = fixation
            out.append(fixation)
        self._in_fixation = False
        self._window.clear()
        return out

    def push(self, sample: GazeSample) -> list[Fixation]:
        """Add one sample (ascending ``timestamp_ns``); return the fixations completed by it."""
        t = int(sample.timestamp_ns)
        if not self._order.admit(t):
            return []
        out: list[Fixation] = []
        if self._last_usable_ns is not None and t - self._last_usable_ns > self.max_gap_ns and self._window:
            out.extend(self._end_fixation())
        if not _is_usable(sample):
            return out
        self._last_usable_ns = t
        window = self._window
        if self._in_fixation:
            window.append(sample)
            if self._dispersion(window) > self.dispersion_threshold_deg:
                window.pop()
                out.extend(self._end_fixation())
                window.append(sample)
            return out
        window.append(sample)
        while window and window[-1].timestamp_ns - window[0].timestamp_ns >= self.min_fixation_ns:
            if self._dispersion(window) <= self.dispersion_threshold_deg:
                self._in_fixation = True
                break
            window.popleft()
        return out

    def current(self) -> Fixation | None:
        """The fixation in progress (already at least ``min_fixation_ns`` long), or None."""
        if not self._in_fixation or not self._window:
            return None
        return fixation_from_samples(list(self._window))

    def last_ended(self) -> Fixation | None:
        """The most recent completed fixation, or None."""
        return self._last_ended

    def flush(self) -> list[Fixation]:
        """End of stream: return the fixation in progress (if any) and reset the detector."""
        out = self._end_fixation()
        self._reset()
        return out
