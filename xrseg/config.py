"""One frozen configuration for the pipeline: its defaults are the tuned values.

The CLI (``xrseg.commands.pipeline_args``) takes its argument defaults from here and the API passes a
:class:`PipelineOptions`; each stage's own options (gaze, mask choice, candidates, recalibration) live beside
the stage and are nested here. A whole run (:func:`xrseg.app.run_pipeline`) takes a :class:`RunOptions`: the
pipeline's options with the model's, the outputs' and the publisher's. Tuning and its measurements:
docs/evaluation.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from xrseg.errors import InputError
from xrseg.select.candidates import CandidateOptions
from xrseg.select.gaze_path import GazeOptions
from xrseg.select.keyframes import KeyframePolicy
from xrseg.select.maskchoice import ChoiceOptions
from xrseg.select.recalibration import RecalibrationOptions

__all__ = [
    "FEATHER_PX",
    "FOLLOW_FRAMES",
    "ModelOptions",
    "OutputOptions",
    "PipelineOptions",
    "PublishOptions",
    "RunOptions",
]

FOLLOW_FRAMES = 6
"""Frames after its keyframe a selected object is followed into and fused (``--follow-frames``)."""
FEATHER_PX = 0.0
"""How many pixels a cutout's alpha edge is softened over (``--feather-px``; 0: alpha is the mask)."""


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


@dataclass(frozen=True)
class OutputOptions:
    """What a run writes into ``out_dir`` besides selections (mask PNG + JSON, ``summary.json``), and what it
    shows. Without ``out_dir`` nothing is written (``track`` and ``cutouts`` need one)."""

    out_dir: Path | None = None
    overwrite: bool = False
    """Replace the outputs of an earlier run in ``out_dir`` (else refused)."""
    meshes: bool = True
    """Lift, follow and fuse each selection; one mesh per object (:mod:`xrseg.sinks.mesh`)."""
    follow_frames: int = FOLLOW_FRAMES
    track: bool = False
    """Follow each object through the rest of the recording and write its mask per frame."""
    cutouts: bool = False
    feather_px: float = FEATHER_PX
    video: bool = True
    """The overlay MP4 and contact sheet."""
    view: bool = False
    """An overlay window."""
    rerun_path: Path | None = None
    """A Rerun recording (.rrd) to write."""


@dataclass(frozen=True)
class ModelOptions:
    """Which model runs where: ``variant`` (None: the manifest's default), ONNX Runtime ``threads`` (None: one
    per core) and ``providers`` in order (None: every installed accelerator, then the CPU), and an
    ``encoder_endpoint`` of an ``xrseg serve-encoder`` server to encode keyframes on (None: here)."""

    variant: str | None = None
    threads: int | None = None
    providers: tuple[str, ...] | None = None
    encoder_endpoint: str | None = None


@dataclass(frozen=True)
class PublishOptions:
    """Publish events over ZeroMQ on ``endpoint``; ``curve_keys`` (the publisher's secret certificate and the
    directory of allowed subscriber keys) for CURVE, ``insecure`` to allow a non-loopback address without it,
    ``preview`` to publish the hover preview too (the ``preview`` topic; asynchronous mode)."""

    endpoint: str
    curve_keys: tuple[Path, Path] | None = None
    insecure: bool = False
    preview: bool = False


@dataclass(frozen=True)
class RunOptions:
    """A whole run: the pipeline's options (``pipeline.realtime``: the asynchronous encoder), the model's, the
    outputs', the publisher (None: no publishing), the ``command`` named in ``summary.json``, and ``quiet``
    (no progress bar)."""

    pipeline: PipelineOptions = field(default_factory=PipelineOptions)
    outputs: OutputOptions = field(default_factory=OutputOptions)
    model: ModelOptions = field(default_factory=ModelOptions)
    publish: PublishOptions | None = None
    command: str = "pipeline"
    quiet: bool = False
