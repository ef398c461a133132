"""One frozen configuration for the pipeline: its defaults are the tuned values.

The CLI (``xrseg.app``) takes its argument defaults from here and the API passes a :class:`PipelineOptions`;
each stage's own options (gaze, mask choice, candidates, recalibration) live beside the stage and are nested
here. Tuning and its measurements: docs/evaluation.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from xrseg.errors import InputError
from xrseg.select.candidates import CandidateOptions
from xrseg.select.gaze_path import GazeOptions
from xrseg.select.keyframes import KeyframePolicy
from xrseg.select.maskchoice import ChoiceOptions
from xrseg.select.recalibration import RecalibrationOptions

__all__ = ["PipelineOptions"]


@dataclass(frozen=True)
class PipelineOptions:
    """Tunable behaviour. Times in milliseconds, angles in degrees, distances in metres."""

    gaze: GazeOptions = field(default_factory=GazeOptions)
    """Fixation detection, dwell and SELECT handling (:mod:`xrseg.select.gaze_path`)."""
    select_on_events: bool = True
    """SELECT events (button, pinch) select what is being looked at."""
    max_prompt_samples: int = 12
    """At most this many of a fixation's samples (evenly spaced) are projected to make its prompt."""
    max_points: int = 5
    fallback_depth_m: float = 1.0
    multimask: bool = True
    depth_mask_choice: bool = True
    """Choose among the candidate masks with the keyframe's depth and correct look-throughs
    (:mod:`xrseg.select.maskchoice`); False keeps SAM's own ambiguity rule."""
    choice: ChoiceOptions = field(default_factory=ChoiceOptions)
    cone_search: bool = True
    """When the mask under the gaze is no plausible target, search the tracker's error cone for one
    (:mod:`xrseg.select.candidates`; needs depth and ``depth_mask_choice``)."""
    candidates: CandidateOptions = field(default_factory=CandidateOptions)
    recalibration: RecalibrationOptions = field(default_factory=RecalibrationOptions)
    """Learn the tracker's constant bias from the selections made (:mod:`xrseg.select.recalibration`)."""
    realtime: bool = False
    """Encode keyframes asynchronously (latest wins) instead of on demand."""
    max_keyframe_head_motion_deg: float = 30.0
    """Asynchronous mode: a keyframe is used for a fixation only if the head turned at most this much between
    them (:mod:`xrseg.select.keyframes`)."""
    max_keyframe_age_ms: float = 8000.0
    """Asynchronous mode: a keyframe at most this far from the trigger; a trigger waits this long for one."""
    speculate_ms: float = 100.0
    """Asynchronous mode: decode the fixation in progress this often, so a SELECT finds its mask made
    (:mod:`xrseg.select.speculation`); 0 never."""
    history_s: float = 10.0
    """Frames, head poses and gaze samples kept (must cover ``max_keyframe_age_ms``)."""

    def __post_init__(self) -> None:
        if self.gaze.dwell_ms < 0 or self.history_s <= 0 or not self.speculate_ms >= 0:
            raise InputError("dwell_ms and speculate_ms must be >= 0 and history_s > 0")
        _ = self.keyframe_policy  # raises on bad keyframe limits
        if self.max_keyframe_age_ms > self.history_s * 1000.0:
            raise InputError("max_keyframe_age_ms must not exceed history_s (poses older than that are gone)")

    @property
    def keyframe_policy(self) -> KeyframePolicy:
        return KeyframePolicy(self.max_keyframe_head_motion_deg, self.max_keyframe_age_ms)
