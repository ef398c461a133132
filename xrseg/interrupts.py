"""SIGTERM ends a command the way Ctrl-C does: an exception in the main thread, so cleanup runs.

Python's default SIGTERM ends the process at once: no ``finally`` block, no context manager's exit, so a run's
temporary files stay and its ``summary.json`` keeps saying ``running``. Under :func:`sigterm_raises` SIGTERM
raises :class:`Terminated` (a ``KeyboardInterrupt``, so code catching ``Exception`` does not swallow it) and
the command unwinds like an interrupted one. SIGKILL cannot be caught: the next run cleans up after it.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator
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


def interrupt_in(error: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl-C / SIGTERM that ``error`` is, or was raised while unwinding from (cleanup that failed half-way:
    a module import the signal cut short, a sink's half-made state); None when there is none."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return current
        seen.add(id(current))
        current = current.__context__
    return None


@contextmanager
def closes_with(close: Callable[[], None], logger: logging.Logger) -> Iterator[None]:
    """Call ``close`` when the block ends, however it ends. After a Ctrl-C / SIGTERM, an error from ``close``
    is logged and the interrupt goes on (it would otherwise replace it, and the run would say ``failed``
    rather than ``interrupted``); otherwise ``close``'s errors propagate as they are."""
    try:
        yield
    except KeyboardInterrupt:
        try:
            close()
        except Exception as err:
            logger.warning("while stopping after an interrupt: %s: %s", type(err).__name__, err)
        raise
    except BaseException:
        close()
        raise
    close()
