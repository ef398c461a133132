"""Device calibration: the profile format (calibration/README.md), camera intrinsics from checkerboard images, and
the gaze-to-camera angular offset from fixations on known targets.

A profile says what a headset + camera rig is: the camera model, where the camera sits on the head
(``head_from_camera``, OpenXR head frame <- OpenCV camera frame), the camera's clock offset and an optional
rotation that corrects the eye tracker's gaze direction in the head frame.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from xrseg import jsonsafe
from xrseg.errors import CalibrationError, InputError
from xrseg.fileio import write_bytes_atomic
from xrseg.geometry import angle_between_deg, unproject_pixels
from xrseg.session.format import MAX_IMAGE_SIDE_PX, MAX_POSITION_M
from xrseg.types import CameraModel, Frame, GazeRay, GazeSample, Transform, as_transform

SCHEMA = "xrseg.calibration/1"
_REQUIRED = ("schema", "device_name", "camera", "head_from_camera", "clock_offset_ns")
_OPTIONAL = ("gaze_correction", "reprojection_rms_px", "notes")
_CAMERA_KEYS = ("width_px", "height_px", "fx_px", "fy_px", "cx_px", "cy_px", "distortion")
MAX_CALIBRATION_BYTES = 1 << 20
"""Largest calibration or gaze-target file read (1 MiB)."""

HEAD_FROM_CAMERA_FORWARD = np.array(
    [[1.0, 0.0, 0.0, 0.0], [0.0, -1.0, 0.0, 0.0], [0.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.0, 1.0]]
)
"""A camera at the head origin looking where the head looks (OpenCV axes in OpenXR head axes)."""


@dataclass(frozen=True)
class DeviceCalibration:
    """One rig's calibration. ``gaze_correction`` is a 3x3 float64 rotation applied to gaze directions in the
    head frame (None = identity); ``clock_offset_ns`` is subtracted from the camera's arrival timestamps."""

    device_name: str
    camera: CameraModel
    head_from_camera: Transform
    clock_offset_ns: int = 0
    gaze_correction: npt.NDArray[np.float64] | None = None
    reprojection_rms_px: float | None = None
    notes: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "head_from_camera", as_transform(self.head_from_camera, "head_from_camera"))
        if self.gaze_correction is not None:
            object.__setattr__(self, "gaze_correction", _as_rotation(self.gaze_correction, "gaze_correction"))


def _as_rotation(value: npt.ArrayLike, name: str) -> npt.NDArray[np.float64]:
    matrix = np.eye(4)
    rotation = np.asarray(value, dtype=np.float64)
    if rotation.shape != (3, 3):
        raise InputError(f"{name} must be a 3x3 rotation, got shape {rotation.shape}")
    matrix[:3, :3] = rotation
    checked = as_transform(matrix, name)[:3, :3].copy()
    if np.linalg.det(checked) < 0:
        raise InputError(f"{name} is a reflection, not a rotation")
    checked.setflags(write=False)
    return checked


# -- the profile format --------------------------------------------------------------------------------------


def _fail(path: Path | str, message: str) -> CalibrationError:
    return CalibrationError(f"calibration {path}: {message}")


