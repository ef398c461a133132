"""The OpenXR source's pure parts on real pyopenxr structs: extensions, session states, poses, gaze, clocks."""

from __future__ import annotations

import ctypes
import math

import numpy as np
import pytest
import xr

from xrseg.errors import InputError, RuntimeUnavailableError
from xrseg.select.projection import project_gaze
from xrseg.sources.clock import ClockMapping, split_ns, xr_time_value
from xrseg.sources.openxr import GazeMode, gaze_mode_for
from xrseg.sources.openxr.extensions import (
    EYE_GAZE_EXT,
    FB_EYE_TRACKING_SOCIAL,
    KHR_CONVERT_TIMESPEC_TIME,
    KHR_OPENGL_ENABLE,
    KHR_WIN32_CONVERT_PERFORMANCE_COUNTER_TIME,
    MND_HEADLESS,
    Platform,
    select_extensions,
)
from xrseg.sources.openxr.poses import (
    gaze_sample_from_fb,
    gaze_sample_from_location,
    head_gaze_sample,
    head_transform_from_location,
    transform_from_posef,
)
from xrseg.sources.openxr.states import SessionAction, SessionStateMachine, SessionTimeouts
from xrseg.types import CameraModel

Flags = xr.SpaceLocationFlags
ALL_VALID = Flags.ORIENTATION_VALID_BIT | Flags.POSITION_VALID_BIT
ALL_TRACKED = ALL_VALID | Flags.ORIENTATION_TRACKED_BIT | Flags.POSITION_TRACKED_BIT


