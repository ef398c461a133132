"""A pipeline sink that lifts each selection into 3D, follows it into later frames and exports one mesh per object.

For every selection: lift the mask on its keyframe (a coloured point cloud), give it an object id (selections of
one physical object share it, :class:`~xrseg.lift.objects.ObjectRegistry`), start a TSDF volume with it, then
follow it into the next frames (each followed frame is encoded and prompted with the object's projected points,
:class:`~xrseg.lift.follow.ObjectFollower`), integrating every frame that agrees. When the following of every
selection of an object has stopped (the object left the view, the mask disagreed, the frame budget is used up,
or the stream ended) the object's mesh, fused from every frame its selections saw, is written as
``meshes/object_NNNN.{ply,obj,glb}`` (NNNN the object id) with its provenance, the selections that built it
included, in the metadata; a later selection of the same object writes it again. A selection that is stepped to
another mask starts over; a rejected one leaves its object.

``track=True`` (``--track``): each selection is followed through the rest of the recording, every frame, and
its mask on each frame is kept (:meth:`MeshSink.track_masks`, one track per object); a frame where the follower
fails only has no mask, the next frame is tried again. Fusion still takes the first ``follow_frames`` frames.

All of this runs on the sink's own worker thread, off the gaze path: the pipeline's callbacks only queue work
(:class:`~xrseg.sinks.worker.Worker`). Embeddings of followed frames come from the run's
:class:`~xrseg.sam.embeddings.EmbeddingService`: in deterministic replay the worker asks it for every next
frame (encoded on the worker's thread, serialised with the pipeline's own encodes, so a replay exports the same
meshes on every machine; the queue waits rather than drops); in asynchronous mode (live, ``--realtime``) the
object is followed into the keyframes the background encoder finishes anyway (:meth:`MeshSink.on_keyframe`)
and nothing is encoded for following: when the worker falls behind, the oldest queued keyframe is dropped
and counted (:attr:`MeshSink.dropped`). The selection's points are the ones its event carries
(:meth:`~xrseg.sinks.base.SelectionEvent.lifted`: lifted once for every sink). Each mesh written is told to the
``listeners`` (:meth:`~xrseg.sinks.base.Sink.on_mesh`, from the worker thread or from :meth:`MeshSink.finish`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from xrseg import __version__
from xrseg.config import FOLLOW_FRAMES
from xrseg.errors import InputError
from xrseg.fileio import write_bytes_atomic
from xrseg.lift.bordercut import BorderCut
from xrseg.lift.export import export_mesh
from xrseg.lift.follow import ObjectFollower
from xrseg.lift.fusion import ObjectFusion
from xrseg.lift.objects import ObjectRegistry
from xrseg.lift.views import CroppedMask, MaskedView, fuse_views
from xrseg.sam.embeddings import EmbeddingService, EncodeMode
from xrseg.sam.records import Decoder, ImageEmbedding
from xrseg.sinks.base import FrameEvent, KeyframeEvent, MeshEvent, SelectionEvent, Sink
from xrseg.sinks.worker import Worker
from xrseg.types import CameraModel, Frame, Selection, Transform

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Extent:
    """Where a selection's lifted points are: how many, their sum (for the centroid) and their box, metres."""

    count: int
    sum_m: tuple[float, float, float]
    lo_m: tuple[float, float, float]
    hi_m: tuple[float, float, float]

    @classmethod
    def of(cls, points_m: npt.NDArray[np.float64]) -> _Extent:
        """Of Nx3 float64 world points (N >= 1)."""

        def vec(values: npt.NDArray[np.float64]) -> tuple[float, float, float]:
            return (float(values[0]), float(values[1]), float(values[2]))

        return cls(len(points_m), vec(points_m.sum(axis=0)), vec(points_m.min(axis=0)), vec(points_m.max(axis=0)))

    def __add__(self, other: _Extent) -> _Extent:
        total = np.add(self.sum_m, other.sum_m)
        lo, hi = np.minimum(self.lo_m, other.lo_m), np.maximum(self.hi_m, other.hi_m)
        return _Extent(
            self.count + other.count, (total[0], total[1], total[2]), (lo[0], lo[1], lo[2]), (hi[0], hi[1], hi[2])
        )


@dataclass
class _Track:
    """One selection in 3D: its volume, its follower, the frames it fused (``views``) and, when tracking, its
    mask on every frame it was found in (``masks``: frame index -> mask and its agreement IoU). ``extent`` is
    None when the selection had no 3D points. The follower is let go when following stops and the volume once
    the object is exported (a long run keeps only the small cropped views of each selection)."""

    selection: Selection
    object_id: int
    fusion: ObjectFusion | None
    follower: ObjectFollower | None
    extent: _Extent | None = None
    views: list[MaskedView] = field(default_factory=list)
    masks: dict[int, tuple[CroppedMask, float]] = field(default_factory=dict)
    last_frame_index: int = -1
    attempts: int = 0
    stopped: str | None = None
    """Why following stopped (None while it goes on)."""

    @property
    def frames(self) -> list[int]:
        return [v.frame_index for v in self.views]


