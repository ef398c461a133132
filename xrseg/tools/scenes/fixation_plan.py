"""Planning a scripted scanpath: fixations on visible objects and the head trajectory that goes with them.

:func:`plan_fixations` picks, fixation by fixation, an object and a target point on its visible surface near its
centre (a ray from the eye toward the object's centre, or toward nearby points when the centre is hidden, must
hit that object first). A target is accepted only when the eye sees it at the fixation's start, middle and end,
it is within ``max_view_angle_deg`` of straight ahead, and the camera frame nearest the fixation centre shows the
object on a 5x5 pixel patch around the target's projection. Each fixation also starts a head turn (see
:mod:`xrseg.tools.scenes.trajectory`), so planning and head motion are built together.
"""

from __future__ import annotations

import enum
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.geometry import in_image, invert_transform, project_points
from xrseg.tools.scenes.layout import SceneLayout, SceneObject
from xrseg.tools.scenes.recipe import ScanpathSpec, TrajectorySpec
from xrseg.tools.scenes.render import Renderer
from xrseg.tools.scenes.trajectory import HeadTrajectory, HeadTurn, MotionNoise, yaw_pitch_towards
from xrseg.types import Transform, Vec3

logger = logging.getLogger(__name__)

T0_NS = 1_000_000_000
"""Timestamp of the first sample of every synthetic session (1 s on the session's monotonic clock)."""

PATCH_RADIUS_PX = 2
"""The target's projection must lie on a (2r+1) x (2r+1) patch of the object's pixels."""

_FORWARD_HEAD = np.array([0.0, 0.0, -1.0])


def stream_timestamps(t0_ns: int, duration_s: float, rate_hz: float) -> npt.NDArray[np.int64]:
    """N int64 strictly increasing timestamps ``t0 + round(i * 1e9 / rate)`` covering [t0, t0 + duration)."""
    count = max(1, math.ceil(duration_s * rate_hz - 1e-9))
    stamps = t0_ns + np.rint(np.arange(count) * (1e9 / rate_hz)).astype(np.int64)
    return stamps


def saccade_duration_ms(amplitude_deg: float, limits_ms: tuple[float, float]) -> float:
    """Main-sequence duration (Carpenter: 21 ms + 2.2 ms per degree), clipped to ``limits_ms``."""
    return float(np.clip(21.0 + 2.2 * amplitude_deg, limits_ms[0], limits_ms[1]))


