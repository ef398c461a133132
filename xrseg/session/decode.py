"""Decoding the recorded-session format: JSON values -> records (the reverse of :mod:`xrseg.session.format`).

Every failure is a SessionError naming where it happened (``where``: the file and line).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from xrseg.errors import InputError, SessionError
from xrseg.session.format import (
    FORMAT_NAME,
    FORMAT_VERSION,
    HEADER_FILE,
    MAX_IMAGE_SIDE_PX,
    MAX_POSITION_M,
    MAX_TIMESTAMP_NS,
    FixationTarget,
    FrameRecord,
    GroundTruthObject,
    SessionHeader,
)
from xrseg.types import CameraModel, EventKind, GazeRay, GazeSample, HeadPose, InputEvent, Transform, as_transform

__all__ = [
    "camera_from_json",
    "event_from_json",
    "frame_from_json",
    "gaze_from_json",
    "head_pose_from_json",
    "header_from_json",
    "object_from_json",
    "target_from_json",
    "transform_from_json",
]


def _get(obj: Any, key: str, where: str) -> Any:
    if not isinstance(obj, Mapping):
        raise SessionError(f"{where}: expected a JSON object, got {type(obj).__name__}")
    if key not in obj:
        raise SessionError(f"{where}: missing {key!r}")
    return obj[key]


def _int(value: Any, what: str, where: str, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise SessionError(f"{where}: {what} must be an integer, got {str(value)[:40]!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise SessionError(f"{where}: {what} must be an integer in [{low}, {high}], got {value}")
    return value


def _time(value: Any, what: str, where: str) -> int:
    """A timestamp in ns: an integer in [0, 2**63 - 1]."""
    return _int(value, what, where, 0, MAX_TIMESTAMP_NS)


def _check_reach(vector: np.ndarray, what: str, where: str) -> None:
    """Refuse a finite point or translation farther than :data:`MAX_POSITION_M` from its frame's origin."""
    if np.all(np.isfinite(vector)) and float(np.linalg.norm(vector)) > MAX_POSITION_M:
        raise SessionError(f"{where}: {what} is more than {MAX_POSITION_M:g} m from the origin")


