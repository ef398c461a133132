"""``xrseg eval-suite``: held-out sessions generated from the recipes, scored honestly beside the naive baseline.

For each recipe, seed and tracker error level a session is generated into a temporary folder (the recipes'
own seeds are the tuning seeds; pass others to hold out), replayed through the pipeline exactly as ``xrseg
eval`` does, and the naive fixed-1 m baseline (:mod:`xrseg.tools.baseline`) is run on the same clicks. The
table the docs quote is this module's output.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xrseg.config import OutputOptions, RunOptions
from xrseg.scratch import scratch_dir

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorLevel:
    """A simulated eye tracker: constant bias ``accuracy_deg`` and Gaussian noise ``precision_deg`` RMS."""

    accuracy_deg: float
    precision_deg: float


DEFAULT_LEVELS = (ErrorLevel(1.0, 0.5), ErrorLevel(2.0, 0.5), ErrorLevel(3.0, 0.7))
DEFAULT_RECIPES = ("clutter", "far")
HELD_OUT_SEEDS = (11,)


@dataclass(frozen=True)
class SuiteRow:
    """One session's figures: clicks, right first picks of the pipeline and of the baseline, and more."""

    recipe: str
    seed: int
    accuracy_deg: float
    precision_deg: float
    clicks: int
    right: int
    baseline_right: int
    coverage: float
    fixation_recall: float
    mean_iou_right: float
    detection_lag_p50_ms: float | None
    gaze_to_mask_p50_ms: float | None


_EVAL_OPTIONS = RunOptions(outputs=OutputOptions(meshes=False, video=False), command="eval", quiet=True)
"""``xrseg eval SESSION --no-mesh --no-video -q``: the pipeline's defaults, no meshes, no video."""


def evaluate_one(session_dir: Path, recipe: str, seed: int, level: ErrorLevel) -> SuiteRow:
    """Score one generated session with the pipeline and the baseline."""
    from xrseg.sam.engine import SamEngine
    from xrseg.session.reader import Session
    from xrseg.tools.baseline import run_baseline
    from xrseg.tools.evaluate import evaluate_session

    report = evaluate_session(session_dir, _EVAL_OPTIONS)
    picks = run_baseline(Session.open(session_dir), SamEngine.from_cache())
    clicks = int(report["clicks"])
    return SuiteRow(
        recipe=recipe,
        seed=seed,
        accuracy_deg=level.accuracy_deg,
        precision_deg=level.precision_deg,
        clicks=clicks,
        right=int(report["clicks_right"]),
        baseline_right=sum(p.correct for p in picks),
        coverage=float(report["coverage"]),
        fixation_recall=float(report["fixation_recall"]),
        mean_iou_right=float(report["mean_mask_iou"]),
        detection_lag_p50_ms=report["detection_lag_ms"]["p50"],
        gaze_to_mask_p50_ms=report["gaze_to_mask_ms"]["p50"],
    )


def run_suite(
    recipes: Sequence[str],
    seeds: Sequence[int],
    levels: Sequence[ErrorLevel],
    progress: Callable[[str], None] | None = None,
) -> list[SuiteRow]:
    """Generate and score every (recipe, seed, level) session; returns one row each. ``progress`` is called
    with a label after each session."""
    from xrseg.tools.scenes import generate_session, load_recipe
    from xrseg.tools.scenes.recipe import resolve_recipe

    rows = []
    with scratch_dir("xrseg-suite-") as tmp:  # removed with the run, or by the next one after a SIGKILL
        for name in recipes:
            base = load_recipe(resolve_recipe(name))
            for seed in seeds:
                for level in levels:
                    recipe = base.with_overrides(
                        seed=seed, accuracy_deg=level.accuracy_deg, precision_deg=level.precision_deg
                    )
                    out = Path(tmp) / f"{name}-{seed}-{level.accuracy_deg:g}"
                    generate_session(recipe, out, overwrite=True, progress=None)
                    rows.append(evaluate_one(out, name, seed, level))
                    if progress is not None:
                        progress(f"{name} seed {seed} at {level.accuracy_deg:g} deg")
    return rows


def summarise(rows: Sequence[SuiteRow]) -> list[dict[str, Any]]:
    """Per error level: clicks, right-pick shares of the pipeline and the baseline, recall, IoU."""
    out = []
    for accuracy in sorted({r.accuracy_deg for r in rows}):
        group = [r for r in rows if r.accuracy_deg == accuracy]
        clicks = sum(r.clicks for r in group)
        ious = [r.mean_iou_right for r in group if r.right]
        weights = [r.right for r in group if r.right]
        out.append(
            {
                "accuracy_deg": accuracy,
                "sessions": len(group),
                "clicks": clicks,
                "right": sum(r.right for r in group) / clicks if clicks else 0.0,
                "baseline_right": sum(r.baseline_right for r in group) / clicks if clicks else 0.0,
                "fixation_recall": float(np.mean([r.fixation_recall for r in group])),
                "coverage": float(np.mean([r.coverage for r in group])),
                "mean_iou_right": float(np.average(ious, weights=weights)) if ious else 0.0,
            }
        )
    return out


def rows_as_dicts(rows: Sequence[SuiteRow]) -> list[dict[str, Any]]:
    return [asdict(r) for r in rows]