@dataclass(frozen=True)
class ObjectResult:
    """What became of one object in 3D (``mesh_files`` empty when no mesh could be made: see ``reason``).

    ``selection_ids`` the selections that built it, in the order they were made; ``frames`` the frames fused."""

    object_id: int
    selection_ids: tuple[int, ...]
    frames: tuple[int, ...]
    points: int
    centroid_m: tuple[float, ...]
    extent_m: tuple[float, ...]
    mesh_files: dict[str, str] = field(default_factory=dict)
    triangles: int = 0
    reason: str | None = None


class MeshSink(Sink):
    """Lifts, follows, fuses and exports each object (see the module docstring)."""

    def __init__(
        self,
        out_dir: Path,
        camera: CameraModel,
        decoder: Decoder,
        embeddings: EmbeddingService | None,
        follow_frames: int = FOLLOW_FRAMES,
        session_path: Path | None = None,
        voxel_size_m: float = 0.004,
        queue_size: int = 8,
        track: bool = False,
        listeners: Sequence[Sink] = (),
    ) -> None:
        self.out_dir = Path(out_dir)
        self.camera = camera
        self.decoder = decoder
        self.embeddings = embeddings
        background = embeddings is not None and embeddings.mode is EncodeMode.BACKGROUND
        self._worker = Worker("xrseg-mesh", queue_size, drop_when_full=background)
        self.follow_frames = max(0, int(follow_frames))
        self.track = track
        self.session = str(session_path.resolve()) if session_path else ""
        self.voxel_size_m = voxel_size_m
        self.objects = ObjectRegistry()
        self.tracks: dict[int, _Track] = {}
        self.results: dict[int, ObjectResult] = {}
        self.tracked_frames: dict[int, tuple[int, ...]] = {}
        """With ``track``: object id -> the frames its mask was written for (``tracks/``), after :meth:`finish`."""
        self._finished = False
        self.listeners = list(listeners)
        """Sinks told of every mesh written (:meth:`~xrseg.sinks.base.Sink.on_mesh`)."""

    @property
    def dropped(self) -> int:
        """Frames (or keyframes) not followed because the worker was behind (asynchronous mode only)."""
        return self._worker.dropped

    def on_selection(self, event: SelectionEvent) -> None:
        self._worker.put(lambda: self._start(event), droppable=False)

    def on_reject(self, selection: Selection) -> None:
        self._worker.put(lambda: self._discard(selection.selection_id), droppable=False)

    def on_frame(self, event: FrameEvent) -> None:
        if self.embeddings is not None and self.embeddings.mode is EncodeMode.ON_DEMAND:
            self._worker.put(lambda: self._follow_frame(event.frame, event.world_from_camera), droppable=True)

    def on_keyframe(self, event: KeyframeEvent) -> None:
        keyframe = event.keyframe
        self._worker.put(
            lambda: self._follow(keyframe.frame, keyframe.embedding, event.world_from_camera), droppable=True
        )

    def finish(self) -> None:
        """Finish the queued work, then export every object still followed (raises the worker's failure).
        Once: a later call, or :meth:`close`, does nothing more."""
        if self._finished:
            return
        self._finished = True
        try:
            self._worker.close()
        finally:
            for track in self.tracks.values():
                if track.stopped is None:
                    self._stop(track, "the stream ended", export=False)
            for object_id in sorted({t.object_id for t in self.tracks.values()}):
                self._export(object_id)
                if self.track:
                    self._write_track(object_id)

    def close(self) -> None:
        """:meth:`finish`, if the pipeline has not already."""
        self.finish()

    def object_of(self, selection_id: int) -> int | None:
        """The object id of a selection (None when it was rejected or never seen). Read after :meth:`finish`."""
        return self.objects.object_of(selection_id)

    def track_masks(self, object_id: int) -> dict[int, npt.NDArray[np.bool_]]:
        """Frame index -> HxW bool mask of ``object_id`` on every frame it was followed into (with ``track``),
        its selections' keyframes included; where several selections found it, the best agreeing mask. Read
        after :meth:`finish`."""
        best: dict[int, tuple[CroppedMask, float]] = {}
        for track in self.tracks.values():
            if track.object_id != object_id:
                continue
            for index, (mask, agreement) in track.masks.items():
                if index not in best or agreement > best[index][1]:
                    best[index] = (mask, agreement)
        return {index: best[index][0].full() for index in sorted(best)}

    # -- on the worker thread ------------------------------------------------------------------------------

    def _start(self, event: SelectionEvent) -> None:
        selection, keyframe, world_from_camera = event.selection, event.keyframe, event.world_from_camera
        self._discard(selection.selection_id)
        track = _Track(selection, 0, None, None, last_frame_index=keyframe.index)
        track.masks[keyframe.index] = (CroppedMask.of(selection.mask), 2.0)  # the selection itself ranks first
        self.tracks[selection.selection_id] = track
        if keyframe.depth_m is None:
            track.object_id = self.objects.assign(selection.selection_id, None, selection.mask)
            self._stop(track, "the session has no depth")
            return
        lifted = event.lifted()
        assert lifted is not None  # the keyframe has depth
        track.object_id = self.objects.assign(selection.selection_id, lifted.points_world_m, selection.mask)
        if lifted.is_empty:
            self._stop(track, lifted.reason or "no points")
            return
        track.fusion = ObjectFusion(voxel_size_m=self.voxel_size_m)
        cut = BorderCut.of(selection.mask, lifted.pixels_xy, lifted.points_world_m, world_from_camera)
        track.follower = ObjectFollower(lifted.points_world_m, cut=cut)
        track.extent = _Extent.of(lifted.points_world_m)
        self._integrate(track, selection.mask, keyframe, world_from_camera)
        if self.follow_frames == 0 and not self.track:
            self._stop(track, "not following (--follow-frames 0)")

    def _integrate(
        self, track: _Track, mask: npt.NDArray[np.bool_], frame: Frame, world_from_camera: Transform
    ) -> None:
        assert track.fusion is not None and frame.depth_m is not None  # only called for a lifted selection
        if track.fusion.integrate(mask, frame.depth_m, frame.rgb, self.camera, world_from_camera) > 0:
            track.views.append(MaskedView.crop(frame.index, mask, frame.depth_m, frame.rgb, world_from_camera))

    def _discard(self, selection_id: int) -> None:
        track = self.tracks.pop(selection_id, None)
        object_id = self.objects.remove(selection_id)
        if track is None or object_id is None:
            return
        result = self.results.pop(object_id, None)
        if self.objects.selections(object_id):
            if track.stopped is not None:
                self._export(object_id)  # the object without the rejected selection
        elif result is not None:
            for name in result.mesh_files.values():  # no selection of it is left: no object
                (self.out_dir / name).unlink(missing_ok=True)

    def _active(self, frame_index: int) -> list[_Track]:
        return [t for t in self.tracks.values() if t.stopped is None and frame_index > t.last_frame_index]

    def _follow_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        """Deterministic mode: follow into every next frame, encoded here through the embedding service."""
        if self.embeddings is None or not self._active(frame.index):
            return
        if world_from_camera is None or frame.depth_m is None:
            self._follow(frame, None, world_from_camera)
            return
        self._follow(frame, self.embeddings.embedding_for(frame).embedding, world_from_camera)

    def _follow(self, frame: Frame, embedding: ImageEmbedding | None, world_from_camera: Transform | None) -> None:
        active = self._active(frame.index)
        if not active:
            return
        if embedding is None or world_from_camera is None or frame.depth_m is None:
            for track in active:
                track.last_frame_index = frame.index
                if not self.track:
                    self._stop(track, "no head pose or depth for the next frame")
            return

        def decode(points: np.ndarray, labels: np.ndarray, box: np.ndarray | None) -> np.ndarray:
            prediction = self.decoder.decode(embedding, points=points, labels=labels, box=box, multimask=False)
            return prediction.masks[0]

        for track in active:
            assert track.follower is not None  # a track without points is stopped at its start
            track.last_frame_index = frame.index
            track.attempts += 1
            fusing = track.attempts <= self.follow_frames
            result = track.follower.follow(frame.depth_m, self.camera, world_from_camera, decode)
            if result.mask is not None:
                track.masks[frame.index] = (CroppedMask.of(result.mask), result.agreement_iou)
                if fusing:
                    self._integrate(track, result.mask, frame, world_from_camera)
            if self.track:
                continue
            if result.mask is None:
                self._stop(track, result.stopped_reason or "lost")
            elif track.attempts >= self.follow_frames:
                self._stop(track, f"followed {self.follow_frames} frames")

    def _stop(self, track: _Track, why: str, export: bool = True) -> None:
        track.stopped = why
        track.follower = None
        log.info(
            "selection %d (object %d): %d frames fused, stopped: %s",
            track.selection.selection_id,
            track.object_id,
            len(track.views),
            why,
        )
        if export and all(self.tracks[s].stopped is not None for s in self.objects.selections(track.object_id)):
            self._export(track.object_id)

    def _export(self, object_id: int) -> None:
        """Fuse every frame the object's selections saw and write its mesh (again, if it was written before)."""
        tracks = [self.tracks[s] for s in self.objects.selections(object_id)]
        if not tracks:
            return
        lifted = [t for t in tracks if t.extent is not None]
        if not lifted:
            self.results[object_id] = _without_mesh(object_id, tracks)
            return
        if len(lifted) == 1 and lifted[0].fusion is not None:
            fusion = lifted[0].fusion  # one selection: its own volume, as fused
        else:
            fusion = fuse_views([v for t in lifted for v in t.views], self.camera, self.voxel_size_m)
        mesh = fusion.extract_mesh()
        for t in tracks:
            if t.stopped is not None:
                t.fusion = None  # a later export fuses the views again
        extents = [t.extent for t in lifted if t.extent is not None]
        extent = extents[0]
        for more in extents[1:]:
            extent = extent + more
        frames = sorted({i for t in lifted for i in t.frames})
        files: dict[str, str] = {}
        reason = "; ".join(f"selection {t.selection.selection_id}: {t.stopped}" for t in tracks)
        if len(mesh.triangles) == 0:
            reason = "the fused volume has no surface"
        else:
            written = export_mesh(mesh, self.out_dir / "meshes", f"object_{object_id:04d}", self._metadata(tracks))
            files = {fmt: str(path.relative_to(self.out_dir)) for fmt, path in written.items()}
            for listener in self.listeners:
                listener.on_mesh(MeshEvent(object_id, tuple(t.selection.selection_id for t in tracks), written))
        self.results[object_id] = ObjectResult(
            object_id=object_id,
            selection_ids=tuple(t.selection.selection_id for t in tracks),
            frames=tuple(frames),
            points=extent.count,
            centroid_m=tuple(v / extent.count for v in extent.sum_m),
            extent_m=tuple(hi - lo for lo, hi in zip(extent.lo_m, extent.hi_m, strict=True)),
            mesh_files=files,
            triangles=len(mesh.triangles),
            reason=reason,
        )

    def _write_track(self, object_id: int) -> None:
        """``tracks/object_NNNN/FFFFFF.png``: the object's mask (8-bit, 255 = object) on each frame found."""
        folder = self.out_dir / "tracks" / f"object_{object_id:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        masks = self.track_masks(object_id)
        for index, mask in masks.items():
            ok, png = cv2.imencode(".png", mask.astype(np.uint8) * 255)
            if not ok:
                raise InputError(f"cannot encode the mask of object {object_id} on frame {index}")
            write_bytes_atomic(folder / f"{index:06d}.png", png.tobytes())
        self.tracked_frames[object_id] = tuple(masks)

    def _metadata(self, tracks: list[_Track]) -> dict[str, Any]:
        """Flat (the OBJ and PLY headers hold a value or a list per key): ``selections``, ``keyframes`` and
        ``scores`` are parallel lists, one entry per selection that built the object."""
        return {
            "object_id": tracks[0].object_id,
            "selections": [t.selection.selection_id for t in tracks],
            "keyframes": [t.selection.keyframe_index for t in tracks],
            "scores": [t.selection.score for t in tracks],
            "source_session": self.session,
            "frames": sorted({i for t in tracks for i in t.frames}),
            "created_by": f"xrseg {__version__}",
        }

    def summary(self) -> dict[str, Any]:
        return {
            "mesh_frames_dropped": self.dropped,
            "objects": [
                {
                    "object_id": r.object_id,
                    "selection_id": r.selection_ids[0],
                    "selections": list(r.selection_ids),
                    "frames": list(r.frames),
                    "points": r.points,
                    "centroid_m": list(r.centroid_m),
                    "extent_m": list(r.extent_m),
                    "mesh_files": r.mesh_files,
                    "triangles": r.triangles,
                    "stopped": r.reason,
                }
                | ({"tracked_frames": list(self.tracked_frames.get(r.object_id, ()))} if self.track else {})
                for r in sorted(self.results.values(), key=lambda r: r.object_id)
            ],
        }


def _without_mesh(object_id: int, tracks: list[_Track]) -> ObjectResult:
    reason = "; ".join(f"selection {t.selection.selection_id}: {t.stopped}" for t in tracks)
    log.info("object %d: no 3D object (%s)", object_id, reason)
    ids = tuple(t.selection.selection_id for t in tracks)
    return ObjectResult(object_id, ids, (), 0, (), (), reason=reason)
