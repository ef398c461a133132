"""Wall-clock timing of repeated calls: one loop for ``xrseg bench`` and the build's measurements."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

__all__ = ["time_calls_ms"]


def time_calls_ms(calls: Sequence[Callable[[], object]], runs: int, warmup: int = 1) -> list[float]:
    """Milliseconds of ``runs`` calls, cycling through ``calls``, after calling the first ``warmup`` of them
    untimed (first-run allocations, graph optimisation)."""
    for call in calls[:warmup]:
        call()
    times_ms = []
    for i in range(runs):
        call = calls[i % len(calls)]
        started = time.perf_counter()
        call()
        times_ms.append((time.perf_counter() - started) * 1000.0)
    return times_ms
