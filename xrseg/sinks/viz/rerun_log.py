"""``--rerun FILE.rrd``: a Rerun recording of a run, written headless (needs the ``rerun`` extra: rerun-sdk).

Open it with ``rerun FILE.rrd``. Everything is on one timeline, ``time``, a duration equal to the session's
``timestamp_ns`` (so 1.5 s on the timeline is ``timestamp_ns == 1_500_000_000``). Entities:

==================================  ===========================================================================
``world``                           view coordinates RUB (OpenXR: +x right, +y up, -z forward), static
``world/camera``                    ``world_from_camera`` of every frame (Transform3D)
``world/camera/image``              the pinhole model (static) and every RGB frame (JPEG-compressed)
``world/camera/image/depth``        every depth frame (uint16 millimetres, meter = 1000)
``world/camera/image/gaze``         the gaze point on each frame (Points2D; see below)
``world/head``                      ``world_from_head`` of every frame (Transform3D)
``world/head_trajectory``           the head positions so far (LineStrips3D, refreshed once a second)
``world/gaze/ray``                  every usable gaze sample: the ray from the eye to its 3D point
``world/gaze/point``                that 3D point (Points3D)
``world/fixations``                 each completed fixation's 3D point, with its duration as a label
``world/keyframe``                  for each selection, its keyframe's camera pose, and under ``image``:
``world/keyframe/image``            the keyframe's pinhole and RGB; ``mask`` (SegmentationImage whose class id
                                    is the selection id), ``prompts`` (Points2D: green positive, red negative)
                                    and ``gaze`` (the gaze point the prompt came from)
``world/objects/NNNN/points``       the selection lifted to a coloured point cloud (keyframe depth; the points
                                    the selection's event carries, lifted once for every sink)
``world/objects/NNNN/mesh``         object NNNN's exported mesh (Asset3D of the GLB or OBJ) each time a mesh
                                    sink that tells this sink (``MeshSink(listeners=...)``) writes it
``stats/encode_ms`` ...             scalars: ``encode_ms``, ``decode_ms``, ``prompt_ms``, ``gaze_to_mask_ms``
                                    (needs :attr:`RerunSink.stats`) and ``selection_score``
``log``                             text lines: selections, rejections, triggers that gave no selection
==================================  ===========================================================================

Gaze in 3D. Each sample comes with the head pose at its time (:class:`~xrseg.sinks.base.GazeEvent`). Its
distance is the one the pipeline found for the newest sample on the newest frame
(:attr:`~xrseg.sinks.base.FrameEvent.gaze`: that frame's depth, then vergence, then the fallback distance);
samples between frames reuse it (``fallback_depth_m`` before the first). A fixation's 3D point is the one
the pipeline found for its mean ray on the newest frame (:attr:`~xrseg.sinks.base.FixationEvent.projection`).
A rejected selection's ``world/objects/NNNN`` is cleared.

The file is written to a hidden temporary name beside ``path`` and renamed when the stream ends.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError, XrsegError
from xrseg.geometry import transform_directions, transform_points
from xrseg.sinks.base import (
    Drop,
    FixationEvent,
    FrameEvent,
    GazeEvent,
    MeshEvent,
    PipelineStats,
    SelectionEvent,
    Sink,
)
from xrseg.sinks.viz.overlay import NEGATIVE_RGB, POSITIVE_RGB, selection_colour
from xrseg.types import CameraModel, Selection, Transform

log = logging.getLogger(__name__)

TIMELINE = "time"
_TRAJECTORY_PERIOD_NS = 1_000_000_000
_MAX_CLOUD_POINTS = 50_000
_ASSET_FORMATS = ("glb", "obj")


def _import_rerun() -> Any:
    try:
        import rerun
    except ImportError as err:
        raise XrsegError(
            f"--rerun needs the Rerun SDK, which is not installed ({err}); install it with "
            "pip install 'xrseg[rerun]' (or pip install rerun-sdk)"
        ) from err
    return rerun


class RerunSink(Sink):
    """Logs a run to the Rerun recording ``path`` (.rrd); see the module docstring for the entities.

    ``camera`` is the session's. Meshes are logged as a mesh sink tells of them (:meth:`on_mesh`, at the next
    frame or at :meth:`close`). ``stats``: the pipeline's statistics for the latency scalars.
    ``jpeg_quality`` compresses the RGB frames (None: raw RGB, three times larger). ``fallback_depth_m`` is the
    gaze distance before the pipeline found one on a frame. Raises
    :class:`~xrseg.errors.XrsegError` when rerun-sdk is missing and :class:`~xrseg.errors.InputError` when
    ``path`` is a directory.
    """

    def __init__(
        self,
        path: Path,
        camera: CameraModel,
        *,
        stats: PipelineStats | None = None,
        jpeg_quality: int | None = 90,
        fallback_depth_m: float = 1.0,
        application_id: str = "xrseg",
    ) -> None:
        self.rr = _import_rerun()
        self.path = Path(path)
        if self.path.is_dir():
            raise InputError(f"--rerun {self.path} is a directory; give a file name such as run.rrd")
        self.camera = camera
        self.stats = stats
        self.jpeg_quality = jpeg_quality
        self.fallback_depth_m = fallback_depth_m
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rec = self.rr.RecordingStream(application_id)
        self.rec.save(str(self._tmp))
        self._gaze_range_m = fallback_depth_m
        self._trajectory: list[npt.NDArray[np.float64]] = []
        self._trajectory_logged_ns: int | None = None
        self._now_ns = 0
        self._timings_logged = 0
        self._encodes_logged = 0
        self._meshes: deque[MeshEvent] = deque()
        """Meshes told by a mesh sink (perhaps from its worker thread), logged on this one."""
        self._rejected: set[int] = set()
        self._annotations: dict[int, str] = {}
        self._closed = False
        self._log_static()

    # ------------------------------------------------------------------ helpers

    def _at(self, timestamp_ns: int) -> None:
        self._now_ns = max(self._now_ns, int(timestamp_ns))
        self.rec.set_time(TIMELINE, duration=np.timedelta64(int(timestamp_ns), "ns"))

    def _pinhole(self) -> Any:
        rr = self.rr
        return rr.Pinhole(
            image_from_camera=self.camera.intrinsic_matrix(),
            resolution=[self.camera.width_px, self.camera.height_px],
            camera_xyz=rr.ViewCoordinates.RDF,
        )

    def _image(self, rgb: npt.NDArray[np.uint8]) -> Any:
        image = self.rr.Image(rgb)
        return image.compress(jpeg_quality=self.jpeg_quality) if self.jpeg_quality is not None else image

    def _transform(self, matrix: Transform) -> Any:
        return self.rr.Transform3D(translation=matrix[:3, 3], mat3x3=matrix[:3, :3])

    def _log_static(self) -> None:
        rr = self.rr
        self.rec.log("world", rr.ViewCoordinates.RUB, static=True)
        self.rec.log("world/camera/image", self._pinhole(), static=True)
        self.rec.log("world/keyframe/image", self._pinhole(), static=True)

    # ------------------------------------------------------------------ sink

    def on_frame(self, event: FrameEvent) -> None:
        rr = self.rr
        frame, world_from_camera, world_from_head = event.frame, event.world_from_camera, event.world_from_head
        self._at(frame.timestamp_ns)
        self.rec.log("world/camera/image", self._image(frame.rgb))
        if frame.depth_m is not None:
            depth_mm = np.nan_to_num(frame.depth_m, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0
            depth_u16 = np.clip(np.rint(depth_mm), 0, 65535).astype(np.uint16)
            self.rec.log("world/camera/image/depth", rr.DepthImage(depth_u16, meter=1000.0))
        if world_from_camera is not None and world_from_head is not None:
            self.rec.log("world/camera", self._transform(world_from_camera))
            self.rec.log("world/head", self._transform(world_from_head))
            self._trajectory.append(world_from_head[:3, 3].copy())
            if (
                self._trajectory_logged_ns is None
                or frame.timestamp_ns - self._trajectory_logged_ns >= _TRAJECTORY_PERIOD_NS
            ):
                self._log_trajectory(frame.timestamp_ns)
            self._log_frame_gaze(event)
        self._log_new_stats()
        self._log_new_meshes()

    def _log_trajectory(self, timestamp_ns: int) -> None:
        if len(self._trajectory) >= 2:
            self.rec.log("world/head_trajectory", self.rr.LineStrips3D([np.stack(self._trajectory)]))
        self._trajectory_logged_ns = timestamp_ns

    def _log_frame_gaze(self, event: FrameEvent) -> None:
        """The newest gaze sample on the frame, as the pipeline projected it: its distance and 2D point."""
        if event.gaze is None:
            return
        hit = event.gaze.projection
        if hit.range_m is not None:
            self._gaze_range_m = hit.range_m
        if hit.pixel_xy is not None:
            self.rec.log("world/camera/image/gaze", self.rr.Points2D([hit.pixel_xy], radii=4.0))
        else:
            self.rec.log("world/camera/image/gaze", self.rr.Clear(recursive=False))

    def on_gaze(self, event: GazeEvent) -> None:
        sample, world_from_head = event.sample, event.world_from_head
        if not sample.usable or world_from_head is None:
            return
        rr = self.rr
        self._at(sample.timestamp_ns)
        origin = transform_points(world_from_head, sample.ray.origin_m)[0]
        direction = transform_directions(world_from_head, sample.ray.direction)[0]
        point = origin + self._gaze_range_m * direction
        self.rec.log("world/gaze/ray", rr.LineStrips3D([np.stack([origin, point])], colors=[(255, 230, 0)]))
        self.rec.log("world/gaze/point", rr.Points3D([point], radii=0.008, colors=[(255, 230, 0)]))

    def on_fixation(self, event: FixationEvent) -> None:
        fixation, hit = event.fixation, event.projection
        if hit is None or hit.point_world_m is None:
            return
        self._at(fixation.end_ns)
        label = f"{fixation.duration_ns / 1e6:.0f} ms"
        self.rec.log(
            "world/fixations",
            self.rr.Points3D([hit.point_world_m], radii=0.012, colors=[(0, 220, 255)], labels=[label]),
        )

    def on_selection(self, event: SelectionEvent) -> None:
        rr = self.rr
        selection, keyframe, world_from_camera = event.selection, event.keyframe, event.world_from_camera
        sid = selection.selection_id
        self._rejected.discard(sid)
        self._at(selection.timestamp_ns)
        self._annotations[sid] = f"selection {sid}"
        self.rec.log(
            "world/keyframe/image/mask",
            rr.AnnotationContext(
                [(i, name, selection_colour(i)) for i, name in sorted(self._annotations.items()) if i < 65536]
            ),
        )
        self.rec.log("world/keyframe", self._transform(world_from_camera))
        self.rec.log("world/keyframe/image", self._image(keyframe.rgb))
        self.rec.log(
            "world/keyframe/image/mask",
            rr.SegmentationImage(selection.mask.astype(np.uint16) * np.uint16(sid % 65536)),
        )
        labels = np.asarray(selection.prompt_labels).reshape(-1)
        colours = [POSITIVE_RGB if int(v) == 1 else NEGATIVE_RGB for v in labels]
        self.rec.log(
            "world/keyframe/image/prompts",
            rr.Points2D(np.asarray(selection.prompt_points_xy, dtype=np.float32), colors=colours, radii=4.0),
        )
        self.rec.log(
            "world/keyframe/image/gaze", rr.Points2D([selection.gaze_xy], radii=5.0, colors=[(255, 230, 0)])
        )
        self.rec.log("stats/selection_score", rr.Scalars([selection.score]))
        self.rec.log(
            "log",
            rr.TextLog(
                f"selection {sid} on frame {selection.keyframe_index}: {selection.area_px} px, score "
                f"{selection.score:.2f}, depth {selection.depth_source.value}",
                level="INFO",
            ),
        )
        self._log_points(event)
        self._log_new_stats()

    def _log_points(self, event: SelectionEvent) -> None:
        entity = f"world/objects/{event.selection.selection_id:04d}/points"
        lifted = event.lifted()
        if lifted is None:
            return
        if lifted.is_empty:
            self.rec.log(entity, self.rr.Clear(recursive=False))
            return
        points, colours = lifted.points_world_m, lifted.colors
        if points.shape[0] > _MAX_CLOUD_POINTS:
            keep = np.linspace(0, points.shape[0] - 1, _MAX_CLOUD_POINTS).astype(np.intp)
            points, colours = points[keep], colours[keep]
        colours_u8 = np.clip(np.rint(np.asarray(colours) * 255.0), 0, 255).astype(np.uint8)
        self.rec.log(entity, self.rr.Points3D(points, colors=colours_u8, radii=0.002))

    def on_reject(self, selection: Selection) -> None:
        sid = selection.selection_id
        self._rejected.add(sid)
        self._at(self._now_ns)
        self.rec.log(f"world/objects/{sid:04d}", self.rr.Clear(recursive=True))
        self.rec.log("world/keyframe/image/mask", self.rr.Clear(recursive=False))
        self.rec.log("log", self.rr.TextLog(f"selection {sid} rejected", level="WARN"))

    def on_drop(self, drop: Drop) -> None:
        self._at(drop.timestamp_ns)
        self.rec.log("log", self.rr.TextLog(f"no selection ({drop.kind}): {drop.reason}", level="DEBUG"))

    def _log_new_stats(self) -> None:
        stats = self.stats
        if stats is None:
            return
        rr = self.rr
        for timing in stats.timings[self._timings_logged :]:
            self.rec.log("stats/decode_ms", rr.Scalars([timing.decode_ms]))
            self.rec.log("stats/prompt_ms", rr.Scalars([timing.prompt_ms]))
            self.rec.log("stats/gaze_to_mask_ms", rr.Scalars([timing.gaze_to_mask_ms]))
        self._timings_logged = len(stats.timings)
        for encode_ms in stats.encode_ms[self._encodes_logged :]:
            self.rec.log("stats/encode_ms", rr.Scalars([encode_ms]))
        self._encodes_logged = len(stats.encode_ms)

    def on_mesh(self, event: MeshEvent) -> None:
        self._meshes.append(event)  # deque.append is thread-safe: logged on the pipeline thread

    def _log_new_meshes(self) -> None:
        while self._meshes:
            event = self._meshes.popleft()
            oid = event.object_id
            fmt = next((f for f in _ASSET_FORMATS if f in event.files), None)
            if fmt is None:
                log.info("object %d: no GLB or OBJ mesh to log to Rerun (%s)", oid, sorted(event.files))
                continue
            path = event.files[fmt]
            if not path.is_file():
                log.warning("object %d: mesh %s is missing; not logged to Rerun", oid, path)
                continue
            self.rec.log(f"world/objects/{oid:04d}/mesh", self.rr.Asset3D(path=path))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._at(self._now_ns)
        self._log_new_stats()
        self._log_new_meshes()
        self._log_trajectory(self._now_ns)
        self.rec.flush()
        self.rec.disconnect()
        os.replace(self._tmp, self.path)
        log.info("wrote the Rerun recording %s (%.1f MB)", self.path, self.path.stat().st_size / 1e6)

    def summary(self) -> dict[str, Any]:
        return {"rerun_recording": str(self.path)} if self._closed else {}
