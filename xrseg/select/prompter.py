"""Turn a triggered fixation into point prompts for the Segment Anything mask decoder on one keyframe.

Why several samples. One gaze sample is noisy: eye trackers jitter by a fraction of a degree to a degree
between samples, which is several pixels on a keyframe and enough to fall off a thin object. A fixation lasts
a few hundred milliseconds, i.e. dozens of samples at 90-200 Hz. Each sample is projected on its own, with the
head pose at that sample's time (the head moves during a fixation and the keyframe was taken at another time,
see :func:`~xrseg.select.projection.project_gaze`); the median of the projections averages the noise away,
samples that miss the keyframe are dropped, and outliers (a blink edge, a tracker glitch, the tail of a
saccade) are removed with a median-absolute-deviation test. The median pixel is the first, most trusted
positive point; a few more inlier pixels, spread as far apart as possible, tell the decoder how large the
looked-at region is. Previously rejected picks (:class:`xrseg.types.EventKind` REJECT) come back as world
points and are added as negative points where they are visible in this keyframe.

Part or whole? Looking at the handle of a mug does not say whether the user wants the handle or the mug.
The prompter does not guess: the prompt goes to the decoder in multimask mode, which returns several
candidate masks (typically part, larger part, whole object) with predicted IoU scores. The runtime picks
one with the keyframe's depth, preferring the whole object under the gaze (:mod:`xrseg.select.maskchoice`), and
keeps the others so the user can step to a larger or smaller mask (``EventKind.LARGER`` / ``SMALLER``); see
:class:`xrseg.types.Selection`.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.geometry import PoseTrack, in_image, invert_transform, project_points, transform_points
from xrseg.select.projection import GazeProjector
from xrseg.types import CameraModel, DepthSource, GazeSample, Transform, Vec3, as_transform

logger = logging.getLogger(__name__)

__all__ = ["Prompt", "PromptMiss", "Prompter"]

_MAD_TO_SIGMA = 1.4826
"""Scale of the median absolute deviation to a Gaussian standard deviation."""

_SOURCE_PREFERENCE = (DepthSource.DEPTH_IMAGE, DepthSource.VERGENCE, DepthSource.FIXED)


def _read_only(array: npt.NDArray) -> npt.NDArray:
    array.setflags(write=False)
    return array


def evenly_spaced(samples: Sequence[GazeSample], count: int) -> list[GazeSample]:
    """At most ``count`` of ``samples``, evenly spaced over them (first and last included), in order."""
    if len(samples) <= count:
        return list(samples)
    picks = np.linspace(0, len(samples) - 1, count).round().astype(int)
    return [samples[i] for i in picks]


@dataclass(frozen=True)
class Prompt:
    """Point prompts for one keyframe.

    ``points_xy``: Nx2 float32 (x, y) keyframe pixels, positives first; ``labels``: N int32, 1 = foreground
    (positive), 0 = background (negative), the Segment Anything convention. ``gaze_xy`` is the median gaze
    pixel (also the first point). ``depth_source`` is the most common source of the samples used;
    ``point_world_m`` the median 3D hit point (3 float64, world frame) of the samples that hit the depth image,
    or None when none did. Counts: ``samples_used`` (inliers), ``samples_missed`` (unusable, no head pose, or
    missing the keyframe) and ``samples_outliers`` (dropped by the MAD test).
    """

    points_xy: npt.NDArray[np.float32]
    labels: npt.NDArray[np.int32]
    gaze_xy: tuple[float, float]
    depth_source: DepthSource
    point_world_m: Vec3 | None
    samples_used: int
    samples_missed: int
    samples_outliers: int = 0

    @property
    def num_positive(self) -> int:
        return int(np.count_nonzero(self.labels == 1))

    @property
    def num_negative(self) -> int:
        return int(np.count_nonzero(self.labels == 0))


@dataclass(frozen=True)
class PromptMiss:
    """No prompt could be made: ``reason`` says why in one line.

    ``samples_total`` samples were given, ``samples_missed`` of them gave no keyframe pixel;
    ``miss_counts`` breaks them down, e.g. (("off_image", 30), ("no_head_pose", 2)).
    """

    reason: str
    samples_total: int
    samples_missed: int
    miss_counts: tuple[tuple[str, int], ...] = field(default=())


@dataclass
class _Projected:
    """What became of a fixation's samples on one keyframe, filled in while projecting: the keyframe pixels
    ((x, y) each) of those that landed, each one's depth source and world hit (3 float64, None unless from the
    depth image), and the others counted by reason."""

    pixels: list[tuple[float, float]] = field(default_factory=list)
    sources: list[DepthSource] = field(default_factory=list)
    world_hits: list[Vec3 | None] = field(default_factory=list)
    misses: Counter[str] = field(default_factory=Counter)


def _depth_summary(projected: _Projected, inliers: npt.NDArray[np.intp]) -> tuple[DepthSource, Vec3 | None]:
    """The inliers' most common depth source (ties to the preferred one) and median depth-image hit (or None)."""
    inlier_sources = Counter(projected.sources[i] for i in inliers)
    best = max(inlier_sources.values())
    depth_source = next(s for s in _SOURCE_PREFERENCE if inlier_sources.get(s, 0) == best)
    hits = [hit for hit in (projected.world_hits[i] for i in inliers) if hit is not None]
    point_world = _read_only(np.median(np.stack(hits), axis=0)) if hits else None
    return depth_source, point_world


