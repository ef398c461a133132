"""Measure, for ``xrseg model build``, the threads, spinning and optimisation level each schedule runs best with.

Candidates: the encoder on all cores or half of them (rounded up), the decoder on all cores or half (rounded
down, at least one), and intra-op threads spinning or sleeping between operators.

- ``SEQUENTIAL``: each graph alone. For every (threads, spinning) candidate the encoder's p50 over
  ``encodes`` encodes and the decoder's over ``decodes`` decodes are timed with all graph optimisations; each
  graph takes its fastest (sleeping threads over spinning ones within :data:`SPIN_MARGIN`), then it is timed
  with extended optimisations only (no layout transforms), and the faster level stays for both schedules.
- ``CONCURRENT``: for every pair of an encoder and a decoder candidate (spinning alike for both), the encoder
  encodes in a loop on a thread, as the live pipeline's background encoder does, while the decoder decodes on
  the calling thread half of the time (each decode is followed by as long a pause: the live pipeline decodes
  while a fixation forms and at decisions, not all the time). Each graph's slowdown against its best time alone
  counts by the share of the time it runs: the encoder's in full (it runs all the time, and its speed sets how
  fresh keyframes are and how long a press waits for one that has seen its target), the decoder's times
  :data:`DECODER_DUTY` (the look-ahead hides most of its time from a press). The smallest sum wins.

The figures of every trial are kept in the choice (``xrseg model info --json``).
"""

from __future__ import annotations

import itertools
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xrseg.sam.runtime import GraphOptimization, RuntimeChoice, RuntimeProfile, Schedule, SessionSettings
from xrseg.timing import time_calls_ms

log = logging.getLogger(__name__)

__all__ = ["choose_runtime", "thread_candidates"]


