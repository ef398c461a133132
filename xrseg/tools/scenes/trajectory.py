"""Natural head motion: slow turns toward the current gaze target, sway and small oscillations.

The head orientation is yaw (about world +y), pitch (about the head's +x) and roll (about its -z), applied as
``R = Ry(yaw) @ Rx(pitch) @ Rz(roll)`` to the OpenXR head axes (+x right, +y up, -z forward): yaw 0, pitch 0
looks along world -z, positive pitch looks up. Each scripted fixation starts a head turn toward a point a
fraction ``head_gain`` of the way from the scene's neutral direction to the target (the eyes do the rest); a
turn is a critically damped second-order step response that settles (95 %) in ``turn_time_s``. The head
rotates about a neck pivot below and behind the eyes, so turns also move the eyes a little. On top: a smooth
translational sway (a few cm, sums of slow sinusoids) and a small angular oscillation.

Everything is a closed-form function of time, so any stream (head poses at 72 Hz, gaze at 120 Hz, frames at
10 Hz) samples exactly the same motion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.types import Transform, Vec3

NECK_TO_EYE_HEAD_M = np.array([0.0, 0.10, -0.08])
"""The cyclopean eye (head origin) relative to the neck pivot, in the head frame: 10 cm up, 8 cm forward."""

SETTLE_FACTOR = 4.744
"""omega * t at which a critically damped step response reaches 95 % of the step."""

_COMPONENTS = 3


def yaw_pitch_towards(direction_world: npt.ArrayLike) -> tuple[float, float]:
    """(yaw, pitch) in radians that point the head's -z axis along a world direction (3 floats)."""
    d = np.asarray(direction_world, dtype=np.float64)
    return math.atan2(-d[0], -d[2]), math.atan2(d[1], math.hypot(d[0], d[2]))