class Prompter:
    """Makes point prompts from a fixation's gaze samples.

    ``max_points``: at most this many positive points: the median pixel first, then farthest-point sampling
    over the inner half of the inlier samples (no farther from the median than the median distance).
    ``fallback_depth_m``: distance along the gaze ray when neither depth nor vergence is available.
    Outliers are samples farther from the median pixel than ``max(outlier_k * 1.4826 * MAD,
    outlier_floor_px)``, MAD being the median distance to the median pixel. Positive points closer than
    ``min_separation_px`` to one already chosen are not added, and negative points closer than that to a
    positive are dropped (the user is looking there again, so the gaze wins). ``max_pose_gap_ns`` is how far
    outside the head-pose track a sample may be and still get a pose.
    """

    def __init__(
        self,
        max_points: int = 5,
        fallback_depth_m: float = 1.0,
        outlier_k: float = 3.0,
        outlier_floor_px: float = 4.0,
        min_separation_px: float = 4.0,
        max_range_m: float = 10.0,
        max_pose_gap_ns: int = PoseTrack.DEFAULT_MAX_EXTRAPOLATION_NS,
    ) -> None:
        if max_points < 1:
            raise InputError(f"max_points must be at least 1, got {max_points}")
        for name, value in (
            ("fallback_depth_m", fallback_depth_m),
            ("outlier_k", outlier_k),
            ("max_range_m", max_range_m),
        ):
            if not (math.isfinite(value) and value > 0):
                raise InputError(f"{name} must be finite and positive, got {value}")
        for name, value in (("outlier_floor_px", outlier_floor_px), ("min_separation_px", min_separation_px)):
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"{name} must be finite and >= 0, got {value}")
        if max_pose_gap_ns < 0:
            raise InputError(f"max_pose_gap_ns must be >= 0, got {max_pose_gap_ns}")
        self.max_points = int(max_points)
        self.fallback_depth_m = float(fallback_depth_m)
        self.outlier_k = float(outlier_k)
        self.outlier_floor_px = float(outlier_floor_px)
        self.min_separation_px = float(min_separation_px)
        self.max_range_m = float(max_range_m)
        self.max_pose_gap_ns = int(max_pose_gap_ns)

    def make_prompt(
        self,
        samples: Sequence[GazeSample],
        head_poses: PoseTrack,
        keyframe_world_from_camera: Transform,
        camera: CameraModel,
        depth_m: npt.NDArray[np.float32] | None,
        negatives_world_m: Sequence[Vec3] = (),
    ) -> Prompt | PromptMiss:
        """Prompt for the keyframe seen by ``camera`` at ``keyframe_world_from_camera`` (4x4 float64).

        ``samples`` are the fixation's gaze samples; ``head_poses`` a ``world_from_head`` track covering them;
        ``depth_m`` the keyframe's HxW float32 depth in metres (0 = none) or None; ``negatives_world_m`` world
        points (3 float64 each) of previously rejected picks. Returns a :class:`PromptMiss` (never raises)
        when no sample lands on the keyframe; raises :class:`InputError` for malformed transforms or depth.
        """
        world_from_camera = as_transform(keyframe_world_from_camera, "keyframe_world_from_camera")
        projector = GazeProjector(world_from_camera, camera, depth_m, self.fallback_depth_m, self.max_range_m)
        projected = self._project(samples, head_poses, projector)
        total = len(samples)
        missed = sum(projected.misses.values())
        counts = tuple(sorted(projected.misses.items()))
        if not projected.pixels:
            detail = ", ".join(f"{name} {count}" for name, count in counts) or "no samples"
            reason = f"none of the {total} gaze samples landed on the keyframe ({detail})"
            logger.debug(reason)
            return PromptMiss(reason=reason, samples_total=total, samples_missed=missed, miss_counts=counts)

        xy = np.asarray(projected.pixels, dtype=np.float64)
        inliers = self._inliers(xy)
        inlier_xy = xy[inliers]
        gaze = np.median(inlier_xy, axis=0)

        # Spread the extra positives over the inner half of the samples only: the fixation's core, not its rim.
        inner_radius = float(np.median(np.linalg.norm(inlier_xy - gaze, axis=1)))
        core_xy = inlier_xy[np.linalg.norm(inlier_xy - gaze, axis=1) <= inner_radius + 1e-6]
        positives = self._spread_positives(gaze, core_xy)
        negatives = self._visible_negatives(negatives_world_m, world_from_camera, camera, positives)
        points = np.vstack([positives, negatives]) if len(negatives) else positives
        labels = np.concatenate(
            [np.ones(len(positives), dtype=np.int32), np.zeros(len(negatives), dtype=np.int32)]
        )
        depth_source, point_world = _depth_summary(projected, inliers)
        return Prompt(
            points_xy=_read_only(points.astype(np.float32)),
            labels=_read_only(labels),
            gaze_xy=(float(gaze[0]), float(gaze[1])),
            depth_source=depth_source,
            point_world_m=point_world,
            samples_used=int(inliers.size),
            samples_missed=missed,
            samples_outliers=int(len(projected.pixels) - inliers.size),
        )

    def _project(
        self, samples: Sequence[GazeSample], head_poses: PoseTrack, projector: GazeProjector
    ) -> _Projected:
        """Each usable sample with a head pose, projected onto the keyframe; the others counted by reason."""
        projected = _Projected()
        posed: list[tuple[GazeSample, Transform]] = []
        for sample in samples:
            if not sample.usable:
                projected.misses["invalid_sample"] += 1
                continue
            world_from_head = head_poses.at(sample.timestamp_ns, max_extrapolation_ns=self.max_pose_gap_ns)
            if world_from_head is None:
                projected.misses["no_head_pose"] += 1
                continue
            posed.append((sample, world_from_head))
        projections = projector.project_many(
            [s.ray for s, _ in posed], [pose for _, pose in posed], [s.vergence_depth_m for s, _ in posed]
        )
        for projection in projections:
            if projection.miss is not None or projection.pixel_xy is None or projection.depth_source is None:
                projected.misses[projection.miss.value if projection.miss is not None else "no_pixel"] += 1
                continue
            projected.pixels.append(projection.pixel_xy)
            projected.sources.append(projection.depth_source)
            projected.world_hits.append(
                projection.point_world_m if projection.depth_source is DepthSource.DEPTH_IMAGE else None
            )
        return projected

    def _inliers(self, xy: npt.NDArray[np.float64]) -> npt.NDArray[np.intp]:
        """Indices of the Nx2 float64 pixels within the outlier threshold of their median (see the class)."""
        median = np.median(xy, axis=0)
        distances = np.linalg.norm(xy - median, axis=1)
        threshold = max(self.outlier_k * _MAD_TO_SIGMA * float(np.median(distances)), self.outlier_floor_px)
        return np.flatnonzero(distances <= threshold)

    def _spread_positives(
        self, gaze_xy: npt.NDArray[np.float64], inlier_xy: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.float64]:
        """Kx2 float64: the median pixel, then farthest-point sampling over the candidate pixels."""
        chosen = [gaze_xy]
        nearest = np.linalg.norm(inlier_xy - gaze_xy, axis=1)
        while len(chosen) < self.max_points and nearest.size:
            index = int(np.argmax(nearest))
            if nearest[index] < max(self.min_separation_px, 1e-9):
                break
            chosen.append(inlier_xy[index])
            nearest = np.minimum(nearest, np.linalg.norm(inlier_xy - inlier_xy[index], axis=1))
        return np.stack(chosen)

    def _visible_negatives(
        self,
        negatives_world_m: Sequence[Vec3],
        world_from_camera: Transform,
        camera: CameraModel,
        positives: npt.NDArray[np.float64],
    ) -> npt.NDArray[np.float64]:
        """Mx2 float64 pixels of the rejected world points visible in the keyframe and clear of the positives."""
        if len(negatives_world_m) == 0:
            return np.zeros((0, 2), dtype=np.float64)
        world = np.asarray(negatives_world_m, dtype=np.float64).reshape(-1, 3)
        pixels, in_front = project_points(camera, transform_points(invert_transform(world_from_camera), world))
        visible = in_front & in_image(camera, pixels)
        candidates = pixels[visible]
        if candidates.size == 0:
            return np.zeros((0, 2), dtype=np.float64)
        gap = np.min(np.linalg.norm(candidates[:, None, :] - positives[None, :, :], axis=2), axis=1)
        clear = gap >= self.min_separation_px
        if not np.all(clear):
            logger.debug("dropping %d negative point(s) that coincide with the gaze", int(np.sum(~clear)))
        result: npt.NDArray[np.float64] = candidates[clear]
        return result
