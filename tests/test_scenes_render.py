"""Ray-cast renderer: depth, instance ids, z-depth vs ray distance, lens distortion, textures."""

from __future__ import annotations

import math

import cv2
import numpy as np
import open3d as o3d
import pytest

from xrseg.errors import InputError
from xrseg.tools.scenes.layout import Surface, shape_mesh
from xrseg.tools.scenes.materials import Material, texture_factor, value_noise
from xrseg.tools.scenes.recipe import CameraSpec
from xrseg.tools.scenes.render import Renderer
from xrseg.tools.scenes.rig import camera_model, head_from_camera
from xrseg.types import CameraModel

# An odd-sized ideal pinhole: the centre pixel (80, 60) looks exactly along +z.
PINHOLE = CameraModel(161, 121, 100.0, 100.0, 80.0, 60.0)
DISTORTED = CameraModel(161, 121, 80.0, 80.0, 80.0, 60.0, (-0.12, 0.03, 0.0, 0.0))
RED = Material((0.9, 0.1, 0.1))
GREY = Material((0.5, 0.5, 0.5), "checker", scale_m=0.1)


def _box(low: tuple[float, float, float], high: tuple[float, float, float]) -> o3d.geometry.TriangleMesh:
    size = np.subtract(high, low)
    mesh = o3d.geometry.TriangleMesh.create_box(*(float(v) for v in size))
    mesh.translate(np.asarray(low, dtype=np.float64))
    return mesh


def test_box_depth_and_id_at_the_centre_pixel() -> None:
    renderer = Renderer(PINHOLE, [Surface(_box((-0.1, -0.1, 1.0), (0.1, 0.1, 1.2)), RED, instance_id=7)])
    view = renderer.render(np.eye(4))
    assert view.rgb.shape == (121, 161, 3) and view.rgb.dtype == np.uint8
    assert view.depth_m.dtype == np.float32 and view.instance_ids.dtype == np.uint16
    assert view.depth_m[60, 80] == pytest.approx(1.0, abs=1e-3)
    assert view.instance_ids[60, 80] == 7
    # The box spans +-0.1 m at 1 m: +-10 px around the centre at f = 100 px; outside it is background.
    assert view.instance_ids[60, 80 + 9] == 7 and view.instance_ids[60, 80 + 11] == 0
    assert view.depth_m[0, 0] == 0.0  # nothing there: no measurement
    assert tuple(view.rgb[60, 80]) != tuple(view.rgb[0, 0])


