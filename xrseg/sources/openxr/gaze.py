"""Eye gaze through OpenXR: the XR_EXT_eye_gaze_interaction pose action and the XR_FB eye tracker, each read into
a :class:`~xrseg.types.GazeSample` in the head (VIEW) frame, stamped on the host clock."""

from __future__ import annotations

import contextlib
import ctypes
from dataclasses import dataclass
from typing import Any

import xr

from xrseg.sources.clock import ClockMapping, xr_time_value
from xrseg.sources.openxr.poses import gaze_sample_from_fb, gaze_sample_from_location
from xrseg.sources.openxr.runtime import call, map_xr_error
from xrseg.types import GazeSample

__all__ = [
    "EYE_GAZE_POSE_PATH",
    "EYE_GAZE_PROFILE",
    "GazeAction",
    "attach_gaze_action",
    "create_gaze_action",
    "read_eye_gaze_ext",
    "read_fb_eye_gaze",
]

EYE_GAZE_PROFILE = "/interaction_profiles/ext/eye_gaze_interaction"
EYE_GAZE_POSE_PATH = "/user/eyes_ext/input/gaze_ext/pose"


@dataclass(frozen=True)
class GazeAction:
    """The eye-gaze pose action (pyopenxr handles) and the action set it belongs to."""

    action_set: Any
    action: Any


def create_gaze_action(instance: xr.Instance, exit_stack: contextlib.ExitStack) -> GazeAction:
    """Create the eye-gaze pose action and suggest its binding (before the session); ``exit_stack`` destroys it."""
    action_set = call(
        "xrCreateActionSet",
        xr.create_action_set,
        instance,
        xr.ActionSetCreateInfo(action_set_name="xrseg_gaze", localized_action_set_name="xrseg gaze", priority=0),
    )
    exit_stack.callback(xr.destroy_action_set, action_set)
    action = call(
        "xrCreateAction",
        xr.create_action,
        action_set,
        xr.ActionCreateInfo(
            action_type=xr.ActionType.POSE_INPUT, action_name="eye_gaze", localized_action_name="Eye gaze"
        ),
    )
    binding = xr.ActionSuggestedBinding(
        action=action,
        binding=call("xrStringToPath", xr.string_to_path, instance, EYE_GAZE_POSE_PATH),
    )
    call(
        "xrSuggestInteractionProfileBindings",
        xr.suggest_interaction_profile_bindings,
        instance,
        xr.InteractionProfileSuggestedBinding(
            interaction_profile=call("xrStringToPath", xr.string_to_path, instance, EYE_GAZE_PROFILE),
            suggested_bindings=[binding],
        ),
    )
    return GazeAction(action_set, action)


def attach_gaze_action(session: xr.Session, gaze: GazeAction, exit_stack: contextlib.ExitStack) -> Any:
    """Attach the action set to the session; return the gaze pose's action space (``exit_stack`` destroys it)."""
    call(
        "xrAttachSessionActionSets",
        xr.attach_session_action_sets,
        session,
        xr.SessionActionSetsAttachInfo(action_sets=[gaze.action_set]),
    )
    space = call(
        "xrCreateActionSpace",
        xr.create_action_space,
        session,
        xr.ActionSpaceCreateInfo(action=gaze.action, pose_in_action_space=xr.Posef()),
    )
    exit_stack.callback(xr.destroy_space, space)
    return space


def read_eye_gaze_ext(
    session: xr.Session, gaze: GazeAction, gaze_space: Any, view_space: Any, xr_time: int, clock: ClockMapping
) -> GazeSample | None:
    """The eye-gaze pose at ``xr_time`` in the VIEW space, stamped with its own sample time when the runtime gives
    one; None while the session is not focused or the action is inactive."""
    try:
        xr.sync_actions(
            session,
            xr.ActionsSyncInfo(
                active_action_sets=[xr.ActiveActionSet(action_set=gaze.action_set, subaction_path=xr.NULL_PATH)]
            ),
        )
    except xr.SessionNotFocused:
        return None
    except xr.XrException as err:
        raise map_xr_error(err, "xrSyncActions") from err
    state = call(
        "xrGetActionStatePose",
        xr.get_action_state_pose,
        session,
        xr.ActionStateGetInfo(action=gaze.action),
    )
    if not state.is_active:
        return None
    sample_time = xr.EyeGazeSampleTimeEXT()
    location = xr.SpaceLocation(next=ctypes.cast(ctypes.pointer(sample_time), ctypes.c_void_p))
    result = xr.check_result(
        xr.Result(xr.raw_functions.xrLocateSpace(gaze_space, view_space, xr_time, ctypes.byref(location)))
    )
    if result.is_exception():
        raise map_xr_error(result, "xrLocateSpace(eye gaze)") from result
    sample_xr_time = xr_time_value(sample_time.time) or xr_time
    return gaze_sample_from_location(location, clock.to_host_ns(sample_xr_time))


def read_fb_eye_gaze(tracker: Any, view_space: Any, xr_time: int, clock: ClockMapping) -> GazeSample:
    """The XR_FB eye tracker's combined gaze at ``xr_time`` in the VIEW space, stamped with its own time."""
    gazes = call(
        "xrGetEyeGazesFB",
        xr.get_eye_gazes_fb,
        tracker,
        xr.EyeGazesInfoFB(base_space=view_space, time=xr_time),
    )
    sample_xr_time = xr_time_value(gazes.time) or xr_time
    return gaze_sample_from_fb(gazes, clock.to_host_ns(sample_xr_time))
