"""A pipeline sink that follows what happens and builds the overlay of each frame (:class:`OverlayTracker`).

The window (:mod:`xrseg.sinks.viz.window`) and the video writer (:mod:`xrseg.sinks.viz.video`) build on it.

How things land on a frame:

- Gaze. A gaze ray is in the head frame at its own time, so it needs the head pose at that time. Sinks do not
  receive head poses, only each frame's ``world_from_camera``; the tracker derives ``world_from_head =
  world_from_camera @ inv(head_from_camera)`` at every frame and interpolates between the last few frames
  for a sample's time (a sample newer than the newest frame, or older than the oldest kept, gets the nearest
  frame's pose). With frames at 5-60 Hz this misses head motion between frames that is not linear; the
  pipeline itself uses the full head-pose track for prompts, so this approximation affects only the drawing.
  The cursor is the newest usable raw sample, projected with :class:`GazeProjector` through
  the frame's depth (then vergence, then ``fallback_depth_m``). The trail (the last ``trail_s`` seconds of
  raw samples) is projected at the cursor's distance without ray marching, which is cheap and close enough.
- Fixation. The latest completed fixation (the detector reports one when it ends), for ``fixation_hold_s``
  after its end, as a ring around its mean ray whose radius is its dispersion.
- Selection. The latest selection until it is rejected or replaced. Its mask is in keyframe pixels; on later
  frames it is carried over through the keyframe's depth: the masked pixels (at most ``max_mask_points``,
  on a regular grid) are lifted to the world once, projected into each frame and closed morphologically.
  Occlusion is not modelled. Without depth or poses the keyframe mask is drawn as it is.
- The heads-up line: the source label, how the cursor's distance was found, the last encoder and decoder
  latencies and the drop counters of :class:`~xrseg.select.pipeline.PipelineStats` (set :attr:`stats` once the
  pipeline exists), and the number of selections.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.geometry import PoseTrack, invert_transform, project_points, transform_points
from xrseg.select.projection import GazeProjector
from xrseg.sinks.base import Drop, PipelineStats, Sink
from xrseg.sinks.viz.overlay import FixationMark, MaskMark, OverlayLayers, render_overlay, selection_colour
from xrseg.types import (
    CameraModel,
    Fixation,
    Frame,
    GazeRay,
    GazeSample,
    Selection,
    Transform,
    as_transform,
)

log = logging.getLogger(__name__)

_POSES_KEPT = 8


class FramePoses:
    """Head poses derived from the camera poses of the last ``keep`` frames.

    ``add(t, world_from_camera)`` stores ``world_from_head = world_from_camera @ inv(head_from_camera)`` at
    frame time t; ``at(t)`` interpolates between the stored poses (lerp + slerp) and holds the nearest end
    pose outside them, since sinks receive no head poses of their own (see the module docstring).
    """

    def __init__(self, head_from_camera: Transform, keep: int = _POSES_KEPT) -> None:
        self.camera_from_head = invert_transform(as_transform(head_from_camera, "head_from_camera"))
        self._times: deque[int] = deque(maxlen=keep)
        self._poses: deque[Transform] = deque(maxlen=keep)
        self._track: PoseTrack | None = None

    def add(self, timestamp_ns: int, world_from_camera: Transform) -> Transform:
        """Store the head pose of a frame; returns it (4x4 float64). Out-of-order frames are not stored."""
        world_from_head = np.asarray(world_from_camera, dtype=np.float64) @ self.camera_from_head
        if not self._times or timestamp_ns > self._times[-1]:
            self._times.append(timestamp_ns)
            self._poses.append(world_from_head)
            self._track = None
        return world_from_head

    def at(self, timestamp_ns: int) -> Transform | None:
        """4x4 float64 ``world_from_head`` at ``timestamp_ns``, or None before the first frame with a pose."""
        if not self._times:
            return None
        if self._track is None:
            self._track = PoseTrack(np.array(self._times, dtype=np.int64), np.stack(list(self._poses)))
        pose = self._track.at(timestamp_ns, max_extrapolation_ns=2**62)
        return pose if pose is not None else self._poses[-1]


class MaskCarrier:
    """A keyframe mask lifted to world points once, to be drawn on later frames taken from other poses.

    ``mask`` HxW bool and ``depth_m`` HxW float32 (metres along +z, 0 = none) of the keyframe, taken at
    ``world_from_camera`` (4x4 float64). At most ``max_points`` masked pixels are lifted, on a regular grid of
    ``step`` pixels.
    """

    def __init__(
        self,
        mask: npt.NDArray[np.bool_],
        depth_m: npt.NDArray[np.float32],
        camera: CameraModel,
        world_from_camera: Transform,
        max_points: int = 12_000,
    ) -> None:
        from xrseg.lift.rays import ray_grid

        self.camera = camera
        valid = np.asarray(mask, dtype=bool) & np.isfinite(depth_m) & (depth_m > 0)
        count = int(np.count_nonzero(valid))
        self.step = max(1, math.ceil(math.sqrt(count / max_points))) if count else 1
        if self.step > 1:
            grid = np.zeros_like(valid)
            grid[:: self.step, :: self.step] = True
            valid &= grid
        rows, cols = np.nonzero(valid)
        z = depth_m[rows, cols].astype(np.float64)
        normalised = ray_grid(camera)[rows, cols].astype(np.float64)
        points_camera = np.column_stack([normalised * z[:, None], z])
        self.points_world_m = transform_points(world_from_camera, points_camera)

    def mask_in(self, world_from_camera: Transform) -> npt.NDArray[np.bool_]:
        """HxW bool: the lifted points projected into a camera at ``world_from_camera``, holes closed."""
        height, width = self.camera.height_px, self.camera.width_px
        out = np.zeros((height, width), dtype=np.uint8)
        if self.points_world_m.shape[0] == 0:
            return out.astype(bool)
        pixels, _ = project_points(
            self.camera, transform_points(invert_transform(world_from_camera), self.points_world_m)
        )
        with np.errstate(invalid="ignore"):
            cols = np.rint(pixels[:, 0])
            rows = np.rint(pixels[:, 1])
            ok = (
                np.isfinite(cols)
                & np.isfinite(rows)
                & (cols >= 0)
                & (cols < width)
                & (rows >= 0)
                & (rows < height)
            )
        out[rows[ok].astype(np.intp), cols[ok].astype(np.intp)] = 1
        size = self.step + 2
        closed = np.asarray(cv2.morphologyEx(out, cv2.MORPH_CLOSE, np.ones((size, size), np.uint8)))
        if self.step > 1:
            closed = np.asarray(cv2.dilate(closed, np.ones((self.step, self.step), np.uint8)))
        return closed.astype(bool)


@dataclass
class _Shown:
    selection: Selection
    keyframe: Frame
    world_from_camera: Transform
    carrier: MaskCarrier | None = None
    prompts_world_m: npt.NDArray[np.float64] | None = None


class OverlayTracker(Sink):
    """Follows the pipeline's gaze, fixations and selections and renders each frame's overlay.

    ``camera`` and ``head_from_camera`` (4x4 float64) are the session's. ``stats`` is the pipeline's
    :class:`~xrseg.select.pipeline.PipelineStats` for the heads-up line (it may be set later: ``tracker.stats =
    pipeline.stats``); ``source_label`` names the gaze source there (e.g. "replay tabletop-small", "openxr").
    See the module docstring for how each layer is placed.
    """

    def __init__(
        self,
        camera: CameraModel,
        head_from_camera: Transform,
        *,
        stats: PipelineStats | None = None,
        source_label: str = "",
        trail_s: float = 0.5,
        fixation_hold_s: float = 1.0,
        fallback_depth_m: float = 1.0,
        max_mask_points: int = 12_000,
    ) -> None:
        self.camera = camera
        self.head_from_camera = as_transform(head_from_camera, "head_from_camera")
        self.stats = stats
        self.source_label = source_label
        self.trail_ns = int(trail_s * 1e9)
        self.fixation_hold_ns = int(fixation_hold_s * 1e9)
        self.fallback_depth_m = fallback_depth_m
        self.max_mask_points = max_mask_points
        self.last_timestamp_ns: int | None = None
        self.selections = 0
        self.rejected = 0
        self.drops = 0
        self._gaze: deque[GazeSample] = deque()
        self.head_poses = FramePoses(self.head_from_camera)
        self._fixation: Fixation | None = None
        self._shown: _Shown | None = None
        self._seen_ids: set[int] = set()
        self.gaze_depth_source = "no gaze"
        """How the cursor's distance was found on the last rendered frame (for the heads-up line)."""

    # ------------------------------------------------------------------ sink

    def on_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        self._advance(frame.timestamp_ns)
        if world_from_camera is not None:
            self.head_poses.add(frame.timestamp_ns, world_from_camera)

    def on_gaze(self, sample: GazeSample, filtered: GazeSample) -> None:
        self._advance(sample.timestamp_ns)
        self._gaze.append(sample)
        while self._gaze and sample.timestamp_ns - self._gaze[0].timestamp_ns > self.trail_ns:
            self._gaze.popleft()

    def on_fixation(self, fixation: Fixation) -> None:
        self._fixation = fixation

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        self._advance(selection.timestamp_ns)
        if selection.selection_id not in self._seen_ids:
            self._seen_ids.add(selection.selection_id)
            self.selections += 1
        self._shown = _Shown(selection, keyframe, np.asarray(world_from_camera, dtype=np.float64))

    def on_reject(self, selection: Selection) -> None:
        self.rejected += 1
        if self._shown is not None and self._shown.selection.selection_id == selection.selection_id:
            self._shown = None

    def on_drop(self, drop: Drop) -> None:
        self.drops += 1

    def _advance(self, timestamp_ns: int) -> None:
        if self.last_timestamp_ns is None or timestamp_ns > self.last_timestamp_ns:
            self.last_timestamp_ns = timestamp_ns

    # ------------------------------------------------------------------ layers

    def world_from_head_at(self, timestamp_ns: int) -> Transform | None:
        """4x4 float64 head pose at ``timestamp_ns`` from the frames' camera poses (see :class:`FramePoses`)."""
        return self.head_poses.at(timestamp_ns)

    def layers(self, frame: Frame, world_from_camera: Transform | None) -> OverlayLayers:
        """What to draw on ``frame`` taken at ``world_from_camera`` (None: no gaze or fixation can be placed)."""
        gaze_xy: tuple[float, float] | None = None
        trail: npt.NDArray[np.float64] | None = None
        fixation: FixationMark | None = None
        self.gaze_depth_source = "no head pose" if world_from_camera is None else "no gaze"
        if world_from_camera is not None:
            gaze_xy, trail = self._gaze_layer(frame, world_from_camera)
            fixation = self._fixation_layer(frame, world_from_camera)
        return OverlayLayers(
            gaze_xy=gaze_xy,
            trail_xy=trail,
            fixation=fixation,
            mask=self._mask_layer(frame, world_from_camera),
            hud=self.hud_text(),
        )

    def render(self, frame: Frame, world_from_camera: Transform | None) -> npt.NDArray[np.uint8]:
        """HxWx3 uint8 RGB: ``frame.rgb`` with its overlay."""
        return render_overlay(frame.rgb, self.layers(frame, world_from_camera))

    def _gaze_layer(
        self, frame: Frame, world_from_camera: Transform
    ) -> tuple[tuple[float, float] | None, npt.NDArray[np.float64] | None]:
        usable = [s for s in self._gaze if s.usable]
        if not usable or abs(frame.timestamp_ns - usable[-1].timestamp_ns) > self.trail_ns:
            self.gaze_depth_source = "gaze invalid" if self._gaze else "no gaze"
            return None, None
        newest = usable[-1]
        world_from_head = self.world_from_head_at(newest.timestamp_ns)
        if world_from_head is None:
            return None, None
        projector = GazeProjector(world_from_camera, self.camera, frame.depth_m, self.fallback_depth_m)
        hit = projector.project(newest.ray, world_from_head, newest.vergence_depth_m)
        if hit.depth_source is not None:
            self.gaze_depth_source = f"gaze {hit.depth_source.value}"
        if hit.miss is not None:
            self.gaze_depth_source += f" ({hit.miss.value})"
        range_m = hit.range_m if hit.range_m is not None else self.fallback_depth_m
        flat = GazeProjector(world_from_camera, self.camera, None, range_m)
        trail = np.full((len(usable), 2), np.nan, dtype=np.float64)
        for i, sample in enumerate(usable):
            pose = self.world_from_head_at(sample.timestamp_ns)
            point = flat.project(sample.ray, pose if pose is not None else world_from_head).pixel_xy
            if point is not None:
                trail[i] = point
        return hit.pixel_xy, trail

    def _fixation_layer(self, frame: Frame, world_from_camera: Transform) -> FixationMark | None:
        fixation = self._fixation
        if fixation is None or not 0 <= frame.timestamp_ns - fixation.end_ns <= self.fixation_hold_ns:
            return None
        world_from_head = self.world_from_head_at(fixation.centre_ns)
        if world_from_head is None:
            return None
        projector = GazeProjector(world_from_camera, self.camera, frame.depth_m, self.fallback_depth_m)
        hit = projector.project(GazeRay(fixation.origin_m, fixation.direction), world_from_head)
        if hit.pixel_xy is None:
            return None
        radius_px = self.camera.fx_px * math.tan(math.radians(max(fixation.dispersion_deg, 0.5)))
        return FixationMark(hit.pixel_xy, max(radius_px, 6.0), f"{fixation.duration_ns / 1e6:.0f} ms")

    def _mask_layer(self, frame: Frame, world_from_camera: Transform | None) -> MaskMark | None:
        shown = self._shown
        if shown is None:
            return None
        selection = shown.selection
        mask = selection.mask
        points = np.asarray(selection.prompt_points_xy, dtype=np.float64)
        if (
            frame.index != shown.keyframe.index
            and world_from_camera is not None
            and shown.keyframe.depth_m is not None
        ):
            if shown.carrier is None:
                shown.carrier = MaskCarrier(
                    mask, shown.keyframe.depth_m, self.camera, shown.world_from_camera, self.max_mask_points
                )
                shown.prompts_world_m = self._lift_points(points, shown.keyframe.depth_m, shown.world_from_camera)
            mask = shown.carrier.mask_in(world_from_camera)
            if shown.prompts_world_m is not None:
                camera_points = transform_points(invert_transform(world_from_camera), shown.prompts_world_m)
                points, _ = project_points(self.camera, camera_points)
        if mask.shape != frame.rgb.shape[:2]:
            return None
        label = f"#{selection.selection_id} {selection.score:.2f}"
        if frame.index != shown.keyframe.index:
            label += f" (frame {shown.keyframe.index})"
        return MaskMark(
            mask,
            selection_colour(selection.selection_id),
            label,
            points.astype(np.float32),
            np.asarray(selection.prompt_labels, dtype=np.int32),
        )

    def _lift_points(
        self, points_xy: npt.NDArray[np.float64], depth_m: npt.NDArray[np.float32], world_from_camera: Transform
    ) -> npt.NDArray[np.float64]:
        """Nx3 float64 world points of keyframe pixels (NaN rows where the depth is missing)."""
        from xrseg.lift.rays import ray_grid

        cols = np.clip(np.rint(points_xy[:, 0]), 0, self.camera.width_px - 1).astype(np.intp)
        rows = np.clip(np.rint(points_xy[:, 1]), 0, self.camera.height_px - 1).astype(np.intp)
        z = depth_m[rows, cols].astype(np.float64)
        z[~(np.isfinite(z) & (z > 0))] = np.nan
        normalised = ray_grid(self.camera)[rows, cols].astype(np.float64)
        return transform_points(world_from_camera, np.column_stack([normalised * z[:, None], z]))

    def hud_text(self) -> str:
        """The heads-up line: source, gaze distance source, latencies, drops, selections."""
        parts = [self.source_label] if self.source_label else []
        parts.append(self.gaze_depth_source)
        stats = self.stats
        if stats is not None:
            encode = f"{stats.encode_ms[-1]:.0f} ms" if stats.encode_ms else "-"
            decode = f"{stats.timings[-1].decode_ms:.0f} ms" if stats.timings else "-"
            parts.append(f"enc {encode} dec {decode}")
            parts.append(f"dropped {stats.frames_dropped_by_encoder} fr {sum(stats.drops.values())} picks")
        else:
            parts.append(f"dropped {self.drops} picks")
        parts.append(f"sel {self.selections}")
        return " | ".join(parts)
