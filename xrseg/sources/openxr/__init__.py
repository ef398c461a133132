"""Head pose and eye gaze from an OpenXR runtime (pyopenxr).

:class:`OpenXRSource` (``source.py``) runs the session; ``runtime.py`` loads the runtime, lists its extensions and
maps its errors; ``extensions.py`` picks the extensions; ``states.py`` is the session state machine; ``gaze.py``
reads the eye trackers; ``poses.py`` turns OpenXR poses into xrseg's records.
"""

from xrseg.sources.openxr.gaze import EYE_GAZE_POSE_PATH, EYE_GAZE_PROFILE
from xrseg.sources.openxr.runtime import (
    GazeMode,
    gaze_mode_for,
    no_runtime_message,
    query_eye_tracking_support,
    runtime_extensions,
)
from xrseg.sources.openxr.source import OpenXROptions, OpenXRSource

__all__ = [
    "EYE_GAZE_POSE_PATH",
    "EYE_GAZE_PROFILE",
    "GazeMode",
    "OpenXROptions",
    "OpenXRSource",
    "gaze_mode_for",
    "no_runtime_message",
    "query_eye_tracking_support",
    "runtime_extensions",
]
