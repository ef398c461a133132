"""A watchdog on the process's resident memory: the one bound on what ZeroMQ buffers for a peer.

libzmq hands a multipart message to the application only once all its frames have arrived, and nothing in it
limits the number of frames (``ZMQ_MAXMSGSIZE`` caps one frame, ``ZMQ_RCVHWM`` counts complete messages only).
A peer can therefore make a server buffer any amount of memory before the server sees a byte. What does bound
it: closing the socket, which makes libzmq roll back and free every message in progress. :class:`MemoryGuard`
samples the resident set size (``/proc/self/statm``) every ``interval_s`` from a thread of its own, so it acts
while the serving thread is busy encoding, and calls ``on_over_budget`` when it has grown by more than
``budget_bytes`` since :meth:`start`.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

logger = logging.getLogger(__name__)

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """This process's resident set size now (Linux ``/proc/self/statm``)."""
    with open("/proc/self/statm", "rb") as handle:
        return int(handle.read().split()[1]) * _PAGE_BYTES


class MemoryGuard:
    """Calls ``on_over_budget`` (from the guard's thread) whenever the RSS is over the baseline taken at
    :meth:`start` plus ``budget_bytes``; after a call, again only once the RSS came back under that limit or
    rose by another quarter of the budget.
    ``peak_bytes`` is the highest RSS it saw; ``trips`` how many times it called."""

    def __init__(self, budget_bytes: int, on_over_budget: Callable[[], None], interval_s: float = 0.005) -> None:
        self.budget_bytes = budget_bytes
        self.interval_s = interval_s
        self.trips = 0
        self.baseline_bytes = 0
        self.peak_bytes = 0
        self._on_over_budget = on_over_budget
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def limit_bytes(self) -> int:
        return self.baseline_bytes + self.budget_bytes

    def start(self) -> None:
        self.baseline_bytes = self.peak_bytes = rss_bytes()
        self._stop.clear()
        self._thread = threading.Thread(target=self._watch, name="xrseg-memguard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _watch(self) -> None:
        threshold = self.limit_bytes
        while not self._stop.wait(self.interval_s):
            now = rss_bytes()
            self.peak_bytes = max(self.peak_bytes, now)
            if now <= self.limit_bytes:
                threshold = self.limit_bytes
            elif now > threshold:
                self._trip(now)
                # Memory freed by the action may stay in the allocator (reused, not returned): act again only
                # on a further rise, not on the level it left.
                threshold = max(self.limit_bytes, rss_bytes() + self.budget_bytes // 4)

    def _trip(self, now_bytes: int) -> None:
        self.trips += 1
        logger.warning(
            "memory %d MiB over the limit of %d MiB: dropping every connection",
            now_bytes >> 20,
            self.limit_bytes >> 20,
        )
        try:
            self._on_over_budget()
        except Exception:  # the guard must keep watching
            logger.exception("the over-budget action failed")
