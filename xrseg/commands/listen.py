"""``xrseg listen``: print the events an xrseg pipeline publishes (one line each, or JSON lines)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

EXIT_OK = 0
EXIT_SHORT = 1


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "listen", help="print events from an xrseg event stream (fixations, selections, stats)"
    )
    parser.add_argument("endpoint", metavar="ENDPOINT", help="publisher endpoint, e.g. tcp://127.0.0.1:5560")
    parser.add_argument(
        "--topics",
        nargs="+",
        default=None,
        metavar="TOPIC",
        help="fixation, selection, preview and/or stats (default all)",
    )
    parser.add_argument("--count", type=int, default=None, metavar="N", help="stop after N events")
    parser.add_argument(
        "--timeout", type=float, default=None, metavar="S", help="stop after S seconds (exit 1 if --count not met)"
    )
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.add_argument(
        "--curve",
        nargs=2,
        type=Path,
        metavar=("CLIENT_SECRET", "SERVER_PUBLIC"),
        help="CURVE: this subscriber's certificate with its secret key and the publisher's public key",
    )
    parser.set_defaults(func=_listen)


def _fmt_vec(values: object) -> str:
    if not isinstance(values, list | tuple):
        return str(values)
    return "(" + ", ".join(f"{float(v):.3f}" for v in values) + ")"


def _fmt_num(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else str(value)


def human_line(summary: dict[str, object]) -> str:
    """One readable line for an event summary (see :func:`xrseg.stream.events.event_summary`)."""
    topic = summary["topic"]
    head = f"{topic} #{summary['seq']}"
    if topic == "fixation":
        return (
            f"{head}  start={summary['start_ns']} ns  duration={summary['duration_ms']:.1f} ms  "
            f"direction={_fmt_vec(summary['direction'])}  dispersion={_fmt_num(summary['dispersion_deg'])} deg  "
            f"samples={summary['samples']}"
        )
    if topic in ("selection", "preview"):
        parts = [
            head,
            f"id={summary['selection_id']}",
            f"keyframe={summary['keyframe_index']}",
            f"predicted_iou={_fmt_num(summary['score'])}",
            f"mask={summary['mask_hw']}",
            f"area={summary['area_px']} px",
            f"bbox={summary['bbox_xyxy']}",
            f"depth={summary['depth_source']}",
        ]
        if summary.get("point_world_m") is not None:
            parts.append(f"point={_fmt_vec(summary['point_world_m'])} m")
        if "centroid_world_m" in summary:
            parts.append(f"centroid={_fmt_vec(summary['centroid_world_m'])} m")
            parts.append(f"extent={_fmt_vec(summary['extent_m'])} m")
        if summary.get("mesh_path"):
            parts.append(f"mesh={summary['mesh_path']}")
        return "  ".join(parts)
    values = summary.get("values")
    items = values.items() if isinstance(values, dict) else []
    return "  ".join([head, *(f"{k}={v}" for k, v in items)])


def _listen(args: argparse.Namespace) -> int:
    from xrseg.errors import InputError
    from xrseg.stream.auth import CurveClientKeys
    from xrseg.stream.events import TOPICS, event_summary
    from xrseg.stream.pubsub import EventSubscriber

    if args.count is not None and args.count < 1:
        raise InputError(f"--count must be >= 1, got {args.count}")
    if args.timeout is not None and args.timeout <= 0:
        raise InputError(f"--timeout must be > 0, got {args.timeout}")
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    received = 0
    curve = None if args.curve is None else CurveClientKeys(args.curve[0], args.curve[1])
    with EventSubscriber(args.endpoint, args.topics or TOPICS, curve=curve) as subscriber:
        if not getattr(args, "quiet", False):
            topics = ", ".join(args.topics or TOPICS)
            print(f"xrseg listen: waiting for {topics} events on {args.endpoint} (Ctrl-C stops)", file=sys.stderr)
        while args.count is None or received < args.count:
            wait_ms = None if deadline is None else max(0, round((deadline - time.monotonic()) * 1000))
            event = subscriber.receive(wait_ms)
            if event is None:
                break
            received += 1
            summary = event_summary(event)
            print(json.dumps(summary) if args.json else human_line(summary), flush=True)
        print(
            f"received {received} event(s), {subscriber.dropped} dropped (sequence gaps since the first seen), "
            f"{subscriber.before_first} published before the first seen, {subscriber.rejected} rejected, "
            f"{subscriber.reconnects} reconnect(s)",
            file=sys.stderr,
        )
    if args.count is not None and received < args.count:
        print(f"xrseg listen: only {received} of {args.count} event(s) before the timeout", file=sys.stderr)
        return EXIT_SHORT
    return EXIT_OK
