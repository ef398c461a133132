"""Known-answer tests for xrseg.geometry: transforms, interpolation, projection, and gaze projection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xrseg.errors import InputError
from xrseg.geometry import (
    PoseTrack,
    angle_between_deg,
    in_image,
    interpolate_transform,
    invert_transform,
    pose_from_transform,
    project_points,
    transform_directions,
    transform_from_pose,
    transform_points,
    unproject_pixels,
)
from xrseg.select.projection import GazeMiss, project_gaze
from xrseg.types import CameraModel, DepthSource, GazeRay, HeadPose

S45 = math.sqrt(0.5)
CAMERA = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5)
"""Centred 640x480 pinhole, f = 500 px (horizontal field of view 65.2 degrees)."""

HEAD_FROM_CAMERA_AXES = np.diag([1.0, -1.0, -1.0, 1.0])
"""An OpenCV camera looking where an OpenXR head looks: camera +x = head +x, +y = head -y, +z = head -z."""


def head_from_camera(offset_head_m: tuple[float, float, float]) -> np.ndarray:
    matrix = HEAD_FROM_CAMERA_AXES.copy()
    matrix[:3, 3] = offset_head_m
    return matrix


def yaw(degrees: float) -> np.ndarray:
    """world_from_head for a head turned left by ``degrees`` (rotation about +y)."""
    half = math.radians(degrees) / 2
    return transform_from_pose((0.0, 0.0, 0.0), (0.0, math.sin(half), 0.0, math.cos(half)))


def forward_ray(direction_head: tuple[float, float, float] = (0.0, 0.0, -1.0)) -> GazeRay:
    return GazeRay(np.zeros(3), np.array(direction_head))


# --------------------------------------------------------------------------------------------------------------
# Transforms


def test_transform_from_pose_rotates_x_to_y_for_90_degrees_about_z() -> None:
    t = transform_from_pose((1.0, 2.0, 3.0), (0.0, 0.0, S45, S45))
    np.testing.assert_allclose(t[:3, :3], [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)
    np.testing.assert_allclose(t[:3, 3], [1, 2, 3])
    np.testing.assert_allclose(transform_points(t, [[1.0, 0.0, 0.0]]), [[1.0, 3.0, 3.0]], atol=1e-12)
    np.testing.assert_allclose(transform_directions(t, [[1.0, 0.0, 0.0]]), [[0.0, 1.0, 0.0]], atol=1e-12)


def test_pose_round_trip_and_quaternion_normalisation() -> None:
    t = transform_from_pose((0.5, -1.0, 2.0), (0.2, -0.4, 0.1, 0.9))
    position, q = pose_from_transform(t)
    expected = np.array([0.2, -0.4, 0.1, 0.9]) / np.linalg.norm([0.2, -0.4, 0.1, 0.9])
    np.testing.assert_allclose(position, [0.5, -1.0, 2.0])
    np.testing.assert_allclose(q, expected, atol=1e-12)
    # q and -q are the same rotation; pose_from_transform returns w >= 0.
    _, q_neg = pose_from_transform(transform_from_pose((0, 0, 0), -expected))
    np.testing.assert_allclose(q_neg, expected, atol=1e-12)
    # 180 degrees about x: w = 0, the trace is -1 (Shepperd's non-trace branch).
    _, q_180 = pose_from_transform(np.diag([1.0, -1.0, -1.0, 1.0]))
    np.testing.assert_allclose(np.abs(q_180), [1.0, 0.0, 0.0, 0.0], atol=1e-12)


@pytest.mark.parametrize("quaternion", [(0.0, 0.0, 0.0, 0.0), (math.nan, 0.0, 0.0, 1.0)])
def test_bad_quaternion_raises_input_error(quaternion: tuple[float, ...]) -> None:
    with pytest.raises(InputError):
        transform_from_pose((0.0, 0.0, 0.0), quaternion)


def test_invert_transform() -> None:
    t = transform_from_pose((1.0, 2.0, 3.0), (0.0, 0.0, S45, S45))
    inverse = invert_transform(t)
    np.testing.assert_allclose(inverse @ t, np.eye(4), atol=1e-12)
    np.testing.assert_allclose(transform_points(inverse, [[1.0, 2.0, 3.0]]), [[0.0, 0.0, 0.0]], atol=1e-12)
    # head_from_world maps a point 1 m to the right of the head (world +y after the turn) to head +x.
    np.testing.assert_allclose(transform_points(inverse, [[1.0, 3.0, 3.0]]), [[1.0, 0.0, 0.0]], atol=1e-12)


def test_angle_between_deg_known_values_and_precision() -> None:
    a = np.array([[1.0, 0, 0], [1.0, 0, 0], [1.0, 0, 0], [0.0, 0, 2]])
    b = np.array([[0.0, 1, 0], [-1.0, 0, 0], [1.0, 1, 0], [0.0, 3, 3]])
    np.testing.assert_allclose(angle_between_deg(a, b), [90.0, 180.0, 45.0, 45.0], atol=1e-12)
    # 1e-9 rad: acos(dot) would round to exactly 0 here.
    tiny = float(angle_between_deg([1.0, 0.0, 0.0], [1.0, 1e-9, 0.0]))
    assert tiny == pytest.approx(math.degrees(1e-9), rel=1e-6)
    assert math.isnan(float(angle_between_deg([0.0, 0.0, 0.0], [1.0, 0.0, 0.0])))
    assert math.isnan(float(angle_between_deg([math.nan, 0.0, 0.0], [1.0, 0.0, 0.0])))


def test_interpolate_transform_midpoints() -> None:
    a = np.eye(4)
    b = transform_from_pose((2.0, 0.0, 0.0), (0.0, 0.0, S45, S45))  # 90 degrees about z
    mid = interpolate_transform(0, a, 10, b, 5)
    np.testing.assert_allclose(mid[:3, 3], [1.0, 0.0, 0.0])
    c, s = math.cos(math.radians(45)), math.sin(math.radians(45))
    np.testing.assert_allclose(mid[:3, :3], [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]], atol=1e-12)
    quarter = interpolate_transform(0, a, 10, b, 2)  # 20 % of the way: 18 degrees
    assert float(angle_between_deg(quarter[:3, 0], [1.0, 0.0, 0.0])) == pytest.approx(18.0, abs=1e-9)
    np.testing.assert_allclose(quarter[:3, 3], [0.4, 0.0, 0.0])
    np.testing.assert_allclose(interpolate_transform(7, a, 7, b, 7), a)


def test_interpolate_takes_the_short_way_round() -> None:
    # 350 degrees about z is -10 degrees: the midpoint is -5 degrees, not 175.
    half = math.radians(350) / 2
    b = transform_from_pose((0, 0, 0), (0.0, 0.0, math.sin(half), math.cos(half)))
    mid = interpolate_transform(0, np.eye(4), 2, b, 1)
    assert math.degrees(math.atan2(mid[1, 0], mid[0, 0])) == pytest.approx(-5.0, abs=1e-9)


def test_pose_track_lookup() -> None:
    poses = [HeadPose(0, np.eye(4)), HeadPose(100, transform_from_pose((1.0, 0, 0), (0, 0, 0, 1)))]
    track = PoseTrack.from_head_poses(poses)
    at_mid = track.at(25)
    assert at_mid is not None
    np.testing.assert_allclose(at_mid[:3, 3], [0.25, 0.0, 0.0])
    exact = track.at(100)
    assert exact is not None
    np.testing.assert_allclose(exact[:3, 3], [1.0, 0.0, 0.0])
    # Outside the track: the end pose is held within the tolerance, None beyond.
    after = track.at(130, max_extrapolation_ns=50)
    assert after is not None
    np.testing.assert_allclose(after[:3, 3], [1.0, 0.0, 0.0])
    assert track.at(151, max_extrapolation_ns=50) is None
    assert track.at(-51, max_extrapolation_ns=50) is None
    assert len(track) == 2 and track.start_ns == 0 and track.end_ns == 100


def test_pose_track_rejects_unsorted_and_bad_input() -> None:
    with pytest.raises(InputError, match="strictly ascending"):
        PoseTrack(np.array([0, 20, 10]), np.stack([np.eye(4)] * 3))
    with pytest.raises(InputError, match="strictly ascending"):
        PoseTrack(np.array([0, 0]), np.stack([np.eye(4)] * 2))
    with pytest.raises(InputError, match="integer"):
        PoseTrack(np.array([0.0, 1.0]), np.stack([np.eye(4)] * 2))
    with pytest.raises(InputError):
        PoseTrack(np.array([0, 1]), np.stack([np.eye(4)] * 3))
    with pytest.raises(InputError):
        PoseTrack(np.array([0, 1]), np.stack([np.eye(4), np.full((4, 4), np.nan)]))


# --------------------------------------------------------------------------------------------------------------
# Projection


def test_project_points_identity_camera_and_principal_point() -> None:
    pixels, in_front = project_points(CAMERA, [[0.1, -0.2, 2.0], [0.0, 0.0, 1.0], [0.0, 0.0, -1.0]])
    np.testing.assert_allclose(pixels[:2], [[344.5, 189.5], [319.5, 239.5]])
    assert in_front.tolist() == [True, True, False]
    assert np.all(np.isnan(pixels[2]))
    offset = CameraModel(640, 480, 400.0, 300.0, 300.0, 200.0)
    pixels, _ = project_points(offset, [[0.1, -0.2, 2.0]])
    np.testing.assert_allclose(pixels, [[320.0, 170.0]])


def test_unproject_pixels_inverts_projection() -> None:
    points = unproject_pixels(CAMERA, [[319.5, 239.5], [344.5, 189.5]], [2.0, 2.0])
    np.testing.assert_allclose(points, [[0.0, 0.0, 2.0], [0.1, -0.2, 2.0]], atol=1e-12)


DISTORTED = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5, (-0.2, 0.05, 0.001, -0.001, 0.0))


def test_opencv_distortion_known_value() -> None:
    # x = 0.2, y = 0.1: r2 = 0.05, radial = 1 - 0.2 * 0.05 + 0.05 * 0.0025 = 0.990125,
    # tangential dx = 2 p1 x y + p2 (r2 + 2 x^2) = -0.00009, dy = p1 (r2 + 2 y^2) + 2 p2 x y = 0.00003.
    pixels, _ = project_points(DISTORTED, [[0.2, 0.1, 1.0]])
    np.testing.assert_allclose(pixels, [[500 * 0.197935 + 319.5, 500 * 0.0990425 + 239.5]], atol=1e-9)


def test_opencv_distortion_round_trip() -> None:
    xs, ys = np.meshgrid(np.linspace(-0.55, 0.55, 9), np.linspace(-0.4, 0.4, 7))
    z = np.linspace(0.5, 4.0, xs.size)
    points = np.column_stack([xs.ravel() * z, ys.ravel() * z, z])
    pixels, in_front = project_points(DISTORTED, points)
    assert np.all(in_front) and np.all(in_image(DISTORTED, pixels))
    back = unproject_pixels(DISTORTED, pixels, z)
    np.testing.assert_allclose(back, points, atol=1e-9)


def test_folded_distortion_is_not_reported_on_image() -> None:
    # k1 = -0.5: r_d = r (1 - 0.5 r^2) peaks at r = 0.816 and turns back; a point at r = 1.6 would land at
    # r_d = -0.448, on the opposite side of the image, if the fold were not caught.
    barrel = CameraModel(640, 480, 300.0, 300.0, 319.5, 239.5, (-0.5, 0.0, 0.0, 0.0))
    pixels, in_front = project_points(barrel, [[1.6, 0.0, 1.0], [0.3, 0.0, 1.0]])
    assert in_front.tolist() == [True, True]
    assert in_image(barrel, pixels).tolist() == [False, True]
    assert pixels[1, 0] == pytest.approx(300 * 0.3 * (1 - 0.5 * 0.09) + 319.5)


def test_in_image_uses_pixel_edges() -> None:
    pixels = [[-0.5, -0.5], [-0.51, 0.0], [639.49, 479.49], [639.5, 0.0], [0.0, 479.5], [math.nan, 5.0]]
    assert in_image(CAMERA, pixels).tolist() == [True, False, True, False, False, False]


# --------------------------------------------------------------------------------------------------------------
# Gaze projection


def test_gaze_through_camera_centre_hits_plane_at_known_depth() -> None:
    depth = np.full((480, 640), 2.0, dtype=np.float32)
    ray = forward_ray((0.1, 0.05, -1.0))  # head frame: right and up
    result = project_gaze(ray, np.eye(4), HEAD_FROM_CAMERA_AXES, CAMERA, depth_m=depth)
    assert result.miss is None and result.depth_source is DepthSource.DEPTH_IMAGE
    assert result.pixel_xy == pytest.approx((369.5, 214.5), abs=1e-6)  # 500 * 0.1 + 319.5, 500 * -0.05 + 239.5
    assert result.range_m == pytest.approx(2.0 * math.sqrt(1.0125), abs=1e-6)
    assert result.point_world_m is not None
    np.testing.assert_allclose(result.point_world_m, [0.2, 0.1, -2.0], atol=1e-6)


def test_ray_march_hits_tilted_plane() -> None:
    # Plane z = 1 + 0.5 x (camera frame): depth at normalised (u, v) is 1 / (1 - 0.5 u).
    u = (np.arange(640) - 319.5) / 500.0
    depth = np.tile((1.0 / (1.0 - 0.5 * u)).astype(np.float32), (480, 1))
    # A 5 cm camera-eye offset so the ray crosses pixels; eye ray straight ahead hits x = 0, z = 1.
    world_from_camera = head_from_camera((0.05, 0.0, 0.0))
    result = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, depth_m=depth)
    assert result.depth_source is DepthSource.DEPTH_IMAGE
    assert result.range_m == pytest.approx(1.0 - 0.5 * 0.05, abs=2e-3)  # z = 1 + 0.5 * (-0.05) in the camera


def parallax_scene() -> tuple[np.ndarray, np.ndarray]:
    """Eye at the head origin, camera 5 cm to its right; a box face 0.5 m away in front of a wall at 3 m."""
    depth = np.full((480, 640), 3.0, dtype=np.float32)
    depth[200:281, 250:391] = 0.5
    return head_from_camera((0.05, 0.0, 0.0)), depth


def test_parallax_depth_resolves_what_a_fixed_distance_gets_wrong() -> None:
    world_from_camera, depth = parallax_scene()
    marched = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, depth_m=depth)
    fixed = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, fallback_depth_m=1.0)
    # The eye looks at (0, 0, -0.5) in the head frame = (-0.05, 0, 0.5) in the camera: x = 319.5 - 50.
    assert marched.depth_source is DepthSource.DEPTH_IMAGE
    assert marched.pixel_xy == pytest.approx((269.5, 239.5), abs=0.05)
    assert marched.range_m == pytest.approx(0.5, abs=1e-4)
    # Assuming 1 m puts the point at (-0.05, 0, 1) in the camera: x = 319.5 - 25, 25 px off.
    assert fixed.depth_source is DepthSource.FIXED
    assert fixed.pixel_xy == pytest.approx((294.5, 239.5), abs=1e-9)
    assert marched.pixel_xy is not None and fixed.pixel_xy is not None
    # Seen from the camera the two pixels are atan(0.1) - atan(0.05) = 2.848 degrees apart.
    rays = unproject_pixels(CAMERA, [marched.pixel_xy, fixed.pixel_xy], [1.0, 1.0])
    assert float(angle_between_deg(rays[0], rays[1])) == pytest.approx(2.8482, abs=1e-3)
    # Seen from the eye, the wrong pixel shows the box at (0.025, 0, -0.5) in the head frame: atan(0.05) off.
    box_point_head = transform_points(world_from_camera, unproject_pixels(CAMERA, [fixed.pixel_xy], [0.5]))[0]
    np.testing.assert_allclose(box_point_head, [0.025, 0.0, -0.5], atol=1e-9)
    assert float(angle_between_deg(box_point_head, [0.0, 0.0, -1.0])) == pytest.approx(2.8624, abs=1e-3)
    assert marched.point_world_m is not None
    assert float(angle_between_deg(marched.point_world_m, [0.0, 0.0, -1.0])) < 0.01


def test_vergence_depth_is_used_without_a_depth_image() -> None:
    world_from_camera, _ = parallax_scene()
    result = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, vergence_depth_m=0.5)
    assert result.depth_source is DepthSource.VERGENCE
    assert result.pixel_xy == pytest.approx((269.5, 239.5), abs=1e-9)
    bad = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, vergence_depth_m=math.nan)
    assert bad.depth_source is DepthSource.FIXED


def test_ray_march_tolerates_holes() -> None:
    world_from_camera, depth = parallax_scene()
    depth[:, ::3] = 0.0
    depth[:, 1::7] = np.nan
    result = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, depth_m=depth)
    assert result.depth_source is DepthSource.DEPTH_IMAGE
    assert result.range_m == pytest.approx(0.5, abs=5e-3)


def test_empty_depth_falls_back_to_vergence_then_fixed() -> None:
    world_from_camera, _ = parallax_scene()
    empty = np.zeros((480, 640), dtype=np.float32)
    with_vergence = project_gaze(
        forward_ray(), np.eye(4), world_from_camera, CAMERA, depth_m=empty, vergence_depth_m=2.0
    )
    assert with_vergence.depth_source is DepthSource.VERGENCE and with_vergence.range_m == 2.0
    fixed = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, depth_m=empty, fallback_depth_m=1.5)
    assert fixed.depth_source is DepthSource.FIXED and fixed.range_m == 1.5


def test_ray_passing_behind_an_occluder_is_not_a_hit() -> None:
    # The camera sits 10 cm to the eye's left; a thin pole at 0.4 m hides part of the eye's ray from the camera
    # (seen from the eye the pole is 4-7 cm to the left of the ray, out of the way); a wall at 2 m.
    world_from_camera = head_from_camera((-0.10, 0.0, 0.0))
    depth = np.full((480, 640), 2.0, dtype=np.float32)
    # From the camera, the eye's ray at range s is at camera x = 0.10, pixel 319.5 + 50 / s: at s = 0.8..1.2 m
    # it crosses pixels 361..382. Put the pole there at 0.4 m (in front of the ray, as seen from the camera).
    depth[:, 355:390] = 0.4
    result = project_gaze(forward_ray(), np.eye(4), world_from_camera, CAMERA, depth_m=depth)
    assert result.depth_source is DepthSource.DEPTH_IMAGE
    assert result.range_m == pytest.approx(2.0, abs=1e-3)
    assert result.pixel_xy == pytest.approx((319.5 + 25.0, 239.5), abs=0.05)


def test_head_moved_since_the_keyframe() -> None:
    # Keyframe camera at the head origin looking along world -z; the head has since turned 10 degrees left.
    depth = np.full((480, 640), 2.0, dtype=np.float32)
    result = project_gaze(forward_ray(), yaw(10.0), HEAD_FROM_CAMERA_AXES, CAMERA, depth_m=depth)
    assert result.depth_source is DepthSource.DEPTH_IMAGE
    assert result.pixel_xy == pytest.approx((319.5 - 500 * math.tan(math.radians(10)), 239.5), abs=1e-4)


@pytest.mark.parametrize(
    "direction", [(math.nan, 0.0, -1.0), (0.0, 0.0, 0.0), (math.inf, 0.0, 0.0)], ids=["nan", "zero", "inf"]
)
def test_invalid_rays_miss(direction: tuple[float, float, float]) -> None:
    result = project_gaze(forward_ray(direction), np.eye(4), HEAD_FROM_CAMERA_AXES, CAMERA)
    assert result.miss is GazeMiss.INVALID_RAY
    assert result.pixel_xy is None and result.point_world_m is None and result.depth_source is None


def test_nan_origin_misses() -> None:
    ray = GazeRay(np.array([math.nan, 0.0, 0.0]), np.array([0.0, 0.0, -1.0]))
    assert project_gaze(ray, np.eye(4), HEAD_FROM_CAMERA_AXES, CAMERA).miss is GazeMiss.INVALID_RAY


def test_behind_camera_and_off_image_misses() -> None:
    depth = np.full((480, 640), 2.0, dtype=np.float32)
    behind = project_gaze(forward_ray((0.0, 0.0, 1.0)), np.eye(4), HEAD_FROM_CAMERA_AXES, CAMERA, depth_m=depth)
    assert behind.miss is GazeMiss.BEHIND_CAMERA and behind.pixel_xy is None
    assert behind.depth_source is DepthSource.FIXED
    assert behind.point_world_m is not None
    np.testing.assert_allclose(behind.point_world_m, [0.0, 0.0, 1.0])
    # 40 degrees right: beyond the 32.6 degree half field of view.
    side = (math.sin(math.radians(40)), 0.0, -math.cos(math.radians(40)))
    off = project_gaze(forward_ray(side), np.eye(4), HEAD_FROM_CAMERA_AXES, CAMERA, depth_m=depth)
    assert off.miss is GazeMiss.OFF_IMAGE and off.pixel_xy is None


def test_bad_inputs_raise_input_error() -> None:
    with pytest.raises(InputError, match="depth_m"):
        project_gaze(forward_ray(), np.eye(4), np.eye(4), CAMERA, depth_m=np.ones((10, 10), np.float32))
    with pytest.raises(InputError, match="world_from_head"):
        project_gaze(forward_ray(), np.full((4, 4), np.nan), np.eye(4), CAMERA)
    with pytest.raises(InputError, match="fallback_depth_m"):
        project_gaze(forward_ray(), np.eye(4), np.eye(4), CAMERA, fallback_depth_m=0.0)
