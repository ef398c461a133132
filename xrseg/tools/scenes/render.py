"""Ray-cast rendering of a scene with Open3D's tensor RaycastingScene (CPU, no display).

Each pixel's ray comes from undistorting its (x, y) coordinates with the camera's OpenCV model
(``cv2.undistortPoints`` through :func:`xrseg.geometry.unproject_pixels`), so the rendered image really has the
camera's lens distortion. Colour is the hit surface's procedural albedo with Lambertian shading from one
directional light, a weak head-light and ambient light. Depth is metres along camera +z (the ray distance times
the ray's z component), 0 where a ray hits nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import open3d as o3d

from xrseg.errors import InputError
from xrseg.geometry import unproject_pixels
from xrseg.tools.scenes.layout import Surface
from xrseg.types import CameraModel, Transform, as_transform

logger = logging.getLogger(__name__)

LIGHT_DIRECTION_WORLD = (0.35, 1.0, 0.5)
"""Towards the main light (world frame, normalised on use): above, slightly right and behind the viewer."""
AMBIENT = 0.32
DIFFUSE = 0.55
HEADLIGHT = 0.18
BACKGROUND_RGB = (0.5, 0.5, 0.5)


@dataclass(frozen=True)
class RayHits:
    """Results of casting N rays.

    ``distance_m`` N float64 (inf for a miss, in metres when directions are unit length), ``instance_ids``
    N uint16 (0 for room, table and misses), ``surface_index`` N int64 (index into the renderer's surfaces, -1
    for a miss), ``normals`` Nx3 float64 unit surface normals facing the ray origin (0 for a miss).
    """

    distance_m: npt.NDArray[np.float64]
    instance_ids: npt.NDArray[np.uint16]
    surface_index: npt.NDArray[np.int64]
    normals: npt.NDArray[np.float64]


@dataclass(frozen=True)
class RenderedView:
    """One rendered camera image: ``rgb`` HxWx3 uint8, ``depth_m`` HxW float32 (z, 0 = miss), ``instance_ids``
    HxW uint16 (0 = background and room)."""

    rgb: npt.NDArray[np.uint8]
    depth_m: npt.NDArray[np.float32]
    instance_ids: npt.NDArray[np.uint16]


def pixel_ray_directions(camera: CameraModel) -> npt.NDArray[np.float64]:
    """HxWx3 float64 unit ray directions in the camera frame (OpenCV axes) through every pixel centre."""
    xs, ys = np.meshgrid(
        np.arange(camera.width_px, dtype=np.float64), np.arange(camera.height_px, dtype=np.float64)
    )
    pixels = np.column_stack([xs.ravel(), ys.ravel()])
    points = unproject_pixels(camera, pixels, np.ones(pixels.shape[0]))
    directions = points / np.linalg.norm(points, axis=1, keepdims=True)
    return directions.reshape(camera.height_px, camera.width_px, 3)


class Renderer:
    """Renders RGB, z-depth and instance ids of a fixed set of surfaces for any camera pose.

    ``surfaces`` are world-coordinate meshes (see :class:`~xrseg.tools.scenes.layout.Surface`); instance
    ids must fit uint16.
    """

    def __init__(self, camera: CameraModel, surfaces: Sequence[Surface]) -> None:
        if not surfaces:
            raise InputError("a scene needs at least one surface to render")
        self.camera = camera
        self.surfaces = tuple(surfaces)
        self._scene = o3d.t.geometry.RaycastingScene()
        instance_by_geometry: dict[int, int] = {}
        index_by_geometry: dict[int, int] = {}
        for index, surface in enumerate(self.surfaces):
            if not 0 <= surface.instance_id <= 65535:
                raise InputError(f"instance id {surface.instance_id} does not fit uint16")
            if len(surface.mesh.triangles) == 0:
                raise InputError(f"surface {surface.name or index} has no triangles")
            geometry_id = int(self._scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(surface.mesh)))
            instance_by_geometry[geometry_id] = surface.instance_id
            index_by_geometry[geometry_id] = index
        size = max(instance_by_geometry) + 1
        self._instance_lut = np.zeros(size, dtype=np.uint16)
        self._index_lut = np.full(size, -1, dtype=np.int64)
        for geometry_id, instance in instance_by_geometry.items():
            self._instance_lut[geometry_id] = instance
            self._index_lut[geometry_id] = index_by_geometry[geometry_id]
        self.pixel_directions = pixel_ray_directions(camera)
        """HxWx3 float64 unit camera-frame ray directions of every pixel."""
        light = np.asarray(LIGHT_DIRECTION_WORLD, dtype=np.float64)
        self._light = light / np.linalg.norm(light)

    def cast(self, origins_m: npt.ArrayLike, directions: npt.ArrayLike) -> RayHits:
        """Cast rays given as Nx3 world origins (metres) and Nx3 unit world directions (float64)."""
        origins = np.asarray(origins_m, dtype=np.float64).reshape(-1, 3)
        dirs = np.asarray(directions, dtype=np.float64).reshape(-1, 3)
        if origins.shape != dirs.shape:
            origins = np.broadcast_to(origins, dirs.shape)
        rays = o3d.core.Tensor.from_numpy(
            np.ascontiguousarray(np.concatenate([origins, dirs], axis=1), dtype=np.float32)
        )
        result = self._scene.cast_rays(rays)
        t_hit = result["t_hit"].numpy().astype(np.float64)
        geometry = result["geometry_ids"].numpy().astype(np.int64)
        hit = np.isfinite(t_hit) & (geometry >= 0) & (geometry < self._instance_lut.size)
        safe = np.where(hit, geometry, 0)
        instance_ids = np.where(hit, self._instance_lut[safe], 0).astype(np.uint16)
        surface_index = np.where(hit, self._index_lut[safe], -1)
        normals = result["primitive_normals"].numpy().astype(np.float64)
        facing = np.sum(normals * dirs, axis=1) > 0
        normals[facing] *= -1.0
        normals[~hit] = 0.0
        return RayHits(np.where(hit, t_hit, np.inf), instance_ids, surface_index, normals)

    def render(self, world_from_camera: Transform) -> RenderedView:
        """Render the view of a camera at ``world_from_camera`` (4x4 float64, OpenCV camera axes)."""
        pose = as_transform(world_from_camera, "world_from_camera")
        height, width = self.camera.height_px, self.camera.width_px
        dirs_camera = self.pixel_directions.reshape(-1, 3)
        dirs_world = dirs_camera @ pose[:3, :3].T
        origin = pose[:3, 3]
        hits = self.cast(np.broadcast_to(origin, dirs_world.shape), dirs_world)
        hit = hits.surface_index >= 0
        depth = np.where(hit, hits.distance_m * dirs_camera[:, 2], 0.0).astype(np.float32)
        rgb = self._shade(origin, dirs_world, hits)
        return RenderedView(
            rgb=rgb.reshape(height, width, 3),
            depth_m=depth.reshape(height, width),
            instance_ids=hits.instance_ids.reshape(height, width),
        )

    def _shade(self, origin: npt.NDArray[np.float64], dirs: npt.NDArray[np.float64], hits: RayHits) -> npt.NDArray:
        colour = np.tile(np.asarray(BACKGROUND_RGB, dtype=np.float64), (dirs.shape[0], 1))
        hit = hits.surface_index >= 0
        points = origin[None, :] + dirs * np.where(hit, hits.distance_m, 0.0)[:, None]
        lambert = np.clip(hits.normals @ self._light, 0.0, None)
        headlight = np.clip(-np.sum(hits.normals * dirs, axis=1), 0.0, None)
        light = AMBIENT + DIFFUSE * lambert + HEADLIGHT * headlight
        order = np.argsort(hits.surface_index, kind="stable")
        groups = hits.surface_index[order]
        bounds = np.flatnonzero(np.diff(groups)) + 1
        for chunk in np.split(order, bounds):
            index = int(hits.surface_index[chunk[0]])
            if index >= 0:
                albedo = self.surfaces[index].material.albedo(points[chunk])
                colour[chunk] = albedo * light[chunk, None]
        encoded = np.clip(np.rint(_to_srgb(colour) * 255.0), 0, 255).astype(np.uint8)
        return encoded


def _to_srgb(linear: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """A mild display gamma so shading falls off naturally (input and output in 0..1)."""
    result: npt.NDArray[np.float64] = np.power(np.clip(linear, 0.0, 1.0), 1.0 / 1.4)
    return result
