"""Head trajectory and scripted gaze: visibility of targets, timing, tracker error statistics, blinks."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest

from xrseg.geometry import in_image, invert_transform, project_points, transform_points
from xrseg.select.gaze_offsets import angular_offsets, offset_directions
from xrseg.select.projection import project_gaze
from xrseg.tools.scenes import ScenePlan, plan_scene, recipe_from_dict
from xrseg.tools.scenes.scanpath import (
    T0_NS,
    minimum_jerk,
    nearest_frame_index,
    saccade_duration_ms,
    stream_timestamps,
)
from xrseg.tools.scenes.trajectory import (
    NECK_TO_EYE_HEAD_M,
    HeadTrajectory,
    HeadTurn,
    MotionNoise,
    rotation_from_angles,
    yaw_pitch_towards,
)
from xrseg.types import DepthSource


def small_recipe(**sections: Any) -> dict[str, Any]:
    recipe: dict[str, Any] = {
        "name": "test-small",
        "seed": 5,
        "duration_s": 4.0,
        "camera": {"width_px": 160, "height_px": 120},
        "rates": {"frame_hz": 10},
        "placement": {"count": 6},
        "scanpath": {"blinks_per_min": 0},
    }
    recipe.update(sections)
    return recipe


@pytest.fixture(scope="module")
def exact_plan() -> ScenePlan:
    """A plan with a perfect eye tracker (no bias, no noise)."""
    return plan_scene(recipe_from_dict(small_recipe(gaze_error={"accuracy_deg": 0.0, "precision_deg": 0.0})))


def test_every_fixation_target_is_on_its_object_in_the_nearest_frame(exact_plan: ScenePlan) -> None:
    plan = exact_plan
    assert len(plan.fixations) >= 4
    for fixation in plan.fixations:
        index = nearest_frame_index(plan.frame_timestamps_ns, fixation.centre_ns)
        frame, ids = plan.render_frame(index)
        camera_from_world = invert_transform(plan.world_from_camera(int(frame.timestamp_ns)))
        pixel, _ = project_points(plan.camera, transform_points(camera_from_world, fixation.target_world_m))
        assert bool(in_image(plan.camera, pixel)[0])
        x, y = (round(float(v)) for v in pixel[0])
        assert ids[y, x] == fixation.object_id


def test_zero_error_gaze_looks_at_the_target(exact_plan: ScenePlan) -> None:
    plan, gaze = exact_plan, exact_plan.gaze
    assert np.array_equal(gaze.measured_direction, gaze.true_direction)
    for fixation in plan.fixations:
        centre = int(np.searchsorted(gaze.timestamps_ns, fixation.centre_ns))
        world_from_head = plan.trajectory.pose_at(int(gaze.timestamps_ns[centre]))
        to_target = invert_transform(world_from_head)[:3, :3] @ (fixation.target_world_m - world_from_head[:3, 3])
        distance = float(np.linalg.norm(to_target))
        cosine = float(gaze.true_direction[centre] @ (to_target / distance))
        assert math.degrees(math.acos(min(1.0, cosine))) < 0.5  # only fixational drift (0.05 deg RMS) remains
        assert gaze.true_distance_m[centre] == pytest.approx(distance, rel=1e-9)


def test_fixation_and_saccade_timing(exact_plan: ScenePlan) -> None:
    fixations = exact_plan.fixations
    t_end = T0_NS + 4_000_000_000
    assert fixations[0].start_ns == fixations[0].saccade_start_ns == T0_NS
    assert fixations[-1].end_ns == t_end
    for before, after in itertools.pairwise(fixations):
        assert after.saccade_start_ns == before.end_ns
        assert 30e6 <= after.start_ns - after.saccade_start_ns <= 60e6
        assert after.object_id != before.object_id
    for fixation in fixations[:-1]:
        assert 200e6 <= fixation.end_ns - fixation.start_ns <= 800e6
    assert len(exact_plan.select_timestamps_ns) == len(fixations)
    for fixation, select_ns in zip(fixations, exact_plan.select_timestamps_ns, strict=True):
        assert fixation.centre_ns <= select_ns < fixation.end_ns


def test_saccade_gaze_moves_fast_and_fixations_stay_still(exact_plan: ScenePlan) -> None:
    plan, gaze = exact_plan, exact_plan.gaze
    world_dirs = np.einsum(
        "nij,nj->ni", plan.trajectory.world_from_head(gaze.timestamps_ns)[:, :3, :3], gaze.true_direction
    )
    step_deg = np.degrees(np.arccos(np.clip(np.sum(world_dirs[1:] * world_dirs[:-1], axis=1), -1.0, 1.0)))
    speed = step_deg * 120.0  # deg/s between consecutive samples
    starts = np.array([f.start_ns for f in plan.fixations[1:]])
    sacc = np.array([f.saccade_start_ns for f in plan.fixations[1:]])
    mid = gaze.timestamps_ns[1:]
    in_saccade = np.zeros(mid.size, dtype=bool)
    for s0, s1 in zip(sacc, starts, strict=True):
        in_saccade |= (mid > s0) & (mid <= s1)
    assert np.median(speed[in_saccade]) > 100.0
    assert np.median(speed[~in_saccade]) < 5.0


def test_main_sequence_and_minimum_jerk_profile() -> None:
    assert saccade_duration_ms(10.0, (30.0, 60.0)) == pytest.approx(43.0)
    assert saccade_duration_ms(1.0, (30.0, 60.0)) == 30.0
    assert saccade_duration_ms(40.0, (30.0, 60.0)) == 60.0
    assert minimum_jerk([0.0, 0.5, 1.0]).tolist() == [0.0, 0.5, 1.0]
    t = np.linspace(0.0, 1.0, 10001)
    velocity = np.gradient(minimum_jerk(t), t)
    assert t[np.argmax(velocity)] == pytest.approx(0.5, abs=1e-3)
    assert velocity.max() == pytest.approx(1.875, abs=1e-3)


@pytest.mark.parametrize(("accuracy_deg", "precision_deg"), [(1.0, 0.5), (2.5, 0.2)])
def test_tracker_error_matches_the_requested_accuracy_and_precision(
    accuracy_deg: float, precision_deg: float
) -> None:
    recipe = recipe_from_dict(
        small_recipe(duration_s=6.0, gaze_error={"accuracy_deg": accuracy_deg, "precision_deg": precision_deg})
    )
    gaze = plan_scene(recipe).gaze
    offsets_deg = np.degrees(angular_offsets(gaze.true_direction, gaze.measured_direction)[gaze.valid])
    mean = offsets_deg.mean(axis=0)
    rms = math.sqrt(float(np.mean(np.sum((offsets_deg - mean) ** 2, axis=1))))
    assert float(np.linalg.norm(mean)) == pytest.approx(accuracy_deg, abs=0.1)
    assert rms == pytest.approx(precision_deg, rel=0.2)
    assert np.allclose(np.degrees(gaze.bias_rad), mean, atol=0.1)


def test_blinks_are_short_runs_of_invalid_nan_samples() -> None:
    recipe = recipe_from_dict(small_recipe(duration_s=6.0, scanpath={"blinks_per_min": 40}))
    plan = plan_scene(recipe)
    gaze = plan.gaze
    invalid = ~gaze.valid
    assert invalid.any() and invalid.mean() < 0.25
    assert np.all(np.isnan(gaze.measured_direction[invalid])) and np.all(np.isnan(gaze.vergence_depth_m[invalid]))
    assert np.all(np.isfinite(gaze.measured_direction[gaze.valid]))
    edges = np.flatnonzero(np.diff(np.concatenate([[0], invalid.astype(int), [0]])))
    runs = edges[1::2] - edges[::2]
    assert np.all(runs <= 2 * 18)  # 150 ms at 120 Hz is 18 samples (two blinks may touch)
    assert runs.max() >= 12  # at least one full blink of 100+ ms
    sample = plan.gaze_sample(int(np.argmax(invalid)))
    assert not sample.valid and not sample.usable and sample.vergence_depth_m is None


def test_vergence_depth_is_the_true_distance_plus_noise(exact_plan: ScenePlan) -> None:
    gaze = exact_plan.gaze
    ratio = gaze.vergence_depth_m / gaze.true_distance_m
    assert float(np.mean(ratio)) == pytest.approx(1.0, abs=0.02)
    assert float(np.std(ratio)) == pytest.approx(0.05, rel=0.2)
    assert np.all((gaze.true_distance_m > 0.3) & (gaze.true_distance_m < 2.0))


def test_offsets_are_exact_angles_and_invert() -> None:
    forward = np.array([[0.0, 0.0, -1.0]])
    right = offset_directions(forward, [[0.01, 0.0]])
    assert np.allclose(right, [[math.sin(0.01), 0.0, -math.cos(0.01)]])
    up = offset_directions(forward, [[0.0, 0.02]])
    assert np.allclose(up, [[0.0, math.sin(0.02), -math.cos(0.02)]])
    rng = np.random.default_rng(3)
    dirs = offset_directions(np.tile(forward, (50, 1)), rng.normal(0.0, 0.3, size=(50, 2)))
    offsets = rng.normal(0.0, 0.05, size=(50, 2))
    assert np.allclose(angular_offsets(dirs, offset_directions(dirs, offsets)), offsets, atol=1e-9)


def test_head_turn_settles_and_rotates_about_the_neck() -> None:
    eye = np.array([0.0, 1.2, 0.0])
    turn = HeadTurn(T0_NS, math.radians(30.0), math.radians(-10.0))
    trajectory = HeadTrajectory(eye, 0.0, 0.0, [turn], 0.4, MotionNoise.none(), T0_NS)
    angles = np.degrees(trajectory.angles([T0_NS, T0_NS + 400_000_000, T0_NS + 5_000_000_000]))
    assert np.allclose(angles[0], [0.0, 0.0, 0.0])
    assert angles[1][0] == pytest.approx(0.95 * 30.0, abs=0.05)
    assert np.allclose(angles[2], [30.0, -10.0, 0.0], atol=1e-6)
    pose = trajectory.pose_at(T0_NS + 5_000_000_000)
    neck = eye - NECK_TO_EYE_HEAD_M
    assert np.allclose(pose[:3, 3], neck + pose[:3, :3] @ NECK_TO_EYE_HEAD_M)
    assert not np.allclose(pose[:3, 3], eye)  # turning moved the eye: real parallax
    forward = pose[:3, :3] @ [0.0, 0.0, -1.0]
    assert np.allclose(np.degrees(yaw_pitch_towards(forward)), [30.0, -10.0])


def test_rotation_angles_follow_openxr_axes() -> None:
    left = rotation_from_angles(math.pi / 2, 0.0, 0.0)[0]
    assert np.allclose(left @ [0.0, 0.0, -1.0], [-1.0, 0.0, 0.0])  # positive yaw turns left
    up = rotation_from_angles(0.0, math.radians(30.0), 0.0)[0]
    assert (up @ [0.0, 0.0, -1.0])[1] == pytest.approx(0.5)  # positive pitch looks up


def test_stream_timestamps_are_strictly_increasing_at_the_rate() -> None:
    stamps = stream_timestamps(T0_NS, 1.0, 72.0)
    assert stamps.size == 72 and stamps[0] == T0_NS
    assert np.all(np.diff(stamps) > 0) and abs(int(stamps[-1]) - (T0_NS + round(71e9 / 72))) <= 1
    assert nearest_frame_index(np.array([0, 100, 200]), 149) == 1
    assert nearest_frame_index(np.array([0, 100, 200]), 150) == 1  # a tie goes to the earlier frame
    assert nearest_frame_index(np.array([0, 100, 200]), 999) == 2


def test_same_seed_same_plan_other_seed_other_plan(exact_plan: ScenePlan) -> None:
    recipe = recipe_from_dict(small_recipe(gaze_error={"accuracy_deg": 0.0, "precision_deg": 0.0}))
    again = plan_scene(recipe)
    assert len(again.fixations) == len(exact_plan.fixations)
    for a, b in zip(again.fixations, exact_plan.fixations, strict=True):
        assert (a.object_id, a.saccade_start_ns, a.start_ns, a.end_ns) == (
            b.object_id,
            b.saccade_start_ns,
            b.start_ns,
            b.end_ns,
        )
        assert np.array_equal(a.target_world_m, b.target_world_m)
    assert np.array_equal(again.gaze.measured_direction, exact_plan.gaze.measured_direction)
    frame_a, ids_a = again.render_frame(3)
    frame_b, ids_b = exact_plan.render_frame(3)
    assert np.array_equal(frame_a.rgb, frame_b.rgb) and np.array_equal(ids_a, ids_b)
    assert np.array_equal(frame_a.depth_m, frame_b.depth_m)
    other = plan_scene(recipe.with_overrides(seed=6))
    assert not np.array_equal(other.gaze.true_direction, exact_plan.gaze.true_direction)


def test_pipeline_gaze_projection_lands_on_the_fixated_object(exact_plan: ScenePlan) -> None:
    """The conventions agree with xrseg.geometry: a perfect gaze sample, projected into the nearest frame
    through its depth (eye-camera parallax resolved), lands on the object the fixation targets."""
    plan, gaze = exact_plan, exact_plan.gaze
    for fixation in plan.fixations:
        index = int(np.searchsorted(gaze.timestamps_ns, fixation.centre_ns))
        sample = plan.gaze_sample(index)
        frame, ids = plan.render_frame(nearest_frame_index(plan.frame_timestamps_ns, sample.timestamp_ns))
        projection = project_gaze(
            sample.ray,
            plan.trajectory.pose_at(sample.timestamp_ns),
            plan.world_from_camera(frame.timestamp_ns),
            plan.camera,
            depth_m=frame.depth_m,
        )
        assert projection.hit and projection.depth_source is DepthSource.DEPTH_IMAGE
        assert projection.pixel_xy is not None
        x, y = (round(v) for v in projection.pixel_xy)
        assert ids[y, x] == fixation.object_id
        assert projection.point_world_m is not None
        assert float(np.linalg.norm(projection.point_world_m - fixation.target_world_m)) < 0.02
