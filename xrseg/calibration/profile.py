"""The device calibration profile (calibration/README.md): what a headset + camera rig is.

A profile gives the camera model, where the camera sits on the head (``head_from_camera``, OpenXR head frame <-
OpenCV camera frame), the camera's clock offset and an optional rotation that corrects the eye tracker's gaze
direction in the head frame.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xrseg import jsonsafe
from xrseg.errors import CalibrationError, InputError
from xrseg.fileio import write_bytes_atomic
from xrseg.session.format import MAX_IMAGE_SIDE_PX, MAX_POSITION_M
from xrseg.types import CameraModel, GazeRay, GazeSample, Transform, as_transform

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
    _check_fields(value, path)
    name = value["device_name"]
    if not isinstance(name, str) or not name.strip():
        raise _fail(path, "device_name must be a non-empty string")
    camera_json = _camera_fields(value["camera"], path)
    offset = value["clock_offset_ns"]
    if isinstance(offset, bool) or not isinstance(offset, int):
        raise _fail(path, f"clock_offset_ns must be an integer, got {offset!r}")
    width_px, height_px = _image_size(camera_json, path)
    gaze = value.get("gaze_correction")
    rms = value.get("reprojection_rms_px")
    notes = value.get("notes", "")
    if not isinstance(notes, str):
        raise _fail(path, "notes must be a string")
    try:
        camera = CameraModel(
            width_px=width_px,
            height_px=height_px,
            fx_px=_number(camera_json["fx_px"], "camera.fx_px", path),
            fy_px=_number(camera_json["fy_px"], "camera.fy_px", path),
            cx_px=_number(camera_json["cx_px"], "camera.cx_px", path),
            cy_px=_number(camera_json["cy_px"], "camera.cy_px", path),
            distortion=tuple(_number(v, "camera.distortion", path) for v in camera_json["distortion"]),
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


def _check_fields(value: Any, path: Path | str) -> None:
    """The top level is an object with every required field, no unknown one, and this schema."""
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


def _camera_fields(camera_json: Any, path: Path | str) -> Mapping[str, Any]:
    """The ``camera`` object, checked to have every key and a distortion list."""
    if not isinstance(camera_json, Mapping):
        raise _fail(path, "camera must be an object")
    missing = [key for key in _CAMERA_KEYS if key not in camera_json]
    if missing:
        raise _fail(path, f"camera is missing {missing[0]!r}")
    if not isinstance(camera_json["distortion"], list):
        raise _fail(path, "camera.distortion must be a list of numbers (OpenCV order k1 k2 p1 p2 [k3 ...])")
    return camera_json


def _image_size(camera_json: Mapping[str, Any], path: Path | str) -> tuple[int, int]:
    """(width_px, height_px) of the ``camera`` object, each an integer in 1..MAX_IMAGE_SIDE_PX."""
    size = []
    for key in ("width_px", "height_px"):
        if isinstance(camera_json[key], bool) or not isinstance(camera_json[key], int):
            raise _fail(path, f"camera.{key} must be an integer")
        if not 1 <= camera_json[key] <= MAX_IMAGE_SIDE_PX:
            raise _fail(path, f"camera.{key} must be in 1..{MAX_IMAGE_SIDE_PX}, got {camera_json[key]}")
        size.append(camera_json[key])
    return size[0], size[1]


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