def yaw_pose(yaw_deg: float, position: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> xr.Posef:
    """A pose turned ``yaw_deg`` about +y (to the left for positive angles)."""
    half = math.radians(yaw_deg) / 2.0
    return xr.Posef(xr.Quaternionf(0.0, math.sin(half), 0.0, math.cos(half)), xr.Vector3f(*position))


# -- extension selection


def test_select_extensions_prefers_headless_with_time_conversion_on_linux() -> None:
    offered = [MND_HEADLESS, KHR_CONVERT_TIMESPEC_TIME, KHR_OPENGL_ENABLE, EYE_GAZE_EXT, "XR_EXT_debug_utils"]
    plan = select_extensions(offered, Platform.LINUX)
    assert plan.headless and plan.graphics_extension is None
    assert plan.enabled == (EYE_GAZE_EXT, MND_HEADLESS, KHR_CONVERT_TIMESPEC_TIME)
    assert plan.time_conversion == KHR_CONVERT_TIMESPEC_TIME
    assert plan.eye_gaze_ext and not plan.fb_eye_tracking


def test_select_extensions_windows_uses_the_performance_counter_extension() -> None:
    offered = [KHR_CONVERT_TIMESPEC_TIME, KHR_WIN32_CONVERT_PERFORMANCE_COUNTER_TIME, KHR_OPENGL_ENABLE]
    plan = select_extensions(offered, Platform.WINDOWS)
    assert plan.time_conversion == KHR_WIN32_CONVERT_PERFORMANCE_COUNTER_TIME
    assert plan.enabled == (KHR_WIN32_CONVERT_PERFORMANCE_COUNTER_TIME, KHR_OPENGL_ENABLE)


def test_headless_without_time_conversion_falls_back_to_opengl() -> None:
    plan = select_extensions([MND_HEADLESS, KHR_OPENGL_ENABLE, FB_EYE_TRACKING_SOCIAL], Platform.LINUX)
    assert not plan.headless
    assert plan.graphics_extension == KHR_OPENGL_ENABLE
    assert plan.enabled == (FB_EYE_TRACKING_SOCIAL, KHR_OPENGL_ENABLE)
    assert plan.time_conversion is None


def test_headless_can_be_refused() -> None:
    offered = [MND_HEADLESS, KHR_CONVERT_TIMESPEC_TIME, KHR_OPENGL_ENABLE]
    plan = select_extensions(offered, Platform.LINUX, allow_headless=False)
    assert not plan.headless and plan.enabled == (KHR_CONVERT_TIMESPEC_TIME, KHR_OPENGL_ENABLE)


def test_no_usable_session_mode_is_a_runtime_error() -> None:
    with pytest.raises(RuntimeUnavailableError, match="XR_KHR_opengl_enable"):
        select_extensions([EYE_GAZE_EXT, MND_HEADLESS], Platform.LINUX)


def test_gaze_mode_follows_system_properties_not_just_the_extension_list() -> None:
    plan = select_extensions([EYE_GAZE_EXT, FB_EYE_TRACKING_SOCIAL, KHR_OPENGL_ENABLE], Platform.LINUX)
    eye = xr.SystemEyeGazeInteractionPropertiesEXT(supports_eye_gaze_interaction=0)
    fb = xr.SystemEyeTrackingPropertiesFB(supports_eye_tracking=1)
    # Listed but unsupported (a known runtime behaviour): fall through to the next tracker, then to the head.
    assert gaze_mode_for(plan, bool(eye.supports_eye_gaze_interaction), bool(fb.supports_eye_tracking)) is (
        GazeMode.FB_EYE_TRACKING
    )
    assert gaze_mode_for(plan, True, True) is GazeMode.EYE_GAZE_EXT
    assert gaze_mode_for(plan, False, False) is GazeMode.HEAD


# -- the session state machine, driven by real pyopenxr events


def state_event(state: xr.SessionState) -> xr.EventDataSessionStateChanged:
    return xr.EventDataSessionStateChanged(state=state, time=1_000)


def as_buffer(event: ctypes.Structure) -> xr.EventDataBuffer:
    """Copy a typed event into an xr.EventDataBuffer, as xrPollEvent hands it over."""
    buffer = xr.EventDataBuffer()
    ctypes.memmove(ctypes.byref(buffer), ctypes.byref(event), ctypes.sizeof(event))
    return buffer


def test_full_lifecycle_begin_on_ready_end_on_stopping_exit_on_exiting() -> None:
    machine = SessionStateMachine(created_ns=0)
    assert machine.handle(state_event(xr.SessionState.IDLE)) == ()
    assert machine.handle(as_buffer(state_event(xr.SessionState.READY))) == (SessionAction.BEGIN_SESSION,)
    assert machine.running and not machine.sampling
    machine.handle(state_event(xr.SessionState.SYNCHRONIZED))
    assert machine.sampling and not machine.focused
    machine.handle(as_buffer(state_event(xr.SessionState.FOCUSED)))
    assert machine.focused
    assert machine.handle(state_event(xr.SessionState.VISIBLE)) == ()
    assert machine.handle(as_buffer(state_event(xr.SessionState.STOPPING))) == (SessionAction.END_SESSION,)
    assert not machine.running and not machine.sampling
    machine.handle(state_event(xr.SessionState.IDLE))
    assert machine.handle(as_buffer(state_event(xr.SessionState.EXITING))) == (SessionAction.EXIT_LOOP,)
    assert machine.exited and machine.error is None
    assert machine.handle(state_event(xr.SessionState.READY)) == ()  # nothing after exit


def test_ready_twice_begins_once() -> None:
    machine = SessionStateMachine(created_ns=0)
    assert machine.handle(state_event(xr.SessionState.READY)) == (SessionAction.BEGIN_SESSION,)
    assert machine.handle(state_event(xr.SessionState.READY)) == ()


def test_loss_pending_exits_without_ending_the_session() -> None:
    machine = SessionStateMachine(created_ns=0)
    machine.handle(state_event(xr.SessionState.READY))
    machine.handle(state_event(xr.SessionState.FOCUSED))
    assert machine.handle(as_buffer(state_event(xr.SessionState.LOSS_PENDING))) == (SessionAction.EXIT_LOOP,)
    assert not machine.running and "lost" in (machine.exit_reason or "")


def test_instance_loss_pending_exits() -> None:
    machine = SessionStateMachine(created_ns=0)
    machine.handle(state_event(xr.SessionState.READY))
    event = as_buffer(xr.EventDataInstanceLossPending(loss_time=5_000))
    assert machine.handle(event) == (SessionAction.EXIT_LOOP,)
    assert machine.exited


def test_events_lost_and_unknown_events_change_nothing() -> None:
    machine = SessionStateMachine(created_ns=0)
    assert machine.handle(as_buffer(xr.EventDataEventsLost(lost_event_count=3))) == ()
    assert machine.handle(as_buffer(xr.EventDataInteractionProfileChanged())) == ()
    assert machine.state == xr.SessionState.UNKNOWN and not machine.exited


def test_requested_exit_asks_the_runtime_once_and_never_hangs() -> None:
    timeouts = SessionTimeouts(ready_timeout_ns=10**12, exit_timeout_ns=2_000)
    machine = SessionStateMachine(created_ns=0, timeouts=timeouts)
    machine.handle(state_event(xr.SessionState.READY))
    machine.handle(state_event(xr.SessionState.FOCUSED))
    assert machine.request_exit(now_ns=1_000) == (SessionAction.REQUEST_EXIT,)
    assert machine.request_exit(now_ns=1_500) == ()
    assert machine.tick(now_ns=2_999) == ()
    # The runtime never answered with STOPPING: leave anyway once the exit deadline passes.
    assert machine.tick(now_ns=3_000) == (SessionAction.EXIT_LOOP,)
    assert machine.exited and not machine.running


def test_requested_exit_follows_the_runtime_when_it_answers() -> None:
    machine = SessionStateMachine(created_ns=0)
    machine.handle(state_event(xr.SessionState.READY))
    assert machine.request_exit(now_ns=10) == (SessionAction.REQUEST_EXIT,)
    assert machine.handle(state_event(xr.SessionState.STOPPING)) == (SessionAction.END_SESSION,)
    assert machine.handle(state_event(xr.SessionState.EXITING)) == (SessionAction.EXIT_LOOP,)


def test_requested_exit_before_the_session_runs_exits_at_once() -> None:
    machine = SessionStateMachine(created_ns=0)
    assert machine.request_exit(now_ns=5) == (SessionAction.EXIT_LOOP,)


def test_a_session_that_never_becomes_ready_times_out_with_an_error() -> None:
    machine = SessionStateMachine(created_ns=100, timeouts=SessionTimeouts(ready_timeout_ns=1_000))
    machine.handle(state_event(xr.SessionState.IDLE))
    assert machine.tick(now_ns=1_099) == ()
    assert machine.tick(now_ns=1_100) == (SessionAction.EXIT_LOOP,)
    assert machine.error is not None and "READY" in machine.error


# -- poses and gaze from real pyopenxr structs


def test_posef_to_transform_pins_a_known_rotation_and_translation() -> None:
    matrix = transform_from_posef(yaw_pose(90.0, (1.0, 2.0, 3.0)))
    expected_rotation = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]])
    np.testing.assert_allclose(matrix[:3, :3], expected_rotation, atol=1e-6)
    np.testing.assert_allclose(matrix[:3, 3], [1.0, 2.0, 3.0], atol=1e-6)
    assert matrix.dtype == np.float64 and matrix.shape == (4, 4)


