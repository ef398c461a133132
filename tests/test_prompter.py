"""Known-answer tests for xrseg.select.prompter: fixation samples to point prompts on a keyframe."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from xrseg.errors import InputError
from xrseg.geometry import PoseTrack, transform_from_pose
from xrseg.select.prompter import Prompt, Prompter, PromptMiss
from xrseg.types import CameraModel, DepthSource, GazeRay, GazeSample

CAMERA = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5)
MS = 1_000_000

# Keyframe: the head at the world origin, the camera 5 cm right of the eye, looking where the head looks.
KEYFRAME_WORLD_FROM_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
KEYFRAME_WORLD_FROM_CAMERA[0, 3] = 0.05


def box_depth() -> np.ndarray:
    """A box face 0.5 m in front of the camera covering pixels x 150..450, y 150..330; a wall at 3 m."""
    depth = np.full((480, 640), 3.0, dtype=np.float32)
    depth[150:331, 150:451] = 0.5
    return depth


def still_head() -> PoseTrack:
    return PoseTrack(np.array([0, 1000 * MS], dtype=np.int64), np.stack([np.eye(4), np.eye(4)]))


def gaze(t_ns: int, yaw_deg: float = 0.0, pitch_deg: float = 0.0, vergence_m: float | None = None) -> GazeSample:
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    direction = np.array([math.sin(y) * math.cos(p), math.sin(p), -math.cos(y) * math.cos(p)])
    return GazeSample(t_ns, GazeRay(np.zeros(3), direction), vergence_depth_m=vergence_m)


def box_pixel(yaw_deg: float) -> float:
    """x pixel where the eye's ray at ``yaw_deg`` hits the box: camera x = 0.5 tan(yaw) - 0.05 at z = 0.5."""
    return 319.5 + 1000.0 * (0.5 * math.tan(math.radians(yaw_deg)) - 0.05)


BOX_DEPTH = box_depth()


def make(
    samples: list[GazeSample],
    prompter: Prompter | None = None,
    *,
    head_poses: PoseTrack | None = None,
    depth_m: np.ndarray | None = BOX_DEPTH,
    negatives_world_m: Sequence[np.ndarray] = (),
) -> Prompt | PromptMiss:
    return (prompter or Prompter()).make_prompt(
        samples,
        head_poses if head_poses is not None else still_head(),
        KEYFRAME_WORLD_FROM_CAMERA,
        CAMERA,
        depth_m,
        negatives_world_m=negatives_world_m,
    )


def test_steady_gaze_gives_one_positive_at_the_parallax_corrected_pixel() -> None:
    prompt = make([gaze(i * 10 * MS) for i in range(20)])
    assert isinstance(prompt, Prompt)
    assert prompt.gaze_xy == pytest.approx((269.5, 239.5), abs=0.05)  # not 294.5, where 1 m would put it
    assert prompt.points_xy.shape == (1, 2) and prompt.points_xy.dtype == np.float32
    assert prompt.labels.tolist() == [1] and prompt.labels.dtype == np.int32
    assert prompt.depth_source is DepthSource.DEPTH_IMAGE
    assert prompt.point_world_m is not None
    np.testing.assert_allclose(prompt.point_world_m, [0.0, 0.0, -0.5], atol=1e-3)
    assert (prompt.samples_used, prompt.samples_missed, prompt.samples_outliers) == (20, 0, 0)
    assert not prompt.points_xy.flags.writeable


def test_noise_is_averaged_and_outliers_dropped() -> None:
    # 1 degree is 8.7 px on the box. Seven samples along yaw, two along pitch, plus two outliers.
    samples = [gaze(i * 10 * MS, yaw) for i, yaw in enumerate((-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5))]
    samples += [gaze((10 + i) * 10 * MS, 0.0, pitch) for i, pitch in enumerate((-1.0, 1.0))]
    samples += [gaze(200 * MS, 12.0), gaze(210 * MS, -14.0)]  # a glitch and a saccade tail, >100 px away
    prompt = make(samples)
    assert isinstance(prompt, Prompt)
    # Median distance to the median pixel is 8.7 px: the outlier threshold is 3 * 1.4826 * 8.7 = 38.8 px.
    assert prompt.samples_outliers == 2 and prompt.samples_used == 9
    assert prompt.gaze_xy == pytest.approx((269.5, 239.5), abs=0.01)
    # Positives: the median first, then farthest-point picks from the core (samples within 8.7 px): a plus
    # shape at +-1 degree (all four tie, so their order is not pinned); the +-1.5 degree samples are not used.
    px = 500.0 * math.tan(math.radians(1.0))
    np.testing.assert_allclose(prompt.points_xy[0], (269.5, 239.5), atol=0.01)
    plus = sorted(map(tuple, prompt.points_xy[1:].tolist()))
    expected = sorted([(269.5 - px, 239.5), (269.5, 239.5 - px), (269.5, 239.5 + px), (269.5 + px, 239.5)])
    np.testing.assert_allclose(plus, expected, atol=0.01)
    assert prompt.labels.tolist() == [1] * 5


