"""Write a recorded session (format in docs/session-format.md), crash-safely.

Every stream is append-only JSON lines, each record handed to the kernel in one write before the call
returns; frame images are written under a temporary name and renamed before their index line is appended;
the header is written atomically when the writer opens. A writer killed at any point (even SIGKILL) leaves a
session that :class:`xrseg.session.reader.Session` opens up to the last complete record.

The writer is thread-safe: a camera thread and a gaze thread may write at the same time. Frame images are
encoded outside the lock.
"""

from __future__ import annotations

import json
import logging
import numbers
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError, SessionError
from xrseg.session import images
from xrseg.session.format import (
    CLOSED_FILE,
    EVENTS_FILE,
    FRAMES_DIR,
    FRAMES_FILE,
    GAZE_FILE,
    HEAD_FILE,
    HEADER_FILE,
    MESHES_DIR,
    OBJECTS_FILE,
    TARGETS_FILE,
    TMP_PREFIX,
    FixationTarget,
    FrameRecord,
    GroundTruthObject,
    SessionHeader,
    event_to_json,
    frame_to_json,
    gaze_to_json,
    head_pose_to_json,
    header_to_json,
    object_to_json,
    target_to_json,
)
from xrseg.session.jsonl import JsonlAppender, write_atomic
from xrseg.types import Frame, GazeSample, HeadPose, InputEvent

if TYPE_CHECKING:
    import open3d

logger = logging.getLogger(__name__)


