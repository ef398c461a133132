"""``xrseg calibrate camera|gaze``: intrinsics from checkerboard photos; gaze offset from target fixations."""

from __future__ import annotations

import argparse
import logging
import re
from dataclasses import replace

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.calibration import (
    HEAD_FROM_CAMERA_FORWARD,
    DeviceCalibration,
    calibrate_camera_images,
    gaze_observations,
    load_calibration,
    load_gaze_targets,
    save_calibration,
    solve_gaze_rotation,
)
from xrseg.errors import CalibrationError, InputError
from xrseg.session.reader import Session
from xrseg.sources.replay import ReplaySource

logger = logging.getLogger(__name__)


def parse_board(text: str) -> tuple[int, int]:
    """ "9x6" -> (9, 6): inner corners per row x per column."""
    match = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not match:
        raise InputError(f"--board must look like 9x6 (inner corners), got {text!r}")
    return int(match.group(1)), int(match.group(2))


def read_images(paths: list[str]) -> list[npt.NDArray[np.uint8]]:
    images = []
    for path in paths:
        image = cv2.imread(path, cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise CalibrationError(f"cannot read image {path}")
        images.append(np.asarray(image, dtype=np.uint8))
    return images


def _camera(args: argparse.Namespace) -> int:
    board = parse_board(args.board)
    if not args.square_mm > 0:
        raise InputError(f"--square-mm must be positive, got {args.square_mm}")
    images = read_images(args.images)
    result = calibrate_camera_images(images, board, args.square_mm / 1000.0)
    camera = result.camera
    for index in result.rejected:
        print(f"board not found: {args.images[index]}")
    print(f"views used: {len(result.used)} of {len(images)}")
    print(f"image size: {camera.width_px}x{camera.height_px}")
    print(f"fx, fy: {camera.fx_px:.2f} {camera.fy_px:.2f} px   cx, cy: {camera.cx_px:.2f} {camera.cy_px:.2f} px")
    print("distortion (k1 k2 p1 p2 k3): " + " ".join(f"{v:.5f}" for v in camera.distortion))
    print(f"RMS reprojection error: {result.rms_px:.3f} px")
    if args.out:
        if args.base:
            base = load_calibration(args.base)
            profile = replace(base, camera=camera, reprojection_rms_px=result.rms_px)
        else:
            profile = DeviceCalibration(
                device_name=args.device_name,
                camera=camera,
                head_from_camera=HEAD_FROM_CAMERA_FORWARD,
                reprojection_rms_px=result.rms_px,
                notes="head_from_camera is a placeholder (camera at the head origin): measure the mount",
            )
            logger.warning("head_from_camera in %s is a placeholder: measure the camera mount", args.out)
        save_calibration(profile, args.out)
        print(f"wrote {args.out}")
    return 0


def _gaze(args: argparse.Namespace) -> int:
    session = Session.open(args.session)
    targets = load_gaze_targets(args.targets)
    base = (
        load_calibration(args.calibration)
        if args.calibration
        else DeviceCalibration(
            device_name=session.header.name,
            camera=session.header.camera,
            head_from_camera=session.header.head_from_camera,
        )
    )
    observations = gaze_observations(
        ReplaySource(session), targets, base.camera, base.head_from_camera, distance_m=args.distance_m
    )
    if len(observations) < len(targets):
        print(f"{len(targets) - len(observations)} of {len(targets)} targets had too few tracked gaze samples")
    fit = solve_gaze_rotation(
        [o.measured_direction for o in observations], [o.target_direction for o in observations]
    )
    print("target  x_px    y_px    samples  before_deg  after_deg")
    for obs, before, after in zip(observations, fit.residuals_before_deg, fit.residuals_after_deg, strict=True):
        t = obs.target
        print(f"        {t.x_px:6.1f}  {t.y_px:6.1f}  {obs.sample_count:7d}  {before:10.2f}  {after:9.2f}")
    print(f"correction: {fit.angle_deg:.2f} deg rotation; RMS residual after: {fit.rms_after_deg:.2f} deg")
    if args.out:
        save_calibration(replace(base, gaze_correction=fit.rotation), args.out)
        print(f"wrote {args.out}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("calibrate", help="calibrate the camera or the gaze offset")
    kinds = parser.add_subparsers(dest="calibrate_kind", metavar="KIND", required=True)

    camera = kinds.add_parser(
        "camera",
        help="intrinsics and distortion from checkerboard photos",
        description="Find a checkerboard in each image and solve the camera model with OpenCV.",
    )
    camera.add_argument("images", nargs="+", help="photos of the board from varied angles (10-20 is plenty)")
    camera.add_argument("--board", default="9x6", help="INNER corners per row x per column (default 9x6)")
    camera.add_argument("--square-mm", type=float, default=25.0, help="square side in millimetres (default 25)")
    camera.add_argument("--out", help="write a device profile here")
    camera.add_argument("--base", help="profile to copy head_from_camera, clock offset and name from")
    camera.add_argument("--device-name", default="camera", help="device name for a new profile")
    camera.set_defaults(func=_camera)

    gaze = kinds.add_parser(
        "gaze",
        help="gaze-to-camera angular offset from fixations on known targets",
        description="Solve the rotation that best maps tracked gaze onto known fixation targets (least squares).",
    )
    gaze.add_argument("session", help="a recorded session in which the wearer fixated the targets")
    gaze.add_argument(
        "--targets", required=True, help='JSON: {"targets": [{"start_ns", "end_ns", "x_px", "y_px"}]}'
    )
    gaze.add_argument("--calibration", help="profile to start from (default: the session's camera and mount)")
    gaze.add_argument("--distance-m", type=float, default=1.0, help="target distance when frames have no depth")
    gaze.add_argument("--out", help="write the profile with the gaze correction here")
    gaze.set_defaults(func=_gaze)
