"""The naive baseline every selection figure is compared against, in the same run.

For each SELECT event: the raw gaze samples of the ``window_ms`` before it (no fixation detector), each one's
point 1 m along its ray (no depth, no vergence) placed in the world with the head pose at its time, their mean
projected into the newest frame at or before the event; one positive point; Segment Anything's own best mask.
Scored like the pipeline (:mod:`xrseg.tools.scoring`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from xrseg.geometry import PoseTrack, in_image, invert_transform, project_points
from xrseg.geometry import transform_points as to_frame
from xrseg.masks import mask_iou
from xrseg.sam.engine import SamEngine
from xrseg.session.reader import Session
from xrseg.tools.scoring import best_target, picked_object
from xrseg.types import EventKind

_MS = 1_000_000


@dataclass(frozen=True)
class BaselinePick:
    """One click of the baseline: the target it belongs to, what it picked and the IoU with the target."""

    timestamp_ns: int
    target_index: int | None
    picked_object_id: int | None
    correct: bool
    mask_iou: float


def _frame_index_at(session: Session, timestamp_ns: int) -> int | None:
    index = int(np.searchsorted(session.frame_timestamps_ns, timestamp_ns, side="right")) - 1
    return index if index >= 0 else None


def run_baseline(
    session: Session, engine: SamEngine, distance_m: float = 1.0, window_ms: float = 150.0
) -> list[BaselinePick]:
    """The baseline's pick for every SELECT event of ``session`` (module docstring)."""
    targets = session.fixation_targets()
    track = PoseTrack.from_head_poses(session.head_poses())
    gaze = [g for g in session.gaze_samples() if g.usable]
    stamps = np.array([g.timestamp_ns for g in gaze], dtype=np.int64)
    camera, head_from_camera = session.header.camera, session.header.head_from_camera
    embeddings: dict[int, object] = {}
    picks = []
    for event in (e for e in session.events() if e.kind is EventKind.SELECT):
        t = event.timestamp_ns
        target = best_target(targets, t, t + 1)
        lo, hi = np.searchsorted(stamps, [t - int(window_ms * _MS), t], side="right")
        frame_index = _frame_index_at(session, t)
        world_from_head = track.at(t)
        if hi <= lo or frame_index is None or world_from_head is None:
            picks.append(BaselinePick(t, target, None, False, 0.0))
            continue
        # Each sample's 1 m point in the world with the head pose at its own time (the head turns during the
        # window), then their mean.
        points_world = []
        for sample in gaze[lo:hi]:
            pose = track.at(sample.timestamp_ns)
            if pose is not None:
                point_head = np.asarray(sample.ray.origin_m) + distance_m * np.asarray(sample.ray.direction)
                points_world.append(to_frame(pose, point_head[None])[0])
        if not points_world:
            picks.append(BaselinePick(t, target, None, False, 0.0))
            continue
        point_world = np.mean(points_world, axis=0)
        frame_pose = track.at(int(session.frame_timestamps_ns[frame_index]))
        if frame_pose is None:
            picks.append(BaselinePick(t, target, None, False, 0.0))
            continue
        camera_from_world = invert_transform(frame_pose @ head_from_camera)
        pixel, in_front = project_points(camera, to_frame(camera_from_world, point_world[None]))
        if not (in_front[0] and in_image(camera, pixel)[0]):
            picks.append(BaselinePick(t, target, None, False, 0.0))
            continue
        if frame_index not in embeddings:
            embeddings[frame_index] = engine.encode(session.frame(frame_index).rgb)
        prediction = engine.decode(embeddings[frame_index], points=pixel, labels=[1])  # type: ignore[arg-type]
        mask = prediction.masks[prediction.best]
        ids = session.instance_ids(frame_index)
        picked = None if ids is None else picked_object(mask, ids)
        target_id = None if target is None else targets[target].object_id
        iou = 0.0 if ids is None or target_id is None else mask_iou(mask, ids == target_id)
        picks.append(BaselinePick(t, target, picked, picked is not None and picked == target_id, iou))
    return picks