def _timestamp(value: object, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{what} must be an integer number of nanoseconds, got {value!r}")
    return int(value)


class _Stream:
    """An appender plus the ordering rule of its timestamps, under one lock."""

    def __init__(self, path: Path, name: str, strict: bool) -> None:
        self.appender = JsonlAppender(path)
        self.name = name
        self.strict = strict
        self.last_ns: int | None = None
        self.lock = threading.Lock()

    def check_order(self, timestamp_ns: int) -> None:
        """Raise InputError unless ``timestamp_ns`` is after (strict) or not before the previous one."""
        last = self.last_ns
        if last is not None and (timestamp_ns <= last if self.strict else timestamp_ns < last):
            rule = "after" if self.strict else "at or after"
            raise InputError(f"{self.name}: timestamp_ns {timestamp_ns} must be {rule} the previous {last}")


class SessionWriter:
    """Create a session directory at ``path`` and append records to it. Use as a context manager.

    ``path`` must not exist (or be an empty directory) unless ``overwrite`` is True, in which case an existing
    session there is deleted first (a non-empty directory that is not a session is never deleted). Timestamps
    must be strictly increasing within the frame, head-pose and gaze streams, and non-decreasing within
    events and fixation targets (by start_ns); frames are renumbered 0, 1, 2... in the order written.

    ``clock_ns`` returns the wall-clock time in int nanoseconds since the Unix epoch; it stamps
    ``closed_unix_ns`` in closed.json and fills ``header.created_unix_ns`` when that is 0. Default:
    :func:`time.time_ns`. A generator that must write the same bytes on every run passes a fixed clock.
    """

    def __init__(
        self,
        path: str | Path,
        header: SessionHeader,
        *,
        overwrite: bool = False,
        clock_ns: Callable[[], int] | None = None,
    ) -> None:
        self.path = Path(path)
        self.header = header
        self._clock_ns: Callable[[], int] = time.time_ns if clock_ns is None else clock_ns
        if not header.created_unix_ns:
            self.header = replace(header, created_unix_ns=self._now_ns())
        self._prepare_directory(overwrite)
        (self.path / FRAMES_DIR).mkdir()
        (self.path / MESHES_DIR).mkdir()
        self._frames = _Stream(self.path / FRAMES_FILE, "frames", strict=True)
        self._head = _Stream(self.path / HEAD_FILE, "head poses", strict=True)
        self._gaze = _Stream(self.path / GAZE_FILE, "gaze", strict=True)
        self._events = _Stream(self.path / EVENTS_FILE, "events", strict=False)
        self._objects = _Stream(self.path / OBJECTS_FILE, "objects", strict=False)
        self._targets = _Stream(self.path / TARGETS_FILE, "fixation targets", strict=False)
        self._streams = (self._frames, self._head, self._gaze, self._events, self._objects, self._targets)
        self._object_ids: set[int] = set()
        self._depth_dropped_px = 0
        self._closed = False
        write_atomic(self.path / HEADER_FILE, json.dumps(header_to_json(self.header), indent=2).encode() + b"\n")
        logger.info("recording session %s to %s", header.name, self.path)

    def _now_ns(self) -> int:
        return _timestamp(self._clock_ns(), "clock_ns()")

    def _prepare_directory(self, overwrite: bool) -> None:
        path = self.path
        if path.exists() and not path.is_dir():
            raise SessionError(f"{path} exists and is not a directory")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise SessionError(f"{path} already exists and is not empty (pass overwrite=True to replace it)")
            if not (path / HEADER_FILE).is_file():
                raise SessionError(f"{path} is not a session directory (no {HEADER_FILE}); refusing to delete it")
            shutil.rmtree(path)
        path.mkdir(parents=True, exist_ok=True)

    # -----------------------------------------------------------------------------------------------------------
    def __enter__(self) -> SessionWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise SessionError(f"session writer for {self.path} is closed")

    @property
    def frame_count(self) -> int:
        return self._frames.appender.count

    # -----------------------------------------------------------------------------------------------------------
    def write_frame(self, frame: Frame, instance_ids: npt.NDArray[np.uint16] | None = None) -> None:
        """Append a frame: ``frame.rgb`` HxWx3 uint8 (the camera's size), ``frame.depth_m`` HxW float32 metres
        (required when the header says has_depth, refused otherwise), ``instance_ids`` HxW uint16 (0 =
        background) or None. ``frame.index`` is ignored: frames are numbered in the order written."""
        self._check_open()
        header = self.header
        timestamp_ns = _timestamp(frame.timestamp_ns, "frame timestamp_ns")
        expected = (header.camera.height_px, header.camera.width_px)
        if frame.rgb.shape[:2] != expected:
            raise InputError(
                f"frame is {frame.width_px}x{frame.height_px} but the camera model is {expected[1]}x{expected[0]}"
            )
        if header.has_depth and frame.depth_m is None:
            raise InputError("the session header says has_depth but the frame has no depth_m")
        if not header.has_depth and frame.depth_m is not None:
            raise InputError("the frame has depth_m but the session header says has_depth=False")
        if instance_ids is not None and (instance_ids.shape != expected or instance_ids.dtype != np.uint16):
            got = f"{instance_ids.shape} {instance_ids.dtype}"
            raise InputError(f"instance_ids must be {expected} uint16, got {got}")
        # Encode outside the lock: this is the slow part.
        rgb_data = images.encode_rgb(
            frame.rgb,
            header.rgb_encoding,
            header.jpeg_quality,
            jpeg_progressive=header.jpeg_progressive,
            png_compression=header.png_compression,
        )
        depth_data = None
        if frame.depth_m is not None:
            units, dropped = images.depth_to_units(frame.depth_m, header.depth_scale_m)
            if dropped and self._depth_dropped_px == 0:
                logger.warning("depth beyond %.3f m is stored as 0 (no measurement)", header.depth_range_m)
            self._depth_dropped_px += dropped
            depth_data = images.encode_png16(units, header.png_compression)
        ids_data = images.encode_png16(instance_ids, header.png_compression) if instance_ids is not None else None
        stream = self._frames
        with stream.lock:
            self._check_open()
            stream.check_order(timestamp_ns)
            index = stream.appender.count
            ext = "jpg" if header.rgb_encoding == "jpeg" else "png"
            record = FrameRecord(
                index=index,
                timestamp_ns=timestamp_ns,
                rgb_file=f"{FRAMES_DIR}/rgb_{index:06d}.{ext}",
                depth_file=f"{FRAMES_DIR}/depth_{index:06d}.png" if depth_data is not None else None,
                instance_ids_file=f"{FRAMES_DIR}/ids_{index:06d}.png" if ids_data is not None else None,
            )
            self._put_file(record.rgb_file, rgb_data)
            if record.depth_file is not None and depth_data is not None:
                self._put_file(record.depth_file, depth_data)
            if record.instance_ids_file is not None and ids_data is not None:
                self._put_file(record.instance_ids_file, ids_data)
            stream.appender.append(frame_to_json(record))
            stream.last_ns = timestamp_ns

    def _put_file(self, relative: str, data: bytes) -> None:
        """Write a session file via a temporary name and a rename (no fsync: SIGKILL-safe, not power-safe)."""
        target = self.path / relative
        tmp = target.with_name(TMP_PREFIX + target.name)
        with open(tmp, "wb") as handle:
            handle.write(data)
        os.replace(tmp, target)

    def _append(self, stream: _Stream, timestamp_ns: int, value: dict[str, object]) -> None:
        with stream.lock:
            self._check_open()
            stream.check_order(timestamp_ns)
            stream.appender.append(value)
            stream.last_ns = timestamp_ns

    def write_head_pose(self, pose: HeadPose) -> None:
        """Append a head pose (``world_from_head`` is validated finite and rigid by HeadPose itself)."""
        self._check_open()
        self._append(self._head, _timestamp(pose.timestamp_ns, "head pose timestamp_ns"), head_pose_to_json(pose))

    def write_gaze(self, sample: GazeSample) -> None:
        """Append a gaze sample. A non-finite ray (a tracker dropout) is stored as an invalid sample."""
        self._check_open()
        self._append(self._gaze, _timestamp(sample.timestamp_ns, "gaze timestamp_ns"), gaze_to_json(sample))

    def write_event(self, event: InputEvent) -> None:
        """Append an input event (select / reject / larger / smaller)."""
        self._check_open()
        self._append(self._events, _timestamp(event.timestamp_ns, "event timestamp_ns"), event_to_json(event))

    def add_object(self, obj: GroundTruthObject, mesh: open3d.geometry.TriangleMesh | None = None) -> None:
        """Add a ground-truth object. With ``mesh`` (WORLD coordinates), it is saved as
        meshes/object_<id>.ply and ``obj.mesh_file`` is replaced by that path; without, ``obj.mesh_file`` (if
        any) must name a file already inside the session directory."""
        self._check_open()
        if isinstance(obj.object_id, bool) or not isinstance(obj.object_id, numbers.Integral):
            raise InputError(f"object_id must be an integer, got {obj.object_id!r}")
        if not 1 <= int(obj.object_id) <= 65535:
            raise InputError(f"object_id must be in 1..65535 (instance-id images are uint16), got {obj.object_id}")
        stream = self._objects
        with stream.lock:
            self._check_open()
            if obj.object_id in self._object_ids:
                raise InputError(f"object_id {obj.object_id} was already added")
            mesh_file = obj.mesh_file
            if mesh is not None:
                mesh_file = self._write_mesh(int(obj.object_id), mesh)
            record = GroundTruthObject(int(obj.object_id), obj.name, obj.category, mesh_file)
            stream.appender.append(object_to_json(record))
            self._object_ids.add(record.object_id)

    def _write_mesh(self, object_id: int, mesh: open3d.geometry.TriangleMesh) -> str:
        import open3d as o3d

        if len(mesh.triangles) == 0:
            raise InputError(f"object {object_id}: the mesh has no triangles")
        relative = f"{MESHES_DIR}/object_{object_id:05d}.ply"
        target = self.path / relative
        tmp = target.with_name(TMP_PREFIX + target.name)
        if not o3d.io.write_triangle_mesh(tmp, mesh, write_ascii=False, compressed=False):
            raise SessionError(f"Open3D could not write {relative}")
        os.replace(tmp, target)
        return relative

    def write_fixation_target(self, target: FixationTarget) -> None:
        """Append a ground-truth fixation target (in start_ns order; end_ns >= start_ns; ``target_world_m``, when
        given, 3 finite numbers in world metres)."""
        self._check_open()
        start_ns = _timestamp(target.start_ns, "fixation target start_ns")
        if _timestamp(target.end_ns, "fixation target end_ns") < start_ns:
            raise InputError(f"fixation target end_ns {target.end_ns} is before start_ns {start_ns}")
        if target.target_world_m is not None:
            try:
                point = np.asarray(target.target_world_m, dtype=np.float64)
            except (TypeError, ValueError):
                point = np.full(1, np.nan)
            if point.shape != (3,) or not np.all(np.isfinite(point)):
                raise InputError(
                    f"fixation target_world_m must be 3 finite numbers, got {target.target_world_m!r}"
                )
        self._append(self._targets, start_ns, target_to_json(target))

    # -----------------------------------------------------------------------------------------------------------
    def close(self) -> None:
        """Flush every stream to disk and write closed.json with the record counts. Idempotent."""
        if self._closed:
            return
        closed_unix_ns = self._now_ns()
        for stream in self._streams:
            stream.lock.acquire()
        try:
            self._closed = True
            counts = {}
            for stream in self._streams:
                stream.appender.close(sync=True)
                counts[stream.appender.path.name] = stream.appender.count
        finally:
            for stream in self._streams:
                stream.lock.release()
        closed = {"closed_unix_ns": closed_unix_ns, "record_counts": counts}
        write_atomic(self.path / CLOSED_FILE, json.dumps(closed, indent=2).encode() + b"\n")
        if self._depth_dropped_px:
            logger.warning(
                "%d depth pixels beyond %.3f m were stored as 0", self._depth_dropped_px, self.header.depth_range_m
            )
        logger.info("closed session %s: %s", self.path, counts)