def _number(value: Any, what: str, path: Path | str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _fail(path, f"{what} must be a finite number, got {value!r}")
    return float(value)


def _matrix(value: Any, rows: int, what: str, path: Path | str) -> npt.NDArray[np.float64]:
    if (
        not isinstance(value, list)
        or len(value) != rows
        or not all(isinstance(r, list) and len(r) == rows for r in value)
    ):
        raise _fail(path, f"{what} must be {rows} rows of {rows} numbers")
    return np.array([[_number(v, what, path) for v in row] for row in value], dtype=np.float64)


def calibration_from_json(value: Any, path: Path | str = "<json>") -> DeviceCalibration:
    """Validate a parsed profile. Raises CalibrationError naming the file and the field."""
    if not isinstance(value, Mapping):
        raise _fail(path, "the top level must be a JSON object")
    missing = [key for key in _REQUIRED if key not in value]
    if missing:
        raise _fail(path, f"missing field {missing[0]!r}")
    unknown = sorted(set(value) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _fail(path, f"unknown field {unknown[0]!r} (fields: {', '.join(_REQUIRED + _OPTIONAL)})")
    if value["schema"] != SCHEMA:
        raise _fail(path, f"schema must be {SCHEMA!r}, got {value['schema']!r}")
    name = value["device_name"]
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, "device_name must be a non-empty string")
    camera_json = value["camera"]
    if not isinstance(camera_json, Mapping):
        raise _fail(path, "camera must be an object")
    missing = [key for key in _CAMERA_KEYS if key not in camera_json]
    if missing:
        raise _fail(path, f"camera is missing {missing[0]!r}")
    distortion = camera_json["distortion"]
    if not isinstance(distortion, list):
        raise _fail(path, "camera.distortion must be a list of numbers (OpenCV order k1 k2 p1 p2 [k3 ...])")
    offset = value["clock_offset_ns"]
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise _fail(path, f"clock_offset_ns must be an integer, got {offset!r}")
    size = []
    for key in ("width_px", "height_px"):
        if isinstance(camera_json[key], bool) or not isinstance(camera_json[key], int):
            raise _fail(path, f"camera.{key} must be an integer")
        if not 1 <= camera_json[key] <= MAX_IMAGE_SIDE_PX:
            raise _fail(path, f"camera.{key} must be in 1..{MAX_IMAGE_SIDE_PX}, got {camera_json[key]}")
        size.append(camera_json[key])
    gaze = value.get("gaze_correction")
    rms = value.get("reprojection_rms_px")
    notes = value.get("notes", "")
    if not isinstance(notes, str):
        raise _fail(path, "notes must be a string")
    try:
        camera = CameraModel(
            width_px=size[0],
            height_px=size[1],
            fx_px=_number(camera_json["fx_px"], "camera.fx_px", path),
            fy_px=_number(camera_json["fy_px"], "camera.fy_px", path),
            cx_px=_number(camera_json["cx_px"], "camera.cx_px", path),
            cy_px=_number(camera_json["cy_px"], "camera.cy_px", path),
            distortion=tuple(_number(v, "camera.distortion", path) for v in distortion),
        )
        head_from_camera = _matrix(value["head_from_camera"], 4, "head_from_camera", path)
        if float(np.linalg.norm(head_from_camera[:3, 3])) > MAX_POSITION_M:
            raise _fail(path, f"head_from_camera translation is more than {MAX_POSITION_M:g} m")
        return DeviceCalibration(
            device_name=name,
            camera=camera,
            head_from_camera=head_from_camera,
            clock_offset_ns=offset,
            gaze_correction=None if gaze is None else _matrix(gaze, 3, "gaze_correction", path),
            reprojection_rms_px=None if rms is None else _number(rms, "reprojection_rms_px", path),
            notes=notes,
        )
    except InputError as err:
        raise _fail(path, str(err)) from err


def calibration_to_json(calibration: DeviceCalibration) -> dict[str, Any]:
    camera = calibration.camera
    result: dict[str, Any] = {
        "schema": SCHEMA,
        "device_name": calibration.device_name,
        "camera": camera.as_dict(),
        "head_from_camera": np.asarray(calibration.head_from_camera).tolist(),
        "clock_offset_ns": int(calibration.clock_offset_ns),
    }
    if calibration.gaze_correction is not None:
        result["gaze_correction"] = np.asarray(calibration.gaze_correction).tolist()
    if calibration.reprojection_rms_px is not None:
        result["reprojection_rms_px"] = float(calibration.reprojection_rms_px)
    if calibration.notes:
        result["notes"] = calibration.notes
    return result


def load_calibration(path: str | Path) -> DeviceCalibration:
    """Read and validate a profile. Raises CalibrationError with one line naming the file and the problem."""
    path = Path(path)
    try:
        data = jsonsafe.read_regular_file(path, MAX_CALIBRATION_BYTES, "file", CalibrationError)
    except CalibrationError as err:
        if isinstance(err.__cause__, FileNotFoundError):
            raise _fail(path, "no such file") from err
        raise _fail(path, str(err)) from err
    try:
        value = jsonsafe.loads(data, "file", CalibrationError)
    except CalibrationError as err:
        raise _fail(path, str(err)) from err
    return calibration_from_json(value, path)


def profile_text(calibration: DeviceCalibration) -> str:
    """The profile as JSON text, two-space indented, each matrix row and number list on one line."""
    text = json.dumps(calibration_to_json(calibration), indent=2)

    def one_line(match: re.Match[str]) -> str:
        return "[" + ", ".join(part.strip() for part in match.group(1).split(",")) + "]"

    return re.sub(r"\[\s+([-+0-9.eE,\s]*?)\s+\]", one_line, text) + "\n"


def uncalibrated_profile(width_px: int, height_px: int, hfov_deg: float = 70.0) -> DeviceCalibration:
    """A stand-in profile for a camera nobody calibrated: a centred pinhole of ``hfov_deg`` at the head origin,
    looking where the head looks. Good enough to record; calibrate before trusting 3D results."""
    fx = (width_px / 2.0) / math.tan(math.radians(hfov_deg) / 2.0)
    camera = CameraModel(width_px, height_px, fx, fx, (width_px - 1) / 2.0, (height_px - 1) / 2.0)
    return DeviceCalibration(
        device_name="uncalibrated",
        camera=camera,
        head_from_camera=HEAD_FROM_CAMERA_FORWARD,
        notes=f"uncalibrated: assumed {hfov_deg:g} deg horizontal FOV, camera at the head origin",
    )


def save_calibration(calibration: DeviceCalibration, path: str | Path) -> None:
    """Write a profile atomically (a temporary file renamed into place)."""
    write_bytes_atomic(Path(path), profile_text(calibration).encode("utf-8"), prefix=".tmp-")


def check_fits(calibration: DeviceCalibration, width_px: int, height_px: int) -> None:
    """Raise CalibrationError unless the profile's camera has exactly this image size."""
    camera = calibration.camera
    if (camera.width_px, camera.height_px) != (width_px, height_px):
        raise CalibrationError(
            f"calibration {calibration.device_name!r} is for a {camera.width_px}x{camera.height_px} camera but "
            f"the camera delivers {width_px}x{height_px}; calibrate this resolution with `xrseg calibrate camera`"
        )


def apply_gaze_correction(sample: GazeSample, rotation: npt.NDArray[np.float64]) -> GazeSample:
    """The sample with every ray direction rotated by ``rotation`` (3x3, head frame); origins are kept."""

    def turn(ray: GazeRay) -> GazeRay:
        return GazeRay(origin_m=ray.origin_m, direction=rotation @ ray.direction)

    return replace(
        sample,
        ray=turn(sample.ray),
        left=None if sample.left is None else turn(sample.left),
        right=None if sample.right is None else turn(sample.right),
    )


# -- camera intrinsics from checkerboard images --------------------------------------------------------------


@dataclass(frozen=True)
class CameraCalibrationResult:
    """``camera`` with OpenCV's 5 distortion coefficients; ``rms_px`` the RMS reprojection error in pixels;
    ``used`` the indices of the images whose board was found."""

    camera: CameraModel
    rms_px: float
    used: tuple[int, ...]
    rejected: tuple[int, ...]


def _gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    raise InputError(f"images must be HxW or HxWx3 uint8, got shape {image.shape}")


def find_checkerboard(image: npt.NDArray[np.uint8], board: tuple[int, int]) -> npt.NDArray[np.float32] | None:
    """The board's inner corners, Nx2 float32 (x, y) pixels refined to sub-pixel, or None if not found.

    ``board`` is (columns, rows) of INNER corners, OpenCV's convention (a 10x7-square board is 9x6).
    """
    gray = _gray(image)
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(gray, board, flags=flags)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    refined = cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), criteria)
    return np.asarray(refined, dtype=np.float32).reshape(-1, 2)


