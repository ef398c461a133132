"""The events the pipeline gives its sinks (:mod:`xrseg.sinks.base`), made from what it already knows: the
run's head-pose track for every gaze sample and fixation, the newest usable gaze sample projected into each
frame (once per frame, for every sink), each fixation projected into the newest frame, and each selection's
lifted points (once per selection)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from xrseg.sam.embeddings import Keyframe
from xrseg.select.projection import GazeProjection, GazeProjector
from xrseg.select.speculation import Made
from xrseg.sinks.base import (
    FixationEvent,
    FrameEvent,
    GazeEvent,
    GazeOnFrame,
    KeyframeEvent,
    LiftOnce,
    PreviewEvent,
    SelectionEvent,
)
from xrseg.sync.poses import PoseHistory
from xrseg.types import CameraModel, Fixation, Frame, GazeRay, GazeSample, Selection, Transform

__all__ = ["SinkEvents"]


class SinkEvents:
    """Makes the sinks' events for one run: ``camera`` the session's, ``poses`` the run's head-pose track,
    ``fallback_depth_m`` the gaze distance when neither depth nor vergence gives one."""

    def __init__(self, camera: CameraModel, poses: PoseHistory, fallback_depth_m: float) -> None:
        self.camera = camera
        self.poses = poses
        self.fallback_depth_m = fallback_depth_m
        self._newest_gaze: tuple[GazeSample, Transform] | None = None
        self._newest_frame: tuple[Transform, npt.NDArray[np.float32] | None] | None = None
        """The newest frame with a pose: its world_from_camera and its depth."""

    def frame(self, frame: Frame) -> FrameEvent:
        """``frame`` with its camera pose and the newest usable gaze sample projected into it."""
        world_from_head = self.poses.world_from_head_at(frame.timestamp_ns)
        if world_from_head is None:
            return FrameEvent(frame, None)
        world_from_camera = world_from_head @ self.poses.head_from_camera
        self._newest_frame = (world_from_camera, frame.depth_m)
        gaze = None
        if self._newest_gaze is not None:
            sample, sample_pose = self._newest_gaze
            projection = self._project(sample.ray, sample_pose, sample.vergence_depth_m)
            assert projection is not None  # the frame was just kept
            gaze = GazeOnFrame(sample, sample_pose, projection)
        return FrameEvent(frame, world_from_camera, world_from_head, gaze)

    def keyframe(self, keyframe: Keyframe) -> KeyframeEvent:
        return KeyframeEvent(keyframe, self.poses.world_from_camera_at(keyframe.frame.timestamp_ns))

    def gaze(self, sample: GazeSample, filtered: GazeSample, world_from_head: Transform | None) -> GazeEvent:
        """``sample`` with its head pose (remembered, when usable, for the next frames)."""
        if sample.usable and world_from_head is not None:
            self._newest_gaze = (sample, world_from_head)
        return GazeEvent(sample, filtered, world_from_head)

    def fixation(self, fixation: Fixation) -> FixationEvent:
        """``fixation`` with the head pose at its centre time and its mean ray on the newest frame."""
        world_from_head = self.poses.world_from_head_at(fixation.centre_ns)
        if world_from_head is None:
            return FixationEvent(fixation, None)
        projection = self._project(GazeRay(fixation.origin_m, fixation.direction), world_from_head, None)
        return FixationEvent(fixation, world_from_head, projection)

    def _project(
        self, ray: GazeRay, world_from_head: Transform, vergence_depth_m: float | None
    ) -> GazeProjection | None:
        """``ray`` (head frame) on the newest frame: its depth, then vergence, then the fallback distance."""
        if self._newest_frame is None:
            return None
        world_from_camera, depth_m = self._newest_frame
        projector = GazeProjector(world_from_camera, self.camera, depth_m, self.fallback_depth_m)
        return projector.project(ray, world_from_head, vergence_depth_m)

    def selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> SelectionEvent:
        """``selection`` with its keyframe, pose and its points, lifted at the first sink's asking."""
        return SelectionEvent(
            selection, keyframe, world_from_camera, LiftOnce(selection, keyframe, self.camera, world_from_camera)
        )

    def preview(self, timestamp_ns: int, fixation: Fixation, made: Made) -> PreviewEvent:
        """The look-ahead ``made`` at ``timestamp_ns`` for ``fixation`` (in progress) as a hover preview."""
        frame = made.keyframe.frame
        candidate = made.decision.to_selection(0, timestamp_ns, fixation, frame)
        return PreviewEvent(candidate, frame, made.world_from_camera)
