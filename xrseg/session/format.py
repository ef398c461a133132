"""The recorded-session format, version 1: records, file names and their JSON encoding.

A session is a directory (see docs/session-format.md)::

    header.json              static facts, written atomically when the writer opens
    frames.jsonl             one line per frame: index, timestamp_ns, image file names
    frames/                  rgb_000000.jpg|png, depth_000000.png (uint16), ids_000000.png (uint16)
    head_poses.jsonl         world_from_head at the head tracker's own rate
    gaze.jsonl               gaze samples at the eye tracker's own rate
    events.jsonl             input events (select / reject / larger / smaller)
    objects.jsonl            ground-truth objects; meshes/object_<id>.ply in WORLD coordinates
    fixation_targets.jsonl   ground truth: which object each scripted fixation looks at
    closed.json              record counts, written when the writer closes cleanly

Every ``*.jsonl`` stream is append-only JSON lines; a record is complete once its trailing newline is on disk.
This module holds the pure encoding (records <-> JSON values); the writer and reader do the file work.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from xrseg.errors import InputError, SessionError
from xrseg.types import CameraModel, EventKind, GazeRay, GazeSample, HeadPose, InputEvent, Transform, as_transform

FORMAT_VERSION: int = 1
"""The version this code writes and the only one it reads."""

FORMAT_NAME = "xrseg-session"
SOURCES = ("synthetic", "recorded", "imported")
RGB_ENCODINGS = ("jpeg", "png")

HEADER_FILE = "header.json"
CLOSED_FILE = "closed.json"
FRAMES_FILE = "frames.jsonl"
HEAD_FILE = "head_poses.jsonl"
GAZE_FILE = "gaze.jsonl"
EVENTS_FILE = "events.jsonl"
OBJECTS_FILE = "objects.jsonl"
TARGETS_FILE = "fixation_targets.jsonl"
FRAMES_DIR = "frames"
MESHES_DIR = "meshes"
TMP_PREFIX = ".tmp-"
"""Files being written carry this prefix until they are renamed into place."""

STREAM_FILES = (FRAMES_FILE, HEAD_FILE, GAZE_FILE, EVENTS_FILE, OBJECTS_FILE, TARGETS_FILE)
DEPTH_MAX_UNITS = 65535
"""Largest storable depth value in units of ``depth_scale_m`` (0 means "no measurement")."""

MAX_POSITION_M = 1.0e4
"""Largest distance from its frame's origin that a translation, gaze origin, target point or vergence depth
read from a session may have (10 km): anything farther is a corrupted value, refused on reading."""
MAX_IMAGE_SIDE_PX = 16384
"""Largest camera width or height accepted in a header."""
MAX_TIMESTAMP_NS = 2**63 - 1
"""Timestamps are non-negative and fit int64 (so differences of two never overflow int64 either)."""


@dataclass(frozen=True)
class SessionHeader:
    """Static facts of a session.

    ``camera`` describes every frame (frames must be exactly ``camera.height_px x camera.width_px``);
    ``head_from_camera`` is a 4x4 float64 rigid transform (OpenXR head frame <- OpenCV camera frame).
    ``rgb_encoding`` is "jpeg" (quality ``jpeg_quality``; progressive when ``jpeg_progressive``, which gives the
    same pixels in ~5 % fewer bytes but encodes slower) or "png" (lossless). ``png_compression`` is the zlib
    level 0-9 of every PNG (depth, instance ids, PNG RGB): 3 is fast enough for live recording, 9 is about a
    third smaller for depth and half for ids at ~10x the encode time (the scene generator uses 9); both are
    lossless, so readers ignore these fields. Depth, when ``has_depth``, is
    stored as uint16 PNG in units of ``depth_scale_m`` metres: 0 = no measurement, and depths beyond
    ``depth_range_m`` (65535 units) are stored as 0. ``source`` is "synthetic", "recorded" or "imported".
    """

    name: str
    camera: CameraModel
    head_from_camera: Transform
    source: str
    rgb_encoding: str = "jpeg"
    jpeg_quality: int = 92
    jpeg_progressive: bool = False
    png_compression: int = 3
    has_depth: bool = True
    depth_scale_m: float = 0.001
    created_unix_ns: int = 0
    description: str = ""
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        object.__setattr__(self, "head_from_camera", as_transform(self.head_from_camera, "head_from_camera"))
        if self.source not in SOURCES:
            raise InputError(f"header source must be one of {', '.join(SOURCES)}, got {self.source!r}")
        if self.rgb_encoding not in RGB_ENCODINGS:
            raise InputError(f"rgb_encoding must be 'jpeg' or 'png', got {self.rgb_encoding!r}")
        if not 1 <= int(self.jpeg_quality) <= 100:
            raise InputError(f"jpeg_quality must be in 1..100, got {self.jpeg_quality}")
        level = self.png_compression
        if isinstance(level, bool) or not isinstance(level, numbers.Integral) or not 0 <= int(level) <= 9:
            raise InputError(f"png_compression must be an integer in 0..9, got {self.png_compression!r}")
        if not (math.isfinite(self.depth_scale_m) and self.depth_scale_m > 0):
            raise InputError(f"depth_scale_m must be a positive number, got {self.depth_scale_m}")
        if self.format_version != FORMAT_VERSION:
            raise InputError(f"format_version {self.format_version} is not supported (this is {FORMAT_VERSION})")

    @property
    def depth_range_m(self) -> float:
        """The largest storable depth in metres (65535 * depth_scale_m)."""
        return DEPTH_MAX_UNITS * self.depth_scale_m


@dataclass(frozen=True)
class GroundTruthObject:
    """A scene object. ``mesh_file`` is relative to the session directory (a PLY in WORLD coordinates)."""

    object_id: int
    name: str
    category: str = ""
    mesh_file: str | None = None


@dataclass(frozen=True)
class FixationTarget:
    """Ground truth: from ``start_ns`` to ``end_ns`` the scripted gaze looks at object ``object_id``.

    ``target_world_m`` is the 3D point (x, y, z) in WORLD metres that the fixation looks at (a point on the
    object's visible surface), or None when unknown (older sessions, recordings without a scripted point).
    """

    start_ns: int
    end_ns: int
    object_id: int
    target_world_m: tuple[float, float, float] | None = None


@dataclass(frozen=True)
class FrameRecord:
    """One line of frames.jsonl: file names are relative to the session directory."""

    index: int
    timestamp_ns: int
    rgb_file: str
    depth_file: str | None = None
    instance_ids_file: str | None = None


# ---------------------------------------------------------------------------------------------------------------
# Encoding: records -> JSON values (strict JSON: no NaN, no Infinity).


def _floats(values: Any) -> list[float]:
    return [float(v) for v in np.asarray(values, dtype=np.float64).ravel()]


def camera_to_json(camera: CameraModel) -> dict[str, Any]:
    return dict(camera.as_dict())


def transform_to_json(matrix: Transform) -> list[list[float]]:
    return [_floats(row) for row in np.asarray(matrix, dtype=np.float64)]


def header_to_json(header: SessionHeader) -> dict[str, Any]:
    return {
        "format": FORMAT_NAME,
        "format_version": header.format_version,
        "name": header.name,
        "source": header.source,
        "description": header.description,
        "created_unix_ns": int(header.created_unix_ns),
        "clock": "all timestamps are int nanoseconds on one monotonic clock",
        "camera": camera_to_json(header.camera),
        "head_from_camera": transform_to_json(header.head_from_camera),
        "rgb_encoding": header.rgb_encoding,
        "jpeg_quality": int(header.jpeg_quality),
        "jpeg_progressive": bool(header.jpeg_progressive),
        "png_compression": int(header.png_compression),
        "has_depth": bool(header.has_depth),
        "depth_scale_m": float(header.depth_scale_m),
        "depth_range_m": header.depth_range_m,
    }


def frame_to_json(record: FrameRecord) -> dict[str, Any]:
    return {
        "index": record.index,
        "timestamp_ns": record.timestamp_ns,
        "rgb": record.rgb_file,
        "depth": record.depth_file,
        "instance_ids": record.instance_ids_file,
    }


def head_pose_to_json(pose: HeadPose) -> dict[str, Any]:
    return {"timestamp_ns": int(pose.timestamp_ns), "world_from_head": transform_to_json(pose.world_from_head)}


def _ray_to_json(ray: GazeRay) -> dict[str, Any]:
    if not ray.is_finite:
        return {"origin_m": None, "direction": None}
    return {"origin_m": _floats(ray.origin_m), "direction": _floats(ray.direction)}


def gaze_to_json(sample: GazeSample) -> dict[str, Any]:
    """A non-finite combined ray is stored as null arrays and ``valid: false`` (a tracker dropout)."""
    ray = _ray_to_json(sample.ray)
    depth = sample.vergence_depth_m
    return {
        "timestamp_ns": int(sample.timestamp_ns),
        "valid": bool(sample.valid and sample.ray.is_finite),
        **ray,
        "vergence_depth_m": float(depth) if depth is not None and math.isfinite(depth) and depth > 0 else None,
        "left": _ray_to_json(sample.left) if sample.left is not None else None,
        "right": _ray_to_json(sample.right) if sample.right is not None else None,
    }


def event_to_json(event: InputEvent) -> dict[str, Any]:
    return {"timestamp_ns": int(event.timestamp_ns), "kind": event.kind.value}


def object_to_json(obj: GroundTruthObject) -> dict[str, Any]:
    return {"object_id": obj.object_id, "name": obj.name, "category": obj.category, "mesh_file": obj.mesh_file}


def target_to_json(target: FixationTarget) -> dict[str, Any]:
    """``target_world_m`` is written only when known (a file without it is the older form, still valid)."""
    value: dict[str, Any] = {"start_ns": target.start_ns, "end_ns": target.end_ns, "object_id": target.object_id}
    if target.target_world_m is not None:
        value["target_world_m"] = _floats(target.target_world_m)
    return value


# ---------------------------------------------------------------------------------------------------------------
# Decoding: JSON values -> records. Every failure is a SessionError naming where it happened (``where``).


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
