"""The embedding service: the one owner of image-encoder calls and of the embedding cache.

Every image embedding in a run comes from one :class:`EmbeddingService`: the pipeline's keyframes and the
mesh sink's followed frames alike, so there is one cache and one place where the (slow) encoder runs.

Two modes (:class:`EncodeMode`):

- ``ON_DEMAND`` (deterministic replay): :meth:`EmbeddingService.embedding_for` returns the cached embedding
  of a frame or encodes it on the caller's thread. Calls from several threads are serialised, so one engine
  is never asked to encode twice at once.
- ``BACKGROUND`` (live runs, ``--realtime``): :meth:`EmbeddingService.submit` puts the newest frame in a
  one-slot mailbox that a worker thread encodes whenever it is free. A newer frame replaces a waiting one
  (latest wins) and the replaced frame is counted in :attr:`EncoderStats.dropped`; the mailbox can never
  grow. Callers read finished keyframes with :meth:`EmbeddingService.keyframes`; nobody waits on the encoder.

Statistics (:attr:`EmbeddingService.stats`) count encodes as they finish. An encoder failure on the worker
is logged when it happens and raised from :meth:`EmbeddingService.close` as a :class:`~xrseg.errors.ModelError`
chained to the original error.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from xrseg.errors import InputError, ModelError, UsageError
from xrseg.sam.records import ImageEmbedding
from xrseg.sources.clock import now_ns
from xrseg.types import Frame

log = logging.getLogger(__name__)

__all__ = ["EmbeddingService", "EncodeMode", "Encoder", "EncoderStats", "Keyframe"]


class Encoder(Protocol):
    """Anything that turns an HxWx3 uint8 RGB image into an embedding: the local engine or a remote one."""

    def encode(self, image: np.ndarray) -> ImageEmbedding: ...


class EncodeMode(enum.Enum):
    ON_DEMAND = "on_demand"
    """Encode when asked, on the asking thread (deterministic: the same frames on every machine)."""
    BACKGROUND = "background"
    """Encode the newest submitted frame on a worker thread (latest wins)."""


@dataclass(frozen=True)
class Keyframe:
    """A camera frame with its embedding. ``encode_ms`` is the time the encode took (0 for a cache hit);
    ``encoded_ns`` when it finished, on xrseg's monotonic clock."""

    frame: Frame
    embedding: ImageEmbedding
    encode_ms: float
    encoded_ns: int


@dataclass(frozen=True)
class EncoderStats:
    encoded: int
    """Frames encoded so far."""
    dropped: int
    """Frames replaced in the mailbox before the worker took them and never encoded (background mode)."""
    encode_ms: tuple[float, ...]
    """Duration of each encode, in order."""


