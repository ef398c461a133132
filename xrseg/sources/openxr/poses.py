"""Pure conversions from pyopenxr pose structs to xrseg records.

OpenXR poses (``xr.Posef``: orientation quaternion x, y, z, w and position in metres) are read as
``base_from_space`` transforms: locating space S in base space B gives ``B_from_S``. The head (VIEW space)
located in LOCAL is ``world_from_head``; the eye-gaze action space located in VIEW is the gaze pose in the head
frame. A gaze pose looks down its own -z axis (+x right, +y up), like the VIEW space.
"""

from __future__ import annotations

import numpy as np
import xr

from xrseg.geometry import transform_from_pose
from xrseg.types import GazeRay, GazeSample, Transform

FORWARD = np.array([0.0, 0.0, -1.0], dtype=np.float64)
"""The viewing direction of an OpenXR pose, in its own frame."""

ORIENTATION_VALID = int(xr.SpaceLocationFlags.ORIENTATION_VALID_BIT)
POSITION_VALID = int(xr.SpaceLocationFlags.POSITION_VALID_BIT)
ORIENTATION_TRACKED = int(xr.SpaceLocationFlags.ORIENTATION_TRACKED_BIT)
POSITION_TRACKED = int(xr.SpaceLocationFlags.POSITION_TRACKED_BIT)


def transform_from_posef(pose: xr.Posef) -> Transform:
    """4x4 float64 ``base_from_space`` transform of an ``xr.Posef`` (the quaternion is normalised first).

    Raises :class:`xrseg.errors.InputError` for a zero or non-finite quaternion or position.
    """
    q = pose.orientation
    p = pose.position
    return transform_from_pose((p.x, p.y, p.z), (q.x, q.y, q.z, q.w))


def location_flags(location: xr.SpaceLocation) -> int:
    return int(location.location_flags)


def head_transform_from_location(location: xr.SpaceLocation) -> Transform | None:
    """``world_from_head`` from VIEW located in LOCAL/STAGE, or None unless orientation AND position are valid.

    Valid-but-untracked poses (dead reckoning, a headset briefly losing tracking) are still returned: the runtime
    vouches that they are usable.
    """
    flags = location_flags(location)
    if not (flags & ORIENTATION_VALID and flags & POSITION_VALID):
        return None
    return transform_from_posef(location.pose)


def gaze_ray_from_posef(pose: xr.Posef) -> GazeRay:
    """The ray of a gaze pose: origin at its position (metres), direction its -z axis, in the base frame."""
    matrix = transform_from_posef(pose)
    return GazeRay(origin_m=matrix[:3, 3].copy(), direction=matrix[:3, :3] @ FORWARD)


def _nan_ray() -> GazeRay:
    return GazeRay(origin_m=np.full(3, np.nan), direction=np.full(3, np.nan))


def gaze_sample_from_location(location: xr.SpaceLocation, timestamp_ns: int) -> GazeSample:
    """A GazeSample from the eye-gaze action space located in VIEW (so the ray is in the head frame).

    Per XR_EXT_eye_gaze_interaction: no VALID bits -> no data (a NaN ray, ``valid`` False); VALID without
    TRACKED -> a sub-nominal pose the spec says not to rely on (the ray is kept, ``valid`` False); VALID and
    TRACKED -> a nominal sample. A missing position (orientation only) puts the origin at the head origin.
    """
    flags = location_flags(location)
    if not flags & ORIENTATION_VALID:
        return GazeSample(timestamp_ns=timestamp_ns, ray=_nan_ray(), valid=False)
    ray = gaze_ray_from_posef(location.pose)
    if not flags & POSITION_VALID:
        ray = GazeRay(origin_m=np.zeros(3), direction=ray.direction)
    tracked = bool(flags & ORIENTATION_TRACKED)
    return GazeSample(timestamp_ns=timestamp_ns, ray=ray, valid=tracked)


def gaze_sample_from_fb(gazes: xr.EyeGazesFB, timestamp_ns: int) -> GazeSample:
    """A GazeSample from XR_FB_eye_tracking_social's two per-eye gazes (located in VIEW, the head frame).

    The combined ray starts between the valid eyes and points along the normalised mean of their directions;
    with one valid eye it is that eye's ray. ``left``/``right`` carry the per-eye rays when valid.
    """
    eyes: list[GazeRay | None] = []
    for index in (int(xr.EyePositionFB.LEFT), int(xr.EyePositionFB.RIGHT)):
        eye = gazes.gaze[index]
        eyes.append(gaze_ray_from_posef(eye.gaze_pose) if eye.is_valid else None)
    valid = [ray for ray in eyes if ray is not None]
    if not valid:
        return GazeSample(timestamp_ns=timestamp_ns, ray=_nan_ray(), valid=False)
    origin = np.mean([ray.origin_m for ray in valid], axis=0)
    direction = np.sum([ray.direction for ray in valid], axis=0)
    combined = GazeRay(origin_m=origin, direction=direction)
    return GazeSample(
        timestamp_ns=timestamp_ns, ray=combined, valid=combined.is_finite, left=eyes[0], right=eyes[1]
    )


def head_gaze_sample(timestamp_ns: int) -> GazeSample:
    """The fallback without an eye tracker: the head's forward ray (origin 0, direction -z in the head frame)."""
    return GazeSample(timestamp_ns=timestamp_ns, ray=GazeRay(origin_m=np.zeros(3), direction=FORWARD), valid=True)
