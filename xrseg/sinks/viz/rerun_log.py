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
``world/objects/NNNN/points``       the selection lifted to a coloured point cloud (keyframe depth)
``world/objects/NNNN/mesh``         its exported mesh (Asset3D of the GLB or OBJ) once the MeshSink wrote it
``stats/encode_ms`` ...             scalars: ``encode_ms``, ``decode_ms``, ``prompt_ms``, ``gaze_to_mask_ms``
                                    (needs :attr:`RerunSink.stats`) and ``selection_score``
``log``                             text lines: selections, rejections, triggers that gave no selection
==================================  ===========================================================================

Gaze in 3D. Sinks get no head poses, so each sample's head pose is interpolated between the head poses of
the frames around it (``world_from_camera @ inv(head_from_camera)``; see
:class:`~xrseg.sinks.viz.tracker.FramePoses`) and held after the newest frame. Its distance comes from
ray-marching the newest frame's depth for the newest sample once per frame
(:class:`~xrseg.select.projection.GazeProjector`, then vergence, then ``fallback_depth_m``); samples between
frames reuse that distance. A rejected selection's ``world/objects/NNNN`` is cleared.

The file is written to a hidden temporary name beside ``path`` and renamed when the stream ends.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError, XrsegError
from xrseg.geometry import transform_directions, transform_points
from xrseg.select.projection import GazeProjector
from xrseg.sinks.base import Drop, PipelineStats, Sink
from xrseg.sinks.viz.overlay import NEGATIVE_RGB, POSITIVE_RGB, selection_colour
from xrseg.sinks.viz.tracker import FramePoses
from xrseg.types import CameraModel, Fixation, Frame, GazeRay, GazeSample, Selection, Transform, as_transform

