"""The one interface between the pipeline and what consumes it: :class:`Sink`, and the typed events it receives.

Each event carries what the pipeline already knows, so no sink recomputes another stage's work: a frame with
its camera pose and the newest gaze projected into it (:class:`FrameEvent`), each gaze sample with the head pose
at its time (:class:`GazeEvent`), each fixation with its head pose (:class:`FixationEvent`), and each selection
with its keyframe, pose and lifted points (:class:`SelectionEvent`: lifted once, by whichever sink asks first).
Besides them: a dropped trigger, an exported mesh, the run's counters, a selection's timing.

Sinks do not depend on each other's order: the pipeline calls :meth:`Sink.finish` on every sink (queued work
done, meshes exported) before it calls any sink's :meth:`Sink.close`.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from xrseg.sam.embeddings import Keyframe
from xrseg.types import CameraModel, Fixation, Frame, GazeSample, Selection, Transform

if TYPE_CHECKING:
    from xrseg.lift.pointcloud import LiftResult
    from xrseg.select.projection import GazeProjection

__all__ = [
    "Drop",
    "FixationEvent",
    "FrameEvent",
    "GazeEvent",
    "GazeOnFrame",
    "KeyframeEvent",
    "LiftOnce",
    "MeshEvent",
    "PipelineStats",
    "PreviewEvent",
    "SelectionEvent",
    "Sink",
    "Timing",
    "finish_and_close",
]


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


@dataclass(frozen=True)
class GazeOnFrame:
    """A gaze sample projected into a frame: the raw ``sample``, ``world_from_head`` (4x4 float64) at its time
    and its ``projection`` (pixel, 3D point, distance and where the distance came from, or why it missed;
    :class:`~xrseg.select.projection.GazeProjection`), ray-marched through the frame's depth, then vergence,
    then the pipeline's ``fallback_depth_m``."""

    sample: GazeSample
    world_from_head: Transform
    projection: GazeProjection


@dataclass(frozen=True)
class FrameEvent:
    """A frame as it arrives. ``world_from_camera`` and ``world_from_head``: 4x4 float64 camera and head poses
    at its time, None while no head pose is known. ``gaze``: the newest usable gaze sample so far projected into
    this frame, None without one (or without a pose); how old that sample is, ``frame.timestamp_ns -
    gaze.sample.timestamp_ns``, is for the sink to judge."""

    frame: Frame
    world_from_camera: Transform | None
    world_from_head: Transform | None = None
    gaze: GazeOnFrame | None = None


@dataclass(frozen=True)
class KeyframeEvent:
    """A frame the background encoder finished (asynchronous mode only), with its camera pose (4x4 float64, or
    None) at its time."""

    keyframe: Keyframe
    world_from_camera: Transform | None


@dataclass(frozen=True)
class GazeEvent:
    """A gaze sample, raw and One-Euro ``filtered``, with ``world_from_head`` (4x4 float64) from the run's
    head-pose track at the sample's time (None: no head pose near it). Where it lands on a frame comes with
    that frame (:attr:`FrameEvent.gaze`)."""

    sample: GazeSample
    filtered: GazeSample
    world_from_head: Transform | None


@dataclass(frozen=True)
class FixationEvent:
    """A completed fixation, with ``world_from_head`` (4x4 float64, or None) at its centre time and its mean ray
    projected into the newest frame (``projection``: pixel, 3D point looked at, distance; None without a frame
    or a pose)."""

    fixation: Fixation
    world_from_head: Transform | None
    projection: GazeProjection | None = None


class LiftOnce:
    """A selection's mask lifted to coloured world points (:func:`xrseg.lift.pointcloud.lift_mask`, flying
    pixels and outliers removed): computed by whichever sink asks first, on its thread, once per selection."""

    def __init__(
        self, selection: Selection, keyframe: Frame, camera: CameraModel, world_from_camera: Transform
    ) -> None:
        self._inputs = (selection.mask, keyframe, camera, world_from_camera)
        self._lock = threading.Lock()
        self._result: LiftResult | None = None

    def get(self) -> LiftResult | None:
        """The lifted points (Nx3 float64 ``points_world_m``, Nx3 float32 ``colors`` 0..1), None when the
        keyframe has no depth; an empty result says why in ``reason``."""
        mask, keyframe, camera, world_from_camera = self._inputs
        if keyframe.depth_m is None:
            return None
        with self._lock:
            if self._result is None:
                from xrseg.lift.pointcloud import OutlierRemoval, lift_mask

                self._result = lift_mask(
                    mask, keyframe.depth_m, keyframe.rgb, camera, world_from_camera, outliers=OutlierRemoval()
                )
            return self._result


