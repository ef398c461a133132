"""The centroid-shift fixation detector and the gaze path: saccades of a few degrees always split, noise and
head motion never do, and a SELECT press finds the fixation in progress before the detector confirms it."""

from __future__ import annotations

import math

import numpy as np

from xrseg.geometry import transform_directions
from xrseg.select.centroid import CentroidDetector
from xrseg.select.gaze_path import GazeOptions, GazePath
from xrseg.types import EventKind, Fixation, GazeRay, GazeSample, InputEvent

RATE_HZ = 120
PERIOD_NS = 1_000_000_000 / RATE_HZ
MS = 1_000_000


def direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.sin(y) * math.cos(p), math.sin(p), -math.cos(y) * math.cos(p)])


def yaw_transform(yaw_deg: float) -> np.ndarray:
    y = math.radians(yaw_deg)
    t = np.eye(4)
    t[:3, :3] = [[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]]
    return t


def scanpath(
    targets: list[float], fixation_ms: float, noise_deg: float, seed: int = 0, saccade_ms: float = 35.0
) -> tuple[list[tuple[int, float, float]], list[tuple[int, int]]]:
    """(timestamp_ns, world yaw deg, pitch deg) samples of fixations at ``targets`` (yaw, degrees) joined by
    linear saccades, with Gaussian noise of ``noise_deg`` per axis; and each fixation's true (start_ns, end_ns)."""
    rng = np.random.default_rng(seed)
    out: list[tuple[int, float, float]] = []
    truth = []
    index = 0
    for k, yaw in enumerate(targets):
        if k:
            steps = max(2, round(saccade_ms / 1000 * RATE_HZ))
            for j in range(1, steps):
                out.append((round(index * PERIOD_NS), targets[k - 1] + j / steps * (yaw - targets[k - 1]), 0.0))
                index += 1
        start = index
        for _ in range(round(fixation_ms / 1000 * RATE_HZ)):
            noise = rng.normal(0, noise_deg, 2)
            out.append((round(index * PERIOD_NS), yaw + float(noise[0]), float(noise[1])))
            index += 1
        truth.append((round(start * PERIOD_NS), round((index - 1) * PERIOD_NS)))
    return out, truth


def sample_at(t_ns: int, head_yaw_deg: float, world_yaw_deg: float, pitch_deg: float = 0.0) -> GazeSample:
    """A head-frame gaze sample looking at world yaw ``world_yaw_deg`` with the head turned ``head_yaw_deg``."""
    return GazeSample(t_ns, GazeRay(np.zeros(3), direction(world_yaw_deg - head_yaw_deg, pitch_deg)))


def recalled(found: list[Fixation], truth: list[tuple[int, int]]) -> int:
    hits = set()
    for f in found:
        overlaps = [min(e, f.end_ns) - max(s, f.start_ns) for s, e in truth]
        if max(overlaps) > 0:
            hits.add(int(np.argmax(overlaps)))
    return len(hits)


def test_three_degree_saccades_split_and_noise_does_not() -> None:
    """Ten 250 ms fixations 3 deg apart with 0.4 deg noise per axis: ten fixations, none merged, none split."""
    samples, truth = scanpath([0, 3, 6, 3, 0, -3, 0, 3, 0, -3], 250, 0.4, seed=1)
    detector = CentroidDetector()
    found: list[Fixation] = []
    for t, yaw, pitch in samples:
        found += detector.push(sample_at(t, 0.0, yaw, pitch))
    found += detector.flush()
    assert len(found) == len(truth)
    assert recalled(found, truth) == len(truth)
    for fixation, (start, end) in zip(found, truth, strict=True):
        assert abs(fixation.start_ns - start) <= 40 * MS
        assert abs(fixation.end_ns - end) <= 40 * MS
        assert fixation.detected_ns is not None and fixation.detected_ns - fixation.start_ns <= 120 * MS


def test_a_single_glitch_does_not_split_a_fixation() -> None:
    detector = CentroidDetector()
    found: list[Fixation] = []
    for i in range(60):
        yaw = 15.0 if i == 30 else 0.0
        found += detector.push(sample_at(round(i * PERIOD_NS), 0.0, yaw))
    found += detector.flush()
    assert len(found) == 1 and found[0].duration_ns >= 480 * MS