class EmbeddingService:
    """Cache + encoder (+ worker thread in background mode). See the module docstring.

    ``keep`` embeddings are cached (each is 4 MiB), oldest evicted first.
    """

    def __init__(self, encoder: Encoder, mode: EncodeMode, keep: int = 8) -> None:
        if keep < 1:
            raise InputError(f"the embedding cache must keep at least one keyframe, got {keep}")
        self.mode = mode
        self._encoder = encoder
        self._keep = keep
        self._cond = threading.Condition()
        self._encode_lock = threading.Lock()
        self._cache: OrderedDict[int, Keyframe] = OrderedDict()
        self._mailbox: Frame | None = None
        self._busy = False
        self._closing = False
        self._encoded = 0
        self._dropped = 0
        self._recently_dropped: OrderedDict[int, None] = OrderedDict()  # frame indices, bounded
        self._encode_ms: list[float] = []
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        if mode is EncodeMode.BACKGROUND:
            self._thread = threading.Thread(target=self._run, name="xrseg-encoder", daemon=True)
            self._thread.start()

    # -- reading -------------------------------------------------------------------------------------------

    @property
    def stats(self) -> EncoderStats:
        with self._cond:
            return EncoderStats(self._encoded, self._dropped, tuple(self._encode_ms))

    @property
    def failed(self) -> bool:
        """True once the background encoder has failed (the error is raised by :meth:`close`)."""
        return self._error is not None

    def keyframes(self) -> tuple[Keyframe, ...]:
        """The cached keyframes, oldest frame first."""
        with self._cond:
            return tuple(sorted(self._cache.values(), key=lambda k: k.frame.timestamp_ns))

    def cached(self, frame_index: int) -> Keyframe | None:
        with self._cond:
            return self._cache.get(frame_index)

    # -- on demand -----------------------------------------------------------------------------------------

    def embedding_for(self, frame: Frame) -> Keyframe:
        """The keyframe of ``frame``: from the cache, or encoded now on this thread (serialised)."""
        with self._encode_lock:
            cached = self.cached(frame.index)
            if cached is not None:
                return Keyframe(cached.frame, cached.embedding, 0.0, cached.encoded_ns)
            return self._encode(frame)

    def _encode(self, frame: Frame) -> Keyframe:
        started = time.perf_counter()
        embedding = self._encoder.encode(frame.rgb)
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        keyframe = Keyframe(frame, embedding, elapsed_ms, now_ns())
        with self._cond:
            self._cache[frame.index] = keyframe
            while len(self._cache) > self._keep:
                self._cache.popitem(last=False)
            if frame.index in self._recently_dropped:  # dropped from the mailbox earlier, encoded after all
                del self._recently_dropped[frame.index]
                self._dropped -= 1
            self._encoded += 1
            self._encode_ms.append(elapsed_ms)
            self._cond.notify_all()
        return keyframe

    # -- background ----------------------------------------------------------------------------------------

    def submit(self, frame: Frame) -> None:
        """Offer ``frame`` to the background encoder (latest wins; never blocks)."""
        if self.mode is not EncodeMode.BACKGROUND:
            raise UsageError("submit() needs an EmbeddingService in background mode")
        with self._cond:
            if self._closing or self._error is not None:
                return
            if self._mailbox is not None:
                self._count_drop(self._mailbox)
            self._mailbox = frame
            self._cond.notify_all()

    def encode_soon(self, frame: Frame, timeout_s: float) -> Keyframe | None:
        """Encode ``frame`` now and wait for it: on the worker in background mode (for when the stream is
        over and nothing waits on the gaze path), on this thread on demand. None after ``timeout_s``."""
        if self.mode is EncodeMode.ON_DEMAND:
            return self.embedding_for(frame)
        cached = self.cached(frame.index)
        if cached is not None:
            return cached
        self.submit(frame)
        self.wait_idle(timeout_s)
        return self.cached(frame.index)

    def _count_drop(self, frame: Frame) -> None:
        self._dropped += 1
        self._recently_dropped[frame.index] = None
        while len(self._recently_dropped) > 256:
            self._recently_dropped.popitem(last=False)

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until the mailbox is empty and no encode is running; False after ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self._mailbox is not None or self._busy:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._error is not None or self._thread is None:
                    return False
                self._cond.wait(remaining)
        return True

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._mailbox is None and not self._closing:
                    self._cond.wait()
                frame, self._mailbox = self._mailbox, None
                if frame is None:
                    return
                self._busy = True
            try:
                with self._encode_lock:
                    self._encode(frame)
            except BaseException as err:  # raised from close(); the pipeline keeps using what it has
                log.error("the keyframe encoder failed: %s", err)
                with self._cond:
                    self._error = err
                    self._busy = False
                    self._cond.notify_all()
                return
            with self._cond:
                self._busy = False
                self._cond.notify_all()

    def close(self, timeout_s: float = 30.0) -> None:
        """Stop the worker (a waiting frame is discarded; a running encode finishes) and raise its failure."""
        with self._cond:
            self._closing = True
            if self._mailbox is not None:
                self._count_drop(self._mailbox)
                self._mailbox = None
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
            if self._thread.is_alive():
                log.warning("the keyframe encoder did not finish within %.0f s", timeout_s)
        if self._error is not None:
            error, self._error = self._error, None
            raise ModelError(f"the keyframe encoder failed: {error}") from error
