"""The honest score: which object a mask picked, which scripted fixations were clicked and detected.

- *Picked object*: the ground-truth id holding most of the mask's pixels, background (0: room, table, stands)
  included. A table mask that touches the target is a table pick, not a hit.
- *Clicks*: the scripted fixations with a SELECT event inside them (every scripted fixation when the session
  has no SELECT events). Accuracy and coverage are over all clicks: a click that selected nothing is a miss.
- *Fixation recall*: each detected fixation is assigned to the scripted fixation it overlaps most; a scripted
  fixation is recalled when at least one detected fixation is assigned to it (two scripted fixations merged
  into one detected fixation count once). *Detection lag*: from a recalled fixation's scripted start to when
  the detector first reported it (``Fixation.detected_ns``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.session.format import FixationTarget
from xrseg.types import EventKind, Fixation, InputEvent

_MS = 1_000_000


def picked_object(mask: npt.NDArray[np.bool_], ids: npt.NDArray[np.integer]) -> int:
    """The id (0 = background) holding most of ``mask``'s pixels (HxW bool over HxW instance ids); 0 if empty."""
    labels, counts = np.unique(ids[mask], return_counts=True)
    return int(labels[int(np.argmax(counts))]) if labels.size else 0


def overlap_ns(target: FixationTarget, start_ns: int, end_ns: int) -> int:
    return min(target.end_ns, end_ns) - max(target.start_ns, start_ns)


def best_target(targets: Sequence[FixationTarget], start_ns: int, end_ns: int) -> int | None:
    """Index of the target overlapping [start_ns, end_ns] the most (None when none overlaps)."""
    best, best_overlap = None, 0
    for index, target in enumerate(targets):
        overlap = overlap_ns(target, start_ns, end_ns)
        if overlap > best_overlap:
            best, best_overlap = index, overlap
    return best


def clicked_targets(targets: Sequence[FixationTarget], events: Sequence[InputEvent]) -> list[int]:
    """Indices of the targets with a SELECT event inside (all of them when there is no SELECT event)."""
    selects = [e.timestamp_ns for e in events if e.kind is EventKind.SELECT]
    if not selects:
        return list(range(len(targets)))
    return [i for i, t in enumerate(targets) if any(t.start_ns <= s <= t.end_ns for s in selects)]


@dataclass(frozen=True)
class FixationRecall:
    """``recalled`` of ``total`` scripted fixations were found; ``lags_ms`` the detection lag of each found one
    that reports when it was detected; ``detected`` fixations in all."""

    recalled: int
    total: int
    detected: int
    lags_ms: tuple[float, ...]

    @property
    def recall(self) -> float:
        return self.recalled / self.total if self.total else 0.0


def fixation_recall(targets: Sequence[FixationTarget], fixations: Sequence[Fixation]) -> FixationRecall:
    """Match detected ``fixations`` to scripted ``targets`` (see the module docstring)."""
    assigned: dict[int, list[Fixation]] = {}
    for fixation in fixations:
        index = best_target(targets, fixation.start_ns, fixation.end_ns)
        if index is not None:
            assigned.setdefault(index, []).append(fixation)
    lags = []
    for index, found in sorted(assigned.items()):
        detected = [f.detected_ns for f in found if f.detected_ns is not None]
        if detected:
            lags.append((min(detected) - targets[index].start_ns) / _MS)
    return FixationRecall(len(assigned), len(targets), len(fixations), tuple(lags))
