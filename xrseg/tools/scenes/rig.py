"""The synthetic headset: its camera model and where the camera sits on the head."""

from __future__ import annotations

import math

import numpy as np

from xrseg.tools.scenes.recipe import CameraSpec
from xrseg.types import CameraModel, Transform, as_transform

HEAD_FROM_CAMERA_ROTATION = np.diag([1.0, -1.0, -1.0])
"""OpenCV camera axes (+x right, +y down, +z forward) in OpenXR head axes (+x right, +y up, -z forward): a
180-degree rotation about x."""


def camera_model(spec: CameraSpec) -> CameraModel:
    """A centred pinhole camera of ``spec.hfov_deg`` with square pixels and radial distortion (k1, k2, 0, 0)."""
    fx = (spec.width_px / 2.0) / math.tan(math.radians(spec.hfov_deg) / 2.0)
    return CameraModel(
        width_px=spec.width_px,
        height_px=spec.height_px,
        fx_px=fx,
        fy_px=fx,
        cx_px=(spec.width_px - 1) / 2.0,
        cy_px=(spec.height_px - 1) / 2.0,
        distortion=(spec.k1, spec.k2, 0.0, 0.0),
    )


def head_from_camera(spec: CameraSpec) -> Transform:
    """4x4 float64: the camera ``camera_above_eye_m`` above and ``camera_forward_of_eye_m`` in front of the
    cyclopean eye (the head origin), looking where the head looks."""
    matrix = np.eye(4)
    matrix[:3, :3] = HEAD_FROM_CAMERA_ROTATION
    matrix[:3, 3] = (0.0, spec.camera_above_eye_m, -spec.camera_forward_of_eye_m)
    return as_transform(matrix, "head_from_camera")
