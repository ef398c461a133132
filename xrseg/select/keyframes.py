"""Which encoded keyframe a selection may use: a policy on head motion, not a fixed age.

The prompter projects every gaze sample of a fixation through the head pose at the sample's own time into
the keyframe camera (through the keyframe's depth, or the fallback distance), so a keyframe taken before or
after the fixation still receives the right pixels while the scene is static and the object stays in its
view. What limits that is how far the head turned between the keyframe and the fixation (the object may be
out of the keyframe's view or seen from another side), not the keyframe's age as such. So:

- a keyframe is *usable* for a fixation when the head poses at the keyframe's time and at the fixation's
  start and trigger are all known and the head turned at most ``max_head_motion_deg`` between the keyframe and
  either of them, the keyframe is at most ``max_age_ms`` from the trigger (a backstop for moving scenes), and,
  when the fixation's gaze direction is given (:class:`GazeView`), that direction falls inside the keyframe's
  image (seen from the keyframe camera, parallax ignored): otherwise every prompt sample would miss it;
- of the usable keyframes the one nearest in time to the trigger is chosen (ties: the earlier one);
- when none is usable the trigger waits for the next keyframe (:class:`KeyframeRefusal` says why), and is
  dropped as stale only when ``max_age_ms`` has passed since the trigger without a usable one.

A slow encoder therefore makes selections later, never impossible.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xrseg.errors import InputError
from xrseg.geometry import PoseTrack, in_image, project_points
from xrseg.sam.embeddings import Keyframe
from xrseg.types import CameraModel, Transform

__all__ = [
    "GazeView",
    "KeyframePolicy",
    "KeyframeRefusal",
    "RefusalKind",
    "choose_keyframe",
    "rotation_between_deg",
]

_MS = 1_000_000


@dataclass(frozen=True)
class KeyframePolicy:
    """How far a keyframe may be from a fixation. Angles in degrees, times in milliseconds."""

    max_head_motion_deg: float = 30.0
    """Largest head rotation between the keyframe and the fixation (start or trigger)."""
    max_age_ms: float = 8000.0
    """Largest time between keyframe and trigger, and how long a trigger waits for a usable keyframe."""

    def __post_init__(self) -> None:
        if not (self.max_head_motion_deg > 0 and self.max_age_ms > 0):
            raise InputError("max_head_motion_deg and max_age_ms must be positive")


@dataclass(frozen=True)
class GazeView:
    """Where a fixation looked, to check that a keyframe saw it: ``direction_head`` (3 float64, unit, head
    frame) at ``timestamp_ns``, and the rig (``camera``, ``head_from_camera`` 4x4 float64)."""

    direction_head: np.ndarray
    timestamp_ns: int
    camera: CameraModel
    head_from_camera: Transform

    def seen_by(self, track: PoseTrack, keyframe_ns: int) -> bool:
        """True when the gaze direction lands inside the keyframe camera's image (False when a pose is unknown)."""
        at_gaze, at_keyframe = track.at(self.timestamp_ns), track.at(keyframe_ns)
        if at_gaze is None or at_keyframe is None:
            return False
        direction_world = at_gaze[:3, :3] @ np.asarray(self.direction_head, dtype=np.float64)
        world_from_camera = at_keyframe @ self.head_from_camera
        direction_camera = world_from_camera[:3, :3].T @ direction_world
        if not direction_camera[2] > 1e-6:
            return False
        pixels, in_front = project_points(self.camera, direction_camera[None, :] / direction_camera[2])
        return bool(in_front[0] and in_image(self.camera, pixels)[0])


class RefusalKind(enum.Enum):
    NO_KEYFRAME = "no_keyframe"
    """Nothing is encoded yet (or no keyframe has a known head pose)."""
    STALE = "stale_keyframe"
    """Keyframes exist, but each is too far (head motion or age) from the fixation."""


@dataclass(frozen=True)
class KeyframeRefusal:
    kind: RefusalKind
    reason: str


def rotation_between_deg(a: np.ndarray, b: np.ndarray) -> float:
    """The angle in degrees of the rotation between two 4x4 (or 3x3) float64 poses."""
    relative = np.asarray(a)[:3, :3].T @ np.asarray(b)[:3, :3]
    cosine = (float(np.trace(relative)) - 1.0) / 2.0
    return math.degrees(math.acos(min(1.0, max(-1.0, cosine))))


def _head_motion_deg(track: PoseTrack, keyframe_ns: int, times_ns: Sequence[int]) -> float | None:
    at_keyframe = track.at(keyframe_ns)
    if at_keyframe is None:
        return None
    worst = 0.0
    for timestamp_ns in times_ns:
        pose = track.at(timestamp_ns)
        if pose is None:
            return None
        worst = max(worst, rotation_between_deg(at_keyframe, pose))
    return worst


def choose_keyframe(
    keyframes: Sequence[Keyframe],
    trigger_ns: int,
    fixation_start_ns: int,
    track: PoseTrack | None,
    policy: KeyframePolicy,
    view: GazeView | None = None,
) -> Keyframe | KeyframeRefusal:
    """The keyframe for a fixation (see the module docstring), or why there is none."""
    if not keyframes:
        return KeyframeRefusal(RefusalKind.NO_KEYFRAME, "no encoded camera frame yet")
    if track is None:
        return KeyframeRefusal(RefusalKind.NO_KEYFRAME, "no head pose yet")
    best: Keyframe | None = None
    nearest: tuple[float, float] | None = None  # (age ms, head motion deg) of the nearest refused keyframe
    for keyframe in keyframes:
        age_ms = abs(trigger_ns - keyframe.frame.timestamp_ns) / _MS
        motion = _head_motion_deg(track, keyframe.frame.timestamp_ns, (fixation_start_ns, trigger_ns))
        if motion is None:
            continue
        seen = view is None or view.seen_by(track, keyframe.frame.timestamp_ns)
        if age_ms <= policy.max_age_ms and motion <= policy.max_head_motion_deg and seen:
            if best is None or age_ms < abs(trigger_ns - best.frame.timestamp_ns) / _MS:
                best = keyframe
        elif nearest is None or age_ms < nearest[0]:
            nearest = (age_ms, motion)
    if best is not None:
        return best
    if nearest is None:
        return KeyframeRefusal(RefusalKind.NO_KEYFRAME, "no keyframe has a head pose at its time")
    age_ms, motion = nearest
    return KeyframeRefusal(
        RefusalKind.STALE,
        f"nearest keyframe is {age_ms:.0f} ms and {motion:.0f} deg of head motion away "
        f"(limits {policy.max_age_ms:.0f} ms, {policy.max_head_motion_deg:.0f} deg), or did not see the gaze "
        "target",
    )
