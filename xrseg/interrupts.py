"""SIGTERM ends a command the way Ctrl-C does: an exception in the main thread, so cleanup runs.

Python's default SIGTERM ends the process at once: no ``finally`` block, no context manager's exit, so a run's
temporary files stay and its ``summary.json`` keeps saying ``running``. Under :func:`sigterm_raises` SIGTERM
raises :class:`Terminated` (a ``KeyboardInterrupt``, so code catching ``Exception`` does not swallow it) and
the command unwinds like an interrupted one. SIGKILL cannot be caught: the next run cleans up after it.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

EXIT_TERMINATED = 128 + signal.SIGTERM
"""The exit status of a command ended by SIGTERM (143), as a shell reports a process killed by it."""


class Terminated(KeyboardInterrupt):
    """SIGTERM arrived while a command ran under :func:`sigterm_raises`."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(f"terminated by signal {signum}")


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises :class:`Terminated` in the main thread (elsewhere: no change)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
