"""TSDF fusion of a ray-cast sphere seen from around it, against the true sphere."""

from __future__ import annotations

import math

import numpy as np
import open3d as o3d
import pytest

from xrseg.errors import InputError
from xrseg.lift import ObjectFusion, chamfer_distance_m, clean_mesh, completeness
from xrseg.tools.synthetic_lift import SceneObject, look_at, make_box, make_sphere, pinhole_camera, render_view

CAMERA = pinhole_camera(640, 480, 60.0, (-0.05, 0.01, 0.0, 0.0))
RADIUS = 0.1


def _ring_views(count: int) -> list[np.ndarray]:
    """Cameras 0.6 m from the sphere's centre, around it, alternately 25 degrees above and below the equator."""
    poses = []
    for i in range(count):
        azimuth = 2.0 * math.pi * i / count
        elevation = math.radians(25.0 if i % 2 else -25.0)
        eye = 0.6 * np.array(
            [math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth)]
        )
        poses.append(look_at(eye, (0.0, 0.0, 0.0)))
    return poses


@pytest.fixture(scope="module")
def fused_sphere() -> tuple[ObjectFusion, o3d.geometry.TriangleMesh]:
    scene = [
        SceneObject(make_sphere(RADIUS, (0.0, 0.0, 0.0)), (200, 120, 60)),
        SceneObject(make_box((0.12, 0.12, 0.12), (0.25, 0.0, 0.0)), (60, 160, 90)),  # a neighbour, not fused
    ]
    fusion = ObjectFusion(voxel_size_m=0.004)
    for world_from_camera in _ring_views(10):
        view = render_view(scene, CAMERA, world_from_camera)
        used = fusion.integrate(view.mask(0), view.depth_m, view.rgb, CAMERA, world_from_camera)
        assert used > 1000
    return fusion, fusion.extract_mesh()


def test_fused_sphere_matches_the_true_sphere(
    fused_sphere: tuple[ObjectFusion, o3d.geometry.TriangleMesh],
) -> None:
    fusion, mesh = fused_sphere
    assert fusion.frames_integrated == 10
    truth = o3d.geometry.TriangleMesh.create_sphere(RADIUS, resolution=80)
    assert chamfer_distance_m(mesh, truth, n_points=30_000) < 0.005
    assert completeness(mesh, truth, threshold_m=0.01) > 0.8
    # Vertices sit on the sphere, not on the neighbouring box (masked depth only).
    radial_error = np.abs(np.linalg.norm(np.asarray(mesh.vertices), axis=1) - RADIUS)
    assert np.percentile(radial_error, 99) < 0.003 and radial_error.max() < 0.01


def test_extracted_mesh_is_clean(fused_sphere: tuple[ObjectFusion, o3d.geometry.TriangleMesh]) -> None:
    _, mesh = fused_sphere
    assert mesh.has_vertex_normals() and mesh.has_vertex_colors()
    clusters, _, _ = mesh.cluster_connected_triangles()
    assert len(set(np.asarray(clusters).tolist())) == 1
    triangles = np.asarray(mesh.triangles)
    assert np.all((triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2]))
    # Normals point outwards and colours are the sphere's (shaded) orange: red > green > blue.
    vertices, normals = np.asarray(mesh.vertices), np.asarray(mesh.vertex_normals)
    assert np.mean(np.sum(vertices * normals, axis=1) > 0) > 0.99
    mean_colour = np.asarray(mesh.vertex_colors).mean(axis=0)
    assert mean_colour[0] > mean_colour[1] > mean_colour[2]


def test_one_frame_already_gives_the_seen_surface() -> None:
    """A selection made on a session's last frame is fused from that frame alone: it still gets a mesh, the
    visible cap of the sphere, on the sphere to within a voxel. Asked for voxels seen twice, there are none."""
    world_from_camera = look_at((0.0, 0.0, 0.6), (0.0, 0.0, 0.0))
    view = render_view([SceneObject(make_sphere(RADIUS, (0.0, 0.0, 0.0)))], CAMERA, world_from_camera)
    fusion = ObjectFusion(voxel_size_m=0.004)
    fusion.integrate(view.mask(0), view.depth_m, view.rgb, CAMERA, world_from_camera)
    mesh = fusion.extract_mesh()
    assert len(mesh.triangles) > 500
    radii = np.linalg.norm(np.asarray(mesh.vertices), axis=1)
    assert np.median(np.abs(radii - RADIUS)) < 0.004
    assert np.asarray(mesh.vertices)[:, 2].min() > -0.02  # the front cap only: the back was never seen
    assert len(fusion.extract_mesh(min_frames=2).triangles) == 0


def test_frames_without_masked_depth_are_skipped() -> None:
    world_from_camera = look_at((0.0, 0.0, 0.6), (0.0, 0.0, 0.0))
    view = render_view([SceneObject(make_sphere(RADIUS, (0.0, 0.0, 0.0)))], CAMERA, world_from_camera)
    fusion = ObjectFusion()
    sky = np.zeros((480, 640), dtype=bool)
    sky[:40, :40] = True
    assert fusion.integrate(sky, view.depth_m, view.rgb, CAMERA, world_from_camera) == 0
    assert fusion.frames_integrated == 0
    assert len(fusion.extract_mesh().triangles) == 0


def test_a_mask_whose_depth_lies_beyond_the_range_is_skipped() -> None:
    """Open3D raises when no voxel block is touched (every masked pixel beyond ``depth_max_m``): skipped."""
    world_from_camera = look_at((0.0, 0.0, 0.6), (0.0, 0.0, 0.0))
    view = render_view([SceneObject(make_sphere(RADIUS, (0.0, 0.0, 0.0)))], CAMERA, world_from_camera)
    fusion = ObjectFusion(depth_max_m=0.3)  # the sphere's front is at about 0.5 m
    mask = view.mask(0)
    assert mask.any()
    assert fusion.integrate(mask, view.depth_m, view.rgb, CAMERA, world_from_camera) == 0
    assert fusion.frames_integrated == 0


def test_clean_mesh_keeps_the_largest_component_and_drops_degenerate_triangles() -> None:
    big = o3d.geometry.TriangleMesh.create_sphere(0.1, resolution=10)
    small = o3d.geometry.TriangleMesh.create_box(0.01, 0.01, 0.01).translate((1.0, 0.0, 0.0))
    mesh = big + small
    vertices = np.asarray(mesh.vertices)
    triangles = np.vstack([np.asarray(mesh.triangles), [[0, 0, 1]]])  # one degenerate triangle
    mesh = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(vertices), o3d.utility.Vector3iVector(triangles))
    cleaned = clean_mesh(mesh)
    assert len(cleaned.triangles) == len(big.triangles)
    assert len(cleaned.vertices) == len(big.vertices)
    assert np.asarray(cleaned.vertices)[:, 0].max() < 0.2 and cleaned.has_vertex_normals()


def test_bad_fusion_parameters_raise_input_error() -> None:
    with pytest.raises(InputError, match="voxel_size_m"):
        ObjectFusion(voxel_size_m=0.0)
    with pytest.raises(InputError, match="sdf_trunc_m"):
        ObjectFusion(voxel_size_m=0.004, sdf_trunc_m=0.001)
    fusion = ObjectFusion()
    with pytest.raises(InputError, match="rgb"):
        fusion.integrate(
            np.ones((480, 640), bool),
            np.ones((480, 640), np.float32),
            np.zeros((480, 640), np.uint8),
            CAMERA,
            np.eye(4),
        )
