"""``xrseg run``: the live pipeline on a headset and a mounted camera."""

from __future__ import annotations

import argparse
import importlib
import logging

from xrseg.errors import XrsegError
from xrseg.sources.live import open_live_source

logger = logging.getLogger(__name__)


def _run(args: argparse.Namespace) -> int:
    source = open_live_source(args.calibration, args.camera)
    with source:
        try:
            runtime = importlib.import_module("xrseg.runtime")
        except ImportError as err:
            raise XrsegError("the live pipeline (xrseg.runtime) is not part of this build") from err
        run_pipeline = getattr(runtime, "run_pipeline", None)
        if run_pipeline is None:
            raise XrsegError("the live pipeline (xrseg.runtime.run_pipeline) is not part of this build")
        options_type = getattr(runtime, "PipelineOptions", None)
        options = options_type() if options_type is not None else None
        result = run_pipeline(source, options)
    return int(result) if isinstance(result, int) else 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run gaze segmentation live on a headset",
        description="Segment what you look at, live: an OpenXR headset's gaze plus a calibrated mounted camera.",
    )
    parser.add_argument("--calibration", required=True, help="device profile (JSON, see calibration/README.md)")
    parser.add_argument("--camera", default="0", help="camera: device index, stream URL or video file (default 0)")
    parser.set_defaults(func=_run)
