"""One session of a batch, run in a worker: a local worker process (``python -m xrseg.batch.worker JOB``, one
per session) or a Ray task. Either way the session's :class:`~xrseg.batch.records.SessionResult` is written to
its result folder (``result.json``, last) and returned as JSON text.

A session's failure is its result (status ``failed`` and a one-line error), never the batch's.
"""

from __future__ import annotations

import json
import logging
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from types import FrameType

from xrseg.batch.records import (
    LOG_FILE,
    SessionJob,
    SessionResult,
    SessionStatus,
    failed,
    result_path,
)
from xrseg.batch.tasks import run_task
from xrseg.errors import XrsegError
from xrseg.fileio import write_json_atomic
from xrseg.interrupts import interrupt_in

log = logging.getLogger(__name__)

EXIT_FAILED = 1
"""The worker process's exit status when the session failed (its result says why)."""


def run_job(job: SessionJob) -> SessionResult:
    """Run ``job`` in this process; its result is also written to ``result.json`` in its result folder.
    Errors become a failed result; Ctrl-C / SIGTERM (``KeyboardInterrupt``) propagate, with no result file."""
    out_dir = Path(job.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result_path(job).unlink(missing_ok=True)
    host = socket.gethostname()
    started = time.perf_counter()
    try:
        figures = run_task(job)
    except Exception as err:
        if interrupt_in(err) is not None:  # cleanup that failed on the way out of a Ctrl-C / SIGTERM: stopped
            raise KeyboardInterrupt(f"interrupted ({type(err).__name__} while stopping: {err})") from err
        result = _failed(job, err, time.perf_counter() - started, host)
    else:
        result = SessionResult(
            name=job.name,
            session_dir=job.session_dir,
            status=SessionStatus.OK,
            fingerprint=job.fingerprint,
            selections=figures.selections,
            clicks=figures.clicks,
            clicks_right=figures.clicks_right,
            selection_accuracy=figures.selection_accuracy,
            mean_mask_iou=figures.mean_mask_iou,
            meshes=figures.meshes,
            wall_s=time.perf_counter() - started,
            host=host,
        )
    write_json_atomic(result_path(job), result.to_dict())
    return result


def _failed(job: SessionJob, err: Exception, wall_s: float, host: str) -> SessionResult:
    if isinstance(err, XrsegError):
        return failed(job, str(err), wall_s, host)
    # One session's bug or crash must not stop the batch: recorded with its type.
    log.error("%s failed:\n%s", job.name, traceback.format_exc())
    return failed(job, f"{type(err).__name__}: {err}", wall_s, host)


def run_job_json(job_json: str) -> str:
    """:func:`run_job` with the job and the result as JSON text (what a Ray task takes and returns)."""
    return json.dumps(run_job(SessionJob.from_json(job_json)).to_dict())


def run_job_logged(job_json: str) -> str:
    """:func:`run_job_json` with this job's warnings and errors also in its result folder's log (a Ray task's
    worker process is shared by tasks: its own stderr goes to Ray's log files)."""
    job = SessionJob.from_json(job_json)
    Path(job.out_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(job.out_dir) / LOG_FILE)
    handler.setLevel(logging.WARNING)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        return run_job_json(job_json)
    finally:
        root.removeHandler(handler)
        handler.close()


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt(f"terminated by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """``python -m xrseg.batch.worker JOB_JSON``: exit 0 when the session completed, 1 when it failed (its
    result file says why), 130 when stopped by SIGTERM / SIGINT."""
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m xrseg.batch.worker JOB_JSON", file=sys.stderr)
        return 2
    # The batch stops a worker with SIGTERM: unwind like Ctrl-C, so the run's temporary files are removed.
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        result = run_job(SessionJob.from_json(args[0]))
    except KeyboardInterrupt:
        return 130
    return 0 if result.status is SessionStatus.OK else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
