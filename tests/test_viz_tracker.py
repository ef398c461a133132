"""OverlayTracker on hand-built records: where the gaze lands (depth vs fallback), head poses between frames,
the selection mask carried to a later frame through depth, rejection."""

from __future__ import annotations

import numpy as np

from xrseg.sinks.viz.overlay import GAZE_RGB
from xrseg.sinks.viz.tracker import FramePoses, MaskCarrier, OverlayTracker
from xrseg.types import (
    CameraModel,
    DepthSource,
    Fixation,
    Frame,
    GazeRay,
    GazeSample,
    Selection,
)

# A 64x48 ideal pinhole with f = 50 px and the principal point on a pixel centre.
CAMERA = CameraModel(64, 48, 50.0, 50.0, 32.0, 24.0)
# OpenXR head (+y up, -z forward) to OpenCV camera (+y down, +z forward), same origin.
HEAD_FROM_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])


def world_from_camera_at(x_m: float) -> np.ndarray:
    """The camera with the head at world (x_m, 0, 0) and no rotation (world = head axes)."""
    world_from_head = np.eye(4)
    world_from_head[0, 3] = x_m
    return world_from_head @ HEAD_FROM_CAMERA


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
    tracker = OverlayTracker(CAMERA, HEAD_FROM_CAMERA, source_label="test")
    near = frame(0, 0)
    tracker.on_frame(near, world_from_camera_at(0.0))
    tracker.on_gaze(sample(1_000, origin=(0.04, 0.0, 0.0)), sample(1_000))
    out = tracker.render(near, world_from_camera_at(0.0))
    assert tuple(out[24, 33]) == GAZE_RGB
    assert tracker.gaze_depth_source == "gaze depth_image"
    assert tracker.hud_text().startswith("test | gaze depth_image")
    flat = frame(1, 2_000, depth_m=None)
    tracker.on_frame(flat, world_from_camera_at(0.0))
    out = tracker.render(flat, world_from_camera_at(0.0))
    assert tuple(out[24, 34]) == GAZE_RGB
    assert tracker.gaze_depth_source == "gaze fixed"


def test_gaze_direction_lands_on_the_expected_pixel() -> None:
    tracker = OverlayTracker(CAMERA, HEAD_FROM_CAMERA)
    f = frame(0, 0)
    tracker.on_frame(f, world_from_camera_at(0.0))
    tracker.on_gaze(sample(10, direction=(0.1, 0.0, -1.0)), sample(10))  # x = 32 + 50 * 0.1
    assert tracker.layers(f, world_from_camera_at(0.0)).gaze_xy == (37.0, 24.0)
    assert tracker.layers(f, None).gaze_xy is None  # no pose: nothing can be placed


def test_stale_or_invalid_gaze_shows_no_cursor() -> None:
    tracker = OverlayTracker(CAMERA, HEAD_FROM_CAMERA, trail_s=0.5)
    tracker.on_frame(frame(0, 0), world_from_camera_at(0.0))
    invalid = GazeSample(10, GazeRay(np.array([np.nan, 0.0, 0.0]), np.array([0.0, 0.0, -1.0])))
    tracker.on_gaze(invalid, invalid)
    assert tracker.layers(frame(0, 0), world_from_camera_at(0.0)).gaze_xy is None
    assert tracker.gaze_depth_source == "gaze invalid"
    tracker.on_gaze(sample(20), sample(20))
    late = frame(1, 900_000_000)
    tracker.on_frame(late, world_from_camera_at(0.0))
    assert tracker.layers(late, world_from_camera_at(0.0)).gaze_xy is None


def test_head_pose_is_interpolated_between_frames() -> None:
    poses = FramePoses(HEAD_FROM_CAMERA)
    assert poses.at(0) is None
    poses.add(0, world_from_camera_at(0.0))
    poses.add(1_000_000_000, world_from_camera_at(1.0))
    middle = poses.at(250_000_000)
    assert middle is not None
    np.testing.assert_allclose(middle[:3, 3], [0.25, 0.0, 0.0], atol=1e-12)
    np.testing.assert_allclose(middle[:3, :3], np.eye(3), atol=1e-12)
    after = poses.at(5_000_000_000)  # held after the newest frame
    assert after is not None and after[0, 3] == 1.0
    poses.add(500_000_000, world_from_camera_at(9.0))  # out of order: ignored
    later = poses.at(500_000_000)
    assert later is not None and abs(later[0, 3] - 0.5) < 1e-12


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


def test_selection_layer_on_keyframe_later_frame_and_after_reject() -> None:
    tracker = OverlayTracker(CAMERA, HEAD_FROM_CAMERA)
    key = frame(3, 0)
    tracker.on_frame(key, world_from_camera_at(0.0))
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:40] = True
    selection = make_selection(7, mask, key)
    tracker.on_selection(selection, key, world_from_camera_at(0.0))
    on_key = tracker.layers(key, world_from_camera_at(0.0)).mask
    assert on_key is not None and on_key.mask is mask and on_key.label == "#7 0.90"
    later = frame(4, 200_000_000)
    tracker.on_frame(later, world_from_camera_at(0.2))
    carried = tracker.layers(later, world_from_camera_at(0.2)).mask
    assert carried is not None and carried.label == "#7 0.90 (frame 3)"
    assert carried.mask[20, 16] and not carried.mask[20, 37]
    assert carried.prompt_points_xy is not None
    np.testing.assert_allclose(carried.prompt_points_xy, [[25.0, 20.0]], atol=1e-4)  # the prompt moved too
    assert tracker.selections == 1 and "sel 1" in tracker.hud_text()
    tracker.on_reject(selection)
    assert tracker.layers(later, world_from_camera_at(0.2)).mask is None
