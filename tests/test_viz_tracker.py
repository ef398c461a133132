"""OverlayTracker on hand-built records turned into the pipeline's own sink events
(:class:`~xrseg.select.sink_events.SinkEvents`): where the gaze lands (depth vs fallback), the trail with each
sample's own head pose, the selection mask carried to a later frame through depth, rejection."""

from __future__ import annotations

import numpy as np
import pytest

from xrseg.select.sink_events import SinkEvents
from xrseg.sinks.base import FrameEvent, PreviewEvent
from xrseg.sinks.viz.overlay import GAZE_RGB, PREVIEW_RGB
from xrseg.sinks.viz.tracker import MaskCarrier, OverlayTracker
from xrseg.sync.poses import PoseHistory
from xrseg.types import (
    CameraModel,
    DepthSource,
    Fixation,
    Frame,
    GazeRay,
    GazeSample,
    HeadPose,
    Selection,
)

# A 64x48 ideal pinhole with f = 50 px and the principal point on a pixel centre.
CAMERA = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)
# OpenXR head (+y up, -z forward) to OpenCV camera (+y down, +z forward), same origin.
HEAD_FROM_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])


def world_from_head_at(x_m: float) -> np.ndarray:
    """The head at world (x_m, 0, 0) and no rotation (world = head axes)."""
    world_from_head = np.eye(4)
    world_from_head[0, 3] = x_m
    return world_from_head


def world_from_camera_at(x_m: float) -> np.ndarray:
    """The camera with the head at world (x_m, 0, 0) and no rotation."""
    return world_from_head_at(x_m) @ HEAD_FROM_CAMERA


def sink_events(*head_x_m: tuple[int, float]) -> SinkEvents:
    """The pipeline's event maker over a head-pose track of (timestamp_ns, head x in metres) poses."""
    poses = PoseHistory(10**12, HEAD_FROM_CAMERA)
    for timestamp_ns, x_m in head_x_m:
        poses.push(HeadPose(timestamp_ns, world_from_head_at(x_m)))
    return SinkEvents(CAMERA, poses, fallback_depth_m=1.0)


def frame(index: int, timestamp_ns: int, depth_m: float | None = 2.0) -> Frame:
    rgb = np.full((48, 64, 3), 90, dtype=np.uint8)
    depth = None if depth_m is None else np.full((48, 64), depth_m, dtype=np.float32)
    return Frame(index, timestamp_ns, rgb, depth)


def sample(timestamp_ns: int, origin=(0.0, 0.0, 0.0), direction=(0.0, 0.0, -1.0)) -> GazeSample:  # type: ignore[no-untyped-def]
    return GazeSample(timestamp_ns, GazeRay(np.array(origin), np.array(direction)))


def make_selection(selection_id: int, mask: np.ndarray, keyframe: Frame) -> Selection:
    fixation = Fixation(0, 200_000_000, np.zeros(3), np.array([0.0, 0.0, -1.0]), 0.5)
    return Selection(
        selection_id=selection_id,
        timestamp_ns=keyframe.timestamp_ns + 1,
        keyframe_index=keyframe.index,
        keyframe_timestamp_ns=keyframe.timestamp_ns,
        fixation=fixation,
        mask=mask,
        score=0.9,
        mask_index=0,
        candidate_scores=(0.9,),
        prompt_points_xy=np.array([[30.0, 20.0]], dtype=np.float32),
        prompt_labels=np.array([1], dtype=np.int32),
        gaze_xy=(30.0, 20.0),
        depth_source=DepthSource.DEPTH_IMAGE,
    )


def test_gaze_parallax_uses_the_frame_depth() -> None:
    # The eye sits 4 cm right of the camera looking straight ahead: on a wall 2 m away the gaze lands
    # 50 * 0.04 / 2 = 1 px right of the centre; at the 1 m fallback it would land 2 px right.
    events = sink_events((0, 0.0))
    tracker = OverlayTracker(CAMERA, source_label="test")
    tracker.on_gaze(events.gaze(sample(1_000, origin=(0.04, 0.0, 0.0)), sample(1_000), world_from_head_at(0.0)))
    near = events.frame(frame(0, 2_000))
    tracker.on_frame(near)
    out = tracker.render(near)
    assert tuple(out[24, 33]) == GAZE_RGB
    assert tracker.gaze_depth_source == "gaze depth_image"
    assert tracker.hud_text().startswith("test | gaze depth_image")
    flat = events.frame(frame(1, 3_000, depth_m=None))
    tracker.on_frame(flat)
    out = tracker.render(flat)
    assert tuple(out[24, 34]) == GAZE_RGB
    assert tracker.gaze_depth_source == "gaze fixed"


