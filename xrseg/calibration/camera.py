"""Camera intrinsics and distortion from checkerboard photographs (OpenCV)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import CalibrationError, InputError
from xrseg.types import CameraModel


@dataclass(frozen=True)
class CameraCalibrationResult:
    """``camera`` with OpenCV's 5 distortion coefficients; ``rms_px`` the RMS reprojection error in pixels;
    ``used`` the indices of the images whose board was found."""

    camera: CameraModel
    rms_px: float
    used: tuple[int, ...]
    rejected: tuple[int, ...]


def _gray(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] == 3:
        return np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    raise InputError(f"images must be HxW or HxWx3 uint8, got shape {image.shape}")


def find_checkerboard(image: npt.NDArray[np.uint8], board: tuple[int, int]) -> npt.NDArray[np.float32] | None:
    """The board's inner corners, Nx2 float32 (x, y) pixels refined to sub-pixel, or None if not found.

    ``board`` is (columns, rows) of INNER corners, OpenCV's convention (a 10x7-square board is 9x6).
    """
    gray = _gray(image)
    flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
    found, corners = cv2.findChessboardCorners(gray, board, flags=flags)
    if not found:
        return None
    criteria = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
    refined = cv2.cornerSubPix(gray, corners, (5, 5), (-1, -1), criteria)
    return np.asarray(refined, dtype=np.float32).reshape(-1, 2)


def board_points_m(board: tuple[int, int], square_m: float) -> npt.NDArray[np.float32]:
    """Nx3 float32 inner-corner positions on the board plane (z = 0), row-major like OpenCV's detections."""
    columns, rows = board
    grid = np.zeros((rows * columns, 3), dtype=np.float32)
    grid[:, :2] = np.mgrid[0:columns, 0:rows].T.reshape(-1, 2) * square_m
    return grid


def calibrate_camera_images(
    images: Sequence[npt.NDArray[np.uint8]], board: tuple[int, int], square_m: float, min_views: int = 5
) -> CameraCalibrationResult:
    """Intrinsics and distortion (k1 k2 p1 p2 k3) from checkerboard photos (HxWx3 RGB or HxW uint8, one size)."""
    if not images:
        raise CalibrationError("no calibration images given")
    if board[0] < 2 or board[1] < 2 or not square_m > 0:
        raise CalibrationError(
            f"board must be at least 2x2 inner corners with a positive square size, got {board}"
        )
    size = images[0].shape[:2]
    object_points: list[npt.NDArray[np.float32]] = []
    image_points: list[npt.NDArray[np.float32]] = []
    used: list[int] = []
    rejected: list[int] = []
    grid = board_points_m(board, square_m)
    for index, image in enumerate(images):
        if image.shape[:2] != size:
            raise CalibrationError(f"image {index} is {image.shape[1]}x{image.shape[0]}, not {size[1]}x{size[0]}")
        corners = find_checkerboard(image, board)
        if corners is None:
            rejected.append(index)
            continue
        used.append(index)
        object_points.append(grid)
        image_points.append(corners.reshape(-1, 1, 2))
    if len(used) < min_views:
        raise CalibrationError(
            f"the {board[0]}x{board[1]} board was found in {len(used)} of {len(images)} images; need {min_views} "
            "(check --board counts INNER corners)"
        )
    height, width = size
    rms, matrix, distortion, _, _ = cv2.calibrateCamera(object_points, image_points, (width, height), None, None)
    coefficients = tuple(float(v) for v in np.asarray(distortion).ravel()[:5])
    camera = CameraModel(
        width_px=int(width),
        height_px=int(height),
        fx_px=float(matrix[0, 0]),
        fy_px=float(matrix[1, 1]),
        cx_px=float(matrix[0, 2]),
        cy_px=float(matrix[1, 2]),
        distortion=coefficients,
    )
    return CameraCalibrationResult(camera=camera, rms_px=float(rms), used=tuple(used), rejected=tuple(rejected))