def minimum_jerk(progress: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Fraction of the movement done at fraction ``progress`` (0..1) of its time: 10t^3 - 15t^4 + 6t^5.

    Its derivative is the bell-shaped velocity profile of a saccade, peaking at 1.875 x the mean velocity.
    """
    t = np.clip(np.asarray(progress, dtype=np.float64), 0.0, 1.0)
    result: npt.NDArray[np.float64] = t**3 * (10.0 - 15.0 * t + 6.0 * t * t)
    return result


def _unit(v: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    result: npt.NDArray[np.float64] = v / np.linalg.norm(v, axis=-1, keepdims=True)
    return result


@dataclass(frozen=True)
class ScriptedFixation:
    """One planned fixation: the saccade toward it starts at ``saccade_start_ns`` (== ``start_ns`` for the
    first), the eye rests on ``target_world_m`` (3 float64, a visible surface point of ``object_id``) from
    ``start_ns`` to ``end_ns``."""

    saccade_start_ns: int
    start_ns: int
    end_ns: int
    object_id: int
    target_world_m: Vec3

    @property
    def centre_ns(self) -> int:
        return (self.start_ns + self.end_ns) // 2


@dataclass(frozen=True)
class VisibilityContext:
    """What a target must be visible to: the renderer, the camera rig and the frame timestamps."""

    renderer: Renderer
    head_from_camera: Transform
    frame_timestamps_ns: npt.NDArray[np.int64]
    max_view_angle_deg: float


def _seen_from_eye(ctx: VisibilityContext, world_from_head: Transform, target: Vec3, object_id: int) -> bool:
    eye = world_from_head[:3, 3]
    offset = target - eye
    distance = float(np.linalg.norm(offset))
    direction = offset / distance
    in_head = world_from_head[:3, :3].T @ direction
    angle = math.degrees(math.acos(float(np.clip(in_head @ _FORWARD_HEAD, -1.0, 1.0))))
    if angle > ctx.max_view_angle_deg:
        return False
    hits = ctx.renderer.cast(eye[None, :], direction[None, :])
    return int(hits.instance_ids[0]) == object_id and abs(float(hits.distance_m[0]) - distance) < 0.004


def nearest_frame_index(frame_timestamps_ns: npt.NDArray[np.int64], timestamp_ns: int) -> int:
    """Index of the frame timestamp nearest ``timestamp_ns`` (the earlier one on a tie)."""
    index = int(np.searchsorted(frame_timestamps_ns, timestamp_ns))
    if index == 0:
        return 0
    if index >= frame_timestamps_ns.size:
        return int(frame_timestamps_ns.size - 1)
    before, after = frame_timestamps_ns[index - 1], frame_timestamps_ns[index]
    return index - 1 if timestamp_ns - before <= after - timestamp_ns else index


def target_pixel(
    ctx: VisibilityContext, world_from_head: Transform, target: Vec3
) -> tuple[npt.NDArray[np.float64], Transform] | None:
    """(2 float64 (x, y) pixel, world_from_camera) of a world point, or None when off the image."""
    world_from_camera = world_from_head @ ctx.head_from_camera
    camera_point = (
        invert_transform(world_from_camera)[:3, :3] @ target + invert_transform(world_from_camera)[:3, 3]
    )
    pixels, _ = project_points(ctx.renderer.camera, camera_point[None, :])
    if not bool(in_image(ctx.renderer.camera, pixels)[0]):
        return None
    return pixels[0], world_from_camera


def _seen_by_camera(ctx: VisibilityContext, world_from_head: Transform, target: Vec3, object_id: int) -> bool:
    found = target_pixel(ctx, world_from_head, target)
    if found is None:
        return False
    pixel, world_from_camera = found
    camera = ctx.renderer.camera
    x, y = round(float(pixel[0])), round(float(pixel[1]))
    r = PATCH_RADIUS_PX
    if not (r <= x < camera.width_px - r and r <= y < camera.height_px - r):
        return False
    patch = ctx.renderer.pixel_directions[y - r : y + r + 1, x - r : x + r + 1].reshape(-1, 3)
    directions = patch @ world_from_camera[:3, :3].T
    hits = ctx.renderer.cast(np.broadcast_to(world_from_camera[:3, 3], directions.shape), directions)
    return bool(np.all(hits.instance_ids == object_id))


def _aim_points(obj: SceneObject, eye: Vec3) -> list[Vec3]:
    """The object's centre, then rings of points around it across the line of sight (metres, world)."""
    centre = obj.centre_m
    view = _unit(centre - eye)
    side = _unit(np.cross(view, np.array([0.0, 1.0, 0.0])))
    up = np.cross(side, view)
    points = [centre]
    for fraction in (0.15, 0.3):
        for k in range(8):
            angle = 2 * math.pi * k / 8
            points.append(centre + obj.size_m * fraction * (math.cos(angle) * side + math.sin(angle) * up))
    return points


def _seen_throughout(ctx: VisibilityContext, poses: npt.NDArray[np.float64], target: Vec3, object_id: int) -> bool:
    """``poses`` 4x4x4 float64 world_from_head at a fixation's start, middle and end and at the nearest camera
    frame: the eye sees ``target`` on ``object_id`` at the first three, the camera at the fourth."""
    return all(_seen_from_eye(ctx, pose, target, object_id) for pose in poses[:3]) and _seen_by_camera(
        ctx, poses[3], target, object_id
    )


def find_target_point(
    ctx: VisibilityContext, obj: SceneObject, trajectory: HeadTrajectory, start_ns: int, end_ns: int
) -> Vec3 | None:
    """A visible surface point of ``obj`` near its centre for a fixation from ``start_ns`` to ``end_ns``."""
    centre_ns = (start_ns + end_ns) // 2
    frame_ns = int(ctx.frame_timestamps_ns[nearest_frame_index(ctx.frame_timestamps_ns, centre_ns)])
    poses = trajectory.world_from_head(np.array([start_ns, centre_ns, end_ns, frame_ns], dtype=np.int64))
    eye = poses[1][:3, 3]
    for aim in _aim_points(obj, eye):
        direction = _unit(aim - eye)
        hits = ctx.renderer.cast(eye[None, :], direction[None, :])
        if int(hits.instance_ids[0]) != obj.object_id:
            continue
        target = eye + direction * float(hits.distance_m[0])
        if _seen_throughout(ctx, poses, target, obj.object_id):
            return target
    return None


def target_visible(ctx: VisibilityContext, fixation: ScriptedFixation, trajectory: HeadTrajectory) -> bool:
    """Re-check a planned fixation against a (final) trajectory, as :func:`find_target_point` did."""
    frame_ns = int(ctx.frame_timestamps_ns[nearest_frame_index(ctx.frame_timestamps_ns, fixation.centre_ns)])
    stamps = np.array([fixation.start_ns, fixation.centre_ns, fixation.end_ns, frame_ns], dtype=np.int64)
    poses = trajectory.world_from_head(stamps)
    target = fixation.target_world_m
    return _seen_throughout(ctx, poses, target, fixation.object_id)


def _head_angles(eye: Vec3, point: Vec3, neutral: tuple[float, float], gain: float) -> tuple[float, float]:
    yaw, pitch = yaw_pitch_towards(point - eye)
    d_yaw = (yaw - neutral[0] + math.pi) % (2 * math.pi) - math.pi
    return neutral[0] + gain * d_yaw, neutral[1] + gain * (pitch - neutral[1])


def _angle_deg(a: Vec3, b: Vec3) -> float:
    cosine = float(np.clip(_unit(a) @ _unit(b), -1.0, 1.0))
    return math.degrees(math.acos(cosine))


@dataclass(frozen=True)
class _Plan:
    """What stays fixed while :func:`plan_fixations` plans one fixation after another."""

    ctx: VisibilityContext
    scanpath: ScanpathSpec
    motion: TrajectorySpec
    noise: MotionNoise
    t0_ns: int
    t_end_ns: int
    eye: Vec3
    neutral: tuple[float, float]


@dataclass(frozen=True)
class _Step:
    """One accepted fixation with the head trajectory, head turns and initial head angles that go with it."""

    fixation: ScriptedFixation
    trajectory: HeadTrajectory
    turns: list[HeadTurn]
    initial: tuple[float, float]


class _Stop(enum.Enum):
    OUT_OF_TIME = "too little time left for one more fixation"
    NOTHING_VISIBLE = "no object in the order is visible"


def plan_fixations(
    layout: SceneLayout,
    ctx: VisibilityContext,
    scanpath: ScanpathSpec,
    motion: TrajectorySpec,
    noise: MotionNoise,
    t0_ns: int,
    duration_s: float,
    rng: np.random.Generator,
) -> tuple[tuple[ScriptedFixation, ...], HeadTrajectory]:
    """Plan fixations filling [t0, t0 + duration) and the head trajectory that goes with them.

    Raises InputError when no object can be fixated at all (every object hidden or out of view).
    """
    if not layout.objects:
        raise InputError("the scene has no objects to look at")
    eye = layout.eye_nominal_m
    neutral = yaw_pitch_towards(np.mean([obj.centre_m for obj in layout.objects], axis=0) - eye)
    t_end = t0_ns + round(duration_s * 1e9)
    plan = _Plan(ctx, scanpath, motion, noise, t0_ns, t_end, eye, neutral)
    visits = {obj.object_id: 0 for obj in layout.objects}
    fixations: list[ScriptedFixation] = []
    turns: list[HeadTurn] = []
    initial = neutral
    trajectory = HeadTrajectory(eye, *initial, [], motion.turn_time_s, noise, t0_ns)
    cursor = t0_ns
    while cursor < t_end:
        duration_ns = round(float(rng.uniform(*scanpath.fixation_ms)) * 1e6)
        keys = rng.uniform(size=len(layout.objects))
        previous = fixations[-1] if fixations else None
        order = sorted(
            (obj for obj in layout.objects if previous is None or obj.object_id != previous.object_id),
            key=lambda o: (visits[o.object_id], keys[o.object_id - 1]),
        )
        step = _next_step(plan, order, previous, cursor, duration_ns, turns, initial)
        if step is _Stop.OUT_OF_TIME:
            break
        if step is _Stop.NOTHING_VISIBLE:
            if previous is None:
                raise InputError("no object is visible from the viewer: check placement.azimuth_deg and distances")
            logger.warning("no visible object to fixate after %.2f s; the last fixation is held", cursor * 1e-9)
            break
        fixations.append(step.fixation)
        trajectory, turns, initial = step.trajectory, step.turns, step.initial
        visits[step.fixation.object_id] += 1
        cursor = step.fixation.end_ns
    if fixations and fixations[-1].end_ns < t_end:  # too little time left for one more: hold the last one
        last = fixations[-1]
        fixations[-1] = ScriptedFixation(
            last.saccade_start_ns, last.start_ns, t_end, last.object_id, last.target_world_m
        )
    for fixation in fixations:
        if not target_visible(ctx, fixation, trajectory):
            logger.warning(
                "fixation on object %d at %d ns is not fully visible", fixation.object_id, fixation.start_ns
            )
    return tuple(fixations), trajectory


def _next_step(
    plan: _Plan,
    order: Sequence[SceneObject],
    previous: ScriptedFixation | None,
    cursor_ns: int,
    duration_ns: int,
    turns: list[HeadTurn],
    initial: tuple[float, float],
) -> _Step | _Stop:
    """The first object in ``order`` that can be fixated after a saccade starting at ``cursor_ns``."""
    eye, scanpath, motion = plan.eye, plan.scanpath, plan.motion
    fix_min_ns = round(scanpath.fixation_ms[0] * 1e6)
    for obj in order:
        angles = _head_angles(eye, obj.centre_m, plan.neutral, motion.head_gain)
        if previous is None:
            start_ns, start_initial = plan.t0_ns, angles
        else:
            amplitude = _angle_deg(previous.target_world_m - eye, obj.centre_m - eye)
            start_ns = cursor_ns + round(saccade_duration_ms(amplitude, scanpath.saccade_ms) * 1e6)
            start_initial = initial
        end_ns = min(start_ns + duration_ns, plan.t_end_ns)
        if end_ns - start_ns < fix_min_ns:
            return _Stop.OUT_OF_TIME
        candidate_turns = [*turns, HeadTurn(cursor_ns, *angles)]
        candidate = HeadTrajectory(
            eye, *start_initial, candidate_turns, motion.turn_time_s, plan.noise, plan.t0_ns
        )
        target = find_target_point(plan.ctx, obj, candidate, start_ns, end_ns)
        if target is not None:
            fixation = ScriptedFixation(cursor_ns, start_ns, end_ns, obj.object_id, target)
            return _Step(fixation, candidate, candidate_turns, start_initial)
    return _Stop.NOTHING_VISIBLE
