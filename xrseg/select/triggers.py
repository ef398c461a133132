"""What makes a selection happen: the recent gaze history, dwell and explicit SELECT events."""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass
from typing import Literal

from xrseg.errors import check_positive
from xrseg.types import Fixation, GazeSample

logger = logging.getLogger(__name__)

_NS_PER_S = 1_000_000_000
_MS = 1_000_000


# --------------------------------------------------------------------------------------------------------------
# Sample history


class GazeHistory:
    """A bounded history of recent gaze samples, to hand a fixation's samples to the prompter.

    Keeps samples newer than ``max_age_ns`` (default 5 s) before the newest one; older ones are dropped.
    """

    def __init__(self, max_age_ns: int = 5 * _NS_PER_S) -> None:
        check_positive("max_age_ns", max_age_ns)
        self.max_age_ns = int(max_age_ns)
        self._samples: deque[GazeSample] = deque()

    def push(self, sample: GazeSample) -> None:
        self._samples.append(sample)
        newest = sample.timestamp_ns
        while self._samples and newest - self._samples[0].timestamp_ns > self.max_age_ns:
            self._samples.popleft()

    def __len__(self) -> int:
        return len(self._samples)

    def newest_usable(self) -> GazeSample | None:
        """The newest stored sample that is usable, or None."""
        return next((s for s in reversed(self._samples) if s.usable), None)

    def samples_for(self, fixation: Fixation) -> list[GazeSample]:
        """The stored samples whose timestamps are among ``fixation.sample_timestamps_ns`` (ascending)."""
        wanted = set(fixation.sample_timestamps_ns)
        return [s for s in self._samples if s.timestamp_ns in wanted]


# --------------------------------------------------------------------------------------------------------------
# Triggers


@dataclass(frozen=True)
class Trigger:
    """A request to segment what ``fixation`` looked at, raised at ``timestamp_ns`` for ``reason``."""

    timestamp_ns: int
    fixation: Fixation
    reason: Literal["dwell", "event", "preview"]
    """``preview``: not a request but a look ahead, to decode the fixation in progress before it is selected."""


class DwellTrigger:
    """Fires once per fixation when the fixation in progress has lasted ``dwell_ns`` (default 500 ms).

    Call :meth:`update` after every pushed sample with the detector's ``current()`` fixation. A fixation counts
    as the one that already fired while its time span overlaps the fired one (the detector may extend or merge
    the fixation in progress, which moves its start but not past the fired one's).
    """

    def __init__(self, dwell_ns: int = 500 * _MS) -> None:
        check_positive("dwell_ns", dwell_ns)
        self.dwell_ns = int(dwell_ns)
        self._fired_end_ns: int | None = None

    def update(self, fixation: Fixation | None) -> Trigger | None:
        """A Trigger (timestamped at the fixation's latest sample) the first time it lasts ``dwell_ns``."""
        if fixation is None:
            return None
        if self._fired_end_ns is not None and fixation.start_ns <= self._fired_end_ns:
            self._fired_end_ns = max(self._fired_end_ns, fixation.end_ns)
            return None
        if fixation.duration_ns < self.dwell_ns:
            return None
        self._fired_end_ns = fixation.end_ns
        return Trigger(timestamp_ns=fixation.end_ns, fixation=fixation, reason="dwell")

    def reset(self) -> None:
        self._fired_end_ns = None