def test_max_points_and_spread() -> None:
    samples = [gaze(i * 5 * MS, yaw) for i, yaw in enumerate(np.linspace(-2.0, 2.0, 41))]
    prompt = make(samples, Prompter(max_points=3))
    assert isinstance(prompt, Prompt)
    assert prompt.num_positive == 3
    # Median first, then the two ends of the core (the inner half: yaw -1 and +1 degrees).
    np.testing.assert_allclose(prompt.points_xy[:, 0], [269.5, box_pixel(-1.0), box_pixel(1.0)], atol=0.01)
    # Samples closer together than min_separation_px (4 px) collapse to the median point.
    tight = make([gaze(i * 5 * MS, yaw) for i, yaw in enumerate(np.linspace(-0.4, 0.4, 9))])
    assert isinstance(tight, Prompt) and tight.num_positive == 1


def test_head_pose_is_taken_at_each_samples_time() -> None:
    # The head turns 4 degrees left during the fixation while the eyes counter-rotate to keep looking at the
    # same world point (the vestibulo-ocular reflex): in the head frame the gaze turns right.
    times = [i * 10 * MS for i in range(21)]
    yaws = [0.2 * i for i in range(21)]
    poses = [
        transform_from_pose((0, 0, 0), (0.0, math.sin(math.radians(a) / 2), 0.0, math.cos(math.radians(a) / 2)))
        for a in yaws
    ]
    track = PoseTrack(np.array(times, dtype=np.int64), np.stack(poses))
    samples = [gaze(t, yaw) for t, yaw in zip(times, yaws, strict=True)]
    prompt = make(samples, head_poses=track)
    assert isinstance(prompt, Prompt)
    assert prompt.gaze_xy == pytest.approx((269.5, 239.5), abs=0.05)
    assert prompt.num_positive == 1  # every sample lands on the same pixel
    # Using the keyframe's head pose for every sample would smear the points over 4 degrees instead.
    smeared = make(samples)
    assert isinstance(smeared, Prompt)
    assert smeared.gaze_xy[0] == pytest.approx(box_pixel(2.0), abs=0.05)


def test_negative_points_from_rejected_picks() -> None:
    rejected = [
        np.array([0.1, 0.0, -0.5]),  # 10 cm right of the gaze on the box: camera x 0.05, pixel (369.5, 239.5)
        np.array([0.0, 0.0, 2.0]),  # behind the camera
        np.array([5.0, 0.0, -0.5]),  # off the image
        np.array([0.0, 0.0, -0.5]),  # where the user is looking again: dropped
    ]
    prompt = make([gaze(i * 10 * MS) for i in range(10)], negatives_world_m=rejected)
    assert isinstance(prompt, Prompt)
    assert prompt.labels.tolist() == [1, 0]
    np.testing.assert_allclose(prompt.points_xy, [[269.5, 239.5], [369.5, 239.5]], atol=0.05)
    assert prompt.num_negative == 1


def test_fallbacks_without_depth() -> None:
    fixed = make([gaze(i * 10 * MS) for i in range(5)], depth_m=None)
    assert isinstance(fixed, Prompt)
    assert fixed.depth_source is DepthSource.FIXED and fixed.point_world_m is None
    assert fixed.gaze_xy == pytest.approx((294.5, 239.5), abs=1e-6)  # 1 m: 25 px of parallax
    verged = make([gaze(i * 10 * MS, vergence_m=0.5) for i in range(5)], depth_m=None)
    assert isinstance(verged, Prompt)
    assert verged.depth_source is DepthSource.VERGENCE
    assert verged.gaze_xy == pytest.approx((269.5, 239.5), abs=1e-6)


def test_misses_are_counted_and_reported() -> None:
    nan_sample = GazeSample(5 * MS, GazeRay(np.zeros(3), np.array([math.nan, 0.0, -1.0])))
    outside_track = gaze(5000 * MS)
    off_image = gaze(20 * MS, 60.0)
    prompt = make([gaze(0), nan_sample, outside_track, off_image, gaze(30 * MS)])
    assert isinstance(prompt, Prompt)
    assert prompt.samples_used == 2 and prompt.samples_missed == 3
    miss = make([nan_sample, outside_track, off_image, gaze(40 * MS, -60.0)])
    assert isinstance(miss, PromptMiss)
    assert miss.samples_total == 4 and miss.samples_missed == 4
    assert dict(miss.miss_counts) == {"invalid_sample": 1, "no_head_pose": 1, "off_image": 2}
    assert "off_image 2" in miss.reason
    empty = make([])
    assert isinstance(empty, PromptMiss) and empty.samples_total == 0


def test_bad_configuration_raises() -> None:
    with pytest.raises(InputError):
        Prompter(max_points=0)
    with pytest.raises(InputError):
        Prompter(fallback_depth_m=-1.0)
    with pytest.raises(InputError, match="keyframe_world_from_camera"):
        Prompter().make_prompt([gaze(0)], still_head(), np.zeros((4, 4)), CAMERA, None)
