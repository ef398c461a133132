"""A pipeline sink that follows what happens and builds the overlay of each frame (:class:`OverlayTracker`).

The window (:mod:`xrseg.sinks.viz.window`) and the video writer (:mod:`xrseg.sinks.viz.video`) build on it.

How things land on a frame:

- Gaze. The cursor is the newest usable raw sample as the pipeline projected it into the frame
  (:attr:`~xrseg.sinks.base.FrameEvent.gaze`: through the frame's depth, then vergence, then the pipeline's
  ``fallback_depth_m``), shown while it is at most ``trail_s`` from the frame. The trail (the last ``trail_s``
  seconds of raw samples, each with the head pose at its own time from the pipeline's pose track,
  :attr:`~xrseg.sinks.base.GazeEvent.world_from_head`) is drawn at the cursor's distance without ray marching,
  which is cheap and close enough.
- Fixation. The latest completed fixation (the detector reports one when it ends), for ``fixation_hold_s``
  after its end, as a ring around the point it looked at (the pipeline's projection of its mean ray into the
  newest frame, :attr:`~xrseg.sinks.base.FixationEvent.projection`, seen from each frame's pose) whose radius
  is its dispersion.
- Selection. The latest selection until it is rejected or replaced. Its mask is in keyframe pixels; on later
  frames it is carried over through the keyframe's depth: the masked pixels (at most ``max_mask_points``,
  on a regular grid) are lifted to the world once, projected into each frame and closed morphologically.
  Occlusion is not modelled. Without depth or poses the keyframe mask is drawn as it is.
- Hover preview (asynchronous mode, :class:`~xrseg.sinks.base.PreviewEvent`): what a press now would select,
  tinted lightly and labelled "preview", carried over like a selection, until a selection or the end of its
  fixation.
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

from xrseg.geometry import in_image, invert_transform, project_points, transform_points
from xrseg.select.projection import GazeProjector
from xrseg.sinks.base import (
    Drop,
    FixationEvent,
    FrameEvent,
    GazeEvent,
    PipelineStats,
    PreviewEvent,
    SelectionEvent,
    Sink,
)
from xrseg.sinks.viz.overlay import (
    PREVIEW_RGB,
    FixationMark,
    MaskMark,
    OverlayLayers,
    render_overlay,
    selection_colour,
)
from xrseg.types import CameraModel, Frame, Selection, Transform

log = logging.getLogger(__name__)


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

    ``camera`` is the session's. ``stats`` is the pipeline's
    :class:`~xrseg.select.pipeline.PipelineStats` for the heads-up line (it may be set later: ``tracker.stats =
    pipeline.stats``); ``source_label`` names the gaze source there (e.g. "replay tabletop-small", "openxr").
    See the module docstring for how each layer is placed.
    """

    def __init__(
        self,
        camera: CameraModel,
        *,
        stats: PipelineStats | None = None,
        source_label: str = "",
        trail_s: float = 0.5,
        fixation_hold_s: float = 1.0,
        fallback_depth_m: float = 1.0,
        max_mask_points: int = 12_000,
    ) -> None:
        """``fallback_depth_m``: the trail's distance while the cursor has none."""
        self.camera = camera
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
        self._gaze: deque[GazeEvent] = deque()
        self._fixation: FixationEvent | None = None
        self._shown: _Shown | None = None
        self._preview: _Shown | None = None
        """The hover preview: what a press now would select (drawn as an outline, until a selection or the
        fixation's end)."""
        self._seen_ids: set[int] = set()
        self.gaze_depth_source = "no gaze"
        """How the cursor's distance was found on the last rendered frame (for the heads-up line)."""

    # ------------------------------------------------------------------ sink

    def on_frame(self, event: FrameEvent) -> None:
        self._advance(event.frame.timestamp_ns)

    def on_gaze(self, event: GazeEvent) -> None:
        now_ns = event.sample.timestamp_ns
        self._advance(now_ns)
        self._gaze.append(event)
        while self._gaze and now_ns - self._gaze[0].sample.timestamp_ns > self.trail_ns:
            self._gaze.popleft()

    def on_fixation(self, event: FixationEvent) -> None:
        self._fixation = event
        self._preview = None  # its fixation is over

    def on_preview(self, event: PreviewEvent) -> None:
        self._advance(event.candidate.timestamp_ns)
        self._preview = _Shown(event.candidate, event.keyframe, np.asarray(event.world_from_camera, np.float64))

    def on_selection(self, event: SelectionEvent) -> None:
        selection = event.selection
        self._advance(selection.timestamp_ns)
        if selection.selection_id not in self._seen_ids:
            self._seen_ids.add(selection.selection_id)
            self.selections += 1
        self._shown = _Shown(selection, event.keyframe, np.asarray(event.world_from_camera, dtype=np.float64))
        self._preview = None

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

    def layers(self, event: FrameEvent) -> OverlayLayers:
        """What to draw on the event's frame (no camera pose: no gaze or fixation can be placed)."""
        frame, world_from_camera = event.frame, event.world_from_camera
        gaze_xy: tuple[float, float] | None = None
        trail: npt.NDArray[np.float64] | None = None
        fixation: FixationMark | None = None
        self.gaze_depth_source = "no head pose" if world_from_camera is None else "no gaze"
        if world_from_camera is not None:
            gaze_xy, trail = self._gaze_layer(event, world_from_camera)
            fixation = self._fixation_layer(frame, world_from_camera)
        return OverlayLayers(
            gaze_xy=gaze_xy,
            trail_xy=trail,
            fixation=fixation,
            mask=None if self._shown is None else self._mask_layer(self._shown, frame, world_from_camera),
            preview=None if self._preview is None else self._mask_layer(self._preview, frame, world_from_camera),
            hud=self.hud_text(),
        )

    def render(self, event: FrameEvent) -> npt.NDArray[np.uint8]:
        """HxWx3 uint8 RGB: the event's frame with its overlay."""
        return render_overlay(event.frame.rgb, self.layers(event))

    def _gaze_layer(
        self, event: FrameEvent, world_from_camera: Transform
    ) -> tuple[tuple[float, float] | None, npt.NDArray[np.float64] | None]:
        cursor = event.gaze
        if cursor is None or abs(event.frame.timestamp_ns - cursor.sample.timestamp_ns) > self.trail_ns:
            self.gaze_depth_source = "gaze invalid" if self._gaze else "no gaze"
            return None, None
        hit = cursor.projection
        if hit.depth_source is not None:
            self.gaze_depth_source = f"gaze {hit.depth_source.value}"
        if hit.miss is not None:
            self.gaze_depth_source += f" ({hit.miss.value})"
        range_m = hit.range_m if hit.range_m is not None else self.fallback_depth_m
        flat = GazeProjector(world_from_camera, self.camera, None, range_m)
        posed = [g for g in self._gaze if g.sample.usable and g.world_from_head is not None]
        trail = np.full((len(posed), 2), np.nan, dtype=np.float64)
        for i, gaze in enumerate(posed):
            assert gaze.world_from_head is not None
            point = flat.project(gaze.sample.ray, gaze.world_from_head).pixel_xy
            if point is not None:
                trail[i] = point
        return hit.pixel_xy, trail

    def _fixation_layer(self, frame: Frame, world_from_camera: Transform) -> FixationMark | None:
        shown = self._fixation
        if shown is None or shown.projection is None or shown.projection.point_world_m is None:
            return None
        fixation = shown.fixation
        if not 0 <= frame.timestamp_ns - fixation.end_ns <= self.fixation_hold_ns:
            return None
        point_camera = transform_points(
            invert_transform(world_from_camera), np.asarray(shown.projection.point_world_m)
        )
        pixels, _ = project_points(self.camera, point_camera)
        if not in_image(self.camera, pixels)[0]:
            return None
        radius_px = self.camera.fx_px * math.tan(math.radians(max(fixation.dispersion_deg, 0.5)))
        centre_xy = (float(pixels[0, 0]), float(pixels[0, 1]))
        return FixationMark(centre_xy, max(radius_px, 6.0), f"{fixation.duration_ns / 1e6:.0f} ms")

    def _mask_layer(self, shown: _Shown, frame: Frame, world_from_camera: Transform | None) -> MaskMark | None:
        """``shown``'s mask on ``frame``: carried there through its lifted points when it is another frame."""
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
        label = f"#{selection.selection_id} {selection.score:.2f}" if selection.selection_id else "preview"
        if frame.index != shown.keyframe.index:
            label += f" (frame {shown.keyframe.index})"
        return MaskMark(
            mask,
            selection_colour(selection.selection_id) if selection.selection_id else PREVIEW_RGB,
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