def _float(value: Any, what: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SessionError(f"{where}: {what} must be a number, got {value!r}")
    return float(value)


def _bool(value: Any, what: str, where: str) -> bool:
    if not isinstance(value, bool):
        raise SessionError(f"{where}: {what} must be true or false, got {value!r}")
    return value


def _str(value: Any, what: str, where: str) -> str:
    if not isinstance(value, str):
        raise SessionError(f"{where}: {what} must be a string, got {value!r}")
    return value


def _opt_str(value: Any, what: str, where: str) -> str | None:
    return None if value is None else _str(value, what, where)


def _vector(value: Any, length: int, what: str, where: str) -> np.ndarray:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != length:
        raise SessionError(f"{where}: {what} must be a list of {length} numbers")
    return np.array([_float(v, what, where) for v in value], dtype=np.float64)


def transform_from_json(value: Any, what: str, where: str) -> Transform:
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 4:
        raise SessionError(f"{where}: {what} must be 4 rows of 4 numbers")
    matrix = np.stack([_vector(row, 4, what, where) for row in value])
    try:
        transform = as_transform(matrix, what)
    except InputError as err:
        raise SessionError(f"{where}: {err}") from err
    _check_reach(transform[:3, 3], f"{what} translation", where)
    return transform


def camera_from_json(value: Any, where: str) -> CameraModel:
    distortion = _get(value, "distortion", where)
    if not isinstance(distortion, Sequence) or isinstance(distortion, str):
        raise SessionError(f"{where}: camera distortion must be a list of numbers")
    try:
        return CameraModel(
            width_px=_int(_get(value, "width_px", where), "width_px", where, 1, MAX_IMAGE_SIDE_PX),
            height_px=_int(_get(value, "height_px", where), "height_px", where, 1, MAX_IMAGE_SIDE_PX),
            fx_px=_float(_get(value, "fx_px", where), "fx_px", where),
            fy_px=_float(_get(value, "fy_px", where), "fy_px", where),
            cx_px=_float(_get(value, "cx_px", where), "cx_px", where),
            cy_px=_float(_get(value, "cy_px", where), "cy_px", where),
            distortion=tuple(_float(v, "distortion", where) for v in distortion),
        )
    except InputError as err:
        raise SessionError(f"{where}: camera: {err}") from err


def header_from_json(value: Any, where: str = HEADER_FILE) -> SessionHeader:
    """Decode header.json, checking the format name and version first so old/new files fail clearly."""
    if _get(value, "format", where) != FORMAT_NAME:
        raise SessionError(f"{where}: not an xrseg session (format is {value['format']!r})")
    version = _get(value, "format_version", where)
    if version != FORMAT_VERSION:
        raise SessionError(
            f"{where}: unsupported format_version {version!r} (this xrseg reads version {FORMAT_VERSION})"
        )
    try:
        return SessionHeader(
            name=_str(_get(value, "name", where), "name", where),
            camera=camera_from_json(_get(value, "camera", where), where),
            head_from_camera=transform_from_json(
                _get(value, "head_from_camera", where), "head_from_camera", where
            ),
            source=_str(_get(value, "source", where), "source", where),
            rgb_encoding=_str(_get(value, "rgb_encoding", where), "rgb_encoding", where),
            jpeg_quality=_int(_get(value, "jpeg_quality", where), "jpeg_quality", where),
            jpeg_progressive=_bool(value.get("jpeg_progressive", False), "jpeg_progressive", where),
            png_compression=_int(value.get("png_compression", 3), "png_compression", where),
            has_depth=_bool(_get(value, "has_depth", where), "has_depth", where),
            depth_scale_m=_depth_scale(_get(value, "depth_scale_m", where), where),
            created_unix_ns=_time(value.get("created_unix_ns", 0), "created_unix_ns", where),
            description=_str(value.get("description", ""), "description", where),
            format_version=version,
        )
    except InputError as err:
        raise SessionError(f"{where}: {err}") from err


def _depth_scale(value: Any, where: str) -> float:
    scale = _float(value, "depth_scale_m", where)
    if not 0 < scale <= 1:
        raise SessionError(f"{where}: depth_scale_m must be in (0, 1] metres per unit, got {scale}")
    return scale


def frame_from_json(value: Any, where: str) -> FrameRecord:
    return FrameRecord(
        index=_int(_get(value, "index", where), "index", where),
        timestamp_ns=_time(_get(value, "timestamp_ns", where), "timestamp_ns", where),
        rgb_file=_str(_get(value, "rgb", where), "rgb", where),
        depth_file=_opt_str(value.get("depth"), "depth", where),
        instance_ids_file=_opt_str(value.get("instance_ids"), "instance_ids", where),
    )


def head_pose_from_json(value: Any, where: str) -> HeadPose:
    timestamp_ns = _time(_get(value, "timestamp_ns", where), "timestamp_ns", where)
    matrix = transform_from_json(_get(value, "world_from_head", where), "world_from_head", where)
    return HeadPose(timestamp_ns, matrix)


_NAN3 = np.full(3, np.nan)


def _ray_from_json(value: Any, where: str) -> GazeRay:
    origin = _get(value, "origin_m", where)
    direction = _get(value, "direction", where)
    if origin is None or direction is None:
        return GazeRay(_NAN3, _NAN3)
    ray = GazeRay(_vector(origin, 3, "origin_m", where), _vector(direction, 3, "direction", where))
    if not ray.is_finite or not math.isclose(float(np.linalg.norm(ray.direction)), 1.0, abs_tol=1e-6):
        raise SessionError(f"{where}: gaze direction must be a non-zero finite vector")
    _check_reach(ray.origin_m, "gaze origin_m", where)
    return ray


def _vergence(value: Any, where: str) -> float | None:
    """None, or a distance in (0, MAX_POSITION_M] metres (what `session check` and replay both require)."""
    if value is None:
        return None
    depth = _float(value, "vergence_depth_m", where)
    if not 0 < depth <= MAX_POSITION_M:
        raise SessionError(
            f"{where}: vergence_depth_m {depth} is not a positive distance up to {MAX_POSITION_M:g} m"
        )
    return depth


def gaze_from_json(value: Any, where: str) -> GazeSample:
    timestamp_ns = _time(_get(value, "timestamp_ns", where), "timestamp_ns", where)
    ray = _ray_from_json(value, where)
    valid = _get(value, "valid", where)
    if not isinstance(valid, bool):
        raise SessionError(f"{where}: valid must be true or false")
    depth = value.get("vergence_depth_m")
    left = value.get("left")
    right = value.get("right")
    return GazeSample(
        timestamp_ns=timestamp_ns,
        ray=ray,
        valid=valid and ray.is_finite,
        vergence_depth_m=_vergence(depth, where),
        left=None if left is None else _ray_from_json(left, where + " (left)"),
        right=None if right is None else _ray_from_json(right, where + " (right)"),
    )


def event_from_json(value: Any, where: str) -> InputEvent:
    timestamp_ns = _time(_get(value, "timestamp_ns", where), "timestamp_ns", where)
    kind = _get(value, "kind", where)
    try:
        return InputEvent(timestamp_ns, EventKind(kind))
    except ValueError as err:
        kinds = ", ".join(k.value for k in EventKind)
        raise SessionError(f"{where}: unknown event kind {kind!r} (known: {kinds})") from err


def object_from_json(value: Any, where: str) -> GroundTruthObject:
    return GroundTruthObject(
        object_id=_int(_get(value, "object_id", where), "object_id", where, 1, 65535),
        name=_str(_get(value, "name", where), "name", where),
        category=_str(value.get("category", ""), "category", where),
        mesh_file=_opt_str(value.get("mesh_file"), "mesh_file", where),
    )


def target_from_json(value: Any, where: str) -> FixationTarget:
    """Decode a fixation target; ``target_world_m`` is optional (absent or null: None)."""
    point = value.get("target_world_m") if isinstance(value, Mapping) else None
    target_world_m = None
    if point is not None:
        x, y, z = _vector(point, 3, "target_world_m", where)
        if not all(math.isfinite(v) for v in (x, y, z)):
            raise SessionError(f"{where}: target_world_m must be finite")
        _check_reach(np.array([x, y, z]), "target_world_m", where)
        target_world_m = (float(x), float(y), float(z))
    target = FixationTarget(
        start_ns=_time(_get(value, "start_ns", where), "start_ns", where),
        end_ns=_time(_get(value, "end_ns", where), "end_ns", where),
        object_id=_int(_get(value, "object_id", where), "object_id", where),
        target_world_m=target_world_m,
    )
    if target.end_ns < target.start_ns:
        raise SessionError(f"{where}: end_ns {target.end_ns} is before start_ns {target.start_ns}")
    return target
