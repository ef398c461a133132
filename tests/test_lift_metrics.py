"""Chamfer distance and completeness against hand-computed answers."""

from __future__ import annotations

import numpy as np
import open3d as o3d
import pytest

from xrseg.errors import InputError
from xrseg.lift import chamfer_distance_m, completeness, mesh_to_truth_distance_m, sample_surface_points


def _square(side_m: float, z_m: float) -> o3d.geometry.TriangleMesh:
    h = side_m / 2.0
    vertices = [[-h, -h, z_m], [h, -h, z_m], [h, h, z_m], [-h, h, z_m]]
    return o3d.geometry.TriangleMesh(
        o3d.utility.Vector3dVector(np.array(vertices)),
        o3d.utility.Vector3iVector(np.array([[0, 1, 2], [0, 2, 3]])),
    )


def test_parallel_squares_5mm_apart_have_chamfer_5mm() -> None:
    # Samples 1.4 mm apart on average (0.04 m^2 / 20 000): nearest neighbours across a 5 mm gap are at
    # sqrt(5^2 + r^2) with r ~ 0.7 mm, i.e. 5.05 mm; the edges add a little.
    chamfer = chamfer_distance_m(_square(0.2, 0.0), _square(0.2, 0.005), n_points=20_000)
    assert 0.005 <= chamfer < 0.0055


def test_concentric_spheres_and_completeness_thresholds() -> None:
    inner = o3d.geometry.TriangleMesh.create_sphere(0.10, resolution=80)
    outer = o3d.geometry.TriangleMesh.create_sphere(0.11, resolution=80)
    assert chamfer_distance_m(inner, outer) == pytest.approx(0.0105, abs=0.001)
    assert completeness(inner, outer, threshold_m=0.005) == 0.0
    assert completeness(inner, outer, threshold_m=0.02) == 1.0


def test_half_a_sphere_is_half_complete() -> None:
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.1, resolution=80)
    vertices = np.asarray(sphere.vertices)
    triangles = np.asarray(sphere.triangles)
    upper = triangles[np.all(vertices[triangles][:, :, 2] >= -1e-9, axis=1)]
    half = o3d.geometry.TriangleMesh(sphere.vertices, o3d.utility.Vector3iVector(upper))
    assert completeness(half, sphere, threshold_m=0.002) == pytest.approx(0.5, abs=0.02)
    # The other way round every sample of the half has a sphere sample within 5 mm (their mean gap: 2.5 mm).
    assert completeness(sphere, half, threshold_m=0.005) == 1.0


def test_mesh_to_truth_distance_is_exact_and_one_sided() -> None:
    # A 0.2 m square 5 mm above a 1 m one: every sample is exactly 5 mm from the big square's surface.
    assert mesh_to_truth_distance_m(_square(0.2, 0.005), _square(1.0, 0.0)) == pytest.approx(0.005, abs=1e-6)
    # Half a sphere lies on the sphere (0 from it, up to the chords of its triangles), but the whole sphere is
    # far from the half: one-sided means the missing back of a one-sided scan does not count here.
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.1, resolution=80)
    vertices = np.asarray(sphere.vertices)
    triangles = np.asarray(sphere.triangles)
    upper = triangles[np.all(vertices[triangles][:, :, 2] >= -1e-9, axis=1)]
    half = o3d.geometry.TriangleMesh(sphere.vertices, o3d.utility.Vector3iVector(upper))
    assert mesh_to_truth_distance_m(half, sphere) < 1e-6
    assert mesh_to_truth_distance_m(sphere, half) > 0.02


def test_sampling_is_deterministic_and_uniform() -> None:
    square = _square(1.0, 0.0)
    a = sample_surface_points(square, 10_000, seed=7)
    b = sample_surface_points(square, 10_000, seed=7)
    np.testing.assert_array_equal(a, b)
    # Uniform on the unit square: mean 0, variance 1/12 per axis, every point on the square.
    assert np.all(np.abs(a[:, :2]) <= 0.5) and np.all(a[:, 2] == 0.0)
    np.testing.assert_allclose(a[:, :2].mean(axis=0), 0.0, atol=0.01)
    np.testing.assert_allclose(a[:, :2].var(axis=0), 1.0 / 12.0, atol=0.005)
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.1, resolution=20)
    assert chamfer_distance_m(sphere, sphere, seed=3) == chamfer_distance_m(sphere, sphere, seed=3)


def test_empty_meshes() -> None:
    sphere = o3d.geometry.TriangleMesh.create_sphere(0.1, resolution=20)
    empty = o3d.geometry.TriangleMesh()
    assert completeness(empty, sphere) == 0.0
    with pytest.raises(InputError, match="no triangles"):
        chamfer_distance_m(empty, sphere)
    with pytest.raises(InputError, match="threshold_m"):
        completeness(sphere, sphere, threshold_m=0.0)
