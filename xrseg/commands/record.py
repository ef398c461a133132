"""``xrseg record``: record a live headset + camera session in the session format.

:func:`record_source` does the work for any :class:`xrseg.sources.base.Source` (live or a replay), so the
recorder is tested by recording a replayed session and comparing the two.
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from xrseg.errors import InputError
from xrseg.session.format import SessionHeader
from xrseg.session.writer import SessionWriter
from xrseg.sources.base import Source
from xrseg.sources.live import open_live_source
from xrseg.types import Frame, GazeSample, HeadPose, InputEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecordStats:
    frames: int
    head_poses: int
    gaze_samples: int
    events: int
    skipped: int
    """Items dropped because their timestamp did not advance within their stream (out-of-order live items)."""
    duration_ns: int
    """From the first to the last recorded timestamp."""


def record_source(
    source: Source,
    path: str | Path,
    header: SessionHeader,
    *,
    duration_s: float | None = None,
    overwrite: bool = False,
) -> RecordStats:
    """Write every item of ``source`` to a new session at ``path`` (crash-safe: see the session writer).

    Stops after ``duration_s`` seconds of source time (from the first item) when given, or when the source
    ends. A frame, pose or gaze sample whose timestamp does not advance past the previous one of its stream is
    skipped and counted. Ctrl-C stops the recording with everything written so far kept.
    """
    counts = {Frame: 0, HeadPose: 0, GazeSample: 0, InputEvent: 0}
    last_ns: dict[type, int] = {}
    skipped = 0
    first_ns: int | None = None
    end_ns: int | None = None
    limit_ns = None if duration_s is None else int(duration_s * 1e9)
    iterator = iter(source)
    progress = tqdm(desc="recording", unit=" items", disable=None, leave=False)
    try:
        with SessionWriter(path, header, overwrite=overwrite) as writer:
            for item in iterator:
                stamp = item.timestamp_ns
                if first_ns is None:
                    first_ns = stamp
                if limit_ns is not None and stamp - first_ns > limit_ns:
                    break
                kind = type(item)
                previous = last_ns.get(kind)
                if previous is not None and (stamp < previous if kind is InputEvent else stamp <= previous):
                    skipped += 1
                    continue
                _write(writer, item)
                last_ns[kind] = stamp
                counts[kind] += 1
                end_ns = stamp
                progress.update(1)
    finally:
        progress.close()
        close = getattr(iterator, "close", None)
        if callable(close):
            close()
    if skipped:
        logger.warning("skipped %d items whose timestamps went backwards within their stream", skipped)
    return RecordStats(
        frames=counts[Frame],
        head_poses=counts[HeadPose],
        gaze_samples=counts[GazeSample],
        events=counts[InputEvent],
        skipped=skipped,
        duration_ns=0 if first_ns is None or end_ns is None else end_ns - first_ns,
    )


def _write(writer: SessionWriter, item: Frame | HeadPose | GazeSample | InputEvent) -> None:
    """Append one item to its stream of the session."""
    if isinstance(item, Frame):
        writer.write_frame(item)
    elif isinstance(item, HeadPose):
        writer.write_head_pose(item)
    elif isinstance(item, GazeSample):
        writer.write_gaze(item)
    else:
        writer.write_event(item)


def _run(args: argparse.Namespace) -> int:
    if args.duration is not None and not args.duration > 0:
        raise InputError(f"--duration must be a positive number of seconds, got {args.duration}")
    source = open_live_source(args.calibration, args.camera)
    header = SessionHeader(
        name=args.name or Path(args.out).name,
        camera=source.camera,
        head_from_camera=source.head_from_camera,
        source="recorded",
        has_depth=False,
        description=f"recorded live with camera {args.camera} and calibration {args.calibration or '(none)'}",
        created_unix_ns=time.time_ns(),
    )
    with source, source.stop_on_signals():  # Ctrl-C and SIGTERM end the recording cleanly
        stats = record_source(source, args.out, header, duration_s=args.duration, overwrite=args.overwrite)
    ended = f"ran for {args.duration:g} s" if args.duration is not None else "the streams ended"
    print(
        f"recorded {stats.frames} frames, {stats.head_poses} head poses, {stats.gaze_samples} gaze samples "
        f"over {stats.duration_ns / 1e9:.1f} s to {args.out}; {source.stop_reason or ended}"
    )
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "record",
        help="record a live session (headset pose + gaze, camera frames)",
        description="Record head pose, eye gaze and camera frames from an OpenXR headset and a mounted camera.",
    )
    parser.add_argument("--out", required=True, help="session directory to create")
    parser.add_argument("--calibration", help="device profile (JSON, see calibration/README.md)")
    parser.add_argument("--camera", default="0", help="camera: device index, stream URL or video file (default 0)")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--name", help="session name (default: the directory name)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing session at --out")
    parser.set_defaults(func=_run)