def test_posef_with_unnormalised_quaternion_is_normalised_and_zero_is_refused() -> None:
    pose = xr.Posef(xr.Quaternionf(0.0, 0.0, 0.0, 2.0), xr.Vector3f(0.0, 0.0, 0.0))
    np.testing.assert_allclose(transform_from_posef(pose), np.eye(4), atol=1e-12)
    with pytest.raises(InputError):
        transform_from_posef(xr.Posef(xr.Quaternionf(0.0, 0.0, 0.0, 0.0), xr.Vector3f()))


def test_head_pose_needs_both_valid_bits() -> None:
    pose = yaw_pose(10.0, (0.1, 1.6, -0.2))
    valid = xr.SpaceLocation(location_flags=ALL_VALID, pose=pose)
    matrix = head_transform_from_location(valid)
    assert matrix is not None
    np.testing.assert_allclose(matrix[:3, 3], [0.1, 1.6, -0.2], atol=1e-6)
    orientation_only = xr.SpaceLocation(location_flags=Flags.ORIENTATION_VALID_BIT, pose=pose)
    assert head_transform_from_location(orientation_only) is None
    assert head_transform_from_location(xr.SpaceLocation(location_flags=Flags.NONE, pose=pose)) is None


def test_eye_gaze_ray_from_a_tracked_location() -> None:
    location = xr.SpaceLocation(location_flags=ALL_TRACKED, pose=yaw_pose(10.0, (0.0, 0.0, 0.01)))
    sample = gaze_sample_from_location(location, timestamp_ns=123)
    s, c = math.sin(math.radians(10.0)), math.cos(math.radians(10.0))
    np.testing.assert_allclose(sample.ray.direction, [-s, 0.0, -c], atol=1e-6)
    np.testing.assert_allclose(sample.ray.origin_m, [0.0, 0.0, 0.01], atol=1e-7)
    assert sample.usable and sample.timestamp_ns == 123


def test_eye_gaze_validity_bits() -> None:
    pose = yaw_pose(5.0)
    nominal_missing = xr.SpaceLocation(location_flags=ALL_VALID, pose=pose)  # valid, not tracked: sub-nominal
    sub = gaze_sample_from_location(nominal_missing, timestamp_ns=1)
    assert not sub.valid and sub.ray.is_finite
    nothing = gaze_sample_from_location(xr.SpaceLocation(location_flags=Flags.NONE, pose=pose), timestamp_ns=2)
    assert not nothing.usable and not nothing.ray.is_finite
    flags = Flags.ORIENTATION_VALID_BIT | Flags.ORIENTATION_TRACKED_BIT
    no_position = gaze_sample_from_location(
        xr.SpaceLocation(location_flags=flags, pose=yaw_pose(0.0, (5, 5, 5))), 3
    )
    assert no_position.usable
    np.testing.assert_allclose(no_position.ray.origin_m, [0.0, 0.0, 0.0])


