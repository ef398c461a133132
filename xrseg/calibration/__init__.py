"""Device calibration: the profile format (``profile.py``, calibration/README.md), camera intrinsics from
checkerboard images (``camera.py``), and the gaze-to-camera angular offset from fixations on known targets
(``gaze.py``).

A profile says what a headset + camera rig is: the camera model, where the camera sits on the head
(``head_from_camera``, OpenXR head frame <- OpenCV camera frame), the camera's clock offset and an optional
rotation that corrects the eye tracker's gaze direction in the head frame.
"""

from xrseg.calibration.camera import (
    CameraCalibrationResult,
    board_points_m,
    calibrate_camera_images,
    find_checkerboard,
)
from xrseg.calibration.gaze import (
    GazeObservation,
    GazeRotationFit,
    GazeTarget,
    gaze_observations,
    load_gaze_targets,
    solve_gaze_rotation,
)
from xrseg.calibration.profile import (
    HEAD_FROM_CAMERA_FORWARD,
    MAX_CALIBRATION_BYTES,
    SCHEMA,
    DeviceCalibration,
    apply_gaze_correction,
    calibration_from_json,
    calibration_to_json,
    check_fits,
    load_calibration,
    profile_text,
    save_calibration,
    uncalibrated_profile,
)

__all__ = [
    "HEAD_FROM_CAMERA_FORWARD",
    "MAX_CALIBRATION_BYTES",
    "SCHEMA",
    "CameraCalibrationResult",
    "DeviceCalibration",
    "GazeObservation",
    "GazeRotationFit",
    "GazeTarget",
    "apply_gaze_correction",
    "board_points_m",
    "calibrate_camera_images",
    "calibration_from_json",
    "calibration_to_json",
    "check_fits",
    "find_checkerboard",
    "gaze_observations",
    "load_calibration",
    "load_gaze_targets",
    "profile_text",
    "save_calibration",
    "solve_gaze_rotation",
    "uncalibrated_profile",
]
