"""Where the image border cut an object on the frame it was selected on (:class:`BorderCut`).

A selection whose mask touches the image border saw its object only up to that border: the lifted points end
there, and what lies past the cut edge was outside that frame's view. The follower
(:class:`~xrseg.lift.follow.ObjectFollower`) uses this to accept a mask that grows the object past the cut when a
later frame shows it, and only there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.geometry import invert_transform, project_points, transform_points
from xrseg.types import CameraModel, Transform, as_transform

__all__ = ["BorderCut"]

_SIDES = ("left", "right", "top", "bottom")


@dataclass(frozen=True)
class BorderCut:
    """Where the image border cut an object on the frame it was selected on.

    ``world_from_camera`` 4x4 float64 of that frame; ``sides`` the image edges its mask touched (of "left",
    "right", "top", "bottom"); ``rim_world_m`` Mx3 float64 the object's points lifted from pixels within
    ``border_px`` of those edges (where the object goes on out of that view), M >= 1.
    """

    world_from_camera: Transform
    sides: tuple[str, ...]
    rim_world_m: npt.NDArray[np.float64]
    border_px: int = 2

    @classmethod
    def of(
        cls,
        mask: npt.NDArray[np.bool_],
        pixels_xy: npt.ArrayLike,
        points_world_m: npt.ArrayLike,
        world_from_camera: npt.ArrayLike,
        border_px: int = 2,
    ) -> BorderCut | None:
        """The cut of a selection: its HxW bool ``mask``, its lifted points (Nx3 float64 world metres) and their
        source pixels (Nx2 int (x, y)), the frame's ``world_from_camera``. None when the mask does not touch the
        image border (with at least ``border_px + 1`` pixels) or no lifted point lies on the cut."""
        height, width = mask.shape
        edges = (mask[:, 0], mask[:, width - 1], mask[0, :], mask[height - 1, :])
        sides = tuple(side for side, edge in zip(_SIDES, edges, strict=True) if np.count_nonzero(edge) > border_px)
        pixels = np.asarray(pixels_xy, dtype=np.int64).reshape(-1, 2)
        points = np.asarray(points_world_m, dtype=np.float64).reshape(-1, 3)
        if not sides or pixels.shape[0] != points.shape[0]:
            return None
        near = {
            "left": pixels[:, 0] <= border_px,
            "right": pixels[:, 0] >= width - 1 - border_px,
            "top": pixels[:, 1] <= border_px,
            "bottom": pixels[:, 1] >= height - 1 - border_px,
        }
        on_rim = np.logical_or.reduce([near[side] for side in sides])
        if not on_rim.any():
            return None
        rim = np.array(points[on_rim], dtype=np.float64)
        rim.setflags(write=False)
        return cls(as_transform(world_from_camera, "world_from_camera"), sides, rim, border_px)

    def beyond(self, camera: CameraModel, points_world_m: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        """N bool: the Nx3 world points lie where the cut frame could not see them, past one of its cut edges
        (within ``border_px`` of it counts) or behind that camera."""
        points_camera = transform_points(invert_transform(self.world_from_camera), points_world_m)
        pixels, in_front = project_points(camera, points_camera)
        x, y = pixels[:, 0], pixels[:, 1]
        reach = self.border_px + 0.5
        with np.errstate(invalid="ignore"):
            past = {
                "left": x <= reach - 1.0,
                "right": x >= camera.width_px - reach,
                "top": y <= reach - 1.0,
                "bottom": y >= camera.height_px - reach,
            }
        # Behind the camera, or so far off its axis that the lens model folds over (NaN pixels): not seen either.
        unseen = ~in_front | np.isnan(x) | np.logical_or.reduce([past[side] for side in self.sides])
        return np.asarray(unseen, dtype=np.bool_)
