"""A sink's own worker thread with a bounded job queue, so slow sink work stays off the pipeline thread.

:meth:`Worker.put` queues a job (a callable). The queue holds ``size`` jobs. When it is full, a *droppable*
job (a frame to process) either waits for room (``drop_when_full=False``: deterministic replay, where every
frame must be processed) or makes room by dropping the oldest queued droppable job, counted in
:attr:`Worker.dropped` (``drop_when_full=True``: live runs, where the pipeline thread must never wait). A job
that is not droppable (a selection, a reject) is never dropped: it displaces the oldest droppable job, or waits
when the queue holds none. A job's exception stops the worker and is raised by :meth:`Worker.close`.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from xrseg.errors import InputError

log = logging.getLogger(__name__)

__all__ = ["Worker"]


@dataclass(frozen=True)
class _Job:
    run: Callable[[], None]
    droppable: bool


class Worker:
    """Runs queued jobs in order on one daemon thread named ``name`` (see the module docstring)."""

    def __init__(self, name: str, size: int, *, drop_when_full: bool) -> None:
        if size < 1:
            raise InputError(f"a worker queue needs room for at least one job, got {size}")
        self._size = size
        self._drop_when_full = drop_when_full
        self._jobs: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._closing = False
        self._error: BaseException | None = None
        self.dropped = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def put(self, run: Callable[[], None], *, droppable: bool) -> None:
        with self._cond:
            if self._error is not None or self._closing:
                return
            while len(self._jobs) >= self._size and self._error is None:
                if (self._drop_when_full or not droppable) and self._drop_oldest_droppable():
                    break
                self._cond.wait(0.1)
            self._jobs.append(_Job(run, droppable))
            self._cond.notify_all()

    def _drop_oldest_droppable(self) -> bool:
        for index, job in enumerate(self._jobs):
            if job.droppable:
                del self._jobs[index]
                self.dropped += 1
                return True
        return False

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._jobs and not self._closing:
                    self._cond.wait()
                if not self._jobs:
                    return
                job = self._jobs.popleft()
                self._cond.notify_all()
            try:
                job.run()
            except BaseException as err:  # raised from close() on the pipeline's thread
                log.error("%s failed: %s", self._thread.name, err)
                with self._cond:
                    self._error = err
                    self._jobs.clear()
                    self._cond.notify_all()
                return

    def close(self, timeout_s: float = 600.0) -> None:
        """Run the queued jobs, stop the thread and raise the first job failure, if any."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout=timeout_s)
        if self._thread.is_alive():
            log.warning("%s did not finish its queue within %.0f s", self._thread.name, timeout_s)
        if self._error is not None:
            error, self._error = self._error, None
            raise error
