"""What a worker does with one session for each :class:`~xrseg.batch.records.BatchTask`: the library calls the
matching ``xrseg`` command makes, in the worker's own process, with that command's options and defaults.

Each writes into the session's result folder what the command writes with ``--out`` (selections, meshes,
``summary.json``; the overlay video unless ``--no-video``), and ``eval`` adds ``eval.json``: the report
``xrseg eval --json`` prints.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrseg.batch.records import LOG_FILE, BatchTask, SessionJob
from xrseg.errors import SessionError, UsageError
from xrseg.fileio import write_json_atomic

log = logging.getLogger(__name__)

EVAL_FILE = "eval.json"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class TaskFigures:
    """The headline figures of one session's run (None where the task has none)."""

    selections: int | None = None
    clicks: int | None = None
    clicks_right: int | None = None
    selection_accuracy: float | None = None
    mean_mask_iou: float | None = None
    meshes: int | None = None


def command_args(task: BatchTask, session: str, out_dir: str, threads: int, extra: tuple[str, ...]) -> Any:
    """The parsed command line of ``xrseg <task's command> SESSION --out OUT --overwrite --threads N EXTRA``:
    the same options, defaults included, a single run of the command would get."""
    from xrseg.cli import build_parser

    argv = ["-q", task.command, session, "--out", out_dir, "--overwrite", "--threads", str(threads), *extra]
    return build_parser().parse_args(argv)


def task_available(task: BatchTask) -> bool:
    """Whether this installation has the command ``task`` runs (``annotations`` needs ``export-annotations``)."""
    if task is not BatchTask.ANNOTATIONS:
        return True
    import importlib.util

    return importlib.util.find_spec("xrseg.commands.export_annotations") is not None


def run_task(job: SessionJob) -> TaskFigures:
    """Run ``job``'s task on its session into its result folder. Raises what the command would raise
    (:class:`~xrseg.errors.XrsegError` for a bad session)."""
    args = command_args(job.task, job.session_dir, job.out_dir, job.threads, job.pipeline_args)
    out_dir = Path(job.out_dir)
    (out_dir / EVAL_FILE).unlink(missing_ok=True)
    if job.task is BatchTask.EVAL:
        return _evaluate(args, out_dir)
    if job.task is BatchTask.ANNOTATIONS:
        return _annotations(args, out_dir)
    return _replay(job.task, args, out_dir)


def _evaluate(args: argparse.Namespace, out_dir: Path) -> TaskFigures:
    from xrseg.commands.pipeline_args import run_options
    from xrseg.tools.evaluate import evaluate_session

    report = evaluate_session(args.session, run_options(args))
    # What `xrseg eval` adds to the report before it prints it (xrseg/commands/eval.py).
    stale = int(report["drops"].get("stale_keyframe", 0))
    report["realtime"] = bool(args.realtime)
    report["stale_drops"] = {"count": stale, "share_of_fixations": stale / max(1, int(report["fixations"]))}
    write_json_atomic(out_dir / EVAL_FILE, report)
    return TaskFigures(
        selections=int(report["selections"]),
        clicks=int(report["clicks"]),
        clicks_right=int(report["clicks_right"]),
        selection_accuracy=float(report["selection_accuracy"]),
        mean_mask_iou=float(report["mean_mask_iou"]),
        meshes=meshes_written(out_dir),
    )


def _replay(task: BatchTask, args: argparse.Namespace, out_dir: Path) -> TaskFigures:
    from xrseg.app import replay_session
    from xrseg.commands.pipeline_args import run_options
    from xrseg.session.reader import Session

    if task is BatchTask.EXPORT_MESH and getattr(args, "no_mesh", False):
        raise UsageError("the export-mesh task exports meshes: drop --no-mesh")
    session = Session.open(args.session)
    for warning in session.warnings:
        log.warning("%s: %s", args.session, warning)
    if task is BatchTask.EXPORT_MESH and session.frame_count > 0 and not session.header.has_depth:
        raise SessionError(f"{args.session} has no depth images: meshes need depth (docs/lifting.md)")
    result = replay_session(session, run_options(args))
    return TaskFigures(selections=result.stats.selections, meshes=meshes_written(out_dir))


def _annotations(args: argparse.Namespace, out_dir: Path) -> TaskFigures:
    """``xrseg export-annotations`` in this process (its own command function; its printed lines go to the
    session's log)."""
    if not task_available(BatchTask.ANNOTATIONS):
        raise UsageError("the annotations task needs `xrseg export-annotations`, which this version lacks")
    with (out_dir / LOG_FILE).open("a") as log_file, contextlib.redirect_stdout(log_file):
        status = int(args.func(args) or 0)
    if status != 0:
        raise SessionError(f"export-annotations exited with status {status} (see {LOG_FILE})")
    summary = read_summary(out_dir)
    selections = summary.get("selections") if summary else None
    return TaskFigures(selections=int(selections) if isinstance(selections, int) else None)


def read_summary(out_dir: Path) -> dict[str, Any] | None:
    """The run's ``summary.json`` in ``out_dir``, or None when it is missing or not a JSON object."""
    try:
        data = json.loads((out_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def meshes_written(out_dir: Path) -> int | None:
    summary = read_summary(out_dir)
    if summary is None or not isinstance(summary.get("objects"), list):
        return None
    return sum(1 for entry in summary["objects"] if isinstance(entry, dict) and entry.get("mesh_files"))
