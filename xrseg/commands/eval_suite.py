"""``xrseg eval-suite``: held-out sessions of the recipes at several tracker errors, with the naive baseline."""

from __future__ import annotations

import argparse
import json

from tqdm import tqdm

from xrseg.errors import InputError


def register(subparsers: argparse._SubParsersAction) -> None:
    from xrseg.tools.suite import DEFAULT_RECIPES, HELD_OUT_SEEDS

    parser = subparsers.add_parser(
        "eval-suite",
        help="generate held-out sessions and score them beside the naive fixed-1 m baseline",
        description=(
            "Generate a session per recipe, seed and tracker error level, score it like `xrseg eval` (right "
            "first picks over all clicks, fixation recall) and run the naive baseline (gaze at a fixed 1 m, one "
            "point, SAM's best mask) on the same clicks. Prints the table docs/evaluation.md quotes."
        ),
    )
    parser.add_argument(
        "--recipes", nargs="+", default=list(DEFAULT_RECIPES), help="bundled recipe names or files"
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=list(HELD_OUT_SEEDS), help="scene seeds")
    parser.add_argument(
        "--levels",
        nargs="+",
        default=["1:0.5", "2:0.5", "3:0.7"],
        help="tracker error levels as ACCURACY:PRECISION in degrees (default: 1:0.5 2:0.5 3:0.7)",
    )
    parser.add_argument("--json", action="store_true", help="print rows and summary as JSON")
    parser.set_defaults(func=run_eval_suite)


def _levels(values: list[str]) -> list:
    from xrseg.tools.suite import ErrorLevel

    levels = []
    for value in values:
        try:
            accuracy, precision = (float(part) for part in value.split(":"))
        except ValueError as err:
            raise InputError(f"--levels: {value!r} is not ACCURACY:PRECISION in degrees") from err
        if not (0 <= accuracy <= 20 and 0 <= precision <= 20):
            raise InputError(f"--levels: {value!r} is outside 0-20 degrees")
        levels.append(ErrorLevel(accuracy, precision))
    return levels


def run_eval_suite(args: argparse.Namespace) -> int:
    from xrseg.tools.suite import rows_as_dicts, run_suite, summarise

    levels = _levels(args.levels)
    total = len(args.recipes) * len(args.seeds) * len(levels)
    with tqdm(total=total, desc="eval-suite", unit="session", leave=False, disable=None) as bar:

        def done(label: str) -> None:
            bar.set_postfix_str(label)
            bar.update(1)

        rows = run_suite(args.recipes, args.seeds, levels, progress=done)
    summary = summarise(rows)
    if args.json:
        print(json.dumps({"rows": rows_as_dicts(rows), "summary": summary}, indent=2))
        return 0
    print(
        f"{'recipe':<10} {'seed':>4} {'acc/prec deg':>12} {'clicks':>6} {'xrseg':>6} {'naive':>6} "
        f"{'recall':>6} {'IoU':>5} {'lag ms':>6}"
    )
    for r in rows:
        lag = "-" if r.detection_lag_p50_ms is None else f"{r.detection_lag_p50_ms:.0f}"
        print(
            f"{r.recipe:<10} {r.seed:>4} {r.accuracy_deg:>6g}/{r.precision_deg:<5g} {r.clicks:>6} {r.right:>6} "
            f"{r.baseline_right:>6} {r.fixation_recall:>6.2f} {r.mean_iou_right:>5.2f} {lag:>6}"
        )
    for s in summary:
        print(
            f"at {s['accuracy_deg']:g} deg: right first picks {s['right']:.2f} (naive {s['baseline_right']:.2f}) "
            f"over {s['clicks']} clicks, fixation recall {s['fixation_recall']:.2f}, "
            f"mean IoU of right picks {s['mean_iou_right']:.2f}"
        )
    return 0
