"""``xrseg session``: check, describe and import recorded sessions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from xrseg.errors import InputError
from xrseg.types import CameraModel

EXIT_OK = 0
EXIT_INVALID = 2


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("session", help="check, describe and import recorded sessions")
    actions = parser.add_subparsers(dest="session_command", metavar="ACTION", required=True)

    check = actions.add_parser("check", help="validate a session (exit 0 when valid, 2 with one line per error)")
    check.add_argument("path", type=Path, help="session directory")
    check.set_defaults(func=_check)

    info = actions.add_parser("info", help="show a session's header and stream summary")
    info.add_argument("path", type=Path, help="session directory")
    info.set_defaults(func=_info)

    aria = actions.add_parser(
        "import-aria", help="import a Project Aria eye gaze CSV as a gaze-only session (no frames)"
    )
    aria.add_argument("csv", type=Path, metavar="EYEGAZE_CSV", help="MPS general_eye_gaze.csv or similar")
    aria.add_argument("--out", type=Path, required=True, help="session directory to create")
    camera = aria.add_mutually_exclusive_group(required=True)
    camera.add_argument(
        "--calibration",
        type=Path,
        help='JSON with "camera" (and optional "head_from_camera"); a session header.json works',
    )
    camera.add_argument(
        "--intrinsics",
        nargs=6,
        type=float,
        metavar=("W", "H", "FX", "FY", "CX", "CY"),
        help="pinhole camera model (no distortion), looking along the head's forward axis",
    )
    aria.add_argument("--name", help="session name (default: the CSV file name)")
    aria.add_argument("--overwrite", action="store_true", help="replace an existing session at --out")
    aria.set_defaults(func=_import_aria)


def _check(args: argparse.Namespace) -> int:
    from xrseg.session.check import check_session

    report = check_session(args.path)
    if not report.ok:
        for error in report.errors:
            print(f"error: {error}", file=sys.stderr)
        return EXIT_INVALID
    for line in report.summary_lines():
        print(line)
    for warning in report.warnings:
        print(f"warning: {warning}")
    print("ok")
    return EXIT_OK


def _info(args: argparse.Namespace) -> int:
    import numpy as np

    from xrseg.session.check import rate_hz
    from xrseg.session.reader import Session

    session = Session.open(args.path)
    header = session.header
    camera = header.camera
    gaze = session.gaze_samples()
    lines = [
        f"name:             {header.name}",
        f"source:           {header.source}",
        f"format version:   {header.format_version}",
        f"description:      {header.description}",
        f"camera:           {camera.width_px}x{camera.height_px} fx={camera.fx_px:g} fy={camera.fy_px:g} "
        f"cx={camera.cx_px:g} cy={camera.cy_px:g} distortion={list(camera.distortion)}",
        f"rgb:              {header.rgb_encoding}"
        + (f" (quality {header.jpeg_quality})" if header.rgb_encoding == "jpeg" else " (lossless)"),
        "depth:            "
        + (
            f"yes ({header.depth_scale_m:g} m per unit, up to {header.depth_range_m:g} m)"
            if header.has_depth
            else "no"
        ),
        f"duration:         {session.duration_ns / 1e9:.3f} s",
        f"frames:           {session.frame_count} ({rate_hz(session.frame_timestamps_ns):.2f} Hz)",
        f"head poses:       {session.head_timestamps_ns.size} ({rate_hz(session.head_timestamps_ns):.2f} Hz)",
        f"gaze samples:     {len(gaze)} ({rate_hz(session.gaze_timestamps_ns):.2f} Hz, "
        f"{sum(g.usable for g in gaze)} valid)",
        f"events:           {len(session.events())}",
        f"ground truth:     {'yes' if session.has_ground_truth else 'no'} ({len(session.objects())} objects, "
        f"{len(session.fixation_targets())} fixation targets)",
        "head_from_camera: " + np.array2string(header.head_from_camera, precision=4, suppress_small=True),
    ]
    for line in lines:
        print(line)
    for warning in session.warnings:
        print(f"warning: {warning}")
    return EXIT_OK


def _import_aria(args: argparse.Namespace) -> int:
    from xrseg.session.aria import HEAD_FROM_FORWARD_CAMERA, import_aria_eye_gaze, load_calibration

    if args.calibration is not None:
        camera, head_from_camera = load_calibration(args.calibration)
    else:
        width, height, fx, fy, cx, cy = args.intrinsics
        if not (width.is_integer() and height.is_integer()):
            raise InputError(f"image size must be whole pixels, got {width}x{height}")
        camera = CameraModel(int(width), int(height), fx, fy, cx, cy)
        head_from_camera = HEAD_FROM_FORWARD_CAMERA
    result = import_aria_eye_gaze(
        args.csv, args.out, camera, head_from_camera, name=args.name, overwrite=args.overwrite
    )
    print(f"wrote {result.path}: {result.gaze_count} gaze samples ({result.valid_count} valid), no frames")
    return EXIT_OK
