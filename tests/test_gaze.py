"""Tests for xrseg.select.fixations on synthetic gaze streams with known fixations."""

from __future__ import annotations

import itertools
import logging
import math
from dataclasses import dataclass

import numpy as np
import pytest

from xrseg.errors import InputError
from xrseg.geometry import angle_between_deg
from xrseg.select.filters import OneEuroFilter
from xrseg.select.fixations import FixationDetector, IDTDetector, IVTDetector, dispersion_deg
from xrseg.select.triggers import DwellTrigger, GazeHistory, Trigger
from xrseg.types import Fixation, GazeRay, GazeSample

RATE_HZ = 120
PERIOD_NS = 1_000_000_000 / RATE_HZ
MS = 1_000_000


def direction(yaw_deg: float, pitch_deg: float) -> np.ndarray:
    """Head-frame unit direction (OpenXR: -z forward) turned right by yaw and up by pitch."""
    y, p = math.radians(yaw_deg), math.radians(pitch_deg)
    return np.array([math.sin(y) * math.cos(p), math.sin(p), -math.cos(y) * math.cos(p)])


def sample(index: int, yaw_deg: float, pitch_deg: float, valid: bool = True) -> GazeSample:
    return GazeSample(round(index * PERIOD_NS), GazeRay(np.zeros(3), direction(yaw_deg, pitch_deg)), valid=valid)


@dataclass
class Stream:
    samples: list[GazeSample]
    truth_ns: list[tuple[int, int]]
    """(start_ns, end_ns) of each fixation: its first and last sample."""


def three_fixations(noise_deg: float = 0.05, seed: int = 0) -> Stream:
    """Fixations of 36 samples (300 ms at 120 Hz) at (0, 0), (10, 0), (10, 5) degrees, 300 deg/s saccades."""
    rng = np.random.default_rng(seed)
    targets = [(0.0, 0.0), (10.0, 0.0), (10.0, 5.0)]
    samples: list[GazeSample] = []
    truth: list[tuple[int, int]] = []
    index = 0
    for k, (yaw, pitch) in enumerate(targets):
        if k > 0:
            prev_yaw, prev_pitch = targets[k - 1]
            steps = math.ceil(math.hypot(yaw - prev_yaw, pitch - prev_pitch) / 300.0 * RATE_HZ)
            for j in range(1, steps):
                f = j / steps
                samples.append(
                    sample(index, prev_yaw + f * (yaw - prev_yaw), prev_pitch + f * (pitch - prev_pitch))
                )
                index += 1
        start = index
        for _ in range(36):
            noise = rng.normal(0.0, noise_deg, 2)
            samples.append(sample(index, yaw + noise[0], pitch + noise[1]))
            index += 1
        truth.append((round(start * PERIOD_NS), round((index - 1) * PERIOD_NS)))
    return Stream(samples, truth)


def run(detector: FixationDetector, samples: list[GazeSample]) -> list[Fixation]:
    found: list[Fixation] = []
    for s in samples:
        found.extend(detector.push(s))
    found.extend(detector.flush())
    return found


def assert_matches(found: list[Fixation], truth: list[tuple[int, int]]) -> None:
    assert len(found) == len(truth)
    for fixation, (start_ns, end_ns) in zip(found, truth, strict=True):
        assert abs(fixation.start_ns - start_ns) <= PERIOD_NS + 1
        assert abs(fixation.end_ns - end_ns) <= PERIOD_NS + 1
        assert list(fixation.sample_timestamps_ns) == sorted(fixation.sample_timestamps_ns)
        assert fixation.sample_timestamps_ns[0] == fixation.start_ns
        assert fixation.sample_timestamps_ns[-1] == fixation.end_ns


# --------------------------------------------------------------------------------------------------------------
# One Euro filter


def test_one_euro_first_sample_passes_and_constant_input_stays() -> None:
    f = OneEuroFilter()
    d = direction(3.0, -2.0)
    np.testing.assert_allclose(f.filter(0, d), d)
    for i in range(1, 10):
        np.testing.assert_allclose(f.filter(round(i * PERIOD_NS), d), d, atol=1e-12)


