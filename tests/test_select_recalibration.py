"""Implicit recalibration: a tracker's constant bias is measured from a selection's mask and removed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from xrseg.errors import InputError
from xrseg.geometry import PoseTrack, angle_between_deg, unproject_pixels
from xrseg.select.gaze_offsets import offset_directions
from xrseg.select.recalibration import GazeBias, RecalibrationOptions, selection_offset_rad
from xrseg.types import CameraModel, GazeRay, GazeSample

CAMERA = CameraModel(640, 480, 500.0, 500.0, 319.5, 239.5, (-0.05, 0.01, 0.0, 0.0))
HEAD_FROM_CAMERA = np.diag([1.0, -1.0, -1.0, 1.0])
"""OpenCV camera (+z forward, +y down) in an OpenXR head (-z forward, +y up)."""
EYE_HEAD_M = np.array([0.0, -0.05, 0.08])
"""The gaze origin sits below and behind the camera: parallax matters at 1.5 m."""


def _world_from_head(t_ns: int) -> np.ndarray:
    """A head turning (0.5 deg per 100 ms, 1.5 deg over the fixation) about +y, at 1.6 m: a selection's
    offset is only right to 0.05 deg if every sample is taken with the head pose at its own time."""
    angle = math.radians(0.5) * t_ns / 1e8
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s, 0.1], [0, 1, 0, 1.6], [-s, 0, c, 0.0], [0, 0, 0, 1.0]])


def _scene(bias_rad: tuple[float, float], centre_xy: tuple[float, float] = (420.0, 180.0), radius_px: int = 25):
    """A disc object at 1.5 m seen by the camera at t=0, and 12 gaze samples over 300 ms fixating its centre
    with a constant ``bias_rad`` (right, up); returns (mask, depth, track, world_from_camera, samples, truth)."""
    times = np.arange(0, 400_000_000, 20_000_000, dtype=np.int64)
    track = PoseTrack(times, np.stack([_world_from_head(int(t)) for t in times]))
    world_from_camera = _world_from_head(0) @ HEAD_FROM_CAMERA
    ys, xs = np.mgrid[0:480, 0:640]
    mask = (xs - centre_xy[0]) ** 2 + (ys - centre_xy[1]) ** 2 <= radius_px * abs(
        radius_px
    )  # a negative radius: empty
    depth = np.where(mask, 1.5, 4.0).astype(np.float32)
    centre_world = (world_from_camera @ np.append(unproject_pixels(CAMERA, [centre_xy], [1.5])[0], 1.0))[:3]
    samples, truth = [], []
    for t in np.linspace(50e6, 350e6, 12).astype(np.int64):
        head_from_world = np.linalg.inv(track.at(int(t)))
        to_centre = (head_from_world @ np.append(centre_world, 1.0))[:3] - EYE_HEAD_M
        true_direction = to_centre / np.linalg.norm(to_centre)
        measured = offset_directions(true_direction, np.array([bias_rad]))[0]
        samples.append(GazeSample(int(t), GazeRay(EYE_HEAD_M, measured)))
        truth.append(true_direction)
    return mask, depth, track, world_from_camera, samples, np.array(truth)


def _offset(bias_rad: tuple[float, float], options: RecalibrationOptions | None = None, **scene):  # type: ignore[no-untyped-def]
    mask, depth, track, world_from_camera, samples, _ = _scene(bias_rad, **scene)
    return selection_offset_rad(
        samples, mask, depth, 1.0, CAMERA, world_from_camera, track, options or RecalibrationOptions()
    )


def test_the_offset_of_a_selection_is_the_bias_undone() -> None:
    bias = (math.radians(2.0), math.radians(-1.2))
    offset = _offset(bias)
    assert offset is not None
    # The offset takes the measured gaze back to the target: minus the bias, to within the pixel grid.
    assert np.degrees(np.abs(offset + np.array(bias))).max() < 0.05


def test_corrected_gaze_lands_on_the_target_once_enough_selections_agree() -> None:
    bias = (math.radians(-2.5), math.radians(1.5))
    mask, depth, track, world_from_camera, samples, truth = _scene(bias)
    estimate = GazeBias(RecalibrationOptions(min_observations=2))
    assert estimate.correct(samples) == samples  # nothing learnt yet: unchanged
    for selection_id in (1, 2):
        offset = selection_offset_rad(
            samples, mask, depth, 1.0, CAMERA, world_from_camera, track, estimate.options
        )
        assert offset is not None
        estimate.observe(selection_id, offset)
    corrected = np.array([s.ray.direction for s in estimate.correct(samples)])
    before = angle_between_deg(np.array([s.ray.direction for s in samples]), truth)
    after = angle_between_deg(corrected, truth)
    assert before.min() > 2.8 and after.max() < 0.1
    # REJECT forgets: one observation left is below min_observations, so nothing is corrected.
    estimate.forget(2)
    assert estimate.offset_rad is None


def test_selections_that_say_nothing_about_the_bias_are_not_taken() -> None:
    far_off = (math.radians(6.0), 0.0)
    assert _offset(far_off) is None  # beyond max_offset_deg: a wrong pick, not the bias
    assert _offset((0.01, 0.0), radius_px=80) is None  # a 9 deg object: its centre says little
    assert _offset((0.01, 0.0), RecalibrationOptions(max_object_radius_deg=10.0), radius_px=80) is not None
    assert _offset((0.01, 0.0), radius_px=-1) is None  # an empty mask


def test_one_wrong_pick_is_outvoted() -> None:
    estimate = GazeBias(RecalibrationOptions(min_observations=2))
    for selection_id, offset_deg in enumerate([(-3.0, 2.5), (2.0, 1.0)]):
        estimate.observe(selection_id, np.radians(offset_deg))
    assert estimate.offset_rad is None  # two picks that disagree: no correction yet
    for selection_id, offset_deg in enumerate([(2.1, 0.9), (1.9, 1.1)], start=2):
        estimate.observe(selection_id, np.radians(offset_deg))
    assert estimate.offset_rad is not None
    assert np.degrees(estimate.offset_rad) == pytest.approx([2.0, 1.0], abs=1e-9)


def test_no_correction_without_a_majority() -> None:
    """Two agreeing offsets among five scattered ones are no consensus: a correction could lock in a mistake."""
    estimate = GazeBias(RecalibrationOptions(min_observations=2))
    scattered = [(-3.0, 2.5), (2.0, 1.0), (2.2, 1.2), (-1.0, -3.0), (4.0, -2.0)]
    for selection_id, offset_deg in enumerate(scattered):
        estimate.observe(selection_id, np.radians(offset_deg))
    assert estimate.offset_rad is None


def test_disabled_recalibration_never_corrects() -> None:
    estimate = GazeBias(RecalibrationOptions(enabled=False, min_observations=1))
    estimate.observe(1, np.radians([2.0, 0.0]))
    assert estimate.offset_rad is None


@pytest.mark.parametrize(
    "kwargs", [{"min_observations": 0}, {"window": 1, "min_observations": 2}, {"max_offset_deg": math.nan}]
)
def test_bad_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InputError):
        RecalibrationOptions(**kwargs)  # type: ignore[arg-type]
