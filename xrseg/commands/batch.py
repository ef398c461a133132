"""``xrseg batch``: one task on many sessions, on this machine's cores or on a Ray cluster."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrseg.batch.records import BatchTask


def _task(value: str) -> BatchTask:
    try:
        return BatchTask(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a task: choose from {', '.join(t.value for t in BatchTask)}"
        ) from None


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="run replay, eval, export-mesh or annotations on many sessions (locally or on Ray)",
        description=(
            "Run one task on every session: DIR/<session>/ gets what the task's command writes with --out "
            "(eval adds eval.json), DIR/batch.json the per-session results and totals. Sessions already done "
            "with the same task and options are skipped (--force reruns them); a failing session is recorded "
            "and the others go on. Exits 1 when a session failed. See docs/scale.md."
        ),
    )
    parser.add_argument("sessions", nargs="+", help="session directories or glob patterns (files are skipped)")
    parser.add_argument("--out", type=Path, required=True, help="results: one folder per session, and batch.json")
    parser.add_argument(
        "--task",
        type=_task,
        metavar="{" + ",".join(t.value for t in BatchTask) + "}",
        default=BatchTask.EVAL,
        help="what to do with each session, as `xrseg replay|eval|export-mesh|export-annotations` (default eval)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        help="sessions at a time: local worker processes (default 1), each with cores/N engine threads; "
        "with --ray: at most this many tasks at once (default: as many as the cluster fits)",
    )
    parser.add_argument(
        "--ray",
        metavar="auto|ADDRESS",
        help="run each session as a Ray task: 'auto' joins this machine's cluster or starts a local Ray; "
        "or a cluster address (the ray extra)",
    )
    parser.add_argument(
        "--cpus-per-session",
        type=int,
        help="CPUs (and engine threads) per session (default: cores/workers; with --ray: 2)",
    )
    parser.add_argument("--gpus-per-session", type=float, default=0.0, help="with --ray: GPUs per session task")
    parser.add_argument("--force", action="store_true", help="rerun sessions an earlier batch completed")
    parser.add_argument("--json", action="store_true", help="print batch.json instead of the table")
    parser.add_argument(
        "--task-options",
        nargs=argparse.REMAINDER,
        default=[],
        metavar="...",
        help="last: options for the task's command, for every session (e.g. --task-options --no-video)",
    )
    parser.set_defaults(func=run_batch)


def run_batch(args: argparse.Namespace) -> int:
    from xrseg.batch import format_table, run

    report = run(
        args.sessions,
        args.out,
        args.task,
        workers=args.workers,
        ray_address=args.ray,
        cpus_per_session=args.cpus_per_session,
        gpus_per_session=args.gpus_per_session,
        pipeline_args=args.task_options,
        force=args.force,
        progress=False if args.quiet else None,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
        return 1 if report.failed else 0
    print(format_table(report.results))
    counts = {k: v for k, v in report.counts().items() if v}
    totals = report.totals()
    accuracy = totals["selection_accuracy"]
    overall = f"; accuracy {accuracy:.3f} over {totals['clicks']} clicks" if accuracy is not None else ""
    done = ", ".join(f"{v} {k}" for k, v in counts.items())
    print(
        f"{len(report.results)} sessions: {done}; {totals['selections']} selections{overall}; "
        f"{report.wall_s:.0f} s; report in {report.out_dir / 'batch.json'}"
    )
    return 1 if report.failed else 0
