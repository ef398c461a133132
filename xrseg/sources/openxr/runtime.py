"""The OpenXR runtime around a session: loading it, listing its extensions, mapping its errors, asking the system
about eye trackers and mapping the host clock to XrTime."""

from __future__ import annotations

import ctypes
import enum
import logging
import os
from collections.abc import Callable
from typing import Any

import xr

from xrseg.errors import DeviceError, RuntimeUnavailableError
from xrseg.sources.clock import ClockMapping, now_ns, split_ns, xr_time_value
from xrseg.sources.openxr.extensions import ExtensionPlan, Platform

logger = logging.getLogger(__name__)

__all__ = [
    "GazeMode",
    "call",
    "estimate_clock",
    "gaze_mode_for",
    "map_xr_error",
    "no_runtime_message",
    "query_eye_tracking_support",
    "runtime_extensions",
]


class GazeMode(enum.Enum):
    EYE_GAZE_EXT = "XR_EXT_eye_gaze_interaction"
    FB_EYE_TRACKING = "XR_FB_eye_tracking_social"
    HEAD = "head"
    """No eye tracker: the head's forward ray."""


def no_runtime_message() -> str:
    """The one line a user sees when no OpenXR runtime can be loaded."""
    manifest = os.environ.get("XR_RUNTIME_JSON")
    where = (
        f"XR_RUNTIME_JSON={manifest} could not be loaded"
        if manifest
        else "XR_RUNTIME_JSON is unset and no active runtime is registered"
    )
    return (
        f"no OpenXR runtime is installed or running ({where}); start Monado, SteamVR or the Meta/Varjo runtime, "
        "or point XR_RUNTIME_JSON at a runtime manifest (XR_LOADER_DEBUG=all shows the loader's search)"
    )


def _quiet_loader() -> None:
    """The OpenXR loader prints its search to stderr; keep it quiet unless the user asked for it."""
    os.environ.setdefault("XR_LOADER_DEBUG", "none")


def map_xr_error(err: xr.XrException, what: str) -> Exception:
    """The named :mod:`xrseg.errors` exception for a pyopenxr one raised by ``what`` (an OpenXR function name)."""
    name = type(err).__name__
    if isinstance(err, xr.RuntimeUnavailableError):
        return RuntimeUnavailableError(no_runtime_message())
    if isinstance(err, xr.FormFactorUnavailableError):
        return DeviceError(f"{what}: no headset is connected to the OpenXR runtime (or it is asleep)")
    if isinstance(err, xr.InstanceLostError):
        return DeviceError(f"{what}: the OpenXR runtime stopped or crashed; restart it and xrseg ({name})")
    if isinstance(err, xr.SessionLostError):
        return DeviceError(f"{what}: the OpenXR runtime lost the headset (disconnected or asleep) ({name})")
    if isinstance(err, xr.RuntimeFailureError) and what == "xrCreateInstance":
        return RuntimeUnavailableError(f"the OpenXR runtime failed to start ({err})")
    if isinstance(err, xr.RuntimeFailureError):
        return DeviceError(f"{what}: the OpenXR runtime failed (stopped or crashed?): {name}: {err}")
    return DeviceError(f"{what} failed: {name}: {err}")


def call(what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Call a pyopenxr function, turning its exceptions into xrseg's named ones (chained)."""
    try:
        return fn(*args, **kwargs)
    except xr.XrException as err:
        raise map_xr_error(err, what) from err


def runtime_extensions() -> list[str]:
    """Names of the instance extensions the active runtime offers.

    Raises :class:`RuntimeUnavailableError` (from pyopenxr's ``xr.RuntimeUnavailableError``) when no runtime is
    installed or running. Cheap: this is the check to run before opening anything else.
    """
    _quiet_loader()
    try:
        properties = xr.enumerate_instance_extension_properties()
    except xr.RuntimeUnavailableError as err:
        raise RuntimeUnavailableError(no_runtime_message()) from err
    except xr.XrException as err:
        raise RuntimeUnavailableError(f"the OpenXR loader failed: {type(err).__name__}: {err}") from err
    except OSError as err:  # the loader library itself could not be loaded
        raise RuntimeUnavailableError(f"the OpenXR loader could not be loaded: {err}") from err
    return [bytes(p.extension_name).decode("utf-8", "replace") for p in properties]


def gaze_mode_for(plan: ExtensionPlan, eye_gaze_supported: bool, fb_supported: bool) -> GazeMode:
    """Pick the gaze source from the enabled extensions and what the system properties report."""
    if plan.eye_gaze_ext and eye_gaze_supported:
        return GazeMode.EYE_GAZE_EXT
    if plan.fb_eye_tracking and fb_supported:
        return GazeMode.FB_EYE_TRACKING
    return GazeMode.HEAD


def query_eye_tracking_support(instance: xr.Instance, system_id: int, plan: ExtensionPlan) -> tuple[bool, bool]:
    """(eye_gaze_interaction supported, FB eye tracking supported) through xrGetSystemProperties' next chain."""
    eye_gaze = xr.SystemEyeGazeInteractionPropertiesEXT()
    fb = xr.SystemEyeTrackingPropertiesFB()
    chain: list[ctypes.Structure] = []
    if plan.eye_gaze_ext:
        chain.append(eye_gaze)
    if plan.fb_eye_tracking:
        chain.append(fb)
    properties = xr.SystemProperties()
    previous: ctypes.Structure = properties
    for struct in chain:
        previous.next = ctypes.cast(ctypes.pointer(struct), ctypes.c_void_p)
        previous = struct
    result = xr.check_result(
        xr.Result(xr.raw_functions.xrGetSystemProperties(instance, system_id, ctypes.byref(properties)))
    )
    if result.is_exception():
        raise map_xr_error(result, "xrGetSystemProperties") from result
    name = bytes(properties.system_name).decode("utf-8", "replace")
    logger.info("OpenXR system: %s (vendor 0x%x)", name, int(properties.vendor_id))
    return bool(eye_gaze.supports_eye_gaze_interaction), bool(fb.supports_eye_tracking)


def estimate_clock(instance: xr.Instance, plan: ExtensionPlan) -> ClockMapping | None:
    """The host clock to XrTime mapping through the plan's convert-time extension, or None without one."""
    if plan.time_conversion is None:
        logger.warning("no convert-time extension: poses are stamped from predicted display times (approximate)")
        return None
    if Platform.current() is Platform.WINDOWS:
        return ClockMapping.estimate(lambda: _sample_clock_windows(instance))
    return ClockMapping.estimate(lambda: _sample_clock_timespec(instance))


def _sample_clock_timespec(instance: xr.Instance) -> tuple[int, int]:
    host = now_ns()
    seconds, nanoseconds = split_ns(host)
    xr_time = call(
        "xrConvertTimespecTimeToTimeKHR",
        xr.convert_timespec_time_to_time_khr,
        instance,
        xr.timespec(seconds, nanoseconds),
    )
    return host, xr_time_value(xr_time)


def _sample_clock_windows(instance: xr.Instance) -> tuple[int, int]:  # pragma: no cover - Windows only
    counter = ctypes.c_int64()
    frequency = ctypes.c_int64()
    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    kernel32.QueryPerformanceFrequency(ctypes.byref(frequency))
    kernel32.QueryPerformanceCounter(ctypes.byref(counter))
    host = counter.value * 1_000_000_000 // frequency.value
    convert = xr.convert_win32_performance_counter_to_time_khr
    xr_time = call("xrConvertWin32PerformanceCounterToTimeKHR", convert, instance, counter)
    return host, xr_time_value(xr_time)
