"""``xrseg eval``: selection accuracy, mask IoU, gaze error, latency and mesh accuracy on a session."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrseg.app import add_pipeline_arguments, check_out_dir


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score the pipeline on a session with ground truth",
        description="Replay a session with ground truth (e.g. from `xrseg scene generate`) and score it.",
    )
    parser.add_argument("session", type=Path, help="session directory with ground truth")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run_eval)


def _fmt(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}{unit}"


def run_eval(args: argparse.Namespace) -> int:
    from xrseg.tools.evaluate import evaluate_session

    check_out_dir(args.out)
    report = evaluate_session(args.session, args)
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    near = report["near_lt_1m"]
    print(f"session            {report['session']}")
    print(
        f"selection accuracy {report['selection_accuracy']:.3f} (first try, {report['targets_selected']} of "
        f"{report['targets']} scripted fixations selected)"
    )
    print(f"mean mask IoU      {report['mean_mask_iou']:.3f}")
    print(
        f"gaze error         {_fmt(report['angular_error_deg']['p50'], ' deg')} median with depth, "
        f"{_fmt(report['angular_error_fixed_1m_deg']['p50'], ' deg')} at a fixed 1 m"
    )
    print(
        f"  nearer than 1 m  {_fmt(near['depth_aware_deg']['mean'], ' deg')} mean with depth, "
        f"{_fmt(near['fixed_1m_deg']['mean'], ' deg')} at a fixed 1 m"
    )
    latency = report["gaze_to_mask_ms"]
    p50, p99 = _fmt(latency["p50"], " ms", digits=1), _fmt(latency["p99"], " ms", digits=1)
    print(f"gaze to mask       p50 {p50}, p99 {p99}")
    print(f"dropped            {report['drops'] or 'none'}")
    for mesh in report["meshes"]:
        seen = _fmt(mesh.get("chamfer_seen_m"), " cm", 100)
        chamfer = (
            f"{_fmt(mesh['chamfer_m'], ' cm', 100)} to the object, symmetric "
            f"{_fmt(mesh['chamfer_symmetric_m'], ' cm', 100)} (seen part {seen})"
        )
        complete = f"{_fmt(mesh['completeness_1cm'])} (seen part {_fmt(mesh.get('completeness_seen_1cm'))})"
        print(
            f"mesh {mesh['selection_id']:3d} object {mesh['object_id']:3d}: Chamfer {chamfer}, "
            f"completeness {complete}, {mesh['frames']} frames"
        )
    return 0