def test_world_frame_detection_ignores_head_turns() -> None:
    """The eyes hold a world target while the head turns at 60 deg/s (the vestibulo-ocular reflex): in the head
    frame that is a 60 deg/s sweep; in the world frame, with head poses, it is the one fixation it is."""
    samples, truth = scanpath([0, 5, 10], 400, 0.3, seed=2)
    head_yaw = [60.0 * t / 1e9 for t, _, _ in samples]
    with_poses = GazePath(GazeOptions(dwell_ms=0), history_ns=10**10)
    head_only = GazePath(GazeOptions(dwell_ms=0, detect_in_world=False), history_ns=10**10)
    found_world: list[Fixation] = []
    found_head: list[Fixation] = []
    for (t, yaw, pitch), head in zip(samples, head_yaw, strict=True):
        sample = sample_at(t, head, yaw, pitch)
        world_from_head = yaw_transform(-head)  # head yawed left by `head` degrees about +y
        world = transform_directions(world_from_head, sample.ray.direction)[0]
        assert abs(math.degrees(math.atan2(world[0], -world[2])) - yaw) < 0.01
        found_world += with_poses.push(sample, world_from_head).fixations
        found_head += head_only.push(sample, world_from_head).fixations
    found_world += with_poses.flush()
    found_head += head_only.flush()
    assert len(found_world) == 3 and recalled(found_world, truth) == 3
    assert len(found_head) != 3  # head-relative gaze sweeps: the detector cannot see the fixations


def test_select_uses_the_fixation_in_progress_before_it_is_confirmed() -> None:
    """A press 40 ms after the eyes land (before min_fixation_ms = 80 ms) selects the new fixation's samples."""
    samples, truth = scanpath([0, 6], 300, 0.2, seed=3)
    path = GazePath(GazeOptions(dwell_ms=0), history_ns=10**10)
    press_ns = truth[1][0] + 40 * MS
    trigger = None
    for t, yaw, pitch in samples:
        if t > press_ns and trigger is None:
            assert path.detector.current() is None or path.detector.current().start_ns < truth[1][0]
            trigger = path.on_select(InputEvent(press_ns, EventKind.SELECT))
        path.push(sample_at(t, 0.0, yaw, pitch), None)
    assert trigger is not None and trigger.reason == "event"
    assert trigger.fixation.start_ns >= truth[1][0] - 30 * MS
    mean_yaw = math.degrees(math.atan2(trigger.fixation.direction[0], -trigger.fixation.direction[2]))
    assert abs(mean_yaw - 6.0) < 1.0


def test_select_long_after_a_fixation_gives_no_trigger() -> None:
    path = GazePath(GazeOptions(dwell_ms=0, click_tolerance_ms=100), history_ns=10**10)
    for i in range(40):
        path.push(sample_at(round(i * PERIOD_NS), 0.0, 0.0), None)
    for i in range(40, 100):  # the tracker loses the eyes
        path.push(GazeSample(round(i * PERIOD_NS), GazeRay(np.zeros(3), direction(0, 0)), valid=False), None)
    assert path.on_select(InputEvent(round(100 * PERIOD_NS), EventKind.SELECT)) is None


def test_select_answers_with_the_newest_sample_when_no_fixation_forms() -> None:
    """10 Hz gaze sweeping 5 deg per sample never makes a fixation; a press still selects where it was."""
    path = GazePath(GazeOptions(dwell_ms=0), history_ns=10**10)
    for i in range(4):
        path.push(sample_at(i * 100 * MS, 0.0, 5.0 * i), None)
    trigger = path.on_select(InputEvent(320 * MS, EventKind.SELECT))
    assert trigger is not None and trigger.fixation.sample_timestamps_ns == (300 * MS,)


def test_a_long_fixation_keeps_its_start_and_bounded_samples() -> None:
    """A minute of still gaze at 120 Hz: one fixation from the first sample, holding at most max_samples."""
    detector = CentroidDetector(max_samples=240)
    for i in range(120 * 60):
        detector.push(sample_at(round(i * PERIOD_NS), 0.0, 0.0))
    current = detector.current()
    assert current is not None and current.start_ns == 0 and len(current.sample_timestamps_ns) == 240
    (done,) = detector.flush()
    assert done.start_ns == 0 and done.end_ns == round((120 * 60 - 1) * PERIOD_NS)
