"""``xrseg session``: check, describe and import recorded sessions."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from xrseg.errors import InputError
from xrseg.types import CameraModel

if TYPE_CHECKING:
    from xrseg.session.importers import ImportResult

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

    _register_aria(actions)
    _register_neon(actions)


def _register_aria(actions: argparse._SubParsersAction) -> None:
    aria = actions.add_parser(
        "import-aria",
        help="import a Project Aria VRS recording (frames, gaze, head poses), or an MPS eye gaze CSV alone",
        description="Import a Project Aria recording (the 'aria' extra). VRS: RGB frames undistorted to a pinhole "
        "camera, gaze from --mps or the on-device stream, head poses from MPS or VIO. An MPS eye gaze CSV alone "
        "gives a gaze-only session and needs --calibration or --intrinsics.",
    )
    aria.add_argument("source", type=Path, metavar="VRS", help="recording.vrs (or an MPS eye gaze CSV)")
    aria.add_argument("--out", type=Path, required=True, help="session directory to create")
    aria.add_argument("--mps", type=Path, metavar="DIR", help="MPS output folder (eye_gaze/, slam/)")
    aria.add_argument(
        "--size", type=int, nargs=2, metavar=("W", "H"), help="pinhole image size (default: half the fisheye's)"
    )
    aria.add_argument(
        "--focal-px", type=float, help="pinhole focal length in pixels (default: half the fisheye's)"
    )
    aria.add_argument("--max-frames", type=int, help="import at most this many RGB frames")
    camera = aria.add_mutually_exclusive_group()
    camera.add_argument(
        "--calibration",
        type=Path,
        help='CSV only: JSON with "camera" (and optional "head_from_camera"); a session header.json works',
    )
    camera.add_argument(
        "--intrinsics",
        nargs=6,
        type=float,
        metavar=("W", "H", "FX", "FY", "CX", "CY"),
        help="CSV only: pinhole camera model (no distortion), looking along the head's forward axis",
    )
    _add_session_arguments(aria, "the file name")
    aria.set_defaults(func=_import_aria)


def _register_neon(actions: argparse._SubParsersAction) -> None:
    neon = actions.add_parser(
        "import-neon",
        help="import a Pupil Labs Neon recording folder (scene frames, gaze, IMU head rotation)",
        description="Import a Neon native recording folder (the 'neon' extra): scene video frames, gaze pixels "
        "as rays through the scene camera model, head rotation (no translation) from the IMU.",
    )
    neon.add_argument("folder", type=Path, metavar="FOLDER", help="Neon recording folder (info.json, *.raw, ...)")
    neon.add_argument("--out", type=Path, required=True, help="session directory to create")
    neon.add_argument("--frame-step", type=int, default=1, help="keep every n-th scene frame (default 1)")
    neon.add_argument("--max-frames", type=int, help="import at most this many scene frames")
    _add_session_arguments(neon, "the folder name")
    neon.set_defaults(func=_import_neon)


def _add_session_arguments(parser: argparse.ArgumentParser, default_name: str) -> None:
    """An importer's options for the session it writes: SELECT events to add, its name, --overwrite."""
    parser.add_argument(
        "--select-at",
        type=float,
        nargs="+",
        default=(),
        metavar="S",
        help="add SELECT events (as a button press records) S seconds after the first frame",
    )
    parser.add_argument("--name", help=f"session name (default: {default_name})")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing session at --out")


def _check(args: argparse.Namespace) -> int:
    from xrseg.session.check import check_session

    report = check_session(args.path)
    if not report.ok:
        for error in report.errors:
            print(f"xrseg: error: {error}", file=sys.stderr)
        return EXIT_INVALID
    for line in report.summary_lines():
        print(line)
    for warning in report.warnings:
        print(f"xrseg: warning: {warning}")
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
    if args.source.suffix.lower() == ".csv":
        return _import_aria_csv(args)
    if args.calibration is not None or args.intrinsics is not None:
        raise InputError("--calibration and --intrinsics are for an eye gaze CSV; a VRS has its own calibration")
    from xrseg.session.importers.aria import import_aria

    result = import_aria(
        args.source,
        args.out,
        mps_dir=args.mps,
        size_px=tuple(args.size) if args.size else None,
        focal_px=args.focal_px,
        max_frames=args.max_frames,
        select_at_s=tuple(args.select_at),
        name=args.name,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    _print_import(result)
    return EXIT_OK


def _import_neon(args: argparse.Namespace) -> int:
    from xrseg.session.importers.neon import import_neon

    result = import_neon(
        args.folder,
        args.out,
        frame_step=args.frame_step,
        max_frames=args.max_frames,
        select_at_s=tuple(args.select_at),
        name=args.name,
        overwrite=args.overwrite,
        progress=not args.quiet,
    )
    _print_import(result)
    return EXIT_OK


def _print_import(result: ImportResult) -> None:
    print(result.describe())
    print("no depth: replay projects gaze at vergence depth or --fallback-depth-m and makes no meshes")


def _import_aria_csv(args: argparse.Namespace) -> int:
    from xrseg.session.importers.aria_mps import HEAD_FROM_FORWARD_CAMERA, import_aria_eye_gaze, load_calibration

    if args.calibration is not None:
        camera, head_from_camera = load_calibration(args.calibration)
    elif args.intrinsics is not None:
        width, height, fx, fy, cx, cy = args.intrinsics
        if not (width.is_integer() and height.is_integer()):
            raise InputError(f"image size must be whole pixels, got {width}x{height}")
        camera = CameraModel(int(width), int(height), fx, fy, cx, cy)
        head_from_camera = HEAD_FROM_FORWARD_CAMERA
    else:
        raise InputError("an eye gaze CSV has no camera: give --calibration JSON or --intrinsics W H FX FY CX CY")
    result = import_aria_eye_gaze(
        args.source, args.out, camera, head_from_camera, name=args.name, overwrite=args.overwrite
    )
    print(f"wrote {result.path}: {result.gaze_count} gaze samples ({result.valid_count} valid), no frames")
    return EXIT_OK
