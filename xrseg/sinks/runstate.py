"""``summary.json`` says whether a run completed: written when the run starts, rewritten when it ends.

The file's top level always has ``"complete"`` (a bool: true only once every output of the run is written) and
``"run"``::

    "run": {"command": "replay", "pid": 4242, "outcome": "running" | "completed" | "interrupted" | "failed",
            "started_unix_ns": int, "ended_unix_ns": int or null, "error": str or null}

A run killed with SIGKILL leaves the first version (``complete`` false, ``outcome`` ``running``, and a ``pid``
that no longer runs: its folder's lock, :mod:`xrseg.sinks.runlock`, is free); Ctrl-C,
SIGTERM (see :mod:`xrseg.interrupts`) and errors leave ``interrupted`` or ``failed`` with the counts reached so
far, and the run's temporary files are removed (:func:`xrseg.sinks.outdir.remove_leftovers`). A completed run
adds the counts, drops, latencies and outputs (:func:`xrseg.sinks.files.summary_record`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import TracebackType
from typing import Any

from xrseg.errors import InputError
from xrseg.fileio import write_json_atomic
from xrseg.interrupts import interrupt_in
from xrseg.sinks.outdir import prepare_out_dir, remove_leftovers
from xrseg.sinks.runlock import OutDirLock, clean_abandoned_runs

logger = logging.getLogger(__name__)

SUMMARY_NAME = "summary.json"


class RunOutcome(Enum):
    RUNNING = "running"
    COMPLETED = "completed"
    INTERRUPTED = "interrupted"
    FAILED = "failed"


@dataclass(frozen=True)
class RunInfo:
    """Who wrote an ``--out`` folder and when; ``started_unix_ns`` is the wall clock."""

    command: str
    pid: int
    started_unix_ns: int

    def record(self, outcome: RunOutcome, error: str | None = None) -> dict[str, Any]:
        ended = None if outcome is RunOutcome.RUNNING else time.time_ns()
        return {
            "command": self.command,
            "pid": self.pid,
            "outcome": outcome.value,
            "started_unix_ns": self.started_unix_ns,
            "ended_unix_ns": ended,
            "error": error,
        }


def write_summary(
    out_dir: Path, info: RunInfo, outcome: RunOutcome, summary: dict[str, Any], error: str | None = None
) -> None:
    """Write ``out_dir/summary.json``: ``summary`` with ``complete`` and ``run`` on top (atomically)."""
    record = dict(summary) | {"complete": outcome is RunOutcome.COMPLETED, "run": info.record(outcome, error)}
    write_json_atomic(out_dir / SUMMARY_NAME, record)


class RunSummary:
    """A context manager around a run into ``out_dir`` (None: no folder, nothing written).

    Entering writes ``summary.json`` with ``complete`` false. Set :attr:`summary` to the run's summary when
    it is known and :attr:`partial` to a callable giving the counts reached so far (for a run that stops early).
    Leaving normally writes the summary with ``complete`` true; leaving by an exception writes ``interrupted``
    (KeyboardInterrupt, SIGTERM) or ``failed`` with the partial counts, removes the run's temporary files and
    lets the exception through.
    """

    def __init__(self, out_dir: Path | None, command: str, lock: OutDirLock | None = None) -> None:
        self.out_dir = out_dir
        self.lock = lock
        self.info = RunInfo(command, os.getpid(), time.time_ns())
        self.summary: dict[str, Any] = {}
        self.partial: Callable[[], dict[str, Any]] | None = None

    def __enter__(self) -> RunSummary:
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            write_summary(self.out_dir, self.info, RunOutcome.RUNNING, {})
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if self.out_dir is not None:
                self._finish(self.out_dir, exc)
        finally:
            if self.lock is not None:
                self.lock.release()

    def _finish(self, out_dir: Path, exc: BaseException | None) -> None:
        if exc is None:
            write_summary(out_dir, self.info, RunOutcome.COMPLETED, self.summary)
            return
        outcome = RunOutcome.INTERRUPTED if interrupt_in(exc) is not None else RunOutcome.FAILED
        try:
            write_summary(out_dir, self.info, outcome, self._partial(), f"{type(exc).__name__}: {exc}")
        except OSError as err:
            logger.warning("cannot record the %s run in %s: %s", outcome.value, out_dir, err)
        finally:
            remove_leftovers(out_dir)

    def _partial(self) -> dict[str, Any]:
        if self.summary or self.partial is None:
            return self.summary
        try:
            return self.partial()
        except Exception as err:  # the run already failed: record it without its counts rather than not at all
            logger.debug("no partial counts: %s", err)
            return {}


def open_run(out_dir: Path | None, overwrite: bool, command: str) -> RunSummary:
    """Check ``out_dir`` and return the :class:`RunSummary` to run in (enter it at once). Killed runs'
    temporary files are removed first (:func:`~xrseg.sinks.runlock.clean_abandoned_runs`); ``out_dir`` is
    locked for this run (:class:`~xrseg.sinks.runlock.OutDirLock`: refused while another run writes it) and
    prepared (:func:`~xrseg.sinks.outdir.prepare_out_dir`: refused if it holds another run unless
    ``overwrite``). Raises :class:`~xrseg.errors.InputError`."""
    clean_abandoned_runs()
    if out_dir is None:
        return RunSummary(None, command)
    if out_dir.exists() and not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    lock = OutDirLock(out_dir)
    try:
        prepare_out_dir(out_dir, overwrite)
    except BaseException:
        lock.release()
        raise
    return RunSummary(out_dir, command, lock)
