"""Import a Pupil Labs Neon recording folder as a replayable session: ``xrseg session import-neon``.

Read through the official reader (``pupil_labs.neon_recording``, the ``neon`` extra):

- **Frames**: the scene camera video as recorded (distorted); the session's camera is the scene camera's
  factory intrinsics with its 8 OpenCV distortion coefficients, which the session format carries as they are.
- **Gaze**: Neon reports gaze as (x, y) pixels in the scene video. Each pixel is undistorted through the scene
  camera's model (``cv2.undistortPoints``) into a ray from the scene camera's centre, so projecting the ray back
  gives the same pixel at any distance. Samples taken while the glasses were not worn are kept as invalid.
- **Head frame**: the scene camera with OpenXR axes (``head_from_camera = diag(1, -1, -1, 1)``: the head origin
  is the scene camera, +x right, +y up, -z along the optical axis).
- **Head poses**: rotation only, from the IMU's fused orientation (quaternion xyzw, IMU -> world, a gravity and
  magnetic-north aligned world), and the IMU sits rotated 102 degrees about x from the scene camera
  (Pupil Labs' documented ``scene_to_imu``): ``world_from_head = world_from_imu @ imu_from_camera @
  camera_from_head``. Neon measures no translation: the head stays at the world origin. Without IMU
  orientation the head is held fixed (identity poses).

Timestamps stay on Neon's clock (Unix epoch ns, as recorded).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.geometry import rotation_from_quaternion
from xrseg.session.importers import (
    GazeSource,
    ImportedStreams,
    ImportResult,
    PoseSource,
    fixed_head_poses,
    require,
    select_events,
    select_note,
    write_import,
)
from xrseg.types import CameraModel, GazeRay, GazeSample, HeadPose, Transform

logger = logging.getLogger(__name__)

HEAD_FROM_SCENE_CAMERA: Transform = np.diag([1.0, -1.0, -1.0, 1.0])
"""4x4 float64: the scene camera (OpenCV axes) at the head origin, looking along the head's forward axis."""

IMU_SCENE_ANGLE_DEG = -102.0
"""Rotation about x from the scene camera's axes to the IMU's (Pupil Labs: ``np.deg2rad(-90 - 12)``)."""


def imu_from_camera() -> Transform:
    """4x4 float64 rotation taking scene-camera coordinates (OpenCV axes) to IMU coordinates."""
    angle = math.radians(IMU_SCENE_ANGLE_DEG)
    matrix = np.eye(4)
    matrix[1:3, 1:3] = [[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]]
    return matrix


def scene_camera(calibration: Any, width_px: int, height_px: int) -> CameraModel:
    """The scene camera's model from a Neon calibration record (3x3 matrix, 8 distortion coefficients)."""
    matrix = np.asarray(calibration.scene_camera_matrix, dtype=np.float64)
    distortion = tuple(float(v) for v in np.asarray(calibration.scene_distortion_coefficients).reshape(-1))
    return CameraModel(width_px, height_px, matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2], distortion)


