"""The gaze side of the pipeline: each sample in, fixations and selection triggers out.

Per usable sample: its direction is turned into the world frame with the head pose at its time (when the pose
is known; else it stays head-relative), the centroid-shift detector (:mod:`xrseg.select.centroid`) segments
fixations on it, and the dwell trigger watches the fixation in progress. A One Euro filtered copy of the
sample goes to the sinks for drawing a steady cursor; detection never sees filtered gaze (smoothing hides
saccades).

A SELECT press selects from the gaze of the last ``click_window_ns``: the fixation in progress even before the
detector has confirmed it (at least ``click_min_ns`` of it), else a fixation that ended within
``click_tolerance_ns`` before the press (the eyes already left), else the newest usable sample within that
tolerance (a tracker too slow or a gaze too restless for any fixation: 10 Hz MPS gaze, smooth pursuit). Only
when the tracker gave nothing usable in that time does a press give no trigger, and the pipeline drops it with
that reason.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from xrseg.geometry import transform_directions
from xrseg.select.centroid import CentroidDetector
from xrseg.select.filters import OneEuroFilter
from xrseg.select.fixations import fixation_from_samples
from xrseg.select.triggers import DwellTrigger, GazeHistory, Trigger
from xrseg.types import Fixation, GazeSample, InputEvent, Transform

_MS = 1_000_000


@dataclass(frozen=True)
class GazeOptions:
    """The gaze path's settings (times in ms, angles in degrees); the pipeline's defaults are these."""

    dwell_ms: float = 500.0
    """A fixation this long selects what it looks at (0 disables dwell)."""
    min_fixation_ms: float = 80.0
    saccade_min_deg: float = 1.0
    """The centroid shift that always ends a fixation, whatever the measured noise."""
    saccade_noise_factor: float = 4.0
    """The shift threshold in units of the measured noise of the detection window's median."""
    detect_in_world: bool = True
    """Detect fixations on world-frame directions when head poses are known (head motion is not a saccade)."""
    click_window_ms: float = 300.0
    click_min_ms: float = 25.0
    click_tolerance_ms: float = 300.0
    filter_min_cutoff_hz: float = 1.0
    filter_beta: float = 0.3
    """One Euro filter of the cursor the sinks draw (Casiez et al.'s defaults); not used for detection."""


@dataclass(frozen=True)
class GazeStep:
    """What one sample caused: its filtered copy, the fixations it completed and a dwell trigger or None."""

    filtered: GazeSample
    fixations: tuple[Fixation, ...]
    trigger: Trigger | None


class GazePath:
    """Gaze samples in, fixations and triggers out (see the module docstring)."""

    def __init__(self, options: GazeOptions, history_ns: int) -> None:
        self.options = options
        self.detector = CentroidDetector(
            min_threshold_deg=options.saccade_min_deg,
            noise_factor=options.saccade_noise_factor,
            min_fixation_ns=int(options.min_fixation_ms * _MS),
        )
        self.history = GazeHistory(history_ns)
        self._filter = OneEuroFilter(min_cutoff_hz=options.filter_min_cutoff_hz, beta=options.filter_beta)
        self._dwell = DwellTrigger(int(options.dwell_ms * _MS)) if options.dwell_ms > 0 else None

    def push(self, sample: GazeSample, world_from_head: Transform | None) -> GazeStep:
        """One sample (ascending time) with the head pose at its time (4x4 float64) or None."""
        self.history.push(sample)
        filtered = self._filter.filter_sample(sample) if sample.usable else sample
        direction = None
        if self.options.detect_in_world and world_from_head is not None and sample.usable:
            direction = transform_directions(world_from_head, np.asarray(sample.ray.direction))[0]
        fixations = tuple(self.detector.push(sample, direction))
        trigger = self._dwell.update(self.detector.current()) if self._dwell is not None else None
        return GazeStep(filtered, fixations, trigger)

    def on_select(self, event: InputEvent) -> Trigger | None:
        """The trigger for a SELECT press at ``event.timestamp_ns`` (module docstring), or None."""
        pressed = self.pressed(event.timestamp_ns)
        if pressed is not None:
            fixation, until_ns = pressed
            return Trigger(event.timestamp_ns, self._recent(fixation, until_ns), "event")
        newest = self.history.newest_usable()
        tolerance_ns = int(self.options.click_tolerance_ms * _MS)
        if newest is not None and abs(event.timestamp_ns - newest.timestamp_ns) <= tolerance_ns:
            return Trigger(event.timestamp_ns, fixation_from_samples([newest]), "event")
        return None

    def pressed(self, now_ns: int) -> tuple[Fixation, int] | None:
        """The whole fixation a SELECT press at ``now_ns`` selects, and when its recent samples end: the one in
        progress (until ``now_ns``), else the last ended one within ``click_tolerance_ms`` (until its end); None
        when neither (:meth:`on_select` then falls back to the newest usable sample)."""
        current = self.detector.in_progress(int(self.options.click_min_ms * _MS))
        if current is not None:
            return current, now_ns
        ended = self.detector.last_ended()
        if ended is not None and 0 <= now_ns - ended.end_ns <= int(self.options.click_tolerance_ms * _MS):
            return ended, ended.end_ns
        return None

    def preview(self, now_ns: int) -> tuple[int, Trigger] | None:
        """What a SELECT press at ``now_ns`` would select from the fixation in progress: (the in-progress
        fixation's start, its trigger), or None when no fixation is in progress."""
        current = self.detector.in_progress(int(self.options.click_min_ms * _MS))
        if current is None:
            return None
        return current.start_ns, Trigger(now_ns, self._recent(current, now_ns), "preview")

    def press_fixation_start_ns(self, now_ns: int) -> int | None:
        """The start of the whole fixation a press at ``now_ns`` selects (:meth:`pressed`), or None."""
        pressed = self.pressed(now_ns)
        return None if pressed is None else pressed[0].start_ns

    def _recent(self, fixation: Fixation, until_ns: int) -> Fixation:
        """``fixation`` cut to its samples of the last ``click_window_ms`` before ``until_ns``."""
        since_ns = until_ns - int(self.options.click_window_ms * _MS)
        if fixation.start_ns >= since_ns:
            return fixation
        samples = [s for s in self.history.samples_for(fixation) if s.timestamp_ns >= since_ns]
        if not samples:
            return fixation
        return dataclasses.replace(fixation_from_samples(samples), detected_ns=fixation.detected_ns)

    def samples_for(self, fixation: Fixation) -> list[GazeSample]:
        return self.history.samples_for(fixation)

    def flush(self) -> list[Fixation]:
        return self.detector.flush()