if TYPE_CHECKING:
    from xrseg.sinks.mesh import MeshSink

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

    ``camera`` and ``head_from_camera`` (4x4 float64) are the session's. ``mesh_sink``: the run's
    :class:`~xrseg.sinks.mesh.MeshSink`, whose exported meshes are logged as they appear (put this sink after it
    in the pipeline's sink list so its meshes are finished first). ``stats``: the pipeline's statistics for
    the latency scalars (may be set later: ``sink.stats = pipeline.stats``). ``jpeg_quality`` compresses the
    RGB frames (None: raw RGB, three times larger). ``fallback_depth_m`` is the gaze distance when neither
    depth nor vergence gives one. Raises :class:`~xrseg.errors.XrsegError` when rerun-sdk is missing and
    :class:`~xrseg.errors.InputError` when ``path`` is a directory.
    """

    def __init__(
        self,
        path: Path,
        camera: CameraModel,
        head_from_camera: Transform,
        *,
        mesh_sink: MeshSink | None = None,
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
        self.head_from_camera = as_transform(head_from_camera, "head_from_camera")
        self.mesh_sink = mesh_sink
        self.stats = stats
        self.jpeg_quality = jpeg_quality
        self.fallback_depth_m = fallback_depth_m
        self._tmp = self.path.with_name(f".{self.path.name}.partial")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rec = self.rr.RecordingStream(application_id)
        self.rec.save(str(self._tmp))
        self._poses = FramePoses(self.head_from_camera)
        self._projector: GazeProjector | None = None
        self._gaze_range_m = fallback_depth_m
        self._last_gaze: GazeSample | None = None
        self._trajectory: list[npt.NDArray[np.float64]] = []
        self._trajectory_logged_ns: int | None = None
        self._now_ns = 0
        self._timings_logged = 0
        self._encodes_logged = 0
        self._meshes_logged: set[int] = set()
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

    def on_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        rr = self.rr
        self._at(frame.timestamp_ns)
        self.rec.log("world/camera/image", self._image(frame.rgb))
        if frame.depth_m is not None:
            depth_mm = np.nan_to_num(frame.depth_m, nan=0.0, posinf=0.0, neginf=0.0) * 1000.0
            depth_u16 = np.clip(np.rint(depth_mm), 0, 65535).astype(np.uint16)
            self.rec.log("world/camera/image/depth", rr.DepthImage(depth_u16, meter=1000.0))
        if world_from_camera is not None:
            world_from_head = self._poses.add(frame.timestamp_ns, world_from_camera)
            self.rec.log("world/camera", self._transform(world_from_camera))
            self.rec.log("world/head", self._transform(world_from_head))
            self._trajectory.append(world_from_head[:3, 3].copy())
            if (
                self._trajectory_logged_ns is None
                or frame.timestamp_ns - self._trajectory_logged_ns >= _TRAJECTORY_PERIOD_NS
            ):
                self._log_trajectory(frame.timestamp_ns)
            self._projector = GazeProjector(world_from_camera, self.camera, frame.depth_m, self.fallback_depth_m)
            self._log_frame_gaze()
        self._log_new_stats()
        self._log_new_meshes()

    def _log_trajectory(self, timestamp_ns: int) -> None:
        if len(self._trajectory) >= 2:
            self.rec.log("world/head_trajectory", self.rr.LineStrips3D([np.stack(self._trajectory)]))
        self._trajectory_logged_ns = timestamp_ns

    def _log_frame_gaze(self) -> None:
        """Ray-march the newest gaze sample through the newest frame: the distance and the 2D gaze point."""
        sample, projector = self._last_gaze, self._projector
        if sample is None or projector is None:
            return
        world_from_head = self._poses.at(sample.timestamp_ns)
        if world_from_head is None:
            return
        hit = projector.project(sample.ray, world_from_head, sample.vergence_depth_m)
        if hit.range_m is not None:
            self._gaze_range_m = hit.range_m
        if hit.pixel_xy is not None:
            self.rec.log("world/camera/image/gaze", self.rr.Points2D([hit.pixel_xy], radii=4.0))
        else:
            self.rec.log("world/camera/image/gaze", self.rr.Clear(recursive=False))

    def on_gaze(self, sample: GazeSample, filtered: GazeSample) -> None:
        if not sample.usable:
            return
        self._last_gaze = sample
        world_from_head = self._poses.at(sample.timestamp_ns)
        if world_from_head is None:
            return
        rr = self.rr
        self._at(sample.timestamp_ns)
        origin = transform_points(world_from_head, sample.ray.origin_m)[0]
        direction = transform_directions(world_from_head, sample.ray.direction)[0]
        point = origin + self._gaze_range_m * direction
        self.rec.log("world/gaze/ray", rr.LineStrips3D([np.stack([origin, point])], colors=[(255, 230, 0)]))
        self.rec.log("world/gaze/point", rr.Points3D([point], radii=0.008, colors=[(255, 230, 0)]))

    def on_fixation(self, fixation: Fixation) -> None:
        world_from_head = self._poses.at(fixation.centre_ns)
        if world_from_head is None or self._projector is None:
            return
        hit = self._projector.project(GazeRay(fixation.origin_m, fixation.direction), world_from_head)
        if hit.point_world_m is None:
            return
        self._at(fixation.end_ns)
        label = f"{fixation.duration_ns / 1e6:.0f} ms"
        self.rec.log(
            "world/fixations",
            self.rr.Points3D([hit.point_world_m], radii=0.012, colors=[(0, 220, 255)], labels=[label]),
        )

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        rr = self.rr
        sid = selection.selection_id
        self._rejected.discard(sid)
        self._meshes_logged.discard(sid)
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
        self._log_points(selection, keyframe, world_from_camera)
        self._log_new_stats()

    def _log_points(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        entity = f"world/objects/{selection.selection_id:04d}/points"
        if keyframe.depth_m is None:
            return
        from xrseg.lift.pointcloud import lift_mask

        lifted = lift_mask(selection.mask, keyframe.depth_m, keyframe.rgb, self.camera, world_from_camera)
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

    def _log_new_meshes(self) -> None:
        if self.mesh_sink is None:
            return
        # Keyed by object id; the mesh sink itself drops what a rejection leaves without a selection.
        for sid, result in sorted(self.mesh_sink.results.items()):
            if sid in self._meshes_logged or not result.mesh_files:
                continue
            self._meshes_logged.add(sid)
            fmt = next((f for f in _ASSET_FORMATS if f in result.mesh_files), None)
            if fmt is None:
                log.info("object %d: no GLB or OBJ mesh to log to Rerun (%s)", sid, sorted(result.mesh_files))
                continue
            path = self.mesh_sink.out_dir / result.mesh_files[fmt]
            if not path.is_file():
                log.warning("object %d: mesh %s is missing; not logged to Rerun", sid, path)
                continue
            self.rec.log(f"world/objects/{sid:04d}/mesh", self.rr.Asset3D(path=path))

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