def test_gaze_direction_lands_on_the_expected_pixel() -> None:
    events = sink_events((0, 0.0))
    tracker = OverlayTracker(CAMERA)
    tracker.on_gaze(events.gaze(sample(10, direction=(0.1, 0.0, -1.0)), sample(10), world_from_head_at(0.0)))
    event = events.frame(frame(0, 20))  # x = 32 + 50 * 0.1
    assert event.gaze is not None and event.gaze.projection.pixel_xy == (37.0, 24.0)
    assert tracker.layers(event).gaze_xy == (37.0, 24.0)
    assert tracker.layers(FrameEvent(event.frame, None, None, event.gaze)).gaze_xy is None  # no pose: no gaze


def test_stale_or_invalid_gaze_shows_no_cursor() -> None:
    events = sink_events((0, 0.0), (900_000_000, 0.0))
    tracker = OverlayTracker(CAMERA, trail_s=0.5)
    invalid = GazeSample(10, GazeRay(np.array([np.nan, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])))
    tracker.on_gaze(events.gaze(invalid, invalid, world_from_head_at(0.0)))
    first = events.frame(frame(0, 20))
    assert first.gaze is None, "an unusable sample is not projected"
    assert tracker.layers(first).gaze_xy is None
    assert tracker.gaze_depth_source == "gaze invalid"
    tracker.on_gaze(events.gaze(sample(30), sample(30), world_from_head_at(0.0)))
    late = events.frame(frame(1, 900_000_000))
    assert late.gaze is not None, "the pipeline projects the newest usable sample however old"
    tracker.on_frame(late)
    assert tracker.layers(late).gaze_xy is None, "older than trail_s: no cursor"


def test_trail_uses_each_samples_own_head_pose() -> None:
    # The head moves 0.2 m right in 200 ms looking straight ahead: a sample at 0 ms points 0.2 m left of one
    # at 200 ms; on the 2 m wall seen from the frame at 200 ms that is 50 * 0.2 / 2 = 5 px further left.
    events = sink_events((0, 0.0), (200_000_000, 0.2))
    tracker = OverlayTracker(CAMERA)
    for t in (0, 200_000_000):
        pose = events.poses.world_from_head_at(t)
        assert pose is not None
        tracker.on_gaze(events.gaze(sample(t), sample(t), pose))
    event = events.frame(frame(0, 200_000_000))
    layers = tracker.layers(event)
    assert layers.gaze_xy == (32.0, 24.0)
    assert layers.trail_xy is not None
    np.testing.assert_allclose(layers.trail_xy, [[27.0, 24.0], [32.0, 24.0]], atol=1e-9)


def test_mask_is_carried_to_a_later_frame_through_depth() -> None:
    # Head moves 0.2 m right; a wall 2 m away then appears 50 * 0.2 / 2 = 5 px further left.
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:40] = True
    carrier = MaskCarrier(mask, np.full((48, 64), 2.0, np.float32), CAMERA, world_from_camera_at(0.0))
    assert carrier.step == 1
    moved = carrier.mask_in(world_from_camera_at(0.2))
    expected = np.zeros_like(mask)
    expected[10:30, 15:35] = True
    assert np.array_equal(moved, expected)


def test_mask_carrier_subsamples_large_masks() -> None:
    mask = np.zeros((48, 64), dtype=bool)
    mask[4:44, 4:60] = True  # 2240 px
    carrier = MaskCarrier(mask, np.full((48, 64), 2.0, np.float32), CAMERA, world_from_camera_at(0.0), 600)
    assert carrier.step == 2 and carrier.points_world_m.shape[0] == 20 * 28
    same = carrier.mask_in(world_from_camera_at(0.0))
    inner = np.zeros_like(mask)
    inner[6:42, 6:58] = True
    assert np.all(same[inner]), "the inside of the mask is filled"
    assert not same[:2].any() and not same[:, :2].any()