def test_fb_eye_gazes_combine_into_a_cyclopean_ray() -> None:
    gazes = xr.EyeGazesFB()
    gazes.gaze[0] = xr.EyeGazeFB(is_valid=1, gaze_pose=yaw_pose(4.0, (-0.032, 0.0, 0.0)), gaze_confidence=0.9)
    gazes.gaze[1] = xr.EyeGazeFB(is_valid=1, gaze_pose=yaw_pose(-4.0, (0.032, 0.0, 0.0)), gaze_confidence=0.9)
    sample = gaze_sample_from_fb(gazes, timestamp_ns=50)
    np.testing.assert_allclose(sample.ray.direction, [0.0, 0.0, -1.0], atol=1e-6)  # converging eyes look ahead
    np.testing.assert_allclose(sample.ray.origin_m, [0.0, 0.0, 0.0], atol=1e-7)
    assert sample.usable and sample.left is not None and sample.right is not None
    gazes.gaze[1] = xr.EyeGazeFB(is_valid=0)
    one_eye = gaze_sample_from_fb(gazes, timestamp_ns=51)
    assert one_eye.right is None
    np.testing.assert_allclose(one_eye.ray.origin_m, [-0.032, 0.0, 0.0], atol=1e-7)
    gazes.gaze[0] = xr.EyeGazeFB(is_valid=0)
    assert not gaze_sample_from_fb(gazes, timestamp_ns=52).usable


def test_eye_gaze_and_head_gaze_samples_both_make_a_prompt() -> None:
    camera = CameraModel(640, 480, 457.0073621574767, 457.0073621574767, 319.5, 239.5, (-0.04, 0.01, 0.0, 0.0))
    head_from_camera = np.array(
        [[1, 0, 0, 0], [0, -1, 0, 0.03], [0, 0, -1, -0.06], [0, 0, 0, 1]], dtype=np.float64
    )
    world_from_head = np.eye(4)
    head = head_gaze_sample(timestamp_ns=7)
    hit = project_gaze(head.ray, world_from_head, world_from_head @ head_from_camera, camera, fallback_depth_m=1.0)
    # 1 m ahead of the eye, seen from a camera 3 cm higher and 6 cm further forward: 457 * 0.03 / 0.94 px below.
    assert hit.pixel_xy is not None
    assert hit.pixel_xy[0] == pytest.approx(319.5, abs=1e-6)
    assert hit.pixel_xy[1] == pytest.approx(239.5 + 457.0073621574767 * 0.03 / 0.94, abs=0.02)
    eye = gaze_sample_from_location(xr.SpaceLocation(location_flags=ALL_TRACKED, pose=yaw_pose(10.0)), 8)
    eye_hit = project_gaze(eye.ray, world_from_head, world_from_head @ head_from_camera, camera)
    assert eye_hit.pixel_xy is not None and eye_hit.pixel_xy[0] < 319.5 - 50  # looking left lands left


# -- clocks --------------------------------------------------------------------------------------------------


def test_clock_mapping_converts_real_xr_time_values_both_ways() -> None:
    mapping = ClockMapping(offset_ns=5_000_000_000)
    assert mapping.to_host_ns(xr.Time(12_000_000_123)) == 7_000_000_123
    assert mapping.to_xr_time(7_000_000_123) == 12_000_000_123
    assert xr_time_value(xr.Time(-4)) == -4
    with pytest.raises(InputError):
        xr_time_value(1.5)  # type: ignore[arg-type]


def test_clock_mapping_from_pairs_takes_the_median_offset() -> None:
    pairs = [(1_000, xr.Time(11_000)), (2_000, xr.Time(12_010)), (3_000, xr.Time(12_990)), (4_000, 14_500)]
    mapping = ClockMapping.from_pairs(pairs)
    assert mapping.offset_ns == 10_000  # offsets 10000, 10010, 9990, 10500 -> lower median
    assert mapping.spread_ns == 510
    with pytest.raises(InputError):
        ClockMapping.from_pairs([])


def test_clock_mapping_estimate_calls_the_sampler() -> None:
    host = iter(range(0, 900, 100))
    mapping = ClockMapping.estimate(lambda: (h := next(host), xr.Time(h + 42)), count=9)
    assert mapping.offset_ns == 42 and mapping.spread_ns == 0 and mapping.exact


def test_split_ns_gives_a_timespec() -> None:
    assert split_ns(3_000_000_007) == (3, 7)
    seconds, nanoseconds = split_ns(12_345_678_901)
    timespec = xr.timespec(seconds, nanoseconds)
    assert (timespec.tv_sec, timespec.tv_nsec) == (12, 345_678_901)
