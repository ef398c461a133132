"""Flying-pixel rejection at object borders.

Depth sensors (and segmentation masks) are least trustworthy where an object's silhouette meets the
background: time-of-flight and stereo sensors produce "flying pixels" between the two surfaces, and a mask that
bleeds a pixel or two over the edge picks up background depth. Two cheap image-space tests remove both:

1. the mask is eroded by ``erode_px`` pixels, and
2. a pixel is dropped when any valid neighbour within ``neighbour_radius_px`` (a square window) has a depth
   that differs from its own by more than ``max_relative_jump`` times its own depth. Holes (depth 0) are not
   neighbours, so a sensor's speckle holes do not eat into the object.

Both run on the mask's bounding box only, so their cost scales with the object, not the frame.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError

__all__ = ["BorderFilter", "reliable_pixels"]


@dataclass(frozen=True)
class BorderFilter:
    """Parameters of the flying-pixel rejection (see the module docstring).

    ``max_relative_jump`` 0.03 keeps surfaces up to about 85 degrees from face-on at 500 px focal length
    (neighbouring pixels differ by ``depth * tan(angle) / f``) and drops any edge where the depth jumps by more
    than 3 % (3 cm at 1 m). ``BorderFilter(0, 0)`` disables both tests.
    """

    erode_px: int = 2
    neighbour_radius_px: int = 1
    max_relative_jump: float = 0.03

    def __post_init__(self) -> None:
        if self.erode_px < 0 or self.neighbour_radius_px < 0:
            raise InputError(
                f"erode_px and neighbour_radius_px must be >= 0, got {self.erode_px}, {self.neighbour_radius_px}"
            )
        if not self.max_relative_jump > 0:  # also rejects NaN; math.inf disables the depth-jump test
            raise InputError(f"max_relative_jump must be positive, got {self.max_relative_jump}")


def _square(radius: int) -> npt.NDArray[np.uint8]:
    return np.ones((2 * radius + 1, 2 * radius + 1), dtype=np.uint8)


def reliable_pixels_in_box(
    mask: npt.NDArray[np.bool_], depth_m: npt.NDArray[np.float32], border: BorderFilter
) -> tuple[tuple[int, int], npt.NDArray[np.bool_]]:
    """((row0, col0), hxw bool) for the mask's bounding box: the pixels that survive the border tests.

    ``mask`` is HxW bool and ``depth_m`` HxW float32 metres (0 or NaN = none). An empty mask gives a 0x0 box.
    Pixels without valid depth are never reliable.
    """
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return (0, 0), np.zeros((0, 0), dtype=np.bool_)
    cols = np.flatnonzero(mask.any(axis=0))
    margin = border.erode_px + border.neighbour_radius_px + 1
    height, width = mask.shape
    r0, r1 = max(int(rows[0]) - margin, 0), min(int(rows[-1]) + margin + 1, height)
    c0, c1 = max(int(cols[0]) - margin, 0), min(int(cols[-1]) + margin + 1, width)
    sub_mask = mask[r0:r1, c0:c1]
    depth = np.ascontiguousarray(depth_m[r0:r1, c0:c1], dtype=np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    depth = np.where(valid, depth, np.float32(0.0))
    keep = sub_mask & valid
    if border.erode_px > 0:
        eroded = cv2.erode(sub_mask.view(np.uint8), _square(border.erode_px), borderType=cv2.BORDER_REPLICATE)
        keep &= eroded.view(np.bool_)
    if border.neighbour_radius_px > 0 and math.isfinite(border.max_relative_jump):
        kernel = _square(border.neighbour_radius_px)
        local_max = cv2.dilate(depth, kernel, borderType=cv2.BORDER_REPLICATE)
        local_min = cv2.erode(np.where(valid, depth, np.float32(np.inf)), kernel, borderType=cv2.BORDER_REPLICATE)
        limit = border.max_relative_jump * depth
        keep &= ((local_max - depth) <= limit) & ((depth - local_min) <= limit)
    return (r0, c0), keep


def reliable_pixels(
    mask: npt.NDArray[np.bool_], depth_m: npt.NDArray[np.float32], border: BorderFilter
) -> npt.NDArray[np.bool_]:
    """HxW bool: the masked pixels with valid depth that survive the border tests (see the module docstring).

    ``mask`` is HxW bool, ``depth_m`` HxW float32 metres along +z (0 or NaN = no measurement).
    """
    if mask.shape != depth_m.shape:
        raise InputError(f"mask {mask.shape} and depth_m {depth_m.shape} must have the same shape")
    (r0, c0), keep = reliable_pixels_in_box(np.asarray(mask, dtype=np.bool_), depth_m, border)
    result = np.zeros(mask.shape, dtype=np.bool_)
    result[r0 : r0 + keep.shape[0], c0 : c0 + keep.shape[1]] = keep
    return result
