"""lift_mask on real ray-cast geometry: surface accuracy, distortion round trip, flying pixels, empty results."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from xrseg.errors import InputError
from xrseg.geometry import invert_transform, transform_points
from xrseg.lift import BorderFilter, OutlierRemoval, lift_mask, reliable_pixels, to_point_cloud
from xrseg.tools.synthetic_lift import (
    RenderedView,
    SceneObject,
    look_at,
    make_box,
    make_sphere,
    pinhole_camera,
    render_view,
)
from xrseg.types import CameraModel

DISTORTED = pinhole_camera(640, 480, 65.0, (-0.08, 0.02, 0.001, -0.0005))
SPHERE_CENTER = np.array([0.0, 0.0, 0.0])
SPHERE_RADIUS = 0.1


def _box_distance(points: npt.NDArray[np.float64], center: npt.ArrayLike, size: npt.ArrayLike) -> np.ndarray:
    """Unsigned distance of points to the surface of an axis-aligned box (exact)."""
    q = np.abs(points - np.asarray(center)) - np.asarray(size) / 2.0
    outside = np.linalg.norm(np.maximum(q, 0.0), axis=1)
    inside = np.minimum(np.max(q, axis=1), 0.0)
    return np.abs(outside + inside)


def test_lifted_sphere_points_lie_on_the_true_surface() -> None:
    world_from_camera = look_at((0.05, 0.12, 0.6), SPHERE_CENTER)
    scene = [
        SceneObject(make_sphere(SPHERE_RADIUS, SPHERE_CENTER)),
        SceneObject(make_box((1.0, 0.02, 1.0), (0.0, -0.11, 0.0))),
    ]
    view = render_view(scene, DISTORTED, world_from_camera)
    mask = view.mask(0)
    result = lift_mask(mask, view.depth_m, view.rgb, DISTORTED, world_from_camera)
    assert result.reason is None
    assert result.points_world_m.dtype == np.float64 and result.colors.dtype == np.float32
    # Only a thin border ring (erosion + depth-edge test) is lost.
    assert result.count > 0.85 * mask.sum()
    radial_error = np.abs(np.linalg.norm(result.points_world_m - SPHERE_CENTER, axis=1) - SPHERE_RADIUS)
    assert radial_error.max() < 0.003
    assert np.all((result.colors >= 0.0) & (result.colors <= 1.0))
    # The colour of each point is the colour of its source pixel.
    xs, ys = result.pixels_xy[:, 0], result.pixels_xy[:, 1]
    np.testing.assert_allclose(result.colors, view.rgb[ys, xs] / 255.0, atol=1e-6)


def test_lifted_points_project_back_to_their_pixels_through_opencv() -> None:
    """An independent check of the cached undistortion: OpenCV's forward lens model maps each point home."""
    world_from_camera = look_at((-0.1, 0.05, 0.5), SPHERE_CENTER)
    view = render_view([SceneObject(make_sphere(SPHERE_RADIUS, SPHERE_CENTER))], DISTORTED, world_from_camera)
    result = lift_mask(view.mask(0), view.depth_m, view.rgb, DISTORTED, world_from_camera)
    points_camera = transform_points(invert_transform(world_from_camera), result.points_world_m)
    zero = np.zeros(3)
    projected, _ = cv2.projectPoints(
        points_camera.reshape(-1, 1, 3), zero, zero, DISTORTED.intrinsic_matrix(), DISTORTED.distortion_coeffs()
    )
    np.testing.assert_allclose(projected.reshape(-1, 2), result.pixels_xy, atol=2e-3)