@dataclass(frozen=True)
class SelectionEvent:
    """A new or changed selection on ``keyframe``, taken at ``world_from_camera`` (4x4 float64). Its lifted
    points: :meth:`lifted`."""

    selection: Selection
    keyframe: Frame
    world_from_camera: Transform
    points: LiftOnce

    def lifted(self) -> LiftResult | None:
        """The selection lifted to world points, once for all sinks (see :class:`LiftOnce`)."""
        return self.points.get()


@dataclass(frozen=True)
class PreviewEvent:
    """The hover preview: what a SELECT press now would select, decoded ahead while a fixation is in progress
    (:mod:`xrseg.select.speculation`, asynchronous mode). ``candidate`` is that decision as a selection record
    with ``selection_id`` 0 (nothing is selected yet), on ``keyframe`` taken at ``world_from_camera``
    (4x4 float64). A newer preview replaces it; a selection or a saccade ends it."""

    candidate: Selection
    keyframe: Frame
    world_from_camera: Transform


@dataclass(frozen=True)
class MeshEvent:
    """An object's mesh, written (again): ``files`` format ("glb", "obj", "ply") -> path of the file."""

    object_id: int
    selection_ids: tuple[int, ...]
    files: dict[str, Path]


class Sink:
    """Receives what the pipeline does. Override what you need; every method defaults to doing nothing.

    Callbacks come on the pipeline thread, except :meth:`on_mesh` (see there)."""

    def on_frame(self, event: FrameEvent) -> None:
        """Every frame, as it arrives."""

    def on_keyframe(self, event: KeyframeEvent) -> None:
        """A frame the background encoder finished, told at the next frame after the encode finished."""

    def on_gaze(self, event: GazeEvent) -> None:
        """Every gaze sample."""

    def on_fixation(self, event: FixationEvent) -> None:
        """Every completed fixation."""

    def on_selection(self, event: SelectionEvent) -> None:
        """A new or changed selection."""

    def on_preview(self, event: PreviewEvent) -> None:
        """A hover preview (asynchronous mode), about every ``speculate_ms`` while a fixation is in progress."""

    def on_reject(self, selection: Selection) -> None:
        """The user rejected ``selection``."""

    def on_drop(self, drop: Drop) -> None:
        """A trigger that gave no selection."""

    def on_mesh(self, event: MeshEvent) -> None:
        """An object's mesh was written, told by the mesh sink that wrote it (:class:`~xrseg.sinks.mesh.MeshSink`
        ``listeners``), possibly from its worker thread: keep it short and thread-safe."""

    def finish(self) -> None:
        """The stream ended: finish queued work. Called on every sink before any sink's :meth:`close`."""

    def close(self) -> None:
        """The run is over: release what the sink holds."""

    def summary(self) -> dict[str, Any]:
        """What this sink adds to the run's ``summary.json`` (read after :meth:`close`)."""
        return {}


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
    click_waited: list[bool] = field(default_factory=list)
    """Per entry of :attr:`click_to_mask_ms`: whether that press waited for a keyframe (no encoded one had seen
    its target: its time is mostly the encoder's)."""
    gaze_bias_deg: tuple[float, float] | None = None
    """The eye tracker's offset learnt from the selections, (right, up) degrees; None while not learnt
    (:mod:`xrseg.select.recalibration`)."""
    drops: Counter[str] = field(default_factory=Counter)
    timings: list[Timing] = field(default_factory=list)
    encode_ms: list[float] = field(default_factory=list)

    def add_click(self, click_to_mask_ms: float, waited: bool) -> None:
        """Count one press's click-to-mask time."""
        self.click_to_mask_ms.append(click_to_mask_ms)
        self.click_waited.append(waited)


def finish_and_close(sinks: Sequence[Sink]) -> None:
    """:meth:`Sink.finish` every sink in turn, then :meth:`Sink.close` every one (also after a failed finish, whose
    error is raised after the closes)."""
    try:
        for sink in sinks:
            sink.finish()
    finally:
        for sink in sinks:
            sink.close()
