"""Streaming fixation detection that never merges fixations across a saccade: the centroid-shift detector.

Why not I-VT on raw gaze. Sample-to-sample velocity of a real tracker is mostly noise: 0.5 deg RMS at 120 Hz
is about 60 deg/s of apparent speed, the same as a small saccade, and low-pass filtering it enough to hide the
noise (about 1 Hz) also hides every saccade under about 10 deg. This detector asks a better-posed question:
has the gaze *moved away* from where it was resting? For each new sample it compares

- the per-axis median of the samples of the last ``window_ns`` (25 ms: three samples at 120 Hz, so one
  glitch cannot move it), with
- the centroid of the fixation's samples before that window (the last ``reference_ns``, 300 ms, so slow drift
  and the parallax of a swaying head are followed).

When they differ by more than ``threshold_deg`` a saccade has started: the fixation ends before the window and
a new candidate starts with the window's samples (during the saccade this repeats until the gaze lands). The
threshold adapts to the tracker: ``max(min_threshold_deg, noise_factor * sigma * sqrt(pi / 2 / n + 1 / m))``
with ``sigma`` the robust per-axis noise of one sample measured inside fixations (median deviation from the
centroid / 1.1774, the Rayleigh median), ``n`` the samples in the window (the variance of a median is about
pi / 2 times that of a mean) and ``m`` those behind the centroid. 0.5 deg per axis at 120 Hz gives about 1.5 deg:
every saccade of 3 deg or more splits, noise does not.

Directions may be in any frame; the pipeline passes world-frame directions when it has head poses (a target
fixed in the world is then a fixed direction while the head turns, which head-relative gaze is not), and the
head-frame ones otherwise. Fixation records are built from the samples as given (see :meth:`push`).

:meth:`current` is the fixation in progress once it has lasted ``min_fixation_ns`` (for dwell); its
``detected_ns`` is when that happened. :meth:`in_progress` is the candidate at any length (for a SELECT press
while the detector is still deciding).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque

import numpy as np
import numpy.typing as npt

from xrseg.errors import check_non_negative, check_positive
from xrseg.geometry import angle_between_deg
from xrseg.select.fixations import TimestampOrder, fixation_from_samples
from xrseg.types import Fixation, GazeSample

logger = logging.getLogger(__name__)

_MS = 1_000_000
_RAYLEIGH_MEDIAN = 1.1774
"""Median of a Rayleigh distribution in units of its per-axis sigma."""


def _usable(sample: GazeSample, direction: npt.NDArray[np.float64]) -> bool:
    finite = bool(np.all(np.isfinite(direction)))
    return sample.usable and finite and abs(float(np.linalg.norm(direction)) - 1.0) < 1e-6


def _normalised(vector: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    norm = float(np.linalg.norm(vector))
    result: npt.NDArray[np.float64] = vector / norm if norm > 0 else vector
    return result


class CentroidDetector:
    """Streaming fixation detector comparing recent gaze with the fixation's centroid (module docstring).

    Same interface as :class:`~xrseg.select.fixations.IVTDetector` (``push``, ``current``, ``last_ended``,
    ``flush``) plus :meth:`in_progress`. ``push(sample, direction)`` takes the unit direction to detect on
    (3 float64; default the sample's own ray direction).
    """

    def __init__(
        self,
        window_ns: int = 25 * _MS,
        reference_ns: int = 300 * _MS,
        min_threshold_deg: float = 1.0,
        noise_factor: float = 4.0,
        min_fixation_ns: int = 80 * _MS,
        max_gap_ns: int = 75 * _MS,
        initial_noise_deg: float = 0.5,
        max_samples: int = 1200,
    ) -> None:
        check_positive("window_ns", window_ns)
        check_positive("reference_ns", reference_ns)
        check_positive("min_threshold_deg", min_threshold_deg)
        check_positive("noise_factor", noise_factor)
        check_non_negative("min_fixation_ns", min_fixation_ns)
        check_positive("max_gap_ns", max_gap_ns)
        check_non_negative("initial_noise_deg", initial_noise_deg)
        self.window_ns = int(window_ns)
        self.reference_ns = int(reference_ns)
        self.min_threshold_deg = float(min_threshold_deg)
        self.noise_factor = float(noise_factor)
        self.min_fixation_ns = int(min_fixation_ns)
        self.max_gap_ns = int(max_gap_ns)
        self.max_samples = max(int(max_samples), 16)
        """A fixation keeps at most this many of its newest samples (its start is remembered): a head held still
        for minutes costs no more per sample than one held for ten seconds."""
        self._deviations: deque[float] = deque([initial_noise_deg * _RAYLEIGH_MEDIAN], maxlen=240)
        self._reset()

    def _reset(self) -> None:
        self._samples: list[GazeSample] = []
        self._start_ns: int | None = None
        self._directions: list[npt.NDArray[np.float64]] = []
        self._detected_ns: int | None = None
        self._last_ended: Fixation | None = None
        self._last_usable_ns: int | None = None
        self._order = TimestampOrder(logger)

    @property
    def noise_deg(self) -> float:
        """The current robust per-axis noise estimate of single samples, in degrees."""
        return float(np.median(np.asarray(self._deviations))) / _RAYLEIGH_MEDIAN

    def threshold_deg(self, window_samples: int, reference_samples: int) -> float:
        """The centroid shift (degrees) that ends a fixation, for a window of ``window_samples`` samples
        compared with the centroid of ``reference_samples``."""
        spread = math.sqrt(math.pi / 2 / max(window_samples, 1) + 1 / max(reference_samples, 1))
        return max(self.min_threshold_deg, self.noise_factor * self.noise_deg * spread)

    # -- internals

    def _end(self, keep_from: int) -> list[Fixation]:
        """End the candidate before index ``keep_from``; the samples from there on start the next one."""
        done, self._samples = self._samples[:keep_from], self._samples[keep_from:]
        self._directions = self._directions[keep_from:]
        start_ns = self._start_ns
        self._start_ns = self._samples[0].timestamp_ns if self._samples else None
        detected, self._detected_ns = self._detected_ns, None
        if not done or start_ns is None or done[-1].timestamp_ns - start_ns < self.min_fixation_ns:
            return []
        fixation = dataclasses.replace(fixation_from_samples(done), start_ns=start_ns, detected_ns=detected)
        self._last_ended = fixation
        return [fixation]

    def _window_start(self) -> int:
        newest = self._samples[-1].timestamp_ns
        index = len(self._samples) - 1
        while index > 0 and newest - self._samples[index - 1].timestamp_ns < self.window_ns:
            index -= 1
        return index

    def _check_shift(self) -> list[Fixation]:
        start = self._window_start()
        newest_ref = self._samples[start - 1].timestamp_ns if start > 0 else None
        if newest_ref is None:
            return []
        ref_from = start - 1
        while ref_from > 0 and newest_ref - self._samples[ref_from - 1].timestamp_ns < self.reference_ns:
            ref_from -= 1
        reference = np.stack(self._directions[ref_from:start])
        if len(reference) < 3:
            return []
        centroid = _normalised(reference.mean(axis=0))
        recent = _normalised(np.median(np.stack(self._directions[start:]), axis=0))
        shift = float(angle_between_deg(recent, centroid))
        if shift > self.threshold_deg(len(self._directions) - start, len(reference)):
            return self._end(start)
        self._deviations.append(float(angle_between_deg(self._directions[-1], centroid)))
        return []

    # -- public interface

    def push(self, sample: GazeSample, direction: npt.ArrayLike | None = None) -> list[Fixation]:
        """Add one sample (ascending ``timestamp_ns``); return the fixations it completed (usually none).

        ``direction``: the unit direction to detect on (default ``sample.ray.direction``). Unusable samples are
        gaps; a gap over ``max_gap_ns`` ends the fixation. Samples not after the previous one are dropped.
        """
        t = int(sample.timestamp_ns)
        if not self._order.admit(t):
            return []
        out: list[Fixation] = []
        if self._last_usable_ns is not None and t - self._last_usable_ns > self.max_gap_ns and self._samples:
            out.extend(self._end(len(self._samples)))
        d = np.asarray(sample.ray.direction if direction is None else direction, dtype=np.float64)
        if not _usable(sample, d):
            return out
        self._last_usable_ns = t
        self._samples.append(sample)
        self._directions.append(d)
        if self._start_ns is None:
            self._start_ns = t
        if len(self._samples) > self.max_samples:
            del self._samples[0], self._directions[0]
        out.extend(self._check_shift())
        if self._detected_ns is None and self._start_ns is not None and t - self._start_ns >= self.min_fixation_ns:
            self._detected_ns = t
        return out

    @property
    def start_ns(self) -> int | None:
        """The start of the candidate fixation in progress, or None (cheaper than :meth:`in_progress`)."""
        return self._start_ns

    def in_progress(self, min_duration_ns: int = 0) -> Fixation | None:
        """The candidate fixation so far (any length of at least ``min_duration_ns``), or None."""
        if (
            not self._samples
            or self._start_ns is None
            or self._samples[-1].timestamp_ns - self._start_ns < min_duration_ns
        ):
            return None
        fixation = fixation_from_samples(self._samples)
        return dataclasses.replace(fixation, start_ns=self._start_ns, detected_ns=self._detected_ns)

    def current(self) -> Fixation | None:
        """The fixation in progress once it has lasted ``min_fixation_ns``, or None."""
        if self._detected_ns is None:
            return None
        return self.in_progress()

    def last_ended(self) -> Fixation | None:
        """The most recent fixation (at least ``min_fixation_ns`` long) that has ended, or None."""
        return self._last_ended

    def flush(self) -> list[Fixation]:
        """End of stream: return the fixation in progress (if long enough) and reset (the noise estimate stays)."""
        out = self._end(len(self._samples))
        self._reset()
        return out
