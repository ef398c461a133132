"""Which selections show the same physical object: object identity by 3D overlap, or image overlap without depth.

A user often selects one object several times (dwell on it again, a second click, a LARGER step). Each
selection is a new mask; the object is the same. :class:`ObjectRegistry` gives every selection an object id:

- with depth, a selection joins an existing object when at least ``min_point_overlap`` of the smaller of the two
  point clouds (its lifted points, the object's) lies within ``match_distance_m`` of the other: two views of
  one object share surface, two neighbouring objects share at most the line where they touch;
- without depth (or when either side has no points), when its mask's IoU with a mask of the object reaches
  ``min_mask_iou`` (the same image region: right for a still head, the best a depth-less session offers).

When several objects qualify, the best overlap wins. A rejected selection leaves its object; an object with no
selection left is gone (its id is not reused).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import open3d as o3d

from xrseg.errors import InputError
from xrseg.lift.views import CroppedMask
from xrseg.masks import mask_iou

__all__ = ["IdentityParams", "ObjectRegistry", "point_overlap"]


@dataclass(frozen=True)
class IdentityParams:
    """Tuning of :class:`ObjectRegistry` (see the module docstring); ``max_points`` caps the points kept per
    selection (a deterministic stride beyond it)."""

    match_distance_m: float = 0.01
    min_point_overlap: float = 0.5
    min_mask_iou: float = 0.5
    max_points: int = 4000

    def __post_init__(self) -> None:
        if not self.match_distance_m > 0 or self.max_points < 1:
            raise InputError("match_distance_m must be positive and max_points >= 1")
        if not (0.0 < self.min_point_overlap <= 1.0 and 0.0 < self.min_mask_iou <= 1.0):
            raise InputError("min_point_overlap and min_mask_iou must be in (0, 1]")


def _cloud(points_m: npt.NDArray[np.float64]) -> o3d.geometry.PointCloud:
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.array(points_m, dtype=np.float64)))


def point_overlap(a_m: npt.NDArray[np.float64], b_m: npt.NDArray[np.float64], distance_m: float) -> float:
    """Share of the smaller of two Nx3 / Mx3 float64 clouds (metres) within ``distance_m`` of the other, in [0, 1]
    (0 when either is empty)."""
    if len(a_m) == 0 or len(b_m) == 0:
        return 0.0
    small, large = (a_m, b_m) if len(a_m) <= len(b_m) else (b_m, a_m)
    distances = np.asarray(_cloud(small).compute_point_cloud_distance(_cloud(large)))
    return float(np.mean(distances <= distance_m))


@dataclass
class _Member:
    selection_id: int
    points_m: npt.NDArray[np.float64]
    mask: CroppedMask  # a long run keeps many: each only as big as its box


@dataclass
class _Object:
    object_id: int
    members: list[_Member] = field(default_factory=list)

    def points_m(self) -> npt.NDArray[np.float64]:
        return np.concatenate([m.points_m for m in self.members]) if self.members else np.zeros((0, 3))


class ObjectRegistry:
    """Assigns object ids (1, 2, ...) to selections; see the module docstring."""

    def __init__(self, params: IdentityParams | None = None) -> None:
        self.params = params or IdentityParams()
        self._objects: dict[int, _Object] = {}
        self._object_of: dict[int, int] = {}
        self._next_id = 1

    def assign(self, selection_id: int, points_world_m: npt.ArrayLike | None, mask: npt.NDArray[np.bool_]) -> int:
        """The object id of a new (or changed) selection: ``points_world_m`` Nx3 float64 metres (None or empty
        without depth), ``mask`` HxW bool. A selection assigned before is first removed (a LARGER step)."""
        self.remove(selection_id)
        points = np.zeros((0, 3)) if points_world_m is None else np.asarray(points_world_m, np.float64)
        if len(points) > self.params.max_points:
            points = points[:: -(-len(points) // self.params.max_points)]
        member = _Member(selection_id, points, CroppedMask.of(np.asarray(mask, dtype=np.bool_)))
        best_id, best = None, 0.0
        for obj in self._objects.values():
            overlap = self._overlap(member, obj)
            if overlap > best:
                best_id, best = obj.object_id, overlap
        if best_id is None:
            best_id = self._next_id
            self._next_id += 1
            self._objects[best_id] = _Object(best_id)
        self._objects[best_id].members.append(member)
        self._object_of[selection_id] = best_id
        return best_id

    def _overlap(self, member: _Member, obj: _Object) -> float:
        """The match score of ``member`` with ``obj`` (0 when it does not qualify)."""
        object_points = obj.points_m()
        if len(member.points_m) and len(object_points):
            overlap = point_overlap(member.points_m, object_points, self.params.match_distance_m)
            return overlap if overlap >= self.params.min_point_overlap else 0.0
        mask = member.mask.full()
        ious = [mask_iou(mask, m.mask.full()) for m in obj.members if m.mask.shape_hw == member.mask.shape_hw]
        iou = max(ious, default=0.0)
        return iou if iou >= self.params.min_mask_iou else 0.0

    def remove(self, selection_id: int) -> int | None:
        """Take a (rejected) selection out of its object; returns that object's id (None if it had none)."""
        object_id = self._object_of.pop(selection_id, None)
        if object_id is None:
            return None
        obj = self._objects[object_id]
        obj.members = [m for m in obj.members if m.selection_id != selection_id]
        if not obj.members:
            del self._objects[object_id]
        return object_id

    def object_of(self, selection_id: int) -> int | None:
        return self._object_of.get(selection_id)

    def selections(self, object_id: int) -> tuple[int, ...]:
        """The selection ids of ``object_id`` in the order they joined (empty when the object is gone)."""
        obj = self._objects.get(object_id)
        return tuple(m.selection_id for m in obj.members) if obj else ()
