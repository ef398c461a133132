"""Scripted gaze: fixations on visible objects, main-sequence saccades, drift, blinks and tracker error.

Planning (:func:`plan_fixations`, re-exported here) lives in :mod:`xrseg.tools.scenes.fixation_plan`: fixation by
fixation, an object and a visible target point on it, with the head trajectory that goes with them.

Synthesis (:func:`synthesize_gaze`) samples the true gaze at the eye tracker's rate (fixation: toward the
target from the moving eye plus fixational drift; saccade: a minimum-jerk rotation between the two targets,
whose bell-shaped velocity profile follows the main sequence), then adds tracker error: a constant bias of
``accuracy_deg`` in a random direction and isotropic Gaussian noise whose RMS angle is ``precision_deg`` (each
of the two tangent axes has sigma ``precision_deg / sqrt(2)``). Blinks are runs of invalid samples.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.select.gaze_offsets import offset_directions
from xrseg.tools.scenes.fixation_plan import (
    PATCH_RADIUS_PX,
    T0_NS,
    ScriptedFixation,
    VisibilityContext,
    _unit,
    find_target_point,
    minimum_jerk,
    nearest_frame_index,
    plan_fixations,
    saccade_duration_ms,
    stream_timestamps,
    target_pixel,
    target_visible,
)
from xrseg.tools.scenes.recipe import GazeErrorSpec, ScanpathSpec
from xrseg.tools.scenes.trajectory import HeadTrajectory

__all__ = [
    "PATCH_RADIUS_PX",
    "T0_NS",
    "GazeTrack",
    "ScriptedFixation",
    "VisibilityContext",
    "blink_mask",
    "find_target_point",
    "minimum_jerk",
    "nearest_frame_index",
    "plan_fixations",
    "saccade_duration_ms",
    "select_timestamps",
    "stream_timestamps",
    "synthesize_gaze",
    "target_pixel",
    "target_visible",
]


@dataclass(frozen=True)
class GazeTrack:
    """Sampled gaze, true and measured, in the head frame (origin at the cyclopean eye).

    ``timestamps_ns`` N int64; ``true_direction`` Nx3 float64 unit (where the eye really points, drift
    included); ``measured_direction`` Nx3 float64 unit (with tracker error; NaN rows where not valid); ``valid``
    N bool (False during blinks); ``true_distance_m`` N float64 (eye to the looked-at point); ``vergence_depth_m``
    N float64 (noisy, NaN where not valid); ``bias_rad`` (2 float64 (right, up) radians, the accuracy error).
    """

    timestamps_ns: npt.NDArray[np.int64]
    true_direction: npt.NDArray[np.float64]
    measured_direction: npt.NDArray[np.float64]
    valid: npt.NDArray[np.bool_]
    true_distance_m: npt.NDArray[np.float64]
    vergence_depth_m: npt.NDArray[np.float64]
    bias_rad: npt.NDArray[np.float64]


def _drift(count: int, rate_hz: float, rms_deg: float, rng: np.random.Generator) -> npt.NDArray[np.float64]:
    """Nx2 radians: a 2D Ornstein-Uhlenbeck walk with 0.25 s correlation and ``rms_deg`` RMS angle."""
    sigma = math.radians(rms_deg) / math.sqrt(2.0)
    decay = math.exp(-1.0 / (rate_hz * 0.25))
    kicks = rng.normal(0.0, sigma * math.sqrt(1.0 - decay**2), size=(count, 2))
    walk = np.zeros((count, 2))
    walk[0] = rng.normal(0.0, sigma, size=2)
    for i in range(1, count):
        walk[i] = decay * walk[i - 1] + kicks[i]
    return walk


def blink_mask(
    timestamps_ns: npt.NDArray[np.int64], spec: ScanpathSpec, rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """N bool, True inside blinks: Poisson(``blinks_per_min``) blinks of ``blink_ms``, away from the ends."""
    t0, t1 = int(timestamps_ns[0]), int(timestamps_ns[-1])
    duration_s = (t1 - t0) * 1e-9
    count = int(rng.poisson(spec.blinks_per_min * duration_s / 60.0))
    mask = np.zeros(timestamps_ns.size, dtype=bool)
    for _ in range(count):
        length_ns = round(float(rng.uniform(*spec.blink_ms)) * 1e6)
        low, high = t0 + 200_000_000, t1 - 200_000_000 - length_ns
        if high <= low:
            continue
        start = int(rng.integers(low, high))
        mask |= (timestamps_ns >= start) & (timestamps_ns < start + length_ns)
    return mask


def synthesize_gaze(
    fixations: Sequence[ScriptedFixation],
    trajectory: HeadTrajectory,
    timestamps_ns: npt.NDArray[np.int64],
    rate_hz: float,
    scanpath: ScanpathSpec,
    error: GazeErrorSpec,
    rng: np.random.Generator,
) -> GazeTrack:
    """Sample true and measured gaze at ``timestamps_ns`` (N int64) following ``fixations``."""
    if not fixations:
        raise InputError("cannot synthesize gaze without fixations")
    poses = trajectory.world_from_head(timestamps_ns)
    eyes = poses[:, :3, 3]
    targets = np.array([f.target_world_m for f in fixations])
    saccade_starts = np.array([f.saccade_start_ns for f in fixations], dtype=np.int64)
    starts = np.array([f.start_ns for f in fixations], dtype=np.int64)
    index = np.clip(np.searchsorted(saccade_starts, timestamps_ns, side="right") - 1, 0, len(fixations) - 1)
    to_next = targets[index] - eyes
    distance = np.linalg.norm(to_next, axis=1)
    direction_world = to_next / distance[:, None]
    in_saccade = (timestamps_ns < starts[index]) & (index > 0)
    if np.any(in_saccade):
        k = index[in_saccade]
        progress = (timestamps_ns[in_saccade] - saccade_starts[k]) / (starts[k] - saccade_starts[k])
        s = minimum_jerk(progress)
        to_prev = targets[k - 1] - eyes[in_saccade]
        prev_distance = np.linalg.norm(to_prev, axis=1)
        a, b = to_prev / prev_distance[:, None], direction_world[in_saccade]
        omega = np.arccos(np.clip(np.sum(a * b, axis=1), -1.0, 1.0))
        sin_omega = np.where(omega > 1e-9, np.sin(omega), 1.0)
        wa = np.where(omega > 1e-9, np.sin((1 - s) * omega) / sin_omega, 1 - s)
        wb = np.where(omega > 1e-9, np.sin(s * omega) / sin_omega, s)
        direction_world[in_saccade] = _unit(wa[:, None] * a + wb[:, None] * b)
        distance[in_saccade] = (1 - s) * prev_distance + s * distance[in_saccade]
    rotations = poses[:, :3, :3]
    target_head = np.einsum("nji,nj->ni", rotations, direction_world)  # R^T d
    drift = _drift(timestamps_ns.size, rate_hz, scanpath.drift_deg, rng)
    true_direction = offset_directions(target_head, drift)
    phi = float(rng.uniform(0.0, 2 * math.pi))
    bias = math.radians(error.accuracy_deg) * np.array([math.cos(phi), math.sin(phi)])
    sigma = math.radians(error.precision_deg) / math.sqrt(2.0)
    noise = rng.normal(0.0, sigma, size=(timestamps_ns.size, 2))
    measured = offset_directions(true_direction, bias[None, :] + noise)
    vergence = distance + rng.normal(0.0, 1.0, size=distance.size) * scanpath.vergence_noise * distance
    vergence = np.maximum(vergence, 0.05)
    blinking = blink_mask(timestamps_ns, scanpath, rng)
    measured[blinking] = np.nan
    vergence[blinking] = np.nan
    return GazeTrack(
        timestamps_ns=timestamps_ns.copy(),
        true_direction=true_direction,
        measured_direction=measured,
        valid=~blinking,
        true_distance_m=distance,
        vergence_depth_m=vergence,
        bias_rad=bias,
    )


def select_timestamps(fixations: Sequence[ScriptedFixation], before_end_ms: float) -> list[int]:
    """One SELECT time per fixation, ``before_end_ms`` before its end (never before its middle)."""
    lead_ns = round(before_end_ms * 1e6)
    return [max(f.end_ns - lead_ns, f.centre_ns) for f in fixations]