def test_one_euro_with_beta_zero_is_a_known_low_pass_step() -> None:
    # beta = 0: a fixed 1 Hz low pass, alpha = 1 / (1 + tau / dt) with tau = 1 / (2 pi), dt = 1/120 s.
    f = OneEuroFilter(min_cutoff_hz=1.0, beta=0.0)
    a, b = direction(0.0, 0.0), direction(10.0, 0.0)
    f.filter(0, a)
    out = f.filter(round(PERIOD_NS), b)
    alpha = 1.0 / (1.0 + 120.0 / (2.0 * math.pi))
    assert alpha == pytest.approx(0.0497553, abs=1e-6)
    expected = alpha * b + (1 - alpha) * a
    np.testing.assert_allclose(out, expected / np.linalg.norm(expected), atol=1e-12)


def test_one_euro_converges_on_a_step() -> None:
    f = OneEuroFilter()
    target = direction(10.0, 0.0)
    f.filter(0, direction(0.0, 0.0))
    errors = []
    for i in range(1, RATE_HZ + 1):  # one second after a 10 degree step
        errors.append(float(angle_between_deg(f.filter(round(i * PERIOD_NS), target), target)))
    assert all(later <= earlier + 1e-12 for earlier, later in itertools.pairwise(errors))
    # The step's speed (1200 deg/s over the first frame) opens the cutoff: the filter catches up in ~100 ms.
    assert 0.0 < errors[0] < 10.0
    assert errors[12] < 0.01  # 100 ms after the step
    assert errors[-1] < 1e-6


def test_one_euro_reduces_fixation_jitter() -> None:
    rng = np.random.default_rng(1)
    f = OneEuroFilter()
    raw_err, filtered_err = [], []
    centre = direction(5.0, 5.0)
    for i in range(240):
        noisy = direction(5.0 + rng.normal(0, 0.3), 5.0 + rng.normal(0, 0.3))
        out = f.filter(round(i * PERIOD_NS), noisy)
        if i >= 60:
            raw_err.append(float(angle_between_deg(noisy, centre)))
            filtered_err.append(float(angle_between_deg(out, centre)))
    assert np.sqrt(np.mean(np.square(filtered_err))) < 0.5 * np.sqrt(np.mean(np.square(raw_err)))


def test_one_euro_invalid_input() -> None:
    f = OneEuroFilter()
    with pytest.raises(InputError):
        f.filter(0, [math.nan, 0.0, -1.0])
    with pytest.raises(InputError):
        OneEuroFilter(min_cutoff_hz=0.0)
    bad = GazeSample(5, GazeRay(np.zeros(3), np.array([math.nan, 0.0, -1.0])))
    assert f.filter_sample(bad) is bad
    good = sample(0, 1.0, 0.0)
    np.testing.assert_allclose(f.filter_sample(good).ray.direction, good.ray.direction)


def test_one_euro_resets_after_a_gap() -> None:
    f = OneEuroFilter(reset_after_ns=100 * MS)
    f.filter(0, direction(0.0, 0.0))
    after_gap = f.filter(200 * MS, direction(20.0, 0.0))
    np.testing.assert_allclose(after_gap, direction(20.0, 0.0), atol=1e-12)


# --------------------------------------------------------------------------------------------------------------
# Fixation detection


def test_dispersion_known_value() -> None:
    dirs = [direction(0.5, 0.0), direction(-0.5, 0.0), direction(0.0, 0.25), direction(0.0, -0.25)]
    assert dispersion_deg(dirs) == pytest.approx(1.5, abs=1e-9)
    assert dispersion_deg([direction(0.0, 0.0)]) == 0.0


@pytest.mark.parametrize("make", [IVTDetector, IDTDetector], ids=["ivt", "idt"])
def test_three_fixations_found_within_one_sample(make: type) -> None:
    stream = three_fixations()
    found = run(make(), stream.samples)
    assert_matches(found, stream.truth_ns)
    for fixation, target in zip(found, [(0.0, 0.0), (10.0, 0.0), (10.0, 5.0)], strict=True):
        assert float(angle_between_deg(fixation.direction, direction(*target))) < 0.05
        assert fixation.dispersion_deg < 0.6


