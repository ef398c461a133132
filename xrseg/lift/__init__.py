"""Lift selected objects into 3D: point clouds, following into later frames, TSDF fusion, mesh export.

    from xrseg.lift import lift_mask, ObjectFusion, ObjectFollower, export_mesh

    result = lift_mask(mask, depth_m, rgb, camera, world_from_camera)   # LiftResult (points, colours, reason)
    fusion = ObjectFusion(voxel_size_m=0.004)
    fusion.integrate(mask, depth_m, rgb, camera, world_from_camera)      # per frame
    paths = export_mesh(fusion.extract_mesh(), out_dir, "object-3", {"object_id": 3})

Importing this package imports Open3D (about 0.3 s); the GLB writer also needs trimesh.
"""

from __future__ import annotations

from xrseg.lift.bordercut import BorderCut
from xrseg.lift.borders import BorderFilter, reliable_pixels
from xrseg.lift.export import EXPORT_FORMATS, MetadataValue, export_mesh, read_metadata
from xrseg.lift.follow import Decoder, FollowParams, FollowResult, ObjectFollower
from xrseg.lift.fusion import ObjectFusion, clean_mesh
from xrseg.lift.metrics import chamfer_distance_m, completeness, mesh_to_truth_distance_m, sample_surface_points
from xrseg.lift.pointcloud import LiftResult, OutlierRemoval, lift_mask, remove_outliers, to_point_cloud

__all__ = [
    "EXPORT_FORMATS",
    "BorderCut",
    "BorderFilter",
    "Decoder",
    "FollowParams",
    "FollowResult",
    "LiftResult",
    "MetadataValue",
    "ObjectFollower",
    "ObjectFusion",
    "OutlierRemoval",
    "chamfer_distance_m",
    "clean_mesh",
    "completeness",
    "export_mesh",
    "lift_mask",
    "mesh_to_truth_distance_m",
    "read_metadata",
    "reliable_pixels",
    "remove_outliers",
    "sample_surface_points",
    "to_point_cloud",
]
