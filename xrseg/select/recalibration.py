"""Implicit recalibration: the eye tracker's constant offset, learned from what the person selected.

An eye tracker's largest error is a bias that stays put for minutes (calibration drift, a headset that moved): its
accuracy figure, 0.5-3 deg in one direction. Noise averages out over a fixation; the bias does not, so at 2-3 deg
the gaze lands beside small or far objects, on the table or on a neighbour. Every selection says where the person
looked: at the selected object, near its middle (people fixate objects close to their centre, the "preferred
viewing location"). The angular offset from each measured gaze sample to the selected mask's centre (through the
keyframe's depth and the head pose at the sample's time) is one observation of the bias; the component-wise median
of the largest group of agreeing observations among the last ``window`` is the estimate, and later fixations' gaze
directions are turned by it before they become prompts. Self-calibration from selections or saliency is an
established technique (e.g. Sugano and Bulling, UIST 2015); this is its simplest robust form.

Safeguards, because a wrong pick's offset is wrong and a correction by it makes the next pick wrong the same way
(a feedback loop that locks in): an observation beyond ``max_offset_deg`` (a wrong pick) or of an object over
``max_object_radius_deg`` (too large to have a centre worth fixating) is not taken; nothing is corrected until
``min_observations`` observations agree within ``agreement_deg`` and they are at least half of those kept, so the
first picks, made without correction, must confirm each other; REJECT forgets the rejected selection's
observation.

Offsets are (right, up) radians in the tangent plane of the measured direction (:mod:`xrseg.select.gaze_offsets`).
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.geometry import PoseTrack, invert_transform, transform_points, unproject_pixels
from xrseg.select.gaze_offsets import angular_offsets, offset_directions
from xrseg.types import CameraModel, GazeRay, GazeSample, Transform

__all__ = ["GazeBias", "RecalibrationOptions", "selection_offset_rad"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecalibrationOptions:
    """Implicit recalibration (module docstring). Angles in degrees."""

    enabled: bool = True
    min_observations: int = 2
    """Agreeing observations needed before any correction."""
    agreement_deg: float = 1.5
    """Observations within this of each other agree (people fixate objects near, not at, their centre)."""
    window: int = 8
    """The estimate is the median of at most this many latest observations."""
    max_offset_deg: float = 5.0
    """Observations farther than this from the measured gaze are not taken."""
    max_object_radius_deg: float = 4.0
    """Selections of objects larger than this (radius of a disc of the mask's area) are not taken: on a large
    object, and on a ring whose middle is a hole, where a person looks strays degrees from the mask's centre."""

    def __post_init__(self) -> None:
        if self.min_observations < 1 or self.window < self.min_observations:
            raise InputError("recalibration needs 1 <= min_observations <= window")
        for name in ("max_offset_deg", "max_object_radius_deg", "agreement_deg"):
            value = getattr(self, name)
            if not (math.isfinite(value) and 0 < value <= 45):
                raise InputError(f"{name} must be in (0, 45], got {value}")


def _mask_centre(
    mask: npt.NDArray[np.bool_], depth_m: npt.NDArray[np.float32] | None
) -> tuple[float, float, float]:
    """The HxW bool mask's centroid (x, y) pixel and the median valid depth of its pixels (NaN without)."""
    ys, xs = np.nonzero(mask)
    depth = math.nan
    if depth_m is not None:
        values = depth_m[ys, xs]
        values = values[np.isfinite(values) & (values > 0)]
        if values.size:
            depth = float(np.median(values))
    return float(xs.mean()), float(ys.mean()), depth


def selection_offset_rad(
    samples: Sequence[GazeSample],
    mask: npt.NDArray[np.bool_],
    depth_m: npt.NDArray[np.float32] | None,
    fallback_depth_m: float,
    camera: CameraModel,
    world_from_camera: Transform,
    track: PoseTrack,
    options: RecalibrationOptions,
) -> npt.NDArray[np.float64] | None:
    """The (right, up) radians (2 float64) from the measured gaze of ``samples`` to the centre of the selected
    HxW bool ``mask`` on its keyframe, the median over the samples; None when the selection says nothing
    about the bias (an empty or too large mask, no usable sample, an offset beyond ``max_offset_deg``)."""
    area_px = int(np.count_nonzero(mask))
    if area_px == 0:
        return None
    radius_deg = math.degrees(math.sqrt(area_px / math.pi) / camera.fx_px)
    if radius_deg > options.max_object_radius_deg:
        return None
    x, y, depth = _mask_centre(mask, depth_m)
    centre_camera = unproject_pixels(camera, [[x, y]], [depth if math.isfinite(depth) else fallback_depth_m])
    centre_world = transform_points(world_from_camera, centre_camera)[0]
    offsets = []
    for sample in samples:
        world_from_head = track.at(sample.timestamp_ns)
        if not sample.usable or world_from_head is None:
            continue
        centre_head = transform_points(invert_transform(world_from_head), centre_world[None, :])[0]
        to_centre = centre_head - np.asarray(sample.ray.origin_m)
        offsets.append(angular_offsets(sample.ray.direction, to_centre / np.linalg.norm(to_centre))[0])
    if not offsets:
        return None
    offset: npt.NDArray[np.float64] = np.median(np.asarray(offsets), axis=0)
    if not np.all(np.isfinite(offset)) or math.degrees(float(np.hypot(*offset))) > options.max_offset_deg:
        return None
    return offset


class GazeBias:
    """The running estimate of the tracker's bias; corrects gaze samples by it (module docstring)."""

    def __init__(self, options: RecalibrationOptions) -> None:
        self.options = options
        self._observations: deque[tuple[int, npt.NDArray[np.float64]]] = deque(maxlen=options.window)

    def observe(self, selection_id: int, offset_rad: npt.NDArray[np.float64]) -> None:
        """Take selection ``selection_id``'s offset (2 float64, radians)."""
        self._observations.append((selection_id, np.asarray(offset_rad, dtype=np.float64)))

    def learn(self, selection_id: int, offset_rad: npt.NDArray[np.float64] | None) -> None:
        """Take selection ``selection_id``'s offset (from :func:`selection_offset_rad`; None: nothing to take)
        and log when an estimate first stands."""
        if offset_rad is None:
            return
        before = self.offset_rad
        self.observe(selection_id, offset_rad)
        estimate = self.offset_deg
        if before is None and estimate is not None:
            log.info("the eye tracker is off by %.1f deg right, %.1f deg up: correcting from now on", *estimate)

    @property
    def offset_deg(self) -> tuple[float, float] | None:
        """:attr:`offset_rad` in degrees, as (right, up)."""
        offset = self.offset_rad
        return None if offset is None else (math.degrees(offset[0]), math.degrees(offset[1]))

    def forget(self, selection_id: int) -> None:
        """Drop the observation of a rejected selection."""
        kept = [item for item in self._observations if item[0] != selection_id]
        self._observations.clear()
        self._observations.extend(kept)

    @property
    def offset_rad(self) -> npt.NDArray[np.float64] | None:
        """The estimated bias, (right, up) radians: the median of the largest group of observations within
        ``agreement_deg`` of one of them; None while that group is smaller than ``min_observations`` or than
        half of the observations kept."""
        if not self.options.enabled or len(self._observations) < self.options.min_observations:
            return None
        offsets = np.stack([o for _, o in self._observations])
        apart_rad = np.linalg.norm(offsets[:, None, :] - offsets[None, :, :], axis=2)
        agreeing = apart_rad <= math.radians(self.options.agreement_deg)
        group = agreeing[int(np.argmax(agreeing.sum(axis=1)))]
        size = int(group.sum())
        if size < self.options.min_observations or 2 * size < len(offsets):
            return None
        estimate: npt.NDArray[np.float64] = np.median(offsets[group], axis=0)
        return estimate

    def correct(self, samples: Sequence[GazeSample]) -> list[GazeSample]:
        """``samples`` with their combined ray turned by the estimated bias (unchanged without an estimate)."""
        offset = self.offset_rad
        if offset is None:
            return list(samples)
        corrected = []
        for sample in samples:
            if not sample.usable:
                corrected.append(sample)
                continue
            direction = offset_directions(sample.ray.direction, offset[None, :])[0]
            corrected.append(dataclasses.replace(sample, ray=GazeRay(sample.ray.origin_m, direction)))
        return corrected
