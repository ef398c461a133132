"""Read a recorded session (format in docs/session-format.md).

:meth:`Session.open` reads the header and every record stream (small JSON lines) and keeps frame images on
disk: :meth:`Session.frame` decodes one frame on demand (random access by index). A session whose writer was
killed opens up to its last complete record, with a note in :attr:`Session.warnings`; anything else that is
wrong (missing files, unknown version, garbage in a stream, timestamps out of order, NaN poses) raises
:class:`xrseg.errors.SessionError` with a one-line reason.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from xrseg import jsonsafe
from xrseg.errors import InputError, SessionError
from xrseg.session import images
from xrseg.session.decode import (
    event_from_json,
    frame_from_json,
    gaze_from_json,
    head_pose_from_json,
    header_from_json,
    object_from_json,
    target_from_json,
)
from xrseg.session.format import (
    CLOSED_FILE,
    EVENTS_FILE,
    FRAMES_FILE,
    GAZE_FILE,
    HEAD_FILE,
    HEADER_FILE,
    OBJECTS_FILE,
    TARGETS_FILE,
    FixationTarget,
    FrameRecord,
    GroundTruthObject,
    SessionHeader,
)
from xrseg.session.jsonl import read_jsonl
from xrseg.types import CameraModel, Frame, GazeSample, HeadPose, InputEvent

if TYPE_CHECKING:
    import open3d

logger = logging.getLogger(__name__)

R = TypeVar("R")

MAX_SMALL_JSON_BYTES = 1 << 20
"""Largest header.json or closed.json read (1 MiB; ours are under 2 kB)."""
MAX_MESH_BYTES = 256 << 20
"""Largest ground-truth mesh file read (256 MiB; the bundled ones are under 200 kB)."""


def resolve_session_file(root: Path, relative: str, what: str) -> Path:
    """The path of a file named inside a session; refuses absolute paths and paths that leave the session."""
    pure = PurePosixPath(relative)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in relative:
        raise SessionError(f"{what} {relative!r} must be a relative path inside the session directory")
    return root.joinpath(*pure.parts)


def load_header(root: Path) -> SessionHeader:
    """Read and validate header.json. Raises SessionError."""
    if not root.exists():
        raise SessionError(f"session {root} does not exist")
    if not root.is_dir():
        raise SessionError(f"session {root} is not a directory")
    path = root / HEADER_FILE
    try:
        value = jsonsafe.load_file(path, MAX_SMALL_JSON_BYTES, HEADER_FILE, SessionError)
    except SessionError as err:
        if isinstance(err.__cause__, FileNotFoundError):
            raise SessionError(f"{root} is not a session: missing {HEADER_FILE}") from err
        raise
    return header_from_json(value)


def _load_stream(
    root: Path,
    name: str,
    decode: Callable[[Any, str], R],
    time_of: Callable[[R], int],
    strict: bool,
    warnings: list[str],
) -> list[R]:
    """Decode a JSON-lines stream; timestamps must increase (strict) or not decrease."""
    lines, stream_warnings = read_jsonl(root / name, name)
    warnings.extend(stream_warnings)
    records: list[R] = []
    previous: int | None = None
    for number, value in lines:
        where = f"{name} line {number}"
        record = decode(value, where)
        now = time_of(record)
        if previous is not None and (now <= previous if strict else now < previous):
            raise SessionError(f"{where}: timestamp {now} is not after the previous {previous} (out of order)")
        previous = now
        records.append(record)
    return records


def load_frames(root: Path, warnings: list[str]) -> list[FrameRecord]:
    frames = _load_stream(root, FRAMES_FILE, frame_from_json, lambda r: r.timestamp_ns, True, warnings)
    for position, record in enumerate(frames):
        if record.index != position:
            raise SessionError(f"{FRAMES_FILE}: record {position} has index {record.index} (frames missing?)")
    return frames


def load_head_poses(root: Path, warnings: list[str]) -> list[HeadPose]:
    return _load_stream(root, HEAD_FILE, head_pose_from_json, lambda r: r.timestamp_ns, True, warnings)


def load_gaze(root: Path, warnings: list[str]) -> list[GazeSample]:
    return _load_stream(root, GAZE_FILE, gaze_from_json, lambda r: r.timestamp_ns, True, warnings)


def load_events(root: Path, warnings: list[str]) -> list[InputEvent]:
    return _load_stream(root, EVENTS_FILE, event_from_json, lambda r: r.timestamp_ns, False, warnings)


def load_objects(root: Path, warnings: list[str]) -> list[GroundTruthObject]:
    objects = _load_stream(root, OBJECTS_FILE, object_from_json, lambda r: 0, False, warnings)
    seen: set[int] = set()
    for obj in objects:
        if obj.object_id in seen:
            raise SessionError(f"{OBJECTS_FILE}: object_id {obj.object_id} appears twice")
        seen.add(obj.object_id)
    return objects


def load_fixation_targets(root: Path, warnings: list[str]) -> list[FixationTarget]:
    return _load_stream(root, TARGETS_FILE, target_from_json, lambda r: r.start_ns, False, warnings)


def check_closed_counts(root: Path, counts: dict[str, int], warnings: list[str]) -> None:
    """Compare what was read with closed.json: fewer records than the writer wrote means truncation."""
    path = root / CLOSED_FILE
    if not path.exists():
        warnings.append("session was not closed cleanly (no closed.json): read up to the last complete record")
        return
    value = jsonsafe.load_file(path, MAX_SMALL_JSON_BYTES, CLOSED_FILE, SessionError)
    written = value.get("record_counts") if isinstance(value, dict) else None
    if not isinstance(written, dict):
        raise SessionError(f"{CLOSED_FILE} is corrupted (record_counts is not an object)")
    for name, count in counts.items():
        expected = written.get(name)
        if isinstance(expected, int) and expected != count:
            raise SessionError(f"{name} has {count} records but the writer closed it with {expected}: truncated")


@dataclass(frozen=True)
class SessionParts:
    """Everything :meth:`Session.open` read, before it becomes a Session (used by the checker)."""

    header: SessionHeader
    frames: list[FrameRecord]
    head_poses: list[HeadPose]
    gaze: list[GazeSample]
    events: list[InputEvent]
    objects: list[GroundTruthObject]
    targets: list[FixationTarget]


class Session:
    """A recorded session opened for reading. Create with :meth:`Session.open`.

    Attributes: ``header``; ``frame_count``; ``frame_timestamps_ns`` (N int64); ``head_timestamps_ns`` (M int64)
    and ``world_from_head`` (Mx4x4 float64); ``gaze_timestamps_ns`` (K int64); ``warnings`` (notes such as
    "gaze.jsonl: dropped a torn last record"); ``has_ground_truth``. Arrays are read-only.
    """

    def __init__(self, path: Path, parts: SessionParts, warnings: Sequence[str]) -> None:
        self.path = path
        self.header = parts.header
        self._frames = parts.frames
        self._head_poses = parts.head_poses
        self._gaze = parts.gaze
        self._events = parts.events
        self._objects = {obj.object_id: obj for obj in parts.objects}
        self._targets = parts.targets
        self.warnings: list[str] = list(warnings)
        self.frame_count: int = len(parts.frames)
        self.frame_timestamps_ns = _readonly(np.array([f.timestamp_ns for f in parts.frames], dtype=np.int64))
        self.head_timestamps_ns = _readonly(np.array([p.timestamp_ns for p in parts.head_poses], dtype=np.int64))
        poses = [p.world_from_head for p in parts.head_poses]
        self.world_from_head = _readonly(np.stack(poses) if poses else np.zeros((0, 4, 4), dtype=np.float64))
        self.gaze_timestamps_ns = _readonly(np.array([g.timestamp_ns for g in parts.gaze], dtype=np.int64))
        self.has_ground_truth: bool = bool(
            parts.objects or parts.targets or any(f.instance_ids_file for f in parts.frames)
        )

    @classmethod
    def open(cls, path: str | Path) -> Session:
        """Open the session directory at ``path``. Raises SessionError with a one-line reason."""
        root = Path(path)
        warnings: list[str] = []
        header = load_header(root)
        parts = SessionParts(
            header=header,
            frames=load_frames(root, warnings),
            head_poses=load_head_poses(root, warnings),
            gaze=load_gaze(root, warnings),
            events=load_events(root, warnings),
            objects=load_objects(root, warnings),
            targets=load_fixation_targets(root, warnings),
        )
        check_closed_counts(root, record_counts(parts), warnings)
        for warning in warnings:
            logger.warning("%s: %s", root, warning)
        return cls(root, parts, warnings)

    def __repr__(self) -> str:
        return f"Session({str(self.path)!r}, frames={self.frame_count}, gaze={len(self._gaze)})"

    # -----------------------------------------------------------------------------------------------------------
    @property
    def camera(self) -> CameraModel:
        """The header's camera model."""
        return self.header.camera

    @property
    def duration_ns(self) -> int:
        """From the first to the last timestamp over every stream (0 for an empty session)."""
        arrays = (self.frame_timestamps_ns, self.head_timestamps_ns, self.gaze_timestamps_ns)
        stamps = [a for a in arrays if a.size]
        events = [e.timestamp_ns for e in self._events]
        if not stamps and not events:
            return 0
        lo = min([int(a[0]) for a in stamps] + events)
        hi = max([int(a[-1]) for a in stamps] + events)
        return hi - lo

    def frame_record(self, index: int) -> FrameRecord:
        """The index line of frame ``index`` (file names relative to the session)."""
        if isinstance(index, bool) or not 0 <= int(index) < self.frame_count:
            raise InputError(f"frame index {index} is out of range (the session has {self.frame_count} frames)")
        return self._frames[int(index)]

    def frame(self, index: int) -> Frame:
        """Decode frame ``index``: ``rgb`` HxWx3 uint8 RGB, ``depth_m`` HxW float32 metres when present."""
        record = self.frame_record(index)
        expected = (self.header.camera.height_px, self.header.camera.width_px)
        rgb = images.read_rgb(
            resolve_session_file(self.path, record.rgb_file, "rgb file"), expected, f"frame {index}: rgb"
        )
        _check_size(rgb.shape[:2], expected, f"frame {index}: rgb")
        depth = None
        if record.depth_file is not None:
            path = resolve_session_file(self.path, record.depth_file, "depth file")
            depth = images.read_depth(path, self.header.depth_scale_m, expected, f"frame {index}: depth")
            _check_size(depth.shape, expected, f"frame {index}: depth")
        elif self.header.has_depth:
            raise SessionError(f"frame {index}: the header says has_depth but the frame has no depth image")
        return Frame(index=record.index, timestamp_ns=record.timestamp_ns, rgb=rgb, depth_m=depth)

    def instance_ids(self, index: int) -> npt.NDArray[np.uint16] | None:
        """Ground-truth instance ids of frame ``index``: HxW uint16 (0 = background), or None."""
        record = self.frame_record(index)
        if record.instance_ids_file is None:
            return None
        path = resolve_session_file(self.path, record.instance_ids_file, "ids file")
        expected = (self.header.camera.height_px, self.header.camera.width_px)
        ids = images.read_png16(path, "instance ids", expected, f"frame {index}: ids")
        _check_size(ids.shape, expected, f"frame {index}: ids")
        return ids

    def head_poses(self) -> list[HeadPose]:
        return list(self._head_poses)

    def gaze_samples(self) -> list[GazeSample]:
        return list(self._gaze)

    def events(self) -> list[InputEvent]:
        return list(self._events)

    def objects(self) -> list[GroundTruthObject]:
        return list(self._objects.values())

    def fixation_targets(self) -> list[FixationTarget]:
        return list(self._targets)

    def object_mesh(self, object_id: int) -> open3d.geometry.TriangleMesh:
        """The ground-truth mesh of ``object_id`` in WORLD coordinates (metres)."""
        import open3d as o3d

        obj = self._objects.get(object_id)
        if obj is None:
            known = ", ".join(str(k) for k in self._objects) or "none"
            raise InputError(f"object {object_id} is not in the session (objects: {known})")
        if obj.mesh_file is None:
            raise SessionError(f"object {object_id} ({obj.name}) has no mesh file")
        path = resolve_session_file(self.path, obj.mesh_file, "mesh file")
        if not path.is_file():
            raise SessionError(f"object {object_id} ({obj.name}): mesh file {obj.mesh_file} is missing")
        if path.stat().st_size > MAX_MESH_BYTES:
            raise SessionError(
                f"object {object_id} ({obj.name}): mesh file {obj.mesh_file} is over {MAX_MESH_BYTES >> 20} MiB"
            )
        mesh = o3d.io.read_triangle_mesh(path)
        if len(mesh.triangles) == 0:
            raise SessionError(f"object {object_id} ({obj.name}): mesh file {obj.mesh_file} has no triangles")
        return mesh


def record_counts(parts: SessionParts) -> dict[str, int]:
    return {
        FRAMES_FILE: len(parts.frames),
        HEAD_FILE: len(parts.head_poses),
        GAZE_FILE: len(parts.gaze),
        EVENTS_FILE: len(parts.events),
        OBJECTS_FILE: len(parts.objects),
        TARGETS_FILE: len(parts.targets),
    }


def _check_size(shape: tuple[int, ...], expected: tuple[int, int], what: str) -> None:
    """Raise SessionError unless an image's (height, width) matches the camera's."""
    if tuple(shape[:2]) != expected:
        raise SessionError(
            f"{what} is {shape[1]}x{shape[0]} pixels but the camera model is {expected[1]}x{expected[0]}"
        )


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array
