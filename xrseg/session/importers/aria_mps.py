"""Import Project Aria eye gaze (MPS ``general_eye_gaze.csv`` / ``personalized_eye_gaze.csv``) as a session.

Aria reports gaze as yaw/pitch angles in its Central Pupil Frame (CPF): origin midway between the pupils,
+X towards the wearer's LEFT, +Y up, +Z forward (right-handed; the left eye sits at +X, e.g.
``tx_left_eye_cpf`` = +0.0315 m). As in projectaria_tools, the direction for (yaw, pitch) is
``normalize(tan(yaw), tan(pitch), 1)`` in CPF. Our head frame follows OpenXR (+x right, +y up, -z forward), so
we take the head frame to be the CPF turned half a turn about +Y: ``head_from_cpf = diag(-1, 1, -1)``; yaw =
pitch = 0 is the head's forward axis (0, 0, -1), positive yaw looks to the wearer's left, positive pitch up.

Columns understood (Gen1 old, Gen1 new and Gen2 schemas): ``tracking_timestamp_us`` (required),
``pitch_rads_cpf`` (required), ``yaw_rads_cpf`` (combined yaw) and/or ``left_yaw_rads_cpf`` +
``right_yaw_rads_cpf`` (combined yaw = their mean when ``yaw_rads_cpf`` is absent), optional
``left_pitch_rads_cpf``/``right_pitch_rads_cpf``, ``depth_m`` (vergence depth; 0 or empty = none), and
``tx/ty/tz_left_eye_cpf``, ``tx/ty/tz_right_eye_cpf`` (per-eye ray origins; per-eye rays are imported only
when these are present). Empty or NaN angles give an invalid sample (a dropout), kept in the stream.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xrseg import jsonsafe
from xrseg.errors import InputError, SessionError
from xrseg.session.decode import camera_from_json, transform_from_json
from xrseg.session.format import SessionHeader
from xrseg.session.writer import SessionWriter
from xrseg.types import CameraModel, GazeRay, GazeSample, Transform

logger = logging.getLogger(__name__)

HEAD_FROM_CPF: Transform = np.diag([-1.0, 1.0, -1.0, 1.0])
"""4x4 float64: CPF (+X left, +Y up, +Z forward) -> our OpenXR head frame (+x right, +y up, -z forward)."""

HEAD_FROM_FORWARD_CAMERA: Transform = np.diag([1.0, -1.0, -1.0, 1.0])
"""4x4 float64: an OpenCV camera at the head origin looking along the head's forward axis."""

_TIME = "tracking_timestamp_us"
_PITCH = "pitch_rads_cpf"