def gaze_directions(camera: CameraModel, pixels_xy: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Nx2 (x, y) scene pixels -> Nx3 float64 unit head-frame directions (rays from the scene camera centre).

    Non-finite pixels give NaN rows."""
    pixels = np.asarray(pixels_xy, dtype=np.float64).reshape(-1, 2)
    directions = np.full((pixels.shape[0], 3), np.nan)
    finite = np.all(np.isfinite(pixels), axis=1)
    if np.any(finite):
        normalised = cv2.undistortPoints(
            pixels[finite].reshape(-1, 1, 2),
            camera.intrinsic_matrix(),
            camera.distortion_coeffs(),
            criteria=(cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 100, 1e-12),
        ).reshape(-1, 2)
        rays_camera = np.column_stack([normalised, np.ones(len(normalised))]).astype(np.float64)
        rays_camera = rays_camera / np.linalg.norm(rays_camera, axis=1, keepdims=True)
        directions[finite] = rays_camera @ HEAD_FROM_SCENE_CAMERA[:3, :3].T
    return directions


def _worn_at(recording: Any, times_ns: npt.NDArray[np.int64]) -> npt.NDArray[np.bool_]:
    """N bool: the glasses were worn at each time (the nearest worn sample; True when there is no stream)."""
    try:
        worn = recording.worn
        worn_times = np.asarray(worn.time, dtype=np.int64)
        worn_values = np.asarray(worn.worn) > 0
    except Exception:  # the reader raises its own errors for a missing stream
        return np.ones(len(times_ns), dtype=bool)
    if worn_times.size == 0:
        return np.ones(len(times_ns), dtype=bool)
    index = np.clip(np.searchsorted(worn_times, times_ns), 0, worn_times.size - 1)
    before = np.clip(index - 1, 0, worn_times.size - 1)
    nearer = np.where(np.abs(worn_times[before] - times_ns) < np.abs(worn_times[index] - times_ns), before, index)
    result: npt.NDArray[np.bool_] = worn_values[nearer]
    return result


def read_gaze(recording: Any, camera: CameraModel, start_ns: int, end_ns: int) -> list[GazeSample]:
    """Gaze samples from ``start_ns`` to ``end_ns`` as head-frame rays (no vergence: Neon reports none)."""
    times = np.asarray(recording.gaze.time, dtype=np.int64)
    keep = (times >= start_ns) & (times <= end_ns)
    times = times[keep]
    points = np.asarray(recording.gaze.point, dtype=np.float64)[keep]
    directions = gaze_directions(camera, points)
    worn = _worn_at(recording, times)
    samples: list[GazeSample] = []
    for timestamp_ns, direction, on in zip(times, directions, worn, strict=True):
        if samples and int(timestamp_ns) <= samples[-1].timestamp_ns:
            continue
        ray = GazeRay(np.zeros(3), direction)
        samples.append(GazeSample(int(timestamp_ns), ray, valid=bool(on) and ray.is_finite))
    return samples


def read_head_poses(recording: Any, start_ns: int, end_ns: int) -> list[HeadPose]:
    """Rotation-only head poses from the IMU orientation from ``start_ns`` to ``end_ns`` ([] without IMU)."""
    try:
        times = np.asarray(recording.imu.time, dtype=np.int64)
        quaternions_xyzw = np.asarray(recording.imu.rotation, dtype=np.float64)
    except Exception:  # no IMU stream in the recording
        return []
    keep = (times >= start_ns) & (times <= end_ns) & np.all(np.isfinite(quaternions_xyzw), axis=1)
    keep &= np.linalg.norm(quaternions_xyzw, axis=1) > 0.5
    camera_from_head = HEAD_FROM_SCENE_CAMERA  # its own inverse
    imu_from_head = imu_from_camera() @ camera_from_head
    poses: list[HeadPose] = []
    for timestamp_ns, quaternion in zip(times[keep], quaternions_xyzw[keep], strict=True):
        if poses and int(timestamp_ns) <= poses[-1].timestamp_ns:
            continue
        world_from_imu = np.eye(4)
        world_from_imu[:3, :3] = rotation_from_quaternion(quaternion / np.linalg.norm(quaternion))
        poses.append(HeadPose(int(timestamp_ns), world_from_imu @ imu_from_head))
    return poses


def open_recording(folder: Path) -> Any:
    """The reader's recording object for ``folder``; InputError when it is no readable Neon recording."""
    neon_recording = require("pupil_labs.neon_recording", "neon")
    if not folder.is_dir():
        raise InputError(f"Neon recording folder {folder} does not exist")
    try:
        return neon_recording.open(str(folder))
    except Exception as err:  # the reader raises assorted errors for a folder it cannot read
        raise InputError(f"{folder.name} is not a readable Neon recording ({type(err).__name__}: {err})") from err


def _scene_times(recording: Any, frame_step: int, max_frames: int | None) -> list[tuple[int, int]]:
    """(index in the scene video, timestamp_ns) of the frames to import."""
    try:
        times = np.asarray(recording.scene.time, dtype=np.int64)
    except Exception as err:  # no scene video in the folder
        raise InputError(f"the recording has no scene video: nothing to segment ({err})") from err
    if times.size == 0:
        raise InputError("the recording's scene video has no frames: nothing to segment")
    picked = [(i, int(times[i])) for i in range(0, times.size, frame_step)]
    return picked[:max_frames] if max_frames is not None else picked


def import_neon(
    folder: str | Path,
    out: str | Path,
    *,
    frame_step: int = 1,
    max_frames: int | None = None,
    select_at_s: tuple[float, ...] = (),
    name: str | None = None,
    overwrite: bool = False,
    progress: bool = True,
) -> ImportResult:
    """Write a replayable session (scene frames, gaze rays, IMU head rotation; no depth) from a Neon folder.

    ``frame_step`` keeps every n-th scene frame, ``max_frames`` at most that many; gaze and IMU are kept over
    the imported frames' time span. Raises MissingExtraError without pupil-labs-neon-recording, InputError for a
    recording it cannot use (no scene video, no gaze over the frames).
    """
    folder = Path(folder)
    if frame_step < 1 or (max_frames is not None and max_frames < 1):
        raise InputError(f"--frame-step and --max-frames must be >= 1, got {frame_step} and {max_frames}")
    recording = open_recording(folder)
    frames = _scene_times(recording, frame_step, max_frames)
    camera = scene_camera(recording.calibration, int(recording.scene.width), int(recording.scene.height))
    start_ns, end_ns = frames[0][1], frames[-1][1]
    gaze = read_gaze(recording, camera, start_ns, end_ns)
    if not gaze:
        raise InputError(f"no gaze samples between the first and last imported frame ({folder.name})")
    poses = read_head_poses(recording, start_ns - 100_000_000, end_ns + 100_000_000)
    pose_source = PoseSource.IMU_ROTATION
    if not poses:
        stamps = [t for _, t in frames] + [s.timestamp_ns for s in gaze]
        poses, pose_source = fixed_head_poses(stamps), PoseSource.FIXED
    notes = (
        f"Pupil Labs Neon {folder.name}: scene camera {camera.width_px}x{camera.height_px} as recorded "
        f"(8 distortion coefficients), every {frame_step} frame(s)",
        f"gaze: {GazeSource.NEON.value}, undistorted into rays from the scene camera centre",
        f"head poses: {pose_source.value}",
        "no depth, no vergence: gaze is projected at the fallback distance; no meshes",
        *select_note(select_at_s),
        "timestamps: Neon clock (Unix epoch ns)",
    )
    streams = ImportedStreams(
        name=name or folder.name,
        camera=camera,
        head_from_camera=HEAD_FROM_SCENE_CAMERA,
        frame_times_ns=[t for _, t in frames],
        gaze=gaze,
        gaze_source=GazeSource.NEON,
        poses=poses,
        pose_source=pose_source,
        events=select_events(start_ns, end_ns, select_at_s),
        notes=notes,
    )

    def read_rgb(index: int) -> np.ndarray:
        return np.ascontiguousarray(recording.scene[frames[index][0]].rgb, dtype=np.uint8)

    return write_import(streams, read_rgb, out, overwrite=overwrite, progress=progress)
