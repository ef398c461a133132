"""``xrseg eval``: selection accuracy, mask IoU, gaze error, latency and mesh accuracy on a session."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrseg.app import check_out_dir
from xrseg.commands.pipeline_args import add_pipeline_arguments, run_options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "eval",
        help="score the pipeline on a session with ground truth",
        description="Replay a session with ground truth (e.g. from `xrseg scene generate`) and score it.",
    )
    parser.add_argument("session", type=Path, help="session directory with ground truth")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    parser.add_argument(
        "--realtime",
        action="store_true",
        help="the live path: wall-clock pacing and the background encoder at this machine's speed",
    )
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run_eval)


def _fmt(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    return "-" if value is None else f"{value * scale:.{digits}f}{unit}"


def run_eval(args: argparse.Namespace) -> int:
    from xrseg.tools.evaluate import evaluate_session

    check_out_dir(args.out)
    report = evaluate_session(args.session, run_options(args))
    stale = int(report["drops"].get("stale_keyframe", 0))
    report["realtime"] = bool(args.realtime)
    report["stale_drops"] = {"count": stale, "share_of_fixations": stale / max(1, int(report["fixations"]))}
    if args.json:
        print(json.dumps(report, indent=2))
        return 0
    near = report["near_lt_1m"]
    print(f"session            {report['session']}")
    print(
        f"selection accuracy {report['selection_accuracy']:.3f} (right first picks over all "
        f"{report['clicks']} clicks; {report['clicks_selected']} clicks selected something)"
    )
    print(f"mean mask IoU      {report['mean_mask_iou']:.3f} (of the right picks)")
    lag = report["detection_lag_ms"]
    print(
        f"fixation recall    {report['fixation_recall']:.3f} of {report['targets']} scripted fixations "
        f"({report['fixations_detected']} detected), detection lag p50 {_fmt(lag['p50'], ' ms', digits=0)}"
    )
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
    share = report["stale_drops"]["share_of_fixations"]
    print(f"stale drops        {stale} ({share:.1%} of {report['fixations']} fixations)")
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
