"""``xrseg.batch.run``: many sessions, one task, on this machine's cores or on a Ray cluster."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from tqdm import tqdm

from xrseg.batch.local import LocalBackend
from xrseg.batch.options import check_pipeline_args, fingerprint, pipeline_variant
from xrseg.batch.records import BatchTask, SessionJob, SessionResult, SessionStatus, pending, result_path
from xrseg.batch.report import BatchReport, write_report
from xrseg.batch.sessions import BatchSession, expand_sessions
from xrseg.batch.tasks import SUMMARY_FILE, read_summary, task_available
from xrseg.errors import InputError, UsageError, check_positive

log = logging.getLogger(__name__)

RAY_CPUS_PER_SESSION = 2
"""CPUs (and engine threads) a Ray task declares unless told otherwise."""


class Backend(Protocol):
    def run(
        self,
        jobs: Sequence[SessionJob],
        on_start: Callable[[SessionJob], None],
        on_result: Callable[[SessionResult], None],
    ) -> None: ...


@dataclass(frozen=True)
class _Plan:
    jobs: tuple[SessionJob, ...]
    backend: Backend
    label: str
    workers: int | None
    threads: int


def run(
    sessions: Iterable[str | Path],
    out_dir: str | Path,
    task: BatchTask | str = BatchTask.EVAL,
    *,
    workers: int | None = None,
    ray_address: str | None = None,
    cpus_per_session: int | None = None,
    gpus_per_session: float = 0.0,
    pipeline_args: Sequence[str] = (),
    force: bool = False,
    progress: bool | None = None,
    ray_runtime_env: dict[str, Any] | None = None,
) -> BatchReport:
    """Run ``task`` on every session (paths or glob patterns) into ``out_dir/<session name>/``, with
    ``out_dir/batch.json`` the aggregate report; returns it.

    Locally (``ray_address`` None): ``workers`` processes at a time (default 1), each session's engine with
    ``cores // workers`` ONNX Runtime threads. With ``ray_address`` (``"auto"`` or a cluster address): each
    session a Ray task declaring ``cpus_per_session`` CPUs (default 2; also its threads) and
    ``gpus_per_session`` GPUs, at most ``workers`` at once if given. ``pipeline_args`` are options of the
    task's command (``["--no-video"]``), the same for every session.

    A session whose earlier result in ``out_dir`` is complete for the same task and options is skipped unless
    ``force``. A failing session is recorded with its one-line error; the others go on. Ctrl-C stops the
    workers, writes ``batch.json`` (``interrupted``) and raises ``KeyboardInterrupt``.

    Raises :class:`~xrseg.errors.InputError` for bad arguments (nothing is run).
    """
    task = BatchTask(task)
    out = Path(out_dir).resolve()
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a directory")
    if not task_available(task):
        raise UsageError(
            f"the {task.value} task needs `xrseg {task.command}`, which this version of xrseg does not have"
        )
    args = check_pipeline_args(task, tuple(pipeline_args))
    found = expand_sessions(sessions, out)
    _check_resources(workers, cpus_per_session, gpus_per_session, ray_address)
    if ray_address is None:
        from xrseg.batch.models import prepare_model_cache

        prepare_model_cache(pipeline_variant(task, args))  # one clear error now instead of one per session
        count = workers or 1
        threads = cpus_per_session or max(1, (os.cpu_count() or 1) // count)
        plan = _Plan(_jobs(task, out, found, args, threads), LocalBackend(count), "local", count, threads)
    else:
        from xrseg.batch.ray_backend import RayBackend

        threads = cpus_per_session or RAY_CPUS_PER_SESSION
        variant = pipeline_variant(task, args)
        backend = RayBackend(ray_address, threads, gpus_per_session, workers, variant, ray_runtime_env)
        plan = _Plan(_jobs(task, out, found, args, threads), backend, f"ray {ray_address}", workers, threads)
    return _execute(task, out, plan, args, force, progress)


def _check_resources(
    workers: int | None, cpus_per_session: int | None, gpus_per_session: float, ray_address: str | None
) -> None:
    if workers is not None:
        check_positive("--workers", workers)
    if cpus_per_session is not None:
        check_positive("--cpus-per-session", cpus_per_session)
    if not gpus_per_session >= 0:
        raise InputError(f"--gpus-per-session must be >= 0, got {gpus_per_session}")
    if ray_address is None and gpus_per_session:
        raise InputError("--gpus-per-session needs --ray (local workers use the GPU ONNX Runtime finds)")


def _jobs(
    task: BatchTask, out: Path, found: Sequence[BatchSession], args: tuple[str, ...], threads: int
) -> tuple[SessionJob, ...]:
    key = fingerprint(task, args)
    return tuple(SessionJob(s.name, str(s.path), str(out / s.name), task, args, threads, key) for s in found)


def previous_result(job: SessionJob) -> SessionResult | None:
    """The result of an earlier run of ``job`` that can stand: complete, and made with the same task and
    options (its ``summary.json`` says ``complete``, where it says it at all)."""
    try:
        result = SessionResult.from_dict(json.loads(result_path(job).read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if result.status is not SessionStatus.OK or result.fingerprint != job.fingerprint:
        return None
    summary = read_summary(Path(job.out_dir))
    if summary is None or summary.get("complete", True) is not True:
        log.info("%s: %s missing or incomplete: running it again", job.name, SUMMARY_FILE)
        return None
    return result.with_status(SessionStatus.SKIPPED)


def _execute(
    task: BatchTask, out: Path, plan: _Plan, args: tuple[str, ...], force: bool, progress: bool | None
) -> BatchReport:
    started_s = time.perf_counter()
    results: dict[str, SessionResult] = {job.name: pending(job) for job in plan.jobs}
    if not force:
        for job in plan.jobs:
            earlier = previous_result(job)
            if earlier is not None:
                results[job.name] = earlier
    to_run = [job for job in plan.jobs if results[job.name].status is SessionStatus.PENDING]
    running: set[str] = set()
    out.mkdir(parents=True, exist_ok=True)

    def report(interrupted: bool = False) -> BatchReport:
        return BatchReport(
            task=task,
            out_dir=out,
            backend=plan.label,
            workers=plan.workers,
            threads_per_session=plan.threads,
            pipeline_args=args,
            results=tuple(results[job.name] for job in plan.jobs),
            wall_s=time.perf_counter() - started_s,
            interrupted=interrupted,
        )

    write_report(report())
    skipped = len(plan.jobs) - len(to_run)
    log.info("%s: %d session(s) to run, %d done earlier (skipped)", task.value, len(to_run), skipped)
    disable = None if progress is None else not progress  # None: a bar on a terminal only
    with tqdm(total=len(to_run), desc=f"batch {task.value}", unit="session", disable=disable) as bar:

        def on_start(job: SessionJob) -> None:
            running.add(job.name)

        def on_result(result: SessionResult) -> None:
            running.discard(result.name)
            results[result.name] = result
            if result.status is SessionStatus.FAILED:
                log.warning("%s failed: %s", result.name, result.error)
            bar.update(1)
            bar.set_postfix(failed=sum(r.status is SessionStatus.FAILED for r in results.values()))
            write_report(report())

        try:
            plan.backend.run(to_run, on_start, on_result)
        except KeyboardInterrupt:
            for name in running:
                results[name] = results[name].with_status(SessionStatus.INTERRUPTED)
            write_report(report(interrupted=True))
            raise
    final = report()
    write_report(final)
    return final
