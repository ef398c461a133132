"""Rigid transforms, pose interpolation and camera projection.

Conventions (see :mod:`xrseg.types`): transforms are 4x4 float64 matrices named ``<to>_from_<from>`` and compose
left to right; the head frame is OpenXR's (+x right, +y up, -z forward), the camera frame is OpenCV's (+x right,
+y down, +z forward); pixels are (x, y) floats with the origin at the centre of the top-left pixel, which is
also OpenCV's convention, so no half-pixel shifts appear anywhere; depth images are HxW float32 metres along
camera +z with 0 meaning "no measurement". Lens distortion is always OpenCV's (``cv2.projectPoints`` and
``cv2.undistortPoints``). Gaze rays become pixels in :mod:`xrseg.select.projection`.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Sequence

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.types import CameraModel, HeadPose, Transform, Vec3, as_transform

logger = logging.getLogger(__name__)

__all__ = [
    "PoseTrack",
    "angle_between_deg",
    "in_image",
    "interpolate_transform",
    "invert_transform",
    "pose_from_transform",
    "project_points",
    "quaternion_from_rotation",
    "rotation_from_quaternion",
    "transform_directions",
    "transform_from_pose",
    "transform_points",
    "unproject_pixels",
]

_UNDISTORT_CRITERIA = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12)
"""Iterations for cv2.undistortPoints: the default (5 iterations) is visibly inexact for strong distortion."""

_ROUND_TRIP_TOLERANCE = 1e-4
"""Normalised-coordinate mismatch beyond which a distorted projection is treated as outside the lens model."""


# --------------------------------------------------------------------------------------------------------------
# Rotations and rigid transforms


def rotation_from_quaternion(orientation_xyzw: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """3x3 float64 rotation matrix from a quaternion in OpenXR order (x, y, z, w); it is normalised first.

    Raises :class:`InputError` for a non-finite or zero quaternion.
    """
    q = np.asarray(orientation_xyzw, dtype=np.float64)
    if q.shape != (4,):
        raise InputError(f"orientation_xyzw must have shape (4,), got {q.shape}")
    norm = float(np.linalg.norm(q))
    if not math.isfinite(norm) or norm < 1e-12:
        raise InputError(f"orientation_xyzw must be a finite non-zero quaternion, got {q.tolist()}")
    x, y, z, w = q / norm
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ],
        dtype=np.float64,
    )


def quaternion_from_rotation(rotation: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unit quaternion (x, y, z, w), float64 shape (4,), of a 3x3 rotation matrix, with w >= 0.

    Shepperd's method: picks the numerically largest of w, x, y, z to divide by.
    """
    m = np.asarray(rotation, dtype=np.float64)
    if m.shape != (3, 3):
        raise InputError(f"rotation must have shape (3, 3), got {m.shape}")
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    diag = (m[0, 0], m[1, 1], m[2, 2])
    if trace >= max(diag):
        s = math.sqrt(max(trace + 1.0, 0.0)) * 2.0
        q = np.array([(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s])
    elif diag[0] >= diag[1] and diag[0] >= diag[2]:
        s = math.sqrt(max(1.0 + m[0, 0] - m[1, 1] - m[2, 2], 0.0)) * 2.0
        q = np.array([0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s])
    elif diag[1] >= diag[2]:
        s = math.sqrt(max(1.0 + m[1, 1] - m[0, 0] - m[2, 2], 0.0)) * 2.0
        q = np.array([(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s])
    else:
        s = math.sqrt(max(1.0 + m[2, 2] - m[0, 0] - m[1, 1], 0.0)) * 2.0
        q = np.array([(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s])
    q = q / np.linalg.norm(q)
    if q[3] < 0:
        q = -q
    return q.astype(np.float64)


def transform_from_pose(position_m: npt.ArrayLike, orientation_xyzw: npt.ArrayLike) -> Transform:
    """4x4 float64 rigid transform from a position (3, metres) and an OpenXR quaternion (x, y, z, w).

    For an OpenXR ``XrPosef`` of the head in the world, this is ``world_from_head``.
    """
    position = np.asarray(position_m, dtype=np.float64)
    if position.shape != (3,) or not np.all(np.isfinite(position)):
        raise InputError(f"position_m must be 3 finite numbers, got {np.asarray(position_m).tolist()}")
    matrix = np.eye(4, dtype=np.float64)
    matrix[:3, :3] = rotation_from_quaternion(orientation_xyzw)
    matrix[:3, 3] = position
    return matrix


def pose_from_transform(t: npt.ArrayLike) -> tuple[Vec3, npt.NDArray[np.float64]]:
    """(position_m (3 float64), orientation_xyzw (4 float64, w >= 0)) of a 4x4 rigid transform."""
    matrix = as_transform(t)
    return matrix[:3, 3].copy(), quaternion_from_rotation(matrix[:3, :3])


def invert_transform(t: npt.ArrayLike) -> Transform:
    """Inverse of a 4x4 rigid transform (``b_from_a`` from ``a_from_b``), exact for rotations: R^T, -R^T p."""
    matrix = np.asarray(t, dtype=np.float64)
    if matrix.shape != (4, 4):
        raise InputError(f"transform must have shape (4, 4), got {matrix.shape}")
    rotation_t = matrix[:3, :3].T
    inverse = np.eye(4, dtype=np.float64)
    inverse[:3, :3] = rotation_t
    inverse[:3, 3] = -rotation_t @ matrix[:3, 3]
    return inverse


def _as_nx3(values: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim == 1 and array.shape == (3,):
        array = array[None, :]
    if array.ndim != 2 or array.shape[1] != 3:
        raise InputError(f"{name} must be Nx3, got shape {array.shape}")
    return array


def transform_points(a_from_b: npt.ArrayLike, points_b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Map Nx3 float64 points (metres) from frame b to frame a: rotation and translation. Returns Nx3 float64."""
    matrix = np.asarray(a_from_b, dtype=np.float64)
    points = _as_nx3(points_b, "points_b")
    result: npt.NDArray[np.float64] = points @ matrix[:3, :3].T + matrix[:3, 3]
    return result


def transform_directions(a_from_b: npt.ArrayLike, dirs_b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Rotate Nx3 float64 directions from frame b to frame a (no translation). Returns Nx3 float64."""
    matrix = np.asarray(a_from_b, dtype=np.float64)
    dirs = _as_nx3(dirs_b, "dirs_b")
    result: npt.NDArray[np.float64] = dirs @ matrix[:3, :3].T
    return result


def angle_between_deg(a: npt.ArrayLike, b: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Angle in degrees between vectors along the last axis (broadcasting; (3,) inputs give a 0-d array).

    Uses ``atan2(|a x b|, a . b)``, which stays accurate for tiny and near-180-degree angles where ``acos`` of
    the dot product loses precision. Zero-length or non-finite vectors give NaN. Wrap in ``float()`` for a
    single pair.
    """
    va = np.asarray(a, dtype=np.float64)
    vb = np.asarray(b, dtype=np.float64)
    if va.shape[-1:] != (3,) or vb.shape[-1:] != (3,):
        raise InputError(f"angle_between_deg needs 3-vectors, got shapes {va.shape} and {vb.shape}")
    cross = np.linalg.norm(np.cross(va, vb), axis=-1)
    dot = np.sum(va * vb, axis=-1)
    with np.errstate(invalid="ignore"):
        angle = np.degrees(np.arctan2(cross, dot))
        degenerate = (np.linalg.norm(va, axis=-1) == 0) | (np.linalg.norm(vb, axis=-1) == 0)
    result: npt.NDArray[np.float64] = np.where(degenerate, np.nan, angle)
    return result


def _slerp(q0: npt.NDArray[np.float64], q1: npt.NDArray[np.float64], alpha: float) -> npt.NDArray[np.float64]:
    """Spherical linear interpolation of unit quaternions (shortest path); alpha outside [0, 1] extrapolates."""
    dot = float(np.dot(q0, q1))
    if dot < 0.0:
        q1 = -q1
        dot = -dot
    if dot > 0.9995:
        q = q0 + alpha * (q1 - q0)
        result: npt.NDArray[np.float64] = q / np.linalg.norm(q)
        return result
    theta = math.acos(min(dot, 1.0))
    sin_theta = math.sin(theta)
    result = (math.sin((1.0 - alpha) * theta) * q0 + math.sin(alpha * theta) * q1) / sin_theta
    return result


def interpolate_transform(t0_ns: int, a: npt.ArrayLike, t1_ns: int, b: npt.ArrayLike, t_ns: int) -> Transform:
    """Rigid transform at ``t_ns`` between ``a`` (at ``t0_ns``) and ``b`` (at ``t1_ns``).

    Translation is interpolated linearly and rotation by slerp (shortest arc). Times outside [t0, t1]
    extrapolate along the same motion. Equal ``t0_ns`` and ``t1_ns`` return ``a``. Returns a new 4x4 float64.
    """
    ta = np.asarray(a, dtype=np.float64)
    tb = np.asarray(b, dtype=np.float64)
    if t1_ns == t0_ns:
        return ta.copy()
    alpha = (int(t_ns) - int(t0_ns)) / (int(t1_ns) - int(t0_ns))
    result = np.eye(4, dtype=np.float64)
    result[:3, 3] = ta[:3, 3] + alpha * (tb[:3, 3] - ta[:3, 3])
    q = _slerp(quaternion_from_rotation(ta[:3, :3]), quaternion_from_rotation(tb[:3, :3]), alpha)
    result[:3, :3] = rotation_from_quaternion(q)
    return result


class PoseTrack:
    """A time series of rigid transforms (e.g. ``world_from_head``) queried at arbitrary times.

    ``timestamps_ns``: N int64, strictly ascending. ``transforms``: Nx4x4 float64 rigid transforms. Queries
    between two samples interpolate (lerp + slerp); queries before the first or after the last sample return
    that end sample when within ``max_extrapolation_ns`` of it (the pose is held, not extrapolated: rotational
    extrapolation over noisy tracking does more harm than good) and None beyond.
    """

    DEFAULT_MAX_EXTRAPOLATION_NS = 50_000_000
    """50 ms: a few head-tracking periods; a gaze sample this far outside the track still gets a pose."""

    def __init__(self, timestamps_ns: npt.ArrayLike, transforms: npt.ArrayLike) -> None:
        stamps = np.asarray(timestamps_ns)
        if stamps.ndim != 1 or not np.issubdtype(stamps.dtype, np.integer):
            raise InputError(f"timestamps_ns must be a 1-D integer array, got {stamps.shape} {stamps.dtype}")
        matrices = np.array(transforms, dtype=np.float64, copy=True)
        if matrices.ndim != 3 or matrices.shape[1:] != (4, 4) or matrices.shape[0] != stamps.shape[0]:
            raise InputError(
                f"transforms must be Nx4x4 with N={stamps.shape[0]} matching timestamps_ns, got {matrices.shape}"
            )
        if stamps.size == 0:
            raise InputError("a pose track needs at least one pose")
        if np.any(np.diff(stamps.astype(np.int64)) <= 0):
            bad = int(np.argmax(np.diff(stamps.astype(np.int64)) <= 0))
            raise InputError(
                f"pose timestamps must be strictly ascending: sample {bad + 1} ({int(stamps[bad + 1])} ns) "
                f"follows {int(stamps[bad])} ns"
            )
        for i, matrix in enumerate(matrices):
            as_transform(matrix, f"transforms[{i}]")
        matrices.setflags(write=False)
        self._timestamps: list[int] = [int(t) for t in stamps]
        self._transforms = matrices

    @classmethod
    def from_head_poses(cls, poses: Sequence[HeadPose]) -> PoseTrack:
        """A ``world_from_head`` track from HeadPose records (ascending timestamps)."""
        if not poses:
            raise InputError("a pose track needs at least one pose")
        return cls(
            np.array([p.timestamp_ns for p in poses], dtype=np.int64),
            np.stack([p.world_from_head for p in poses]),
        )

    @classmethod
    def from_checked(cls, timestamps_ns: Sequence[int], transforms: npt.ArrayLike) -> PoseTrack:
        """A track from poses that were already validated one by one (HeadPose records are), in O(N) copies.

        The caller guarantees what the constructor checks: strictly ascending timestamps and Nx4x4 rigid
        transforms. A live pipeline rebuilds its track many times a second; re-checking every matrix each time
        cost it most of its time."""
        track = cls.__new__(cls)
        matrices = np.array(transforms, dtype=np.float64, copy=True)
        matrices.setflags(write=False)
        track._timestamps = [int(t) for t in timestamps_ns]
        track._transforms = matrices
        return track

    def __len__(self) -> int:
        return len(self._timestamps)

    @property
    def start_ns(self) -> int:
        return self._timestamps[0]

    @property
    def end_ns(self) -> int:
        return self._timestamps[-1]

    @property
    def timestamps_ns(self) -> npt.NDArray[np.int64]:
        """N int64 (a copy)."""
        return np.array(self._timestamps, dtype=np.int64)

    @property
    def transforms(self) -> npt.NDArray[np.float64]:
        """Nx4x4 float64 (read-only)."""
        return self._transforms

    def at(self, timestamp_ns: int, max_extrapolation_ns: int = DEFAULT_MAX_EXTRAPOLATION_NS) -> Transform | None:
        """4x4 float64 transform at ``timestamp_ns``, or None when outside the track by more than the tolerance."""
        t = int(timestamp_ns)
        stamps = self._timestamps
        if t <= stamps[0]:
            return self._transforms[0].copy() if stamps[0] - t <= max_extrapolation_ns else None
        if t >= stamps[-1]:
            return self._transforms[-1].copy() if t - stamps[-1] <= max_extrapolation_ns else None
        i = bisect.bisect_right(stamps, t)
        if stamps[i - 1] == t:
            return self._transforms[i - 1].copy()
        return interpolate_transform(stamps[i - 1], self._transforms[i - 1], stamps[i], self._transforms[i], t)


# --------------------------------------------------------------------------------------------------------------
# Camera projection


def project_points(
    camera: CameraModel, points_camera_m: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Project Nx3 float64 camera-frame points (OpenCV frame, metres) to pixels with the camera's distortion.

    Returns (Nx2 float64 (x, y) pixels, N bool in_front). Points not in front of the camera (z <= 0 or
    non-finite) get NaN pixels and ``in_front`` False. With distortion, points outside the range where the lens
    polynomial is invertible (far off-axis points that a rational model folds back into the image) also get
    NaN pixels, so they can never be mistaken for on-image points; ``in_front`` stays True for them.
    Use :func:`in_image` to test the pixels against the image bounds.
    """
    points = _as_nx3(points_camera_m, "points_camera_m")
    count = points.shape[0]
    pixels = np.full((count, 2), np.nan, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        in_front = np.all(np.isfinite(points), axis=1) & (points[:, 2] > 1e-12)
    if not np.any(in_front):
        return pixels, in_front
    front = np.ascontiguousarray(points[in_front])
    if not camera.has_distortion:
        normalised = front[:, :2] / front[:, 2:3]
        pixels[in_front, 0] = camera.fx_px * normalised[:, 0] + camera.cx_px
        pixels[in_front, 1] = camera.fy_px * normalised[:, 1] + camera.cy_px
        return pixels, in_front
    zero = np.zeros(3, dtype=np.float64)
    raw, _ = cv2.projectPoints(
        front.reshape(-1, 1, 3), zero, zero, camera.intrinsic_matrix(), camera.distortion_coeffs()
    )
    projected = np.asarray(raw, dtype=np.float64).reshape(-1, 2)
    # Round trip through the inverse lens model: where it does not come back, the forward model has folded over.
    normalised = front[:, :2] / front[:, 2:3]
    back = _undistort_normalised(camera, projected)
    valid = np.all(np.abs(back - normalised) <= _ROUND_TRIP_TOLERANCE * (1.0 + np.abs(normalised)), axis=1)
    projected[~valid] = np.nan
    pixels[in_front] = projected
    return pixels, in_front


def _undistort_normalised(camera: CameraModel, pixels_xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Nx2 float64 distorted pixels to Nx2 float64 ideal normalised coordinates (x/z, y/z)."""
    if not camera.has_distortion:
        return np.stack(
            [(pixels_xy[:, 0] - camera.cx_px) / camera.fx_px, (pixels_xy[:, 1] - camera.cy_px) / camera.fy_px],
            axis=1,
        )
    result = cv2.undistortPoints(
        np.ascontiguousarray(pixels_xy, dtype=np.float64).reshape(-1, 1, 2),
        camera.intrinsic_matrix(),
        camera.distortion_coeffs(),
        criteria=_UNDISTORT_CRITERIA,
    )
    normalised: npt.NDArray[np.float64] = np.asarray(result, dtype=np.float64).reshape(-1, 2)
    return normalised


def unproject_pixels(
    camera: CameraModel, pixels_xy: npt.ArrayLike, depth_m: npt.ArrayLike
) -> npt.NDArray[np.float64]:
    """Camera-frame points (Nx3 float64, metres) of Nx2 (x, y) pixels at N depths along camera +z (metres).

    Distortion is removed first (``cv2.undistortPoints``). Non-finite pixels or depths give NaN rows.
    """
    pixels = np.asarray(pixels_xy, dtype=np.float64)
    depths = np.asarray(depth_m, dtype=np.float64).reshape(-1)
    if pixels.ndim == 1 and pixels.shape == (2,):
        pixels = pixels[None, :]
    if pixels.ndim != 2 or pixels.shape[1] != 2:
        raise InputError(f"pixels_xy must be Nx2, got shape {pixels.shape}")
    if depths.shape[0] != pixels.shape[0]:
        raise InputError(f"depth_m must have {pixels.shape[0]} values, got {depths.shape[0]}")
    points = np.full((pixels.shape[0], 3), np.nan, dtype=np.float64)
    finite = np.all(np.isfinite(pixels), axis=1) & np.isfinite(depths)
    if np.any(finite):
        normalised = _undistort_normalised(camera, pixels[finite])
        z = depths[finite]
        points[finite] = np.column_stack([normalised * z[:, None], z])
    return points


def in_image(camera: CameraModel, pixels_xy: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """N bool: the (x, y) pixel lies on the image, i.e. x in [-0.5, W - 0.5) and y in [-0.5, H - 0.5).

    Pixel centres are at integer coordinates, so these are the outer edges of the border pixels. NaN is off.
    """
    pixels = np.asarray(pixels_xy, dtype=np.float64).reshape(-1, 2)
    with np.errstate(invalid="ignore"):
        result: npt.NDArray[np.bool_] = (
            (pixels[:, 0] >= -0.5)
            & (pixels[:, 0] < camera.width_px - 0.5)
            & (pixels[:, 1] >= -0.5)
            & (pixels[:, 1] < camera.height_px - 0.5)
        )
    return result