def thread_candidates(cores: int) -> tuple[list[int], list[int]]:
    """The encoder's and the decoder's thread counts to try on ``cores`` cores (distinct, largest first)."""
    encoder = sorted({cores, max(1, -(-cores // 2))}, reverse=True)
    decoder = sorted({cores, max(1, cores // 2)}, reverse=True)
    return encoder, decoder


def _p50_ms(run: Callable[[], object], count: int) -> float:
    """The median of ``count`` timed calls of ``run`` (warmed up already)."""
    return statistics.median(time_calls_ms([run], count, warmup=0))


class _Trial:
    """One engine with both graphs configured by ``profile``, warmed up on ``image``."""

    def __init__(
        self,
        paths: tuple[Path, Path],
        providers: Sequence[str] | None,
        profile: RuntimeProfile,
        image: npt.NDArray[np.uint8],
    ) -> None:
        from xrseg.sam.engine import EngineConfig, SamEngine

        self.engine = SamEngine(*paths, EngineConfig(tuple(providers) if providers else None, profile))
        self.image = image
        height, width = image.shape[:2]
        self.point = np.array([[width / 2.0, height / 2.0]])
        self.embedding = self.engine.encode(image)  # warm-up: graph optimisation, first-run allocations
        self.decode()

    def encode(self) -> None:
        self.engine.encode(self.image)

    def decode(self) -> None:
        self.engine.decode(self.embedding, points=self.point, labels=[1])


SPIN_MARGIN = 0.05
"""Spinning threads are taken only when they are this much faster (a share of the time) than sleeping ones:
timed alone the two differ by little, but one graph's idle spinning threads take cores from the other (decodes
right after encodes, as in a bench or a replay, were much slower with spinning: docs/benchmarks.md)."""


def _fastest(times_ms: dict[SessionSettings, float]) -> SessionSettings:
    """The fastest settings in ``times_ms``, sleeping threads over spinning ones within :data:`SPIN_MARGIN`."""
    best = min(times_ms, key=times_ms.__getitem__)
    sleeping = replace(best, spinning=False)
    if best.spinning and times_ms.get(sleeping, float("inf")) <= times_ms[best] * (1.0 + SPIN_MARGIN):
        return sleeping
    return best


def _sequential(
    paths: tuple[Path, Path],
    providers: Sequence[str] | None,
    image: npt.NDArray[np.uint8],
    cores: int,
    encodes: int,
    decodes: int,
) -> tuple[RuntimeProfile, float, float, list[dict[str, object]]]:
    """Each graph's fastest settings alone, its p50 there (encoder, decoder) and the trials' records."""
    encoder_threads, decoder_threads = thread_candidates(cores)
    encoder_ms: dict[SessionSettings, float] = {}
    decoder_ms: dict[SessionSettings, float] = {}
    for threads, spinning in itertools.product(sorted(set(encoder_threads + decoder_threads)), (True, False)):
        settings = SessionSettings(threads, spinning)
        trial = _Trial(paths, providers, RuntimeProfile(settings, settings), image)
        if threads in encoder_threads:
            encoder_ms[settings] = _p50_ms(trial.encode, encodes)
        if threads in decoder_threads:
            decoder_ms[settings] = _p50_ms(trial.decode, decodes)
    encoder, decoder = _fastest(encoder_ms), _fastest(decoder_ms)
    extended = (
        replace(encoder, optimization=GraphOptimization.EXTENDED),
        replace(decoder, optimization=GraphOptimization.EXTENDED),
    )
    trial = _Trial(paths, providers, RuntimeProfile(*extended), image)
    encoder_ms[extended[0]] = _p50_ms(trial.encode, encodes)
    decoder_ms[extended[1]] = _p50_ms(trial.decode, decodes)
    encoder = min((encoder, extended[0]), key=encoder_ms.__getitem__)
    decoder = min((decoder, extended[1]), key=decoder_ms.__getitem__)
    records: list[dict[str, object]] = [
        {"schedule": Schedule.SEQUENTIAL.value, "graph": graph, **s.to_json(), "p50_ms": round(ms, 2)}
        for graph, table in (("encoder", encoder_ms), ("decoder", decoder_ms))
        for s, ms in table.items()
    ]
    return RuntimeProfile(encoder, decoder), encoder_ms[encoder], decoder_ms[decoder], records


DECODER_DUTY = 0.5
"""The share of the time the decoder is busy while the encoder runs in the concurrent trials."""


def _overlapped(trial: _Trial, encodes: int) -> tuple[float, float]:
    """(encoder p50, decoder p50) milliseconds while both run: ``encodes`` encodes on a thread, decodes on this
    one (busy :data:`DECODER_DUTY` of the time) until they are done."""
    encode_ms: list[float] = []
    done = threading.Event()
    failure: list[BaseException] = []

    def encode_loop() -> None:
        try:
            encode_ms.extend(time_calls_ms([trial.encode], encodes, warmup=0))
        except BaseException as err:  # re-raised on the measuring thread
            failure.append(err)
        finally:
            done.set()

    worker = threading.Thread(target=encode_loop, name="xrseg-measure-encoder", daemon=True)
    worker.start()
    decode_ms: list[float] = []
    while not done.is_set() or not decode_ms:
        started = time.perf_counter()
        trial.decode()
        took_s = time.perf_counter() - started
        decode_ms.append(took_s * 1000.0)
        done.wait(took_s * (1.0 / DECODER_DUTY - 1.0))
    worker.join()
    if failure:
        raise failure[0]
    return statistics.median(encode_ms), statistics.median(decode_ms)


def choose_runtime(
    encoder_path: Path,
    decoder_path: Path,
    image: npt.NDArray[np.uint8],
    *,
    providers: Sequence[str] | None = None,
    cores: int | None = None,
    encodes: int = 3,
    decodes: int = 20,
) -> RuntimeChoice:
    """Measure the candidates (module docstring) for the graphs at ``encoder_path`` and ``decoder_path`` on
    ``image`` (HxWx3 uint8 RGB, one prompt at its centre) and return each schedule's winner with every trial."""
    cores = cores or os.cpu_count() or 1
    paths = (encoder_path, decoder_path)
    alone, encoder_alone_ms, decoder_alone_ms, trials = _sequential(
        paths, providers, image, cores, encodes, decodes
    )
    encoder_threads, decoder_threads = thread_candidates(cores)
    scores: dict[RuntimeProfile, float] = {}
    for encoder, decoder, spinning in itertools.product(encoder_threads, decoder_threads, (True, False)):
        profile = RuntimeProfile(
            SessionSettings(encoder, spinning, alone.encoder.optimization),
            SessionSettings(decoder, spinning, alone.decoder.optimization),
        )
        encode_ms, decode_ms = _overlapped(_Trial(paths, providers, profile, image), encodes)
        scores[profile] = encode_ms / encoder_alone_ms + DECODER_DUTY * decode_ms / decoder_alone_ms
        trials.append(
            {
                "schedule": Schedule.CONCURRENT.value,
                **{f"encoder_{k}": v for k, v in profile.encoder.to_json().items()},
                **{f"decoder_{k}": v for k, v in profile.decoder.to_json().items()},
                "encoder_p50_ms": round(encode_ms, 1),
                "decoder_p50_ms": round(decode_ms, 2),
                "weighted_slowdowns": round(scores[profile], 3),
            }
        )
        log.info("concurrent %s: encoder %.0f ms, decoder %.1f ms", profile.describe(), encode_ms, decode_ms)
    together = min(scores, key=scores.__getitem__)
    profiles = {Schedule.SEQUENTIAL: alone, Schedule.CONCURRENT: together}
    return RuntimeChoice(profiles, cores, tuple(trials))