@pytest.mark.parametrize("make", [IVTDetector, IDTDetector], ids=["ivt", "idt"])
def test_short_nan_gap_is_bridged_and_long_gap_splits(make: type) -> None:
    stream = three_fixations()
    # 5 NaN samples (42 ms) in the first fixation: bridged, still three fixations with the same bounds.
    bridged = [
        GazeSample(s.timestamp_ns, GazeRay(np.zeros(3), np.array([math.nan] * 3))) if 10 <= i < 15 else s
        for i, s in enumerate(stream.samples)
    ]
    assert_matches(run(make(), bridged), stream.truth_ns)
    # A 500 ms fixation with a 100 ms blink (samples 20-31 invalid): split in two, not merged across the gap.
    blinked = [sample(i, 0.0, 0.0, valid=not 20 <= i < 32) for i in range(60)]
    found = run(make(), blinked)
    assert [(f.start_ns, f.end_ns) for f in found] == [
        (0, round(19 * PERIOD_NS)),
        (round(32 * PERIOD_NS), round(59 * PERIOD_NS)),
    ]
    # The same with a 42 ms dropout (samples 20-24): bridged into one fixation.
    dropped = [sample(i, 0.0, 0.0, valid=not 20 <= i < 25) for i in range(60)]
    assert [(f.start_ns, f.end_ns) for f in run(make(), dropped)] == [(0, round(59 * PERIOD_NS))]


def test_ivt_merges_across_a_single_sample_glitch() -> None:
    samples = [sample(i, 0.0, 0.0) if i != 20 else sample(i, 2.0, 0.0) for i in range(48)]
    found = run(IVTDetector(), samples)
    assert len(found) == 1
    assert found[0].start_ns == 0 and found[0].end_ns == round(47 * PERIOD_NS)
    assert round(20 * PERIOD_NS) not in found[0].sample_timestamps_ns


def test_ivt_does_not_merge_distinct_targets() -> None:
    # Two 200 ms fixations 1 degree apart with a 2-sample saccade: beyond merge_max_angle_deg (0.5).
    samples = [sample(i, 0.0 if i < 24 else 1.0, 0.0) for i in range(48)]
    assert len(run(IVTDetector(), samples)) == 2


def test_ivt_discards_short_fixations() -> None:
    # 60 ms of stable gaze between saccades: shorter than min_fixation_ns (100 ms).
    samples = [sample(i, 2.5 * i, 0.0) for i in range(10)]
    samples += [sample(i, 25.0, 0.0) for i in range(10, 18)]
    samples += [sample(i, 25.0 + 2.5 * (i - 17), 0.0) for i in range(18, 28)]
    assert run(IVTDetector(), samples) == []


def test_current_fixation_grows_and_is_none_in_a_saccade() -> None:
    stream = three_fixations()
    detector = IVTDetector()
    durations: list[int | None] = []
    for s in stream.samples[:40]:
        detector.push(s)
        current = detector.current()
        durations.append(None if current is None else current.duration_ns)
    assert durations[20] is not None and durations[30] is not None and durations[30] > durations[20]
    assert durations[-1] is None  # saccade samples 36-39
    assert detector.last_ended() is not None


def test_out_of_order_samples_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    detector = IVTDetector()
    detector.push(sample(10, 0.0, 0.0))
    with caplog.at_level(logging.WARNING, logger="xrseg.select.fixations"):
        assert detector.push(sample(5, 0.0, 0.0)) == []
    assert "not after the previous" in caplog.text


# --------------------------------------------------------------------------------------------------------------
# Triggers and history


def test_dwell_fires_once_per_fixation() -> None:
    stream = three_fixations()
    detector = IVTDetector()
    dwell = DwellTrigger(dwell_ns=200 * MS)
    triggers: list[Trigger] = []
    for s in stream.samples:
        detector.push(s)
        trigger = dwell.update(detector.current())
        if trigger is not None:
            triggers.append(trigger)
    assert len(triggers) == 3
    for trigger, (start_ns, _) in zip(triggers, stream.truth_ns, strict=True):
        assert trigger.reason == "dwell"
        assert start_ns + 200 * MS <= trigger.timestamp_ns <= start_ns + 200 * MS + 2 * PERIOD_NS + 1
        assert trigger.fixation.duration_ns >= 200 * MS


def test_dwell_longer_than_the_fixations_never_fires() -> None:
    detector = IVTDetector()
    dwell = DwellTrigger(dwell_ns=400 * MS)
    fired = 0
    for s in three_fixations().samples:
        detector.push(s)
        fired += dwell.update(detector.current()) is not None
    assert fired == 0


def test_gaze_history_returns_a_fixations_samples() -> None:
    stream = three_fixations()
    history = GazeHistory(max_age_ns=10**9)
    detector = IVTDetector()
    for s in stream.samples:
        history.push(s)
        detector.push(s)
    fixation = detector.flush()[-1]
    samples = history.samples_for(fixation)
    assert [s.timestamp_ns for s in samples] == list(fixation.sample_timestamps_ns)
