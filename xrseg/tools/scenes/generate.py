"""From a recipe to a recorded session: plan the scene, render every frame, write every stream.

:func:`plan_scene` is pure (no files): it builds the layout, the head trajectory, the scanpath and the gaze
samples. :func:`write_session` renders the frames and writes the session with
:class:`xrseg.session.writer.SessionWriter`, all streams interleaved in time order as a live recording would
be. Random choices come from independent streams spawned from the recipe's seed (layout, head motion,
scanpath, tracker error), and the writer's wall clock is replaced by a seed-derived one (:func:`created_unix_ns`,
:func:`closed_unix_ns`), so the same recipe and seed give the same session byte for byte, ``closed.json``
included.
"""

from __future__ import annotations

import heapq
import logging
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from xrseg.session.format import FixationTarget, GroundTruthObject, SessionHeader
from xrseg.session.writer import SessionWriter
from xrseg.tools.scenes.layout import SceneLayout, build_layout
from xrseg.tools.scenes.recipe import Recipe
from xrseg.tools.scenes.render import Renderer
from xrseg.tools.scenes.rig import camera_model, head_from_camera
from xrseg.tools.scenes.scanpath import (
    T0_NS,
    GazeTrack,
    ScriptedFixation,
    VisibilityContext,
    plan_fixations,
    select_timestamps,
    stream_timestamps,
    synthesize_gaze,
)
from xrseg.tools.scenes.trajectory import HeadTrajectory, MotionNoise
from xrseg.types import CameraModel, EventKind, Frame, GazeRay, GazeSample, HeadPose, InputEvent, Transform

logger = logging.getLogger(__name__)

CREATED_EPOCH_NS = 1_704_067_200 * 10**9
"""2024-01-01T00:00:00Z: synthetic sessions claim a creation time derived from the seed, never the clock."""

_EYE_ORIGIN = np.zeros(3)


def created_unix_ns(seed: int) -> int:
    """The deterministic ``created_unix_ns`` of a synthetic session: the epoch plus ``seed % 1e6`` seconds."""
    return CREATED_EPOCH_NS + (seed % 1_000_000) * 10**9


def closed_unix_ns(seed: int, duration_s: float) -> int:
    """The deterministic ``closed_unix_ns`` of a synthetic session: its creation time plus its duration."""
    return created_unix_ns(seed) + round(duration_s * 1e9)


@dataclass(frozen=True)
class ScenePlan:
    """Everything about a synthetic session except the rendered images.

    ``frame_timestamps_ns`` and ``head_timestamps_ns`` are int64 arrays; ``select_timestamps_ns`` is empty
    unless the recipe asks for SELECT events.
    """

    recipe: Recipe
    camera: CameraModel
    head_from_camera: Transform
    layout: SceneLayout
    renderer: Renderer
    trajectory: HeadTrajectory
    fixations: tuple[ScriptedFixation, ...]
    gaze: GazeTrack
    frame_timestamps_ns: npt.NDArray[np.int64]
    head_timestamps_ns: npt.NDArray[np.int64]
    select_timestamps_ns: tuple[int, ...]

    def world_from_camera(self, timestamp_ns: int) -> Transform:
        """4x4 float64 camera pose at ``timestamp_ns``."""
        result: Transform = self.trajectory.pose_at(timestamp_ns) @ self.head_from_camera
        return result

    def render_frame(self, index: int) -> tuple[Frame, npt.NDArray[np.uint16]]:
        """(Frame with HxWx3 uint8 rgb and HxW float32 depth_m, HxW uint16 instance ids) of frame ``index``."""
        timestamp_ns = int(self.frame_timestamps_ns[index])
        view = self.renderer.render(self.world_from_camera(timestamp_ns))
        return Frame(index, timestamp_ns, view.rgb, view.depth_m), view.instance_ids

    def gaze_sample(self, index: int) -> GazeSample:
        """The measured gaze sample ``index`` as the eye tracker would report it (head frame)."""
        gaze = self.gaze
        valid = bool(gaze.valid[index])
        direction = gaze.measured_direction[index]
        depth = float(gaze.vergence_depth_m[index]) if valid else None
        origin = _EYE_ORIGIN if valid else np.full(3, np.nan)
        return GazeSample(int(gaze.timestamps_ns[index]), GazeRay(origin, direction), valid, depth)