def tracker_on_keyframe(head_x_later_m: float) -> tuple[SinkEvents, OverlayTracker, FrameEvent, np.ndarray]:
    """A tracker that saw keyframe 3 at t = 0 (the head at x = 0, then at ``head_x_later_m`` 200 ms later), and a
    20x20 mask on it."""
    events = sink_events((0, 0.0), (200_000_000, head_x_later_m))
    tracker = OverlayTracker(CAMERA)
    key = events.frame(frame(3, 0))
    tracker.on_frame(key)
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:40] = True
    return events, tracker, key, mask


def test_selection_layer_on_keyframe_later_frame_and_after_reject() -> None:
    events, tracker, key, mask = tracker_on_keyframe(0.2)
    selection = make_selection(7, mask, key.frame)
    tracker.on_selection(events.selection(selection, key.frame, world_from_camera_at(0.0)))
    on_key = tracker.layers(key).mask
    assert on_key is not None and on_key.mask is mask and on_key.label == "#7 0.90"
    later = events.frame(frame(4, 200_000_000))
    tracker.on_frame(later)
    carried = tracker.layers(later).mask
    assert carried is not None and carried.label == "#7 0.90 (frame 3)"
    assert carried.mask[20, 16] and not carried.mask[20, 37]
    assert carried.prompt_points_xy is not None
    np.testing.assert_allclose(carried.prompt_points_xy, [[25.0, 20.0]], atol=1e-4)  # the prompt moved too
    assert tracker.selections == 1 and "sel 1" in tracker.hud_text()
    tracker.on_reject(selection)
    assert tracker.layers(later).mask is None


def test_hover_preview_is_drawn_lightly_until_a_selection_or_the_fixations_end() -> None:
    events, tracker, key, mask = tracker_on_keyframe(0.0)
    candidate = make_selection(0, mask, key.frame)
    tracker.on_preview(PreviewEvent(candidate, key.frame, world_from_camera_at(0.0)))
    layers = tracker.layers(key)
    assert layers.mask is None and layers.preview is not None and layers.preview.label == "preview"
    rendered = tracker.render(key)
    assert np.all(rendered[25, 30] == np.rint(90 * 0.85 + np.asarray(PREVIEW_RGB) * 0.15))  # a light tint
    assert np.all(rendered[40, 5] == 90) and tracker.selections == 0  # nothing outside it; not a selection
    selection = make_selection(1, mask, key.frame)
    tracker.on_selection(events.selection(selection, key.frame, world_from_camera_at(0.0)))
    layers = tracker.layers(key)
    assert layers.preview is None and layers.mask is not None and layers.mask.label == "#1 0.90"
    tracker.on_preview(PreviewEvent(candidate, key.frame, world_from_camera_at(0.0)))
    tracker.on_fixation(events.fixation(Fixation(0, 200_000_000, np.zeros(3), np.array([0.0, 0.0, -1.0]), 0.5)))
    assert tracker.layers(key).preview is None


def test_fixation_ring_stays_on_the_point_looked_at_while_the_head_moves() -> None:
    # A 300 ms fixation straight ahead with the head at 0 looks at (0, 0, -2) on the wall; 200 ms after it
    # ended the head is 0.2 m right, so the ring sits 50 * 0.2 / 2 = 5 px left of the centre.
    events = sink_events((0, 0.0), (300_000_000, 0.0), (500_000_000, 0.2))
    tracker = OverlayTracker(CAMERA, fixation_hold_s=1.0)
    tracker.on_frame(events.frame(frame(0, 300_000_000)))
    fixation = Fixation(0, 300_000_000, np.zeros(3), np.array([0.0, 0.0, -1.0]), 1.0)
    event = events.fixation(fixation)
    assert event.projection is not None and event.projection.point_world_m is not None
    np.testing.assert_allclose(event.projection.point_world_m, [0.0, 0.0, -2.0], atol=1e-4)
    tracker.on_fixation(event)
    later = events.frame(frame(1, 500_000_000))
    ring = tracker.layers(later).fixation
    assert ring is not None and ring.label == "300 ms"
    assert ring.centre_xy == pytest.approx((27.0, 24.0), abs=1e-3)
    gone = events.frame(frame(2, 1_400_000_000))
    assert tracker.layers(FrameEvent(gone.frame, world_from_camera_at(0.2))).fixation is None  # held 1 s only
