"""Fuse an object's masked depth from many frames into a TSDF volume and extract a clean mesh.

Backend: Open3D's tensor ``VoxelBlockGrid`` on the CPU. Measured on our 2-core machines with ten 640x480 views
of a 10 cm sphere at 4 mm voxels, it integrates a masked frame in about 3 ms against 4.5-7 ms for the legacy
``ScalableTSDFVolume`` (which, with Open3D 0.20 and NumPy 2, also returned an empty volume for the same
frames), and it extracts the mesh in a few ms. Only masked depth is integrated (depth outside the mask is set to
0, after the same flying-pixel rejection as :func:`xrseg.lift.pointcloud.lift_mask`), so the volume holds the
object alone and grows with it, not with the room.

The TSDF knows only ideal pinhole cameras: for a camera with lens distortion the masked depth and the colour
are first resampled onto the ideal pinhole image with the same K (``cv2.remap``, nearest-neighbour for depth so
no depth is invented across edges; depth along +z does not change under that resampling).
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import numpy.typing as npt
import open3d as o3d

from xrseg.errors import InputError
from xrseg.geometry import invert_transform
from xrseg.lift.borders import BorderFilter, reliable_pixels
from xrseg.lift.pointcloud import check_frame, check_rgb
from xrseg.lift.rays import pinhole_undistort_maps
from xrseg.types import CameraModel, as_transform

logger = logging.getLogger(__name__)

__all__ = ["ObjectFusion", "clean_mesh"]


class ObjectFusion:
    """TSDF fusion of one object's masked RGB-D frames.

    ``voxel_size_m`` is the voxel edge; ``sdf_trunc_m`` the truncation distance (default 4 voxels, at least
    the depth noise you expect); ``depth_max_m`` ignores depth beyond it; ``border`` is the flying-pixel
    rejection applied to each mask. ``block_count`` is the initial capacity of the voxel-block hash map
    (8^3-voxel blocks, about 10 kB each); it grows when needed.
    """

    def __init__(
        self,
        voxel_size_m: float = 0.004,
        sdf_trunc_m: float | None = None,
        depth_max_m: float = 4.0,
        border: BorderFilter | None = BorderFilter(),  # noqa: B008 (frozen, immutable default)
        block_count: int = 2000,
    ) -> None:
        if not (math.isfinite(voxel_size_m) and voxel_size_m > 0):
            raise InputError(f"voxel_size_m must be finite and positive, got {voxel_size_m}")
        trunc = 4.0 * voxel_size_m if sdf_trunc_m is None else float(sdf_trunc_m)
        if not (math.isfinite(trunc) and trunc >= voxel_size_m):
            raise InputError(f"sdf_trunc_m must be at least one voxel ({voxel_size_m} m), got {trunc}")
        if not (math.isfinite(depth_max_m) and depth_max_m > 0):
            raise InputError(f"depth_max_m must be finite and positive, got {depth_max_m}")
        if block_count < 1:
            raise InputError(f"block_count must be >= 1, got {block_count}")
        self.voxel_size_m = float(voxel_size_m)
        self.sdf_trunc_m = trunc
        self.depth_max_m = float(depth_max_m)
        self.border = border
        self._trunc_multiplier = trunc / self.voxel_size_m
        self._device = o3d.core.Device("CPU:0")
        self._grid = o3d.t.geometry.VoxelBlockGrid(
            attr_names=("tsdf", "weight", "color"),
            attr_dtypes=(o3d.core.float32, o3d.core.float32, o3d.core.float32),
            attr_channels=(o3d.core.SizeVector([1]), o3d.core.SizeVector([1]), o3d.core.SizeVector([3])),
            voxel_size=self.voxel_size_m,
            block_resolution=8,
            block_count=block_count,
            device=self._device,
        )
        self.frames_integrated = 0
        self.pixels_integrated = 0

    def integrate(
        self,
        mask: npt.ArrayLike,
        depth_m: npt.ArrayLike,
        rgb: npt.ArrayLike,
        camera: CameraModel,
        world_from_camera: npt.ArrayLike,
    ) -> int:
        """Integrate one frame's masked depth; returns how many depth pixels went in (0: frame skipped).

        ``mask`` HxW bool, ``depth_m`` HxW float32 metres along +z (0 or NaN = none), ``rgb`` HxWx3 uint8,
        ``camera`` the frame's camera model, ``world_from_camera`` 4x4 float64. A frame whose mask keeps no
        valid depth is skipped (logged), not an error; malformed inputs raise :class:`InputError`.
        """
        mask_a, depth_a = check_frame(camera, mask, depth_m)
        rgb_a = check_rgb(camera, rgb)
        camera_from_world = invert_transform(as_transform(world_from_camera, "world_from_camera"))
        keep = reliable_pixels(mask_a, depth_a, self.border or BorderFilter(0, 0))
        masked = np.where(keep, depth_a, np.float32(0.0)).astype(np.float32)
        maps = pinhole_undistort_maps(camera)
        if maps is not None:
            masked = np.asarray(
                cv2.remap(masked, maps[0], maps[1], cv2.INTER_NEAREST, borderValue=0.0), np.float32
            )
            rgb_a = np.asarray(
                cv2.remap(rgb_a, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), np.uint8
            )
        used = int(np.count_nonzero(masked))
        if used == 0:
            logger.info("frame skipped: the mask keeps no pixel with valid depth")
            return 0
        depth_image = o3d.t.geometry.Image(o3d.core.Tensor.from_numpy(np.ascontiguousarray(masked)))
        color = rgb_a.astype(np.float32)
        color *= np.float32(1.0 / 255.0)
        color_image = o3d.t.geometry.Image(o3d.core.Tensor.from_numpy(color))
        intrinsic = o3d.core.Tensor.from_numpy(camera.intrinsic_matrix())
        extrinsic = o3d.core.Tensor.from_numpy(np.ascontiguousarray(camera_from_world))
        try:
            blocks = self._grid.compute_unique_block_coordinates(
                depth_image, intrinsic, extrinsic, 1.0, self.depth_max_m, self._trunc_multiplier
            )
            self._grid.integrate(
                blocks, depth_image, color_image, intrinsic, intrinsic, extrinsic,
                1.0, self.depth_max_m, self._trunc_multiplier,
            )  # fmt: skip
        except RuntimeError as err:  # a few pixels all beyond depth_max_m touch no voxel block
            if "No block is touched" not in str(err):
                raise
            logger.info("frame skipped: the mask's depth touches no voxel block")
            return 0
        self.frames_integrated += 1
        self.pixels_integrated += used
        return used

    def extract_mesh(self, min_frames: int | None = None) -> o3d.geometry.TriangleMesh:
        """The fused surface as a legacy Open3D mesh (metres, world frame, vertex colours in [0, 1]).

        Marching cubes over voxels seen in at least ``min_frames`` integrated frames (default: 2 once two or
        more frames were fused, since voxels seen once, mostly at object borders, are the noisiest; else 1, so
        a selection fused from a single frame still gets its seen surface), then :func:`clean_mesh` (largest
        connected component, no degenerate triangles, vertex normals). Returns an empty mesh when nothing was
        integrated or no surface was found.
        """
        if self.frames_integrated == 0:
            return o3d.geometry.TriangleMesh()
        if min_frames is None:
            min_frames = min(2, self.frames_integrated)
        # Each frame adds weight 1 and Open3D keeps voxels whose weight is strictly above its threshold.
        threshold = max(min_frames - 0.5, 0.0)
        mesh = self._grid.extract_triangle_mesh(weight_threshold=threshold).to_legacy()
        return clean_mesh(mesh)


def clean_mesh(mesh: o3d.geometry.TriangleMesh) -> o3d.geometry.TriangleMesh:
    """Keep the largest connected component, drop degenerate/duplicate triangles and unused vertices, and
    compute vertex normals. Modifies and returns ``mesh``."""
    if len(mesh.triangles) == 0:
        return mesh
    mesh.remove_duplicated_vertices()
    mesh.remove_degenerate_triangles()
    mesh.remove_duplicated_triangles()
    if len(mesh.triangles) > 0:
        clusters, counts, _ = mesh.cluster_connected_triangles()
        labels = np.asarray(clusters)
        largest = int(np.argmax(np.asarray(counts)))
        mesh.remove_triangles_by_mask(labels != largest)
    mesh.remove_unreferenced_vertices()
    mesh.compute_vertex_normals()
    logger.debug("mesh: %d vertices, %d triangles", len(mesh.vertices), len(mesh.triangles))
    return mesh