def plan_scene(recipe: Recipe) -> ScenePlan:
    """Build the scene, head trajectory, scanpath and gaze of ``recipe`` (deterministic for its seed)."""
    layout_seq, motion_seq, scanpath_seq, gaze_seq = np.random.SeedSequence(recipe.seed).spawn(4)
    camera = camera_model(recipe.camera)
    rig = head_from_camera(recipe.camera)
    layout = build_layout(recipe, np.random.default_rng(layout_seq))
    renderer = Renderer(camera, layout.surfaces())
    rates = recipe.rates
    frames = stream_timestamps(T0_NS, recipe.duration_s, rates.frame_hz)
    heads = stream_timestamps(T0_NS, recipe.duration_s, rates.head_hz)
    gaze_stamps = stream_timestamps(T0_NS, recipe.duration_s, rates.gaze_hz)
    noise = MotionNoise.draw(
        np.random.default_rng(motion_seq), recipe.trajectory.sway_m, recipe.trajectory.oscillation_deg
    )
    ctx = VisibilityContext(renderer, rig, frames, recipe.scanpath.max_view_angle_deg)
    fixations, trajectory = plan_fixations(
        layout,
        ctx,
        recipe.scanpath,
        recipe.trajectory,
        noise,
        T0_NS,
        recipe.duration_s,
        np.random.default_rng(scanpath_seq),
    )
    gaze = synthesize_gaze(
        fixations,
        trajectory,
        gaze_stamps,
        rates.gaze_hz,
        recipe.scanpath,
        recipe.gaze_error,
        np.random.default_rng(gaze_seq),
    )
    selects = (
        tuple(select_timestamps(fixations, recipe.scanpath.select_before_end_ms))
        if recipe.scanpath.select_events
        else ()
    )
    logger.info(
        "planned %s: %d objects, %d fixations, %d frames",
        recipe.name,
        len(layout.objects),
        len(fixations),
        frames.size,
    )
    return ScenePlan(recipe, camera, rig, layout, renderer, trajectory, fixations, gaze, frames, heads, selects)


def _header(plan: ScenePlan) -> SessionHeader:
    recipe = plan.recipe
    error = recipe.gaze_error
    description = (
        f"{recipe.description} (synthetic; seed {recipe.seed}, gaze accuracy {error.accuracy_deg:g} deg, "
        f"precision {error.precision_deg:g} deg RMS)"
    ).strip()
    return SessionHeader(
        name=recipe.name,
        camera=plan.camera,
        head_from_camera=plan.head_from_camera,
        source="synthetic",
        rgb_encoding=recipe.output.rgb_encoding,
        jpeg_quality=recipe.output.jpeg_quality,
        jpeg_progressive=recipe.output.jpeg_progressive,
        png_compression=recipe.output.png_compression,
        has_depth=True,
        depth_scale_m=0.001,
        created_unix_ns=created_unix_ns(recipe.seed),
        description=description,
    )


# Order of items sharing a timestamp: poses before gaze before frames before events, as a recorder sees them.
_HEAD, _GAZE, _FRAME, _EVENT = range(4)


def _timeline(plan: ScenePlan) -> Iterator[tuple[int, int, int]]:
    """(timestamp_ns, kind, index) of every streamed item, in time order."""
    streams = [
        ((int(t), _HEAD, i) for i, t in enumerate(plan.head_timestamps_ns)),
        ((int(t), _GAZE, i) for i, t in enumerate(plan.gaze.timestamps_ns)),
        ((int(t), _FRAME, i) for i, t in enumerate(plan.frame_timestamps_ns)),
        ((int(t), _EVENT, i) for i, t in enumerate(plan.select_timestamps_ns)),
    ]
    return heapq.merge(*streams)


def write_session(
    plan: ScenePlan, out: str | Path, *, overwrite: bool = False, progress: bool | None = None
) -> Path:
    """Render every frame of ``plan`` and write the session to the directory ``out``; returns its path.

    ``progress`` shows a tqdm bar over frames (default: only when stderr is a terminal).
    """
    path = Path(out)
    show = sys.stderr.isatty() if progress is None else progress
    closed_ns = closed_unix_ns(plan.recipe.seed, plan.recipe.duration_s)
    with SessionWriter(path, _header(plan), overwrite=overwrite, clock_ns=lambda: closed_ns) as writer:
        for obj in plan.layout.objects:
            writer.add_object(GroundTruthObject(obj.object_id, obj.name, obj.category), obj.mesh)
        for fixation in plan.fixations:
            point = tuple(float(v) for v in fixation.target_world_m)
            target = FixationTarget(
                fixation.start_ns, fixation.end_ns, fixation.object_id, (point[0], point[1], point[2])
            )
            writer.write_fixation_target(target)
        poses = plan.trajectory.world_from_head(plan.head_timestamps_ns)
        bar = tqdm(total=int(plan.frame_timestamps_ns.size), desc=plan.recipe.name, unit="frame", disable=not show)
        with bar:
            for timestamp_ns, kind, index in _timeline(plan):
                if kind == _HEAD:
                    writer.write_head_pose(HeadPose(timestamp_ns, poses[index]))
                elif kind == _GAZE:
                    writer.write_gaze(plan.gaze_sample(index))
                elif kind == _EVENT:
                    writer.write_event(InputEvent(timestamp_ns, EventKind.SELECT))
                else:
                    frame, instance_ids = plan.render_frame(index)
                    writer.write_frame(frame, instance_ids)
                    bar.update(1)
    logger.info("wrote %s", path)
    return path


def generate_session(
    recipe: Recipe, out: str | Path, *, overwrite: bool = False, progress: bool | None = None
) -> ScenePlan:
    """Plan ``recipe`` and write it as a session at ``out``; returns the plan (the ground truth)."""
    plan = plan_scene(recipe)
    write_session(plan, out, overwrite=overwrite, progress=progress)
    return plan