def cpf_direction(yaw_rad: npt.ArrayLike, pitch_rad: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unit gaze directions in CPF for yaw/pitch angles (radians): ...x3 float64, normalize(tan y, tan p, 1)."""
    yaw = np.asarray(yaw_rad, dtype=np.float64)
    pitch = np.asarray(pitch_rad, dtype=np.float64)
    vectors = np.stack([np.tan(yaw), np.tan(pitch), np.ones_like(yaw + pitch)], axis=-1)
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def head_direction(yaw_rad: npt.ArrayLike, pitch_rad: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Unit gaze directions in our head frame for Aria CPF yaw/pitch: ...x3 float64."""
    return cpf_direction(yaw_rad, pitch_rad) @ HEAD_FROM_CPF[:3, :3].T


def _number(row: Mapping[str, str | None], column: str, line: int) -> float:
    text = (row.get(column) or "").strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError as err:
        raise InputError(f"line {line}: {column} is not a number: {text!r}") from err


def _timestamp_ns(text: str | None, line: int) -> int:
    try:
        return int(Decimal((text or "").strip()) * 1000)
    except (InvalidOperation, ValueError) as err:
        raise InputError(f"line {line}: {_TIME} is not a number: {text!r}") from err


def _eye_ray(row: Mapping[str, str | None], side: str, pitch: float, line: int) -> GazeRay | None:
    origin_cpf = np.array([_number(row, f"{axis}_{side}_eye_cpf", line) for axis in ("tx", "ty", "tz")])
    yaw = _number(row, f"{side}_yaw_rads_cpf", line)
    own_pitch = _number(row, f"{side}_pitch_rads_cpf", line) if f"{side}_pitch_rads_cpf" in row else pitch
    origin = HEAD_FROM_CPF[:3, :3] @ origin_cpf
    return GazeRay(origin, head_direction(yaw, own_pitch))


def read_aria_eye_gaze(csv_path: str | Path) -> list[GazeSample]:
    """Parse an Aria MPS eye-gaze CSV into gaze samples in our head frame (timestamps: Aria device clock, ns).

    Raises InputError for a missing file, missing columns, non-numeric values or timestamps that go back in
    time; rows repeating the previous timestamp are dropped with a warning.
    """
    path = Path(csv_path)
    try:
        handle = path.open(newline="", encoding="utf-8")
    except FileNotFoundError as err:
        raise InputError(f"eye gaze CSV {path} does not exist") from err
    with handle:
        reader = csv.DictReader(handle)
        columns = set(reader.fieldnames or ())
        has_combined = "yaw_rads_cpf" in columns
        has_pair = {"left_yaw_rads_cpf", "right_yaw_rads_cpf"} <= columns
        missing = [c for c in (_TIME, _PITCH) if c not in columns]
        if missing or not (has_combined or has_pair):
            if not (has_combined or has_pair):
                missing.append("yaw_rads_cpf or left_yaw_rads_cpf+right_yaw_rads_cpf")
            raise InputError(f"{path.name} is not an Aria eye gaze CSV: missing {', '.join(missing)}")
        eye_columns = {f"{a}_{s}_eye_cpf" for a in ("tx", "ty", "tz") for s in ("left", "right")}
        per_eye = has_pair and eye_columns <= columns
        samples: list[GazeSample] = []
        duplicates = 0
        for row in reader:
            line = reader.line_num
            timestamp_ns = _timestamp_ns(row.get(_TIME), line)
            if samples and timestamp_ns <= samples[-1].timestamp_ns:
                if timestamp_ns == samples[-1].timestamp_ns:
                    duplicates += 1
                    continue
                raise InputError(f"line {line}: {_TIME} goes back in time ({timestamp_ns // 1000} us)")
            pitch = _number(row, _PITCH, line)
            if has_combined:
                yaw = _number(row, "yaw_rads_cpf", line)
            else:
                yaw = 0.5 * (_number(row, "left_yaw_rads_cpf", line) + _number(row, "right_yaw_rads_cpf", line))
            depth = _number(row, "depth_m", line) if "depth_m" in columns else math.nan
            ray = GazeRay(np.zeros(3), head_direction(yaw, pitch))
            samples.append(
                GazeSample(
                    timestamp_ns=timestamp_ns,
                    ray=ray,
                    valid=ray.is_finite,
                    vergence_depth_m=depth if math.isfinite(depth) and depth > 0 else None,
                    left=_eye_ray(row, "left", pitch, line) if per_eye else None,
                    right=_eye_ray(row, "right", pitch, line) if per_eye else None,
                )
            )
    if duplicates:
        logger.warning("%s: dropped %d rows repeating the previous timestamp", path.name, duplicates)
    return samples


def load_calibration(path: str | Path) -> tuple[CameraModel, Transform]:
    """Read a camera model and ``head_from_camera`` from JSON.

    The file holds ``{"camera": {width_px, height_px, fx_px, fy_px, cx_px, cy_px, distortion}, "head_from_camera":
    4x4}`` (``head_from_camera`` optional: default :data:`HEAD_FROM_FORWARD_CAMERA`); a session's header.json
    has this layout, so one session's header can calibrate an import.
    """
    path = Path(path)
    try:
        value = jsonsafe.load_file(path, 1 << 20, f"calibration file {path.name}", InputError)
    except InputError as err:
        if isinstance(err.__cause__, FileNotFoundError):
            raise InputError(f"calibration file {path} does not exist") from err
        raise
    if not isinstance(value, dict) or "camera" not in value:
        raise InputError(f"calibration file {path.name} has no 'camera' object")
    try:
        camera = camera_from_json(value["camera"], path.name)
        head_from_camera = HEAD_FROM_FORWARD_CAMERA
        if "head_from_camera" in value:
            head_from_camera = transform_from_json(value["head_from_camera"], "head_from_camera", path.name)
    except SessionError as err:
        raise InputError(str(err)) from err
    return camera, head_from_camera


@dataclass(frozen=True)
class AriaImportResult:
    """What :func:`import_aria_eye_gaze` wrote."""

    path: Path
    gaze_count: int
    valid_count: int


def import_aria_eye_gaze(
    csv_path: str | Path,
    out: str | Path,
    camera: CameraModel,
    head_from_camera: Transform = HEAD_FROM_FORWARD_CAMERA,
    *,
    name: str | None = None,
    overwrite: bool = False,
) -> AriaImportResult:
    """Write a gaze-only session (source "imported", no frames, no depth) from an Aria eye gaze CSV."""
    csv_path = Path(csv_path)
    samples = read_aria_eye_gaze(csv_path)
    if not samples:
        raise InputError(f"{csv_path.name} has no gaze rows")
    header = SessionHeader(
        name=name or csv_path.stem,
        camera=camera,
        head_from_camera=head_from_camera,
        source="imported",
        has_depth=False,
        description=f"Project Aria eye gaze imported from {csv_path.name} (timestamps: Aria device clock)",
    )
    with SessionWriter(out, header, overwrite=overwrite) as writer:
        for sample in samples:
            writer.write_gaze(sample)
    valid = sum(sample.usable for sample in samples)
    logger.info("imported %d gaze samples (%d valid) into %s", len(samples), valid, out)
    return AriaImportResult(Path(out), len(samples), valid)
