"""The one interface between the pipeline and what consumes it: :class:`Sink`, and the records it receives
beside the shared ones of :mod:`xrseg.types` (a dropped trigger, the run's counters, a selection's timing)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from xrseg.sam.embeddings import Keyframe
from xrseg.types import Fixation, Frame, GazeSample, Selection, Transform

__all__ = ["Drop", "PipelineStats", "Sink", "Timing"]


@dataclass(frozen=True)
class Timing:
    """Milliseconds spent on one selection: prompt making, decoding (every decode of the selection), choosing
    the mask (depth choice and cone search), and encoding when it was on demand."""

    prompt_ms: float
    decode_ms: float
    encode_ms: float
    choose_ms: float = 0.0

    @property
    def gaze_to_mask_ms(self) -> float:
        """From the trigger to the mask, not counting an on-demand encode (live keyframes are encoded ahead)."""
        return self.prompt_ms + self.decode_ms + self.choose_ms


@dataclass(frozen=True)
class Drop:
    """A trigger that produced no selection, and why (``kind`` is a short machine-readable key)."""

    timestamp_ns: int
    kind: str
    reason: str
    fixation: Fixation | None = None


class Sink:
    """Receives what the pipeline does. Override what you need; every method defaults to doing nothing."""

    def on_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        """Every frame, as it arrives, with the camera pose at its time when the head pose is known."""

    def on_keyframe(self, keyframe: Keyframe, world_from_camera: Transform | None) -> None:
        """A frame the background encoder finished (asynchronous mode only), with the camera pose at its time.

        Called on the pipeline thread, at the next frame after the encode finished."""

    def on_gaze(self, sample: GazeSample, filtered: GazeSample) -> None:
        """Every gaze sample, raw and One-Euro filtered."""

    def on_fixation(self, fixation: Fixation) -> None:
        """Every completed fixation."""

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        """A new or changed selection on ``keyframe`` (taken at ``world_from_camera``)."""

    def on_reject(self, selection: Selection) -> None:
        """The user rejected ``selection``."""

    def on_drop(self, drop: Drop) -> None:
        """A trigger that gave no selection."""

    def close(self) -> None:
        """The stream ended."""


@dataclass
class PipelineStats:
    frames: int = 0
    gaze_samples: int = 0
    head_poses: int = 0
    events: int = 0
    fixations: int = 0
    triggers: int = 0
    selections: int = 0
    rejected: int = 0
    confirmations: int = 0
    """SELECT presses on a fixation already selected (by dwell): answered by the selection that exists."""
    encodes: int = 0
    frames_dropped_by_encoder: int = 0
    look_aheads: int = 0
    """Fixations in progress decoded ahead of a press (asynchronous mode, :mod:`xrseg.select.speculation`)."""
    look_ahead_hits: int = 0
    """SELECT presses answered by a look-ahead decision."""
    click_to_mask_ms: list[float] = field(default_factory=list)
    """Per SELECT press that selected: wall time from handling the press to the selection's publication,
    a wait for a keyframe included."""
    gaze_bias_deg: tuple[float, float] | None = None
    """The eye tracker's offset learnt from the selections, (right, up) degrees; None while not learnt
    (:mod:`xrseg.select.recalibration`)."""
    drops: Counter[str] = field(default_factory=Counter)
    timings: list[Timing] = field(default_factory=list)
    encode_ms: list[float] = field(default_factory=list)
