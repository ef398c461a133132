"""An object's masked frames kept small: cropped to the mask's box (plus a margin), to fuse again or export later.

A mesh of an object built from several selections is fused from every frame each of its selections saw
(:func:`fuse_views`); a rejected selection's frames are simply left out. Cropping keeps a view at a few kB for a
small object instead of a whole frame. The margin (``VIEW_MARGIN_PX``) is wider than anything the fusion looks
at beyond the mask (the border filter's erosion and neighbour window, the lens-distortion resampling), so fusing
a view gives the same volume as fusing its whole frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.lift.fusion import ObjectFusion
from xrseg.types import CameraModel, Transform, mask_bbox_xyxy

__all__ = ["VIEW_MARGIN_PX", "CroppedMask", "MaskedView", "fuse_views"]

VIEW_MARGIN_PX = 16


@dataclass(frozen=True)
class CroppedMask:
    """A mask stored as its box: ``mask`` (y1-y0)x(x1-x0) bool at ``box_xyxy`` (inclusive-exclusive pixels) of an
    image of ``shape_hw``."""

    box_xyxy: tuple[int, int, int, int]
    mask: npt.NDArray[np.bool_]
    shape_hw: tuple[int, int]

    @classmethod
    def of(cls, mask: npt.NDArray[np.bool_], margin_px: int = 0) -> CroppedMask:
        """Crop an HxW bool mask to its box grown by ``margin_px`` (an empty mask keeps a 0x0 crop)."""
        height, width = mask.shape
        box = mask_bbox_xyxy(mask) or (0, 0, 0, 0)
        x0, y0 = max(box[0] - margin_px, 0), max(box[1] - margin_px, 0)
        x1, y1 = min(box[2] + margin_px, width), min(box[3] + margin_px, height)
        return cls((x0, y0, x1, y1), mask[y0:y1, x0:x1].copy(), (height, width))

    def full(self) -> npt.NDArray[np.bool_]:
        """The HxW bool mask."""
        out = np.zeros(self.shape_hw, dtype=np.bool_)
        x0, y0, x1, y1 = self.box_xyxy
        out[y0:y1, x0:x1] = self.mask
        return out


@dataclass(frozen=True)
class MaskedView:
    """One frame of an object: its cropped mask, with the depth (float32 metres) and RGB (uint8) under the same
    crop, the frame's index and the camera pose ``world_from_camera`` (4x4 float64)."""

    frame_index: int
    mask: CroppedMask
    depth_m: npt.NDArray[np.float32]
    rgb: npt.NDArray[np.uint8]
    world_from_camera: Transform

    @classmethod
    def crop(
        cls,
        frame_index: int,
        mask: npt.NDArray[np.bool_],
        depth_m: npt.NDArray[np.float32],
        rgb: npt.NDArray[np.uint8],
        world_from_camera: Transform,
    ) -> MaskedView:
        """Keep HxW ``mask``, HxW ``depth_m`` and HxWx3 ``rgb`` within the mask's box plus ``VIEW_MARGIN_PX``."""
        cropped = CroppedMask.of(mask, VIEW_MARGIN_PX)
        x0, y0, x1, y1 = cropped.box_xyxy
        return cls(
            frame_index,
            cropped,
            np.array(depth_m[y0:y1, x0:x1], dtype=np.float32),
            np.array(rgb[y0:y1, x0:x1], dtype=np.uint8),
            world_from_camera,
        )

    def full(self) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.float32], npt.NDArray[np.uint8]]:
        """HxW bool mask, HxW float32 depth (0 outside the crop) and HxWx3 uint8 RGB (0 outside the crop)."""
        height, width = self.mask.shape_hw
        x0, y0, x1, y1 = self.mask.box_xyxy
        depth = np.zeros((height, width), dtype=np.float32)
        rgb = np.zeros((height, width, 3), dtype=np.uint8)
        depth[y0:y1, x0:x1] = self.depth_m
        rgb[y0:y1, x0:x1] = self.rgb
        return self.mask.full(), depth, rgb


def fuse_views(views: list[MaskedView], camera: CameraModel, voxel_size_m: float) -> ObjectFusion:
    """A TSDF volume of ``views`` integrated in the order given."""
    fusion = ObjectFusion(voxel_size_m=voxel_size_m)
    for view in views:
        mask, depth, rgb = view.full()
        fusion.integrate(mask, depth, rgb, camera, view.world_from_camera)
    return fusion
