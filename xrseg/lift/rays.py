"""Per-camera unit-depth ray grids, computed once per camera model and cached.

Lifting a depth pixel to 3D needs the ideal (undistorted) normalised coordinates (x/z, y/z) of the pixel.
Undistorting a whole 640x480 grid with ``cv2.undistortPoints`` takes tens of milliseconds, so it is done once
per :class:`~xrseg.types.CameraModel` (a frozen, hashable record) and kept in a small LRU cache; lifting a
frame then only gathers and multiplies.
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.geometry import unproject_pixels
from xrseg.types import CameraModel

__all__ = ["pinhole_undistort_maps", "ray_grid"]


@functools.lru_cache(maxsize=8)
def ray_grid(camera: CameraModel) -> npt.NDArray[np.float32]:
    """HxWx2 float32 ideal normalised coordinates (x/z, y/z) of every pixel centre, distortion removed.

    A camera-frame point seen at pixel (u, v) with depth d along +z is ``d * (grid[v, u, 0], grid[v, u, 1], 1)``.
    The array is read-only and shared: do not modify it.
    """
    xs, ys = np.meshgrid(
        np.arange(camera.width_px, dtype=np.float64), np.arange(camera.height_px, dtype=np.float64)
    )
    pixels = np.column_stack([xs.ravel(), ys.ravel()])
    points = unproject_pixels(camera, pixels, np.ones(pixels.shape[0]))
    grid = points[:, :2].reshape(camera.height_px, camera.width_px, 2).astype(np.float32)
    grid.setflags(write=False)
    return grid


@functools.lru_cache(maxsize=8)
def pinhole_undistort_maps(camera: CameraModel) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    """``cv2.remap`` maps (two HxW float32) that resample a distorted image onto the ideal pinhole image with
    the same K; None for a camera without distortion. Used to feed TSDF integration, which knows only pinholes.
    """
    if not camera.has_distortion:
        return None
    k = camera.intrinsic_matrix()
    raw_x, raw_y = cv2.initUndistortRectifyMap(k, camera.distortion_coeffs(), None, k, camera.size, cv2.CV_32FC1)
    map_x, map_y = np.asarray(raw_x, dtype=np.float32), np.asarray(raw_y, dtype=np.float32)
    map_x.setflags(write=False)
    map_y.setflags(write=False)
    return map_x, map_y
