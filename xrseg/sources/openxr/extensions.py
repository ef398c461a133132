"""Which OpenXR instance extensions xrseg enables, decided from what the runtime offers (a pure function).

xrseg wants, in order of preference:

- an eye tracker: ``XR_EXT_eye_gaze_interaction`` (cross-vendor, the gaze pose through the action system) and
  ``XR_FB_eye_tracking_social`` (Meta's per-eye gazes, the Quest Pro path over Link); either or both;
- no rendering: ``XR_MND_headless`` (a session without a graphics binding), usable only together with a
  convert-time extension, because a headless session gets no display times from ``xrWaitFrame`` to locate
  spaces at;
- the host clock in XrTime: ``XR_KHR_convert_timespec_time`` on Linux,
  ``XR_KHR_win32_convert_performance_counter_time`` on Windows;
- otherwise a graphics binding: ``XR_KHR_opengl_enable`` (a hidden GLFW OpenGL context; frames are submitted
  with no layers).
"""

from __future__ import annotations

import enum
import sys
from collections.abc import Iterable
from dataclasses import dataclass

from xrseg.errors import RuntimeUnavailableError

EYE_GAZE_EXT = "XR_EXT_eye_gaze_interaction"
FB_EYE_TRACKING_SOCIAL = "XR_FB_eye_tracking_social"
MND_HEADLESS = "XR_MND_headless"
KHR_CONVERT_TIMESPEC_TIME = "XR_KHR_convert_timespec_time"
KHR_WIN32_CONVERT_PERFORMANCE_COUNTER_TIME = "XR_KHR_win32_convert_performance_counter_time"
KHR_OPENGL_ENABLE = "XR_KHR_opengl_enable"


class Platform(enum.Enum):
    LINUX = "linux"
    WINDOWS = "windows"

    @classmethod
    def current(cls) -> Platform:
        return cls.WINDOWS if sys.platform == "win32" else cls.LINUX

    @property
    def time_conversion_extension(self) -> str:
        if self is Platform.WINDOWS:
            return KHR_WIN32_CONVERT_PERFORMANCE_COUNTER_TIME
        return KHR_CONVERT_TIMESPEC_TIME


@dataclass(frozen=True)
class ExtensionPlan:
    """The extensions to enable and what they make possible.

    ``enabled`` is the list to pass to ``xrCreateInstance`` (in a stable order). ``headless`` is True when the
    session is created without a graphics binding; ``graphics_extension`` names the binding extension otherwise.
    """

    enabled: tuple[str, ...]
    eye_gaze_ext: bool
    fb_eye_tracking: bool
    headless: bool
    time_conversion: str | None
    graphics_extension: str | None

    @property
    def has_eye_tracker_extension(self) -> bool:
        return self.eye_gaze_ext or self.fb_eye_tracking


def select_extensions(
    available: Iterable[str], platform: Platform | None = None, allow_headless: bool = True
) -> ExtensionPlan:
    """Choose the instance extensions from the names the runtime lists.

    Raises :class:`RuntimeUnavailableError` when the runtime offers neither a usable headless mode (headless
    plus a convert-time extension) nor ``XR_KHR_opengl_enable``.
    """
    names = set(available)
    platform = platform or Platform.current()
    time_ext = platform.time_conversion_extension if platform.time_conversion_extension in names else None
    eye_gaze = EYE_GAZE_EXT in names
    fb_eyes = FB_EYE_TRACKING_SOCIAL in names
    headless = allow_headless and MND_HEADLESS in names and time_ext is not None
    graphics: str | None = None
    if not headless:
        if KHR_OPENGL_ENABLE not in names:
            missing = "XR_MND_headless with a convert-time extension, nor XR_KHR_opengl_enable"
            raise RuntimeUnavailableError(
                f"the OpenXR runtime offers neither {missing}; xrseg cannot start a session"
            )
        graphics = KHR_OPENGL_ENABLE
    enabled = [
        name
        for name, wanted in (
            (EYE_GAZE_EXT, eye_gaze),
            (FB_EYE_TRACKING_SOCIAL, fb_eyes),
            (MND_HEADLESS, headless),
            (time_ext, time_ext is not None),
            (graphics, graphics is not None),
        )
        if wanted and name is not None
    ]
    return ExtensionPlan(
        enabled=tuple(enabled),
        eye_gaze_ext=eye_gaze,
        fb_eye_tracking=fb_eyes,
        headless=headless,
        time_conversion=time_ext,
        graphics_extension=graphics,
    )
