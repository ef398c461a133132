"""``xrseg run``: the live pipeline on a headset and a mounted camera."""

from __future__ import annotations

import argparse
import logging
from typing import Any

from xrseg.app import check_out_dir, describe, run_pipeline
from xrseg.commands.pipeline_args import add_pipeline_arguments, run_options
from xrseg.errors import InputError
from xrseg.sinks.base import Sink
from xrseg.sources.live import LiveSource, open_live_source

logger = logging.getLogger(__name__)


def _camera_source(value: str) -> int | str:
    return int(value) if value.isdigit() else value


class _LiveSummary(Sink):
    """Adds how the live streams went to ``summary.json`` (read after the run)."""

    def __init__(self, source: LiveSource) -> None:
        self.source = source

    def summary(self) -> dict[str, Any]:
        camera = self.source.camera_stats
        return {
            "stopped": self.source.stop_reason or "the streams ended",
            "camera": {"captured": camera.captured, "dropped": camera.dropped, "backlog": camera.backlog},
            "live_items_dropped": self.source.dropped,
            "frame_lag_ms": self.source.frame_lag_ms,
        }


def _run(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration must be a positive number of seconds, got {args.duration}")
    # Checks the OpenXR runtime first, then the calibration, then the camera (one-line errors, exit 2).
    source = open_live_source(args.calibration, _camera_source(args.camera), duration_s=args.duration)
    with source, source.stop_on_signals():  # Ctrl-C and SIGTERM end the run cleanly, with its summary
        options = run_options(args, realtime=True)
        result = run_pipeline(
            source, source.camera, source.head_from_camera, options, extra_sinks=[_LiveSummary(source)]
        )
    print(f"{describe(result)}; {result.summary['stopped']}")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "run",
        help="run gaze segmentation live on a headset",
        description="Segment what you look at, live: an OpenXR headset's gaze plus a calibrated mounted camera.",
    )
    parser.add_argument("--calibration", required=True, help="device profile (JSON, see calibration/README.md)")
    parser.add_argument("--camera", default="0", help="camera: device index, stream URL or video file (default 0)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds (default: Ctrl-C stops)")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=_run)
