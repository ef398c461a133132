"""Render RGB-D frames of simple meshes with Open3D's ray caster, for benchmarks and tests.

A small, exact renderer: one ray per pixel centre through the camera's lens model (the cached ray grid, so
distortion is included), depth along camera +z, an instance id per pixel and Lambert-shaded colours. The full
scene generator lives in :mod:`~xrseg.tools.scenes`; this one exists so the lifting code can be measured and
tested on real geometry without it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import open3d as o3d

from xrseg.errors import InputError
from xrseg.lift.rays import ray_grid
from xrseg.types import CameraModel, Transform, as_transform

__all__ = ["RenderedView", "SceneObject", "look_at", "make_box", "make_sphere", "pinhole_camera", "render_view"]


@dataclass(frozen=True)
class SceneObject:
    """A mesh (world frame, metres) and its flat RGB colour (3 uint8-range ints)."""

    mesh: o3d.geometry.TriangleMesh
    color_rgb: tuple[int, int, int] = (200, 120, 60)


@dataclass(frozen=True)
class RenderedView:
    """One rendered frame: ``depth_m`` HxW float32 (0 = nothing hit), ``instance_ids`` HxW int32 (index into
    the object list, -1 = background), ``rgb`` HxWx3 uint8."""

    depth_m: npt.NDArray[np.float32]
    instance_ids: npt.NDArray[np.int32]
    rgb: npt.NDArray[np.uint8]

    def mask(self, index: int) -> npt.NDArray[np.bool_]:
        """HxW bool ground-truth mask of object ``index``."""
        return np.asarray(self.instance_ids == index)


def pinhole_camera(
    width_px: int = 640, height_px: int = 480, hfov_deg: float = 60.0, distortion: tuple[float, ...] = ()
) -> CameraModel:
    """A centred camera with square pixels and the given horizontal field of view."""
    fx = (width_px / 2.0) / np.tan(np.radians(hfov_deg) / 2.0)
    return CameraModel(width_px, height_px, fx, fx, (width_px - 1) / 2.0, (height_px - 1) / 2.0, distortion)


def look_at(eye_m: npt.ArrayLike, target_m: npt.ArrayLike, up: npt.ArrayLike = (0.0, 1.0, 0.0)) -> Transform:
    """``world_from_camera`` (4x4 float64) of an OpenCV camera (+z forward, +y down) at ``eye_m`` looking at
    ``target_m`` with world ``up`` pointing up in the image."""
    eye = np.asarray(eye_m, dtype=np.float64)
    forward = np.asarray(target_m, dtype=np.float64) - eye
    norm = float(np.linalg.norm(forward))
    if norm < 1e-12:
        raise InputError("look_at needs distinct eye and target")
    forward /= norm
    up_v = np.asarray(up, dtype=np.float64)
    down = -(up_v - np.dot(up_v, forward) * forward)
    if float(np.linalg.norm(down)) < 1e-9:
        raise InputError("look_at: up is parallel to the viewing direction")
    down /= np.linalg.norm(down)
    right = np.cross(down, forward)
    matrix = np.eye(4, dtype=np.float64)
    matrix[:3, 0], matrix[:3, 1], matrix[:3, 2], matrix[:3, 3] = right, down, forward, eye
    return matrix


def make_box(size_m: Sequence[float], center_m: Sequence[float]) -> o3d.geometry.TriangleMesh:
    """An axis-aligned box mesh with edge lengths ``size_m`` (x, y, z) centred at ``center_m``."""
    sx, sy, sz = (float(v) for v in size_m)
    mesh = o3d.geometry.TriangleMesh.create_box(sx, sy, sz)
    mesh.translate(np.asarray(center_m, dtype=np.float64) - np.array([sx, sy, sz]) / 2.0)
    return mesh


def make_sphere(radius_m: float, center_m: Sequence[float], resolution: int = 60) -> o3d.geometry.TriangleMesh:
    """A UV sphere mesh (``resolution`` 60 keeps its facets within 0.1 % of the radius of the true sphere)."""
    mesh = o3d.geometry.TriangleMesh.create_sphere(radius=float(radius_m), resolution=resolution)
    mesh.translate(np.asarray(center_m, dtype=np.float64))
    return mesh


def render_view(
    objects: Sequence[SceneObject], camera: CameraModel, world_from_camera: npt.ArrayLike
) -> RenderedView:
    """Ray-cast the objects from a camera: depth along +z, instance ids and Lambert-shaded RGB (see module)."""
    world_from_camera_t = as_transform(world_from_camera, "world_from_camera")
    scene = o3d.t.geometry.RaycastingScene()
    ids = [scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(obj.mesh)) for obj in objects]
    grid = ray_grid(camera).reshape(-1, 2).astype(np.float64)
    directions_camera = np.column_stack([grid, np.ones(grid.shape[0])])
    directions_world = directions_camera @ world_from_camera_t[:3, :3].T
    rays = np.empty((grid.shape[0], 6), dtype=np.float32)
    rays[:, :3] = world_from_camera_t[:3, 3]
    rays[:, 3:] = directions_world
    hits = scene.cast_rays(o3d.core.Tensor.from_numpy(rays))
    t_hit = hits["t_hit"].numpy()
    geometry = hits["geometry_ids"].numpy().astype(np.int64)
    normals = hits["primitive_normals"].numpy()
    hit = np.isfinite(t_hit)
    shape = (camera.height_px, camera.width_px)
    depth = np.where(hit, t_hit, 0.0).astype(np.float32).reshape(shape)
    instance = np.full(geometry.shape, -1, dtype=np.int32)
    palette = np.zeros((len(objects) + 1, 3), dtype=np.float64)
    for index, (geometry_id, obj) in enumerate(zip(ids, objects, strict=True)):
        instance[hit & (geometry == geometry_id)] = index
        palette[index] = obj.color_rgb
    view_dirs = directions_world / np.linalg.norm(directions_world, axis=1, keepdims=True)
    shade = 0.35 + 0.65 * np.abs(np.sum(normals * view_dirs, axis=1))
    rgb = palette[instance] * shade[:, None]
    rgb[~hit] = (40, 40, 48)
    return RenderedView(depth, instance.reshape(shape), np.clip(rgb, 0, 255).astype(np.uint8).reshape((*shape, 3)))
