"""``xrseg run``: the live pipeline on a headset and a mounted camera."""

from __future__ import annotations

import argparse
import logging

from xrseg.app import add_pipeline_arguments, check_out_dir, describe, run_pipeline
from xrseg.sources.live import open_live_source

logger = logging.getLogger(__name__)


def _camera_source(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _run(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    # Checks the OpenXR runtime first, then the calibration, then the camera (one-line errors, exit 2).
    source = open_live_source(args.calibration, _camera_source(args.camera))
    with source:
        result = run_pipeline(source, source.camera, source.head_from_camera, args, realtime=True)
    print(describe(result))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run gaze segmentation live on a headset",
        description="Segment what you look at, live: an OpenXR headset's gaze plus a calibrated mounted camera.",
    )
    parser.add_argument("--calibration", required=True, help="device profile (JSON, see calibration/README.md)")
    parser.add_argument("--camera", default="0", help="camera: device index, stream URL or video file (default 0)")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=_run)
