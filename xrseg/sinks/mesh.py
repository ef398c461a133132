"""A pipeline sink that lifts each selection into 3D, follows it into later frames and exports a mesh.

For every selection: lift the mask on its keyframe (a coloured point cloud), start a TSDF volume with it, then
follow the object into the next frames (each followed frame is encoded and prompted with the object's
projected points, :class:`~xrseg.lift.follow.ObjectFollower`), integrating every frame that agrees. When
following stops (the object left the view, the mask disagreed, the frame budget is used up, or the stream
ended) the fused mesh is written as ``meshes/object_NNNN.{ply,obj,glb}`` with its provenance in the metadata.
A selection that is stepped to another mask starts over; a rejected one is discarded.

All of this runs on the sink's own worker thread, off the gaze path: the pipeline's callbacks only queue work
(:class:`~xrseg.sinks.worker.Worker`). Embeddings of followed frames come from the run's
:class:`~xrseg.sam.embeddings.EmbeddingService`: in deterministic replay the worker asks it for every next
frame (encoded on the worker's thread, serialised with the pipeline's own encodes, so a replay exports the same
meshes on every machine; the queue waits rather than drops); in asynchronous mode (live, ``--realtime``) the
object is followed into the keyframes the background encoder finishes anyway (:meth:`MeshSink.on_keyframe`)
and nothing is encoded for following: when the worker falls behind, the oldest queued keyframe is dropped
and counted (:attr:`MeshSink.dropped`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xrseg import __version__
from xrseg.lift.export import export_mesh
from xrseg.lift.follow import ObjectFollower
from xrseg.lift.fusion import ObjectFusion
from xrseg.lift.pointcloud import OutlierRemoval, lift_mask
from xrseg.sam.embeddings import EmbeddingService, EncodeMode, Keyframe
from xrseg.sam.records import Decoder, ImageEmbedding
from xrseg.sinks.base import Sink
from xrseg.sinks.worker import Worker
from xrseg.types import CameraModel, Frame, Selection, Transform

log = logging.getLogger(__name__)


@dataclass
class _Track:
    selection: Selection
    fusion: ObjectFusion
    follower: ObjectFollower
    frames: list[int]
    centroid_m: list[float]
    extent_m: list[float]
    stop_reason: str | None = None
    attempts: int = 0


@dataclass(frozen=True)
class ObjectResult:
    """What became of one selection in 3D (``mesh_files`` empty when no mesh could be made: see ``reason``)."""

    selection_id: int
    frames: tuple[int, ...]
    points: int
    centroid_m: tuple[float, ...]
    extent_m: tuple[float, ...]
    mesh_files: dict[str, str] = field(default_factory=dict)
    triangles: int = 0
    reason: str | None = None


class MeshSink(Sink):
    """Lifts, follows, fuses and exports each selection (see the module docstring)."""

    def __init__(
        self,
        out_dir: Path,
        camera: CameraModel,
        decoder: Decoder,
        embeddings: EmbeddingService | None,
        follow_frames: int = 6,
        session_path: Path | None = None,
        voxel_size_m: float = 0.004,
        queue_size: int = 8,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.camera = camera
        self.decoder = decoder
        self.embeddings = embeddings
        background = embeddings is not None and embeddings.mode is EncodeMode.BACKGROUND
        self._worker = Worker("xrseg-mesh", queue_size, drop_when_full=background)
        self.follow_frames = max(0, int(follow_frames))
        self.session = str(session_path) if session_path else ""
        self.voxel_size_m = voxel_size_m
        self.tracks: dict[int, _Track] = {}
        self.results: dict[int, ObjectResult] = {}

    @property
    def dropped(self) -> int:
        """Frames (or keyframes) not followed because the worker was behind (asynchronous mode only)."""
        return self._worker.dropped

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        self._worker.put(lambda: self._start(selection, keyframe, world_from_camera), droppable=False)

    def on_reject(self, selection: Selection) -> None:
        self._worker.put(lambda: self._discard(selection), droppable=False)

    def on_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        if self.embeddings is not None and self.embeddings.mode is EncodeMode.ON_DEMAND:
            self._worker.put(lambda: self._follow_frame(frame, world_from_camera), droppable=True)

    def on_keyframe(self, keyframe: Keyframe, world_from_camera: Transform | None) -> None:
        self._worker.put(
            lambda: self._follow(keyframe.frame, keyframe.embedding, world_from_camera), droppable=True
        )

    def close(self) -> None:
        """Finish the queued work, then export every object still followed (raises the worker's failure)."""
        try:
            self._worker.close()
        finally:
            for selection_id in list(self.tracks):
                self._finish(selection_id, "the stream ended")

    # -- on the worker thread ------------------------------------------------------------------------------

    def _start(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        self.tracks.pop(selection.selection_id, None)
        self.results.pop(selection.selection_id, None)
        if keyframe.depth_m is None:
            self._result_without_mesh(selection, "the session has no depth")
            return
        lifted = lift_mask(
            selection.mask,
            keyframe.depth_m,
            keyframe.rgb,
            self.camera,
            world_from_camera,
            outliers=OutlierRemoval(),
        )
        if lifted.is_empty:
            self._result_without_mesh(selection, lifted.reason or "no points")
            return
        fusion = ObjectFusion(voxel_size_m=self.voxel_size_m)
        fusion.integrate(selection.mask, keyframe.depth_m, keyframe.rgb, self.camera, world_from_camera)
        points = lifted.points_world_m
        self.tracks[selection.selection_id] = _Track(
            selection=selection,
            fusion=fusion,
            follower=ObjectFollower(points),
            frames=[keyframe.index],
            centroid_m=[float(v) for v in points.mean(axis=0)],
            extent_m=[float(v) for v in points.max(axis=0) - points.min(axis=0)],
        )
        if self.follow_frames == 0:
            self._finish(selection.selection_id, "not following (--follow-frames 0)")

    def _discard(self, selection: Selection) -> None:
        self.tracks.pop(selection.selection_id, None)
        self.results.pop(selection.selection_id, None)

    def _follow_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        """Deterministic mode: follow into every next frame, encoded here through the embedding service."""
        if self.embeddings is None or not any(frame.index > t.frames[-1] for t in self.tracks.values()):
            return
        if world_from_camera is None or frame.depth_m is None:
            self._follow(frame, None, world_from_camera)
            return
        self._follow(frame, self.embeddings.embedding_for(frame).embedding, world_from_camera)

    def _follow(self, frame: Frame, embedding: ImageEmbedding | None, world_from_camera: Transform | None) -> None:
        active = [t for t in self.tracks.values() if frame.index > t.frames[-1]]
        if not active:
            return
        if embedding is None or world_from_camera is None or frame.depth_m is None:
            for track in active:
                self._finish(track.selection.selection_id, "no head pose or depth for the next frame")
            return

        def decode(points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
            prediction = self.decoder.decode(embedding, points=points, labels=labels, box=box, multimask=False)
            return prediction.masks[0]

        for track in active:
            track.attempts += 1
            result = track.follower.follow(frame.depth_m, self.camera, world_from_camera, decode)
            if result.mask is None:
                self._finish(track.selection.selection_id, result.stopped_reason or "lost")
                continue
            if track.fusion.integrate(result.mask, frame.depth_m, frame.rgb, self.camera, world_from_camera) > 0:
                track.frames.append(frame.index)
            if track.attempts >= self.follow_frames:
                self._finish(track.selection.selection_id, f"followed {self.follow_frames} frames")

    def _result_without_mesh(self, selection: Selection, reason: str) -> None:
        log.info("selection %d: no 3D object (%s)", selection.selection_id, reason)
        self.results[selection.selection_id] = ObjectResult(selection.selection_id, (), 0, (), (), reason=reason)

    def _finish(self, selection_id: int, why: str) -> None:
        track = self.tracks.pop(selection_id)
        mesh = track.fusion.extract_mesh()
        stem = f"object_{selection_id:04d}"
        files: dict[str, str] = {}
        reason: str | None = None
        if len(mesh.triangles) == 0:
            reason = "the fused volume has no surface"
        else:
            metadata: dict[str, Any] = {
                "object_id": selection_id,
                "source_session": self.session,
                "frames": list(track.frames),
                "keyframe": track.selection.keyframe_index,
                "score": track.selection.score,
                "created_by": f"xrseg {__version__}",
            }
            written = export_mesh(mesh, self.out_dir / "meshes", stem, metadata)
            files = {fmt: str(path.relative_to(self.out_dir)) for fmt, path in written.items()}
        log.info("object %d: %d frames fused, stopped: %s", selection_id, len(track.frames), why)
        self.results[selection_id] = ObjectResult(
            selection_id=selection_id,
            frames=tuple(track.frames),
            points=len(track.follower.points_world_m),
            centroid_m=tuple(track.centroid_m),
            extent_m=tuple(track.extent_m),
            mesh_files=files,
            triangles=len(mesh.triangles),
            reason=reason or why,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "mesh_frames_dropped": self.dropped,
            "objects": [
                {
                    "selection_id": r.selection_id,
                    "frames": list(r.frames),
                    "points": r.points,
                    "centroid_m": list(r.centroid_m),
                    "extent_m": list(r.extent_m),
                    "mesh_files": r.mesh_files,
                    "triangles": r.triangles,
                    "stopped": r.reason,
                }
                for r in sorted(self.results.values(), key=lambda r: r.selection_id)
            ],
        }
