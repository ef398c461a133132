"""Running a batch on this machine: ``workers`` worker processes at a time, one per session.

Each session runs in a fresh ``python -m xrseg.batch.worker`` process with its own engine and
``cores // workers`` ONNX Runtime threads. A process per session rather than a pool of long-lived ones: a session
that crashes the interpreter (a native library's segfault, the kernel's OOM killer) costs only its own result,
its memory goes back when it ends, and Ctrl-C stops exactly the processes the batch started (they run in their
own process groups, so the terminal's SIGINT reaches only the batch, which ends them with SIGTERM and records
them as interrupted). Starting a process costs about a second against 30-60 s for a session.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path

from xrseg.batch.records import LOG_FILE, SessionJob, SessionResult, failed, result_path

log = logging.getLogger(__name__)

TERMINATE_WAIT_S = 10.0
"""How long a worker stopped by Ctrl-C gets to remove its temporary files before it is killed."""

OnStart = Callable[[SessionJob], None]
OnResult = Callable[[SessionResult], None]


class LocalBackend:
    """Worker processes on this machine, ``workers`` at a time."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._lock = threading.Lock()
        self._running: dict[str, subprocess.Popen[bytes]] = {}
        self._stopping = threading.Event()

    def run(self, jobs: Sequence[SessionJob], on_start: OnStart, on_result: OnResult) -> None:
        """Run every job; ``on_start`` and ``on_result`` are called on this thread. On ``KeyboardInterrupt``
        the running workers are stopped (SIGTERM, then SIGKILL) before it propagates."""
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="batch-worker") as pool:
            futures: dict[Future[SessionResult], SessionJob] = {}
            queue = list(jobs)
            try:
                while queue or futures:
                    while queue and len(futures) < self.workers:
                        job = queue.pop(0)
                        on_start(job)
                        futures[pool.submit(self._run_one, job)] = job
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        futures.pop(future)
                        on_result(future.result())
            except BaseException:
                self._stop_all()
                raise

    def _run_one(self, job: SessionJob) -> SessionResult:
        out_dir = Path(job.out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        result_path(job).unlink(missing_ok=True)
        command = [sys.executable, "-m", "xrseg.batch.worker", job.to_json()]
        with (out_dir / LOG_FILE).open("wb") as log_file:
            with self._lock:
                if self._stopping.is_set():
                    return failed(job, "not started: the batch was stopped")
                process = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=log_file, stderr=log_file, start_new_session=True
                )
                self._running[job.name] = process
            try:
                status = process.wait()
            finally:
                with self._lock:
                    self._running.pop(job.name, None)
        return _read_result(job, status)

    def _stop_all(self) -> None:
        with self._lock:
            self._stopping.set()
            processes = list(self._running.values())
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=TERMINATE_WAIT_S)
            except subprocess.TimeoutExpired:
                log.warning("worker %d did not stop in %.0f s: killed", process.pid, TERMINATE_WAIT_S)
                process.kill()
                process.wait()


def _read_result(job: SessionJob, exit_status: int) -> SessionResult:
    """The result the worker wrote, or a failure naming how the worker ended when it wrote none."""
    try:
        data = json.loads(result_path(job).read_text())
        return SessionResult.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError):
        pass
    how = f"killed by signal {-exit_status}" if exit_status < 0 else f"exited with status {exit_status}"
    return failed(job, f"worker {how} without a result; see {Path(job.out_dir) / LOG_FILE}")
