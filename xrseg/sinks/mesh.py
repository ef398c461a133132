"""A pipeline sink that lifts each selection into 3D, follows it into later frames and exports a mesh.

For every selection: lift the mask on its keyframe (a coloured point cloud), start a TSDF volume with it, then
follow the object into the next frames (each followed frame is encoded and prompted with the object's
projected points, :class:`~xrseg.lift.follow.ObjectFollower`), integrating every frame that agrees. When
following stops (the object left the view, the mask disagreed, the frame budget is used up, or the stream
ended) the fused mesh is written as ``meshes/object_NNNN.{ply,obj,glb}`` with its provenance in the metadata.
A selection that is stepped to another mask starts over; a rejected one is discarded.
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
from xrseg.select.pipeline import Decoder, Encoder, Sink
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
        encoder: Encoder,
        follow_frames: int = 6,
        session_path: Path | None = None,
        voxel_size_m: float = 0.004,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.camera = camera
        self.decoder = decoder
        self.encoder = encoder
        self.follow_frames = max(0, int(follow_frames))
        self.session = str(session_path) if session_path else ""
        self.voxel_size_m = voxel_size_m
        self.tracks: dict[int, _Track] = {}
        self.results: dict[int, ObjectResult] = {}

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
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

    def on_reject(self, selection: Selection) -> None:
        self.tracks.pop(selection.selection_id, None)
        self.results.pop(selection.selection_id, None)

    def on_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        active = [t for t in self.tracks.values() if frame.index > t.frames[-1]]
        if not active:
            return
        if world_from_camera is None or frame.depth_m is None:
            for track in active:
                self._finish(track.selection.selection_id, "no head pose or depth for the next frame")
            return
        embedding = self.encoder.encode(frame.rgb)

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

    def close(self) -> None:
        for selection_id in list(self.tracks):
            self._finish(selection_id, "the stream ended")

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
            ]
        }
