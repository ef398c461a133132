"""Mesh accuracy against ground truth: Chamfer distance (one-sided and symmetric) and completeness.

:func:`mesh_to_truth_distance_m` measures exact point-to-triangle distances with Open3D's ``RaycastingScene``.
The symmetric Chamfer distance and completeness sample points uniformly on both surfaces (area-weighted
triangles, uniform barycentric coordinates, a seeded NumPy generator, so results are reproducible) and measure
nearest-neighbour distances with Open3D's KD-tree (``PointCloud.compute_point_cloud_distance``).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import open3d as o3d

from xrseg.errors import InputError

__all__ = ["chamfer_distance_m", "completeness", "mesh_to_truth_distance_m", "sample_surface_points"]


def sample_surface_points(
    mesh: o3d.geometry.TriangleMesh, n_points: int, seed: int = 0
) -> npt.NDArray[np.float64]:
    """Nx3 float64 points uniformly distributed over the mesh surface (deterministic for a given seed).

    Raises :class:`InputError` for a mesh without triangles of positive area or a non-positive ``n_points``.
    """
    if n_points < 1:
        raise InputError(f"n_points must be >= 1, got {n_points}")
    vertices = np.asarray(mesh.vertices, dtype=np.float64)
    triangles = np.asarray(mesh.triangles, dtype=np.int64)
    if triangles.shape[0] == 0:
        raise InputError("mesh has no triangles")
    a, b, c = vertices[triangles[:, 0]], vertices[triangles[:, 1]], vertices[triangles[:, 2]]
    areas = 0.5 * np.linalg.norm(np.cross(b - a, c - a), axis=1)
    total = float(areas.sum())
    if not total > 0:
        raise InputError("mesh has zero surface area")
    rng = np.random.default_rng(seed)
    chosen = rng.choice(triangles.shape[0], size=n_points, p=areas / total)
    u, v = rng.random(n_points), rng.random(n_points)
    flip = u + v > 1.0
    u[flip], v[flip] = 1.0 - u[flip], 1.0 - v[flip]
    result: npt.NDArray[np.float64] = (
        a[chosen] + u[:, None] * (b[chosen] - a[chosen]) + v[:, None] * (c[chosen] - a[chosen])
    )
    return result


def _distances(
    from_points: npt.NDArray[np.float64], to_points: npt.NDArray[np.float64]
) -> npt.NDArray[np.float64]:
    source = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(from_points))
    target = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(to_points))
    return np.asarray(source.compute_point_cloud_distance(target), dtype=np.float64)


def mesh_to_truth_distance_m(
    mesh: o3d.geometry.TriangleMesh, gt_mesh: o3d.geometry.TriangleMesh, n_points: int = 20_000, seed: int = 0
) -> float:
    """One-sided Chamfer distance in metres: the mean distance from ``n_points`` samples on ``mesh``'s surface to
    ``gt_mesh``'s surface (exact, to its triangles). How far the exported surface strays from the true one;
    how much of the true surface it covers is :func:`completeness`.
    """
    points = sample_surface_points(mesh, n_points, seed)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(gt_mesh))
    query = o3d.core.Tensor.from_numpy(np.ascontiguousarray(points, dtype=np.float32))
    return float(np.mean(scene.compute_distance(query).numpy()))


def chamfer_distance_m(
    mesh: o3d.geometry.TriangleMesh, gt_mesh: o3d.geometry.TriangleMesh, n_points: int = 20_000, seed: int = 0
) -> float:
    """Symmetric Chamfer distance in metres: the mean of (mean distance from ``mesh`` samples to the nearest
    ``gt_mesh`` sample) and (the same from ``gt_mesh`` to ``mesh``), ``n_points`` samples on each surface.

    Sampling makes it an estimate: with n samples on a surface of area A it overestimates by about
    ``0.5 * sqrt(A / n)`` (the mean gap between samples); use enough points for the accuracy you assert.
    """
    points = sample_surface_points(mesh, n_points, seed)
    gt_points = sample_surface_points(gt_mesh, n_points, seed + 1)
    return 0.5 * (float(np.mean(_distances(points, gt_points))) + float(np.mean(_distances(gt_points, points))))


def completeness(
    mesh: o3d.geometry.TriangleMesh,
    gt_mesh: o3d.geometry.TriangleMesh,
    threshold_m: float = 0.01,
    n_points: int = 20_000,
    seed: int = 0,
) -> float:
    """Share (0..1) of ``gt_mesh`` surface samples within ``threshold_m`` of ``mesh``'s surface samples.

    An empty ``mesh`` gives 0.0.
    """
    if not threshold_m > 0:
        raise InputError(f"threshold_m must be positive, got {threshold_m}")
    gt_points = sample_surface_points(gt_mesh, n_points, seed + 1)
    if len(mesh.triangles) == 0:
        return 0.0
    points = sample_surface_points(mesh, n_points, seed)
    return float(np.mean(_distances(gt_points, points) <= threshold_m))