def test_single_pixel_lifts_to_the_hand_computed_world_point() -> None:
    camera = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5)
    depth = np.zeros((480, 640), dtype=np.float32)
    depth[239, 419] = 2.0
    mask = depth > 0
    rgb = np.zeros((480, 640, 3), dtype=np.uint8)
    rgb[239, 419] = (255, 0, 51)
    # Camera rotated +90 degrees about world z and placed at (1, 2, 3).
    world_from_camera = np.array(
        [[0.0, -1.0, 0.0, 1.0], [1.0, 0.0, 0.0, 2.0], [0.0, 0.0, 1.0, 3.0], [0.0, 0.0, 0.0, 1.0]]
    )
    result = lift_mask(mask, depth, rgb, camera, world_from_camera, border=None)
    # Camera point: x = (419 - 319.5) / 500 * 2 = 0.398, y = (239 - 239.5) / 500 * 2 = -0.002, z = 2.
    # World: (1 - y, 2 + x, 3 + z) = (1.002, 2.398, 5.0).
    np.testing.assert_allclose(result.points_world_m, [[1.002, 2.398, 5.0]], atol=1e-9)
    np.testing.assert_allclose(result.colors, [[1.0, 0.0, 0.2]], atol=1e-6)
    np.testing.assert_array_equal(result.pixels_xy, [[419, 239]])


def _box_on_wall() -> tuple[CameraModel, np.ndarray, RenderedView]:
    camera = pinhole_camera(640, 480, 60.0)
    world_from_camera = look_at((0.0, 0.0, 0.8), (0.0, 0.0, 0.0))
    scene = [
        SceneObject(make_box((0.15, 0.15, 0.15), (0.0, 0.0, 0.0)), (220, 40, 40)),
        SceneObject(make_box((2.0, 2.0, 0.02), (0.0, 0.0, -0.3)), (40, 40, 220)),
    ]
    return camera, world_from_camera, render_view(scene, camera, world_from_camera)


