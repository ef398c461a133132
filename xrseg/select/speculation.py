"""The mask ready at the click: the fixation in progress is decoded ahead, so a SELECT finds its mask made.

In asynchronous mode (live, ``--realtime``) the pipeline decodes what a SELECT press would select, every
``speculate_ms`` while a fixation is in progress, on the newest usable keyframe. A press during the same
fixation, within two intervals of the look-ahead, takes that decision instead of decoding again: click-to-mask
becomes the time to publish. The look-ahead's keyframe passed the head-motion test at most two intervals
before; a keyframe encoded since would be newer, not more right (the prompter projects every gaze sample with
the head pose at its own time). A saccade (a new fixation) makes the look-ahead stale; the press is then
decoded as before. The cost is decoder time while the person looks
around, on the gaze path, which is idle between clicks.
"""

from __future__ import annotations

from dataclasses import dataclass

from xrseg.geometry import PoseTrack
from xrseg.sam.embeddings import Keyframe
from xrseg.select.selector import Decision
from xrseg.types import GazeSample, Transform

__all__ = ["Made", "Speculator"]

_MS = 1_000_000


@dataclass(frozen=True)
class Made:
    """A decision with what it was made from: the keyframe, the camera pose there, the head-pose track and the
    fixation's raw gaze samples (before the bias correction)."""

    keyframe: Keyframe
    world_from_camera: Transform
    track: PoseTrack
    samples: tuple[GazeSample, ...]
    decision: Decision


@dataclass(frozen=True)
class _Ahead:
    fixation_start_ns: int
    made_at_ns: int
    made: Made


class Speculator:
    """Holds the latest look-ahead decision and says when the next one is due (module docstring)."""

    def __init__(self, interval_ms: float) -> None:
        self.interval_ns = int(interval_ms * _MS)
        self._ahead: _Ahead | None = None
        self._last_ns: int | None = None

    def due(self, now_ns: int) -> bool:
        """True when the last look-ahead is at least one interval old (gaze time)."""
        return self._last_ns is None or now_ns - self._last_ns >= self.interval_ns

    def tried(self, now_ns: int) -> None:
        """A look-ahead was attempted at ``now_ns`` (made or not): the next is due one interval later."""
        self._last_ns = now_ns

    def clear(self) -> None:
        """Forget the look-ahead (the prompt's inputs changed, e.g. a REJECT added a negative point)."""
        self._ahead = None

    def keep(self, fixation_start_ns: int, now_ns: int, made: Made) -> None:
        self._ahead = _Ahead(fixation_start_ns, now_ns, made)

    def take(self, fixation_start_ns: int | None, now_ns: int) -> Made | None:
        """The look-ahead for a press at ``now_ns`` during the fixation that started at ``fixation_start_ns``,
        or None when it is stale or for another fixation. Taken once."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or fixation_start_ns != ahead.fixation_start_ns:
            return None
        if now_ns - ahead.made_at_ns > 2 * self.interval_ns:
            return None
        return ahead.made