def test_sphere_depth_seen_through_a_moved_camera() -> None:
    sphere = o3d.geometry.TriangleMesh.create_sphere(radius=0.25, resolution=40)
    sphere.translate((1.0, 0.5, 0.0))
    renderer = Renderer(PINHOLE, [Surface(sphere, RED, instance_id=3)])
    # Camera 2 m from the sphere centre along world +x, looking toward -x (its +z axis is world -x).
    world_from_camera = np.eye(4)
    world_from_camera[:3, :3] = np.array([[0.0, 0.0, -1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    world_from_camera[:3, 3] = (3.0, 0.5, 0.0)
    view = renderer.render(world_from_camera)
    # The pole of Open3D's sphere is on its z axis, not on the ray: the tessellated surface is within 1 mm.
    assert view.depth_m[60, 80] == pytest.approx(1.75, abs=1e-3)
    assert view.instance_ids[60, 80] == 3


def test_depth_is_z_not_ray_distance_at_a_distorted_corner() -> None:
    wall = _box((-10.0, -10.0, 2.0), (10.0, 10.0, 2.1))
    renderer = Renderer(DISTORTED, [Surface(wall, GREY, instance_id=1)])
    view = renderer.render(np.eye(4))
    direction = renderer.pixel_directions[0, 0]
    hits = renderer.cast(np.zeros((1, 3)), direction[None, :])
    ray_distance = float(hits.distance_m[0])
    assert view.depth_m[0, 0] == pytest.approx(2.0, abs=1e-3)
    assert ray_distance == pytest.approx(2.0 / direction[2], abs=1e-3)
    assert ray_distance > 2.0 * 1.25  # the corner ray is far off-axis: t and z differ a lot
    assert np.allclose(view.depth_m[view.instance_ids == 1], 2.0, atol=1e-3)  # a plane at z = 2 everywhere


def test_pixel_rays_follow_the_lens_model() -> None:
    renderer = Renderer(DISTORTED, [Surface(_box((-5, -5, 1.5), (5, 5, 1.6)), GREY, instance_id=1)])
    corners = np.array([[0, 0], [160, 0], [0, 120], [160, 120], [40, 90]])
    directions = renderer.pixel_directions[corners[:, 1], corners[:, 0]]
    hits = renderer.cast(np.zeros((len(corners), 3)), directions)
    points = directions * hits.distance_m[:, None]
    projected, _ = cv2.projectPoints(
        points.reshape(-1, 1, 3),
        np.zeros(3),
        np.zeros(3),
        DISTORTED.intrinsic_matrix(),
        DISTORTED.distortion_coeffs(),
    )
    assert np.abs(projected.reshape(-1, 2) - corners).max() < 0.01
    # An ideal pinhole ray through the corner pixel would land far from it: the distortion really matters.
    pinhole = np.array([(0 - 80.0) / 80.0, (0 - 60.0) / 80.0, 1.0])
    wrong, _ = cv2.projectPoints(
        pinhole.reshape(1, 1, 3),
        np.zeros(3),
        np.zeros(3),
        DISTORTED.intrinsic_matrix(),
        DISTORTED.distortion_coeffs(),
    )
    assert np.linalg.norm(wrong.reshape(2) - corners[0]) > 5.0


def test_nearer_surface_wins_and_ids_do_not_bleed() -> None:
    near = Surface(_box((-0.05, -0.05, 0.5), (0.05, 0.05, 0.6)), RED, instance_id=2)
    far = Surface(_box((-1.0, -1.0, 3.0), (1.0, 1.0, 3.1)), GREY, instance_id=0)
    view = Renderer(PINHOLE, [far, near]).render(np.eye(4))
    assert view.instance_ids[60, 80] == 2 and view.depth_m[60, 80] == pytest.approx(0.5, abs=1e-3)
    assert view.instance_ids[60, 80 + 20] == 0 and view.depth_m[60, 80 + 20] == pytest.approx(3.0, abs=1e-3)


def test_textures_are_in_the_local_frame_and_vary() -> None:
    cells = np.array([[0.1, 0.1, 0.1], [1.1, 0.1, 0.1], [1.1, 1.1, 0.1]])
    checker = texture_factor("checker", cells, 0.5)
    assert checker[0] != checker[1] and checker[0] == checker[2]
    assert np.all(texture_factor("solid", cells, 0.5) == 1.0)
    noise = value_noise(np.random.default_rng(0).uniform(0, 10, size=(500, 3)))
    assert noise.min() >= 0.0 and noise.max() < 1.0 and noise.std() > 0.1
    # The same local point gives the same colour wherever the object is moved.
    moved = np.eye(4)
    moved[:3, 3] = (-2.0, 0.0, 0.0)
    material = Material((0.2, 0.8, 0.4), "noise", scale_m=0.05, local_from_world=moved, seed=3)
    still = Material((0.2, 0.8, 0.4), "noise", scale_m=0.05, seed=3)
    point = np.array([[0.3, 0.2, 0.1]])
    assert np.allclose(material.albedo(point + np.array([2.0, 0.0, 0.0])), still.albedo(point))


@pytest.mark.parametrize("shape", ["box", "sphere", "cylinder", "cone", "torus", "capsule"])
def test_shapes_stand_on_the_origin_with_the_requested_size(shape: str) -> None:
    mesh = shape_mesh(shape, 0.3, np.random.default_rng(1))
    vertices = np.asarray(mesh.vertices)
    extent = vertices.max(axis=0) - vertices.min(axis=0)
    assert vertices[:, 1].min() == pytest.approx(0.0, abs=1e-9)
    assert extent.max() == pytest.approx(0.3, rel=0.02)
    assert abs(vertices[:, 0].max() + vertices[:, 0].min()) < 1e-9


def test_rig_camera_sits_above_and_in_front_of_the_eye() -> None:
    spec = CameraSpec(width_px=640, height_px=480, hfov_deg=90.0)
    camera = camera_model(spec)
    assert camera.fx_px == pytest.approx(320.0) and camera.cx_px == 319.5 and camera.cy_px == 239.5
    rig = head_from_camera(spec)
    assert np.allclose(rig[:3, 3], (0.0, 0.03, -0.06))
    # Camera +z (forward) is head -z (forward); camera +y (down) is head -y.
    assert np.allclose(rig[:3, :3] @ [0, 0, 1], [0, 0, -1]) and np.allclose(rig[:3, :3] @ [0, 1, 0], [0, -1, 0])
    assert np.isclose(np.linalg.det(rig[:3, :3]), 1.0)


def test_renderer_rejects_bad_surfaces() -> None:
    with pytest.raises(InputError, match="at least one surface"):
        Renderer(PINHOLE, [])
    with pytest.raises(InputError, match="uint16"):
        Renderer(PINHOLE, [Surface(_box((0, 0, 1), (1, 1, 2)), RED, instance_id=70000)])
    with pytest.raises(InputError, match="texture"):
        Material((0.1, 0.2, 0.3), "plaid")
    assert math.isfinite(RED.scale_m)
