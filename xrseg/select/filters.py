"""Gaze smoothing for the cursor and the viewers: the One Euro filter."""

from __future__ import annotations

import dataclasses
import logging
import math

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError, check_non_negative, check_positive
from xrseg.types import GazeRay, GazeSample, Vec3

logger = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000
_MS = 1_000_000


# --------------------------------------------------------------------------------------------------------------
# One Euro filter


class OneEuroFilter:
    """The One Euro filter (Casiez, Roussel and Vogel, CHI 2012) for unit gaze directions.

    An adaptive low-pass filter: its cutoff rises with the signal's speed, so fixations are smoothed hard (low
    jitter) while saccades pass with little lag. The three components of the unit direction are filtered
    together and the result is renormalised; the speed that drives the cutoff is the magnitude of the smoothed
    derivative, converted to deg/s (for a unit vector the derivative's norm is the angular speed in rad/s).

    Defaults: ``min_cutoff_hz=1.0`` (Casiez et al.'s suggested start; a 1 Hz cutoff removes tracker jitter in
    a fixation), ``beta=0.3`` Hz per deg/s (a 60 deg/s movement lifts the cutoff to 19 Hz, a 300 deg/s saccade
    higher still), ``d_cutoff_hz=1.0`` (the paper's value for the derivative filter). ``reset_after_ns``
    (100 ms) restarts the filter after a gap in the samples, so it never smooths across a blink.
    """

    def __init__(
        self,
        min_cutoff_hz: float = 1.0,
        beta: float = 0.3,
        d_cutoff_hz: float = 1.0,
        reset_after_ns: int = 100 * _MS,
    ) -> None:
        check_positive("min_cutoff_hz", min_cutoff_hz)
        check_non_negative("beta", beta)
        check_positive("d_cutoff_hz", d_cutoff_hz)
        check_positive("reset_after_ns", reset_after_ns)
        self.min_cutoff_hz = float(min_cutoff_hz)
        self.beta = float(beta)
        self.d_cutoff_hz = float(d_cutoff_hz)
        self.reset_after_ns = int(reset_after_ns)
        self._x: npt.NDArray[np.float64] | None = None
        self._dx = np.zeros(3, dtype=np.float64)
        self._t_ns = 0

    @staticmethod
    def _alpha(cutoff_hz: float, dt_s: float) -> float:
        tau = 1.0 / (2.0 * math.pi * cutoff_hz)
        return 1.0 / (1.0 + tau / dt_s)

    def reset(self) -> None:
        """Forget the state; the next sample passes unchanged."""
        self._x = None
        self._dx = np.zeros(3, dtype=np.float64)

    def filter(self, timestamp_ns: int, direction: npt.ArrayLike) -> Vec3:
        """Filter one direction (3 float64, any length, normalised here); returns the filtered unit direction.

        A non-finite or zero direction raises :class:`InputError` (use :meth:`filter_sample` for raw tracker
        data). A timestamp not after the previous one returns the previous output unchanged.
        """
        x = np.asarray(direction, dtype=np.float64)
        norm = float(np.linalg.norm(x)) if x.shape == (3,) else math.nan
        if not (math.isfinite(norm) and norm > 0):
            raise InputError(f"direction must be a finite non-zero 3-vector, got {np.asarray(direction).tolist()}")
        x = x / norm
        t_ns = int(timestamp_ns)
        if self._x is None or t_ns - self._t_ns > self.reset_after_ns:
            self._x, self._dx, self._t_ns = x, np.zeros(3, dtype=np.float64), t_ns
            return x.copy()
        if t_ns <= self._t_ns:
            return self._x.copy()
        dt_s = (t_ns - self._t_ns) / _NS_PER_S
        dx = (x - self._x) / dt_s
        a_d = self._alpha(self.d_cutoff_hz, dt_s)
        self._dx = a_d * dx + (1.0 - a_d) * self._dx
        speed_deg_s = math.degrees(float(np.linalg.norm(self._dx)))
        cutoff_hz = self.min_cutoff_hz + self.beta * speed_deg_s
        a = self._alpha(cutoff_hz, dt_s)
        filtered = a * x + (1.0 - a) * self._x
        filtered = filtered / np.linalg.norm(filtered)
        self._x, self._t_ns = filtered, t_ns
        return filtered.copy()

    def filter_sample(self, sample: GazeSample) -> GazeSample:
        """A copy of ``sample`` with its combined ray's direction filtered; unusable samples pass unchanged."""
        if not sample.usable or float(np.linalg.norm(sample.ray.direction)) == 0.0:
            return sample
        direction = self.filter(sample.timestamp_ns, sample.ray.direction)
        return dataclasses.replace(sample, ray=GazeRay(sample.ray.origin_m, direction))