def rotation_from_angles(yaw: npt.ArrayLike, pitch: npt.ArrayLike, roll: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Nx3x3 float64 world_from_head rotations ``Ry(yaw) @ Rx(pitch) @ Rz(roll)`` for N angles (radians)."""
    y, p, r = (np.atleast_1d(np.asarray(a, dtype=np.float64)) for a in (yaw, pitch, roll))
    cy, sy, cp, sp, cr, sr = np.cos(y), np.sin(y), np.cos(p), np.sin(p), np.cos(r), np.sin(r)
    zeros, ones = np.zeros_like(y), np.ones_like(y)
    ry = np.stack(
        [np.stack([cy, zeros, sy], -1), np.stack([zeros, ones, zeros], -1), np.stack([-sy, zeros, cy], -1)], 1
    )
    rx = np.stack(
        [np.stack([ones, zeros, zeros], -1), np.stack([zeros, cp, -sp], -1), np.stack([zeros, sp, cp], -1)], 1
    )
    rz = np.stack(
        [np.stack([cr, -sr, zeros], -1), np.stack([sr, cr, zeros], -1), np.stack([zeros, zeros, ones], -1)], 1
    )
    result: npt.NDArray[np.float64] = ry @ rx @ rz
    return result


@dataclass(frozen=True)
class HeadTurn:
    """From ``start_ns`` the head turns toward (``yaw_rad``, ``pitch_rad``)."""

    start_ns: int
    yaw_rad: float
    pitch_rad: float


@dataclass(frozen=True)
class MotionNoise:
    """The random but smooth part of head motion, drawn once per session.

    Each array is 3 x K (3 axes, K sinusoids): sway in metres along world x, y, z and oscillation in radians of
    yaw, pitch, roll, with frequencies in Hz and phases in radians.
    """

    sway_amp_m: npt.NDArray[np.float64]
    sway_freq_hz: npt.NDArray[np.float64]
    sway_phase_rad: npt.NDArray[np.float64]
    osc_amp_rad: npt.NDArray[np.float64]
    osc_freq_hz: npt.NDArray[np.float64]
    osc_phase_rad: npt.NDArray[np.float64]

    @classmethod
    def draw(cls, rng: np.random.Generator, sway_m: float, oscillation_deg: float) -> MotionNoise:
        """Sway peaks at about ``sway_m`` (half that vertically) and oscillation at ``oscillation_deg``."""

        def amplitudes(total: float, axis_scale: tuple[float, float, float]) -> npt.NDArray[np.float64]:
            weights = rng.uniform(0.3, 1.0, size=(3, _COMPONENTS))
            weights /= weights.sum(axis=1, keepdims=True)
            return weights * total * np.asarray(axis_scale)[:, None]

        return cls(
            sway_amp_m=amplitudes(sway_m, (1.0, 0.4, 0.8)),
            sway_freq_hz=rng.uniform(0.08, 0.5, size=(3, _COMPONENTS)),
            sway_phase_rad=rng.uniform(0.0, 2 * math.pi, size=(3, _COMPONENTS)),
            osc_amp_rad=amplitudes(math.radians(oscillation_deg), (1.0, 0.8, 0.5)),
            osc_freq_hz=rng.uniform(0.25, 1.5, size=(3, _COMPONENTS)),
            osc_phase_rad=rng.uniform(0.0, 2 * math.pi, size=(3, _COMPONENTS)),
        )

    @classmethod
    def none(cls) -> MotionNoise:
        zeros = np.zeros((3, _COMPONENTS))
        return cls(zeros, zeros, zeros, zeros, zeros, zeros)


def _sinusoids(
    t_s: npt.NDArray[np.float64], amp: npt.NDArray, freq: npt.NDArray, phase: npt.NDArray
) -> npt.NDArray:
    """Nx3 sums of sinusoids (zero at t = 0 is not required: a constant offset is part of the motion)."""
    angles = 2 * math.pi * freq[None, :, :] * t_s[:, None, None] + phase[None, :, :]
    result: npt.NDArray[np.float64] = np.sum(amp[None, :, :] * np.sin(angles), axis=2)
    return result


class HeadTrajectory:
    """world_from_head as a function of time.

    ``eye_nominal_m`` (3 float64, world) is where the eye is with the head at (``initial_yaw_rad``,
    ``initial_pitch_rad``); ``turns`` must be in time order; ``t0_ns`` is the session start (sinusoid phase 0).
    """

    def __init__(
        self,
        eye_nominal_m: Vec3,
        initial_yaw_rad: float,
        initial_pitch_rad: float,
        turns: Sequence[HeadTurn],
        turn_time_s: float,
        noise: MotionNoise,
        t0_ns: int,
    ) -> None:
        self.eye_nominal_m = np.asarray(eye_nominal_m, dtype=np.float64)
        self.turns = tuple(turns)
        self.t0_ns = int(t0_ns)
        self.noise = noise
        self._omega = SETTLE_FACTOR / turn_time_s
        self._initial = np.array([initial_yaw_rad, initial_pitch_rad])
        rotation = rotation_from_angles(initial_yaw_rad, initial_pitch_rad, 0.0)[0]
        self._neck_m = self.eye_nominal_m - rotation @ NECK_TO_EYE_HEAD_M
        steps = []
        previous = self._initial.copy()
        for turn in self.turns:
            target = np.array([turn.yaw_rad, turn.pitch_rad])
            target[0] = previous[0] + (target[0] - previous[0] + math.pi) % (2 * math.pi) - math.pi
            steps.append(target - previous)
            previous = target
        self._starts_ns = np.array([t.start_ns for t in self.turns], dtype=np.int64)
        self._steps = np.array(steps, dtype=np.float64).reshape(-1, 2)

    def angles(self, timestamps_ns: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Nx3 float64 (yaw, pitch, roll) radians at N int64 timestamps."""
        t = np.atleast_1d(np.asarray(timestamps_ns, dtype=np.int64))
        result = np.tile(np.append(self._initial, 0.0), (t.size, 1))
        if self._steps.size:
            tau = (t[:, None] - self._starts_ns[None, :]).astype(np.float64) * 1e-9 * self._omega
            tau = np.clip(tau, 0.0, None)
            response = 1.0 - (1.0 + tau) * np.exp(-tau)
            result[:, :2] += response @ self._steps
        t_s = (t - self.t0_ns).astype(np.float64) * 1e-9
        noise = self.noise
        result += _sinusoids(t_s, noise.osc_amp_rad, noise.osc_freq_hz, noise.osc_phase_rad)
        return result

    def world_from_head(self, timestamps_ns: npt.ArrayLike) -> npt.NDArray[np.float64]:
        """Nx4x4 float64 world_from_head transforms (head origin = cyclopean eye) at N int64 timestamps."""
        t = np.atleast_1d(np.asarray(timestamps_ns, dtype=np.int64))
        angles = self.angles(t)
        rotations = rotation_from_angles(angles[:, 0], angles[:, 1], angles[:, 2])
        t_s = (t - self.t0_ns).astype(np.float64) * 1e-9
        noise = self.noise
        neck = self._neck_m[None, :] + _sinusoids(t_s, noise.sway_amp_m, noise.sway_freq_hz, noise.sway_phase_rad)
        eyes = neck + rotations @ NECK_TO_EYE_HEAD_M
        result = np.tile(np.eye(4), (t.size, 1, 1))
        result[:, :3, :3] = rotations
        result[:, :3, 3] = eyes
        return result

    def pose_at(self, timestamp_ns: int) -> Transform:
        """One 4x4 float64 world_from_head."""
        result: Transform = self.world_from_head(np.array([timestamp_ns]))[0]
        return result
