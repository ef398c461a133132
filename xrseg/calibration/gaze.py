"""The eye tracker's angular offset in the head frame, from fixations on known targets in the camera image."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xrseg import jsonsafe
from xrseg.calibration.profile import MAX_CALIBRATION_BYTES, _number
from xrseg.errors import CalibrationError
from xrseg.geometry import angle_between_deg, unproject_pixels
from xrseg.types import CameraModel, Frame, GazeSample, Transform


@dataclass(frozen=True)
class GazeTarget:
    """From ``start_ns`` to ``end_ns`` the wearer fixated the point at (``x_px``, ``y_px``) in the camera image."""

    start_ns: int
    end_ns: int
    x_px: float
    y_px: float


@dataclass(frozen=True)
class GazeObservation:
    target: GazeTarget
    measured_direction: npt.NDArray[np.float64]
    """3 float64 unit vector: the mean tracked gaze direction (head frame)."""
    target_direction: npt.NDArray[np.float64]
    """3 float64 unit vector: from the mean gaze origin to the target (head frame)."""
    sample_count: int


@dataclass(frozen=True)
class GazeRotationFit:
    """``rotation`` (3x3 float64) maps measured gaze directions onto target directions (head frame)."""

    rotation: npt.NDArray[np.float64]
    residuals_before_deg: npt.NDArray[np.float64]
    residuals_after_deg: npt.NDArray[np.float64]

    @property
    def angle_deg(self) -> float:
        """The size of the correction rotation in degrees."""
        cosine = (float(np.trace(self.rotation)) - 1.0) / 2.0
        return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))

    @property
    def rms_after_deg(self) -> float:
        return float(np.sqrt(np.mean(self.residuals_after_deg**2)))


def load_gaze_targets(path: str | Path) -> list[GazeTarget]:
    """Read ``{"targets": [{"start_ns": .., "end_ns": .., "x_px": .., "y_px": ..}, ...]}``."""
    path = Path(path)
    value = jsonsafe.load_file(path, MAX_CALIBRATION_BYTES, f"gaze targets {path}", CalibrationError)
    entries = value.get("targets") if isinstance(value, Mapping) else None
    if not isinstance(entries, list) or not entries:
        raise CalibrationError(f"gaze targets {path}: expected an object with a non-empty 'targets' list")
    targets = []
    for index, entry in enumerate(entries):
        where = f"gaze targets {path}: target {index}"
        if not isinstance(entry, Mapping) or any(k not in entry for k in ("start_ns", "end_ns", "x_px", "y_px")):
            raise CalibrationError(f"{where} needs start_ns, end_ns, x_px and y_px")
        start, end = entry["start_ns"], entry["end_ns"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (start, end)) or end <= start:
            raise CalibrationError(f"{where}: start_ns/end_ns must be integers with end_ns > start_ns")
        targets.append(
            GazeTarget(start, end, _number(entry["x_px"], "x_px", path), _number(entry["y_px"], "y_px", path))
        )
    return targets


def gaze_observations(
    items: Iterable[object],
    targets: Sequence[GazeTarget],
    camera: CameraModel,
    head_from_camera: Transform,
    distance_m: float = 1.0,
    min_samples: int = 5,
) -> list[GazeObservation]:
    """Pair each target with the mean usable gaze sample inside its time window.

    ``items`` is any Source's items (GazeSample and Frame are used). The target point is the camera ray through
    the target pixel at the depth image's value there (nearest frame to the window's middle) or ``distance_m``.
    Targets with fewer than ``min_samples`` usable samples are skipped.
    """
    samples: list[list[GazeSample]] = [[] for _ in targets]
    depth_at: list[tuple[int, float] | None] = [None for _ in targets]
    for item in items:
        for index, target in enumerate(targets):
            if (
                isinstance(item, GazeSample)
                and target.start_ns <= item.timestamp_ns <= target.end_ns
                and item.usable
            ):
                samples[index].append(item)
            elif isinstance(item, Frame) and item.depth_m is not None:
                middle = (target.start_ns + target.end_ns) // 2
                distance = abs(item.timestamp_ns - middle)
                best = depth_at[index]
                if best is None or distance < best[0]:
                    x, y = round(target.x_px), round(target.y_px)
                    if 0 <= y < item.height_px and 0 <= x < item.width_px and item.depth_m[y, x] > 0:
                        depth_at[index] = (distance, float(item.depth_m[y, x]))
    observations = []
    rotation = np.asarray(head_from_camera)[:3, :3]
    translation = np.asarray(head_from_camera)[:3, 3]
    for index, target in enumerate(targets):
        chosen = samples[index]
        if len(chosen) < min_samples:
            continue
        origin = np.mean([s.ray.origin_m for s in chosen], axis=0)
        measured = np.sum([s.ray.direction for s in chosen], axis=0)
        measured = measured / np.linalg.norm(measured)
        found = depth_at[index]
        depth = found[1] if found is not None else distance_m
        point_camera = unproject_pixels(camera, [[target.x_px, target.y_px]], [depth])[0]
        point_head = rotation @ point_camera + translation
        towards = point_head - origin
        observations.append(
            GazeObservation(
                target=target,
                measured_direction=measured,
                target_direction=towards / np.linalg.norm(towards),
                sample_count=len(chosen),
            )
        )
    return observations


def solve_gaze_rotation(measured: npt.ArrayLike, target: npt.ArrayLike) -> GazeRotationFit:
    """Least-squares rotation R minimising sum |R m_i - t_i|^2 over unit directions (Wahba's problem, SVD).

    ``measured`` and ``target`` are Nx3 (N >= 3, not all parallel). Residuals are the angles in degrees between
    each target direction and the measured one before and after the correction.
    """
    m = np.asarray(measured, dtype=np.float64)
    t = np.asarray(target, dtype=np.float64)
    if m.ndim != 2 or m.shape[1] != 3 or m.shape != t.shape:
        raise CalibrationError(f"gaze directions must be two Nx3 arrays of one shape, got {m.shape} and {t.shape}")
    if m.shape[0] < 3:
        raise CalibrationError(f"gaze calibration needs at least 3 fixated targets, got {m.shape[0]}")
    m = m / np.linalg.norm(m, axis=1, keepdims=True)
    t = t / np.linalg.norm(t, axis=1, keepdims=True)
    if not (np.all(np.isfinite(m)) and np.all(np.isfinite(t))):
        raise CalibrationError("gaze directions must be finite and non-zero")
    if np.linalg.matrix_rank(m, tol=1e-3) < 2:
        raise CalibrationError("the targets all lie in one direction: spread them over the field of view")
    u, _, vt = np.linalg.svd(t.T @ m)
    correction = np.diag([1.0, 1.0, float(np.sign(np.linalg.det(u @ vt)) or 1.0)])
    rotation = u @ correction @ vt
    return GazeRotationFit(
        rotation=rotation,
        residuals_before_deg=angle_between_deg(m, t),
        residuals_after_deg=angle_between_deg(m @ rotation.T, t),
    )