def test_flying_pixel_rejection_drops_background_and_mixed_depth_at_the_border() -> None:
    camera, world_from_camera, view = _box_on_wall()
    truth = view.mask(0)
    # A mask that bleeds 2 px onto the wall, like a real segmentation.
    bled = cv2.dilate(truth.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    # And flying pixels: the box's outer ring takes depths between the box and the wall, as ToF sensors do.
    depth = view.depth_m.copy()
    ring = truth & ~cv2.erode(truth.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    depth[ring] = 0.5 * (depth[ring] + 1.09)
    box_center, box_size = (0.0, 0.0, 0.0), (0.15, 0.15, 0.15)

    unfiltered = lift_mask(bled, depth, view.rgb, camera, world_from_camera, border=None)
    off_surface = _box_distance(unfiltered.points_world_m, box_center, box_size) > 0.01
    assert off_surface.sum() > 1000  # the problem is real: wall and flying pixels came along

    filtered = lift_mask(bled, depth, view.rgb, camera, world_from_camera)
    assert filtered.reason is None
    assert _box_distance(filtered.points_world_m, box_center, box_size).max() < 0.003
    assert filtered.count > 0.8 * truth.sum()


def test_depth_jump_test_alone_rejects_both_sides_of_an_edge() -> None:
    depth = np.full((20, 20), 1.0, dtype=np.float32)
    depth[:, 10:] = 2.0
    keep = reliable_pixels(np.ones((20, 20), bool), depth, BorderFilter(erode_px=0, neighbour_radius_px=1))
    assert not keep[:, 9].any() and not keep[:, 10].any()
    assert keep[:, :9].all() and keep[:, 11:].all()
    # A hole is not a neighbour: no ring is cut around it.
    depth = np.full((20, 20), 1.0, dtype=np.float32)
    depth[10, 10] = 0.0
    keep = reliable_pixels(np.ones((20, 20), bool), depth, BorderFilter(erode_px=0, neighbour_radius_px=1))
    assert keep.sum() == 399 and not keep[10, 10]


def test_mask_without_valid_depth_gives_an_empty_result_with_a_reason() -> None:
    camera = pinhole_camera(640, 480, 60.0)
    world_from_camera = look_at((0.0, 0.0, 0.6), SPHERE_CENTER)
    view = render_view([SceneObject(make_sphere(SPHERE_RADIUS, SPHERE_CENTER))], camera, world_from_camera)
    sky = np.zeros((480, 640), dtype=bool)
    sky[10:60, 10:60] = True  # background: the ray caster hit nothing, depth 0
    result = lift_mask(sky, view.depth_m, view.rgb, camera, world_from_camera)
    assert result.is_empty and result.reason == "mask has no pixels with valid depth"
    assert result.points_world_m.shape == (0, 3) and result.colors.shape == (0, 3)

    nan_depth = view.depth_m.copy()
    nan_depth[view.mask(0)] = np.nan
    result = lift_mask(view.mask(0), nan_depth, view.rgb, camera, world_from_camera)
    assert result.reason == "mask has no pixels with valid depth"

    empty = lift_mask(np.zeros((480, 640), bool), view.depth_m, view.rgb, camera, world_from_camera)
    assert empty.reason == "mask is empty"

    thin = np.zeros((480, 640), dtype=bool)
    thin[240, 300:340] = True  # one pixel wide, on the sphere: erosion removes it all
    result = lift_mask(thin, view.depth_m, view.rgb, camera, world_from_camera)
    assert result.is_empty and result.reason is not None and "flying pixel" in result.reason


@pytest.mark.parametrize("method", ["statistical", "radius"])
def test_outlier_removal_drops_a_stray_blob_and_keeps_the_object(method: str) -> None:
    camera = pinhole_camera(640, 480, 60.0)
    world_from_camera = look_at((0.0, 0.0, 0.6), SPHERE_CENTER)
    view = render_view([SceneObject(make_sphere(SPHERE_RADIUS, SPHERE_CENTER))], camera, world_from_camera)
    mask = view.mask(0).copy()
    depth = view.depth_m.copy()
    mask[20:22, 20:22] = True  # four stray pixels far off, floating at 0.3 m
    depth[20:22, 20:22] = 0.3
    outliers = OutlierRemoval(method=method, nb_neighbors=20, std_ratio=2.0, radius_m=0.01, min_neighbors=6)  # type: ignore[arg-type]
    result = lift_mask(mask, depth, view.rgb, camera, world_from_camera, border=None, outliers=outliers)
    radial_error = np.abs(np.linalg.norm(result.points_world_m - SPHERE_CENTER, axis=1) - SPHERE_RADIUS)
    assert radial_error.max() < 0.003
    assert result.count > 0.95 * view.mask(0).sum()
    assert len(result.pixels_xy) == result.count


def test_to_point_cloud_carries_points_and_colours() -> None:
    camera = pinhole_camera(640, 480, 60.0)
    world_from_camera = look_at((0.0, 0.0, 0.6), SPHERE_CENTER)
    view = render_view([SceneObject(make_sphere(SPHERE_RADIUS, SPHERE_CENTER))], camera, world_from_camera)
    result = lift_mask(view.mask(0), view.depth_m, view.rgb, camera, world_from_camera)
    cloud = to_point_cloud(result)
    np.testing.assert_array_equal(np.asarray(cloud.points), result.points_world_m)
    np.testing.assert_allclose(np.asarray(cloud.colors), result.colors, atol=1e-7)
    empty = lift_mask(np.zeros((480, 640), bool), view.depth_m, view.rgb, camera, world_from_camera)
    assert len(to_point_cloud(empty).points) == 0


def test_bad_inputs_raise_input_error() -> None:
    camera = pinhole_camera(64, 48, 60.0)
    depth = np.ones((48, 64), np.float32)
    rgb = np.zeros((48, 64, 3), np.uint8)
    mask = np.ones((48, 64), bool)
    with pytest.raises(InputError, match="mask must be 48x64"):
        lift_mask(np.ones((10, 10), bool), depth, rgb, camera, np.eye(4))
    with pytest.raises(InputError, match="depth_m must be 48x64"):
        lift_mask(mask, np.ones((48, 63), np.float32), rgb, camera, np.eye(4))
    with pytest.raises(InputError, match="depth_m must be float"):
        lift_mask(mask, np.ones((48, 64), np.uint16), rgb, camera, np.eye(4))
    with pytest.raises(InputError, match="rgb must be 48x64x3 uint8"):
        lift_mask(mask, depth, rgb.astype(np.float32), camera, np.eye(4))
    with pytest.raises(InputError, match="world_from_camera"):
        lift_mask(mask, depth, rgb, camera, np.diag([2.0, 1.0, 1.0, 1.0]))
    with pytest.raises(InputError):
        BorderFilter(erode_px=-1)
    with pytest.raises(InputError):
        OutlierRemoval(method="median")  # type: ignore[arg-type]
