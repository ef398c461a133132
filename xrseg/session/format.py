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
This module holds the records and their encoding (records -> JSON values), :mod:`xrseg.session.decode` the
validated decoding (JSON values -> records); the writer and reader do the file work.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any

import numpy as np

from xrseg.errors import InputError
from xrseg.types import CameraModel, GazeRay, GazeSample, HeadPose, InputEvent, Transform, as_transform

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