def board_points_m(board: tuple[int, int], square_m: float) -> npt.NDArray[np.float32]:
    """Nx3 float32 inner-corner positions on the board plane (z = 0), row-major like OpenCV's detections."""
    columns, rows = board
    grid = np.zeros((rows * columns, 3), dtype=np.float32)
    grid[:, :2] = np.mgrid[0:columns, 0:rows].T.reshape(-1, 2) * square_m
    return grid


def calibrate_camera_images(
    images: Sequence[npt.NDArray[np.uint8]], board: tuple[int, int], square_m: float, min_views: int = 5
) -> CameraCalibrationResult:
    """Intrinsics and distortion (k1 k2 p1 p2 k3) from checkerboard photos (HxWx3 RGB or HxW uint8, one size)."""
    if not images:
        raise CalibrationError("no calibration images given")
    if board[0] < 2 or board[1] < 2 or not square_m > 0:
        raise CalibrationError(
            f"board must be at least 2x2 inner corners with a positive square size, got {board}"
        )
    size = images[0].shape[:2]
    object_points: list[npt.NDArray[np.float32]] = []
    image_points: list[npt.NDArray[np.float32]] = []
    used: list[int] = []
    rejected: list[int] = []
    grid = board_points_m(board, square_m)
    for index, image in enumerate(images):
        if image.shape[:2] != size:
            raise CalibrationError(f"image {index} is {image.shape[1]}x{image.shape[0]}, not {size[1]}x{size[0]}")
        corners = find_checkerboard(image, board)
        if corners is None:
            rejected.append(index)
            continue
        used.append(index)
        object_points.append(grid)
        image_points.append(corners.reshape(-1, 1, 2))
    if len(used) < min_views:
        raise CalibrationError(
            f"the {board[0]}x{board[1]} board was found in {len(used)} of {len(images)} images; need {min_views} "
            "(check --board counts INNER corners)"
        )
    height, width = size
    rms, matrix, distortion, _, _ = cv2.calibrateCamera(object_points, image_points, (width, height), None, None)
    coefficients = tuple(float(v) for v in np.asarray(distortion).ravel()[:5])
    camera = CameraModel(
        width_px=int(width),
        height_px=int(height),
        fx_px=float(matrix[0, 0]),
        fy_px=float(matrix[1, 1]),
        cx_px=float(matrix[0, 2]),
        cy_px=float(matrix[1, 2]),
        distortion=coefficients,
    )
    return CameraCalibrationResult(camera=camera, rms_px=float(rms), used=tuple(used), rejected=tuple(rejected))


# -- gaze offset from fixations on known targets --------------------------------------------------------------


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
