"""Encoders for the pipeline: the :class:`Encoder` protocol and :class:`RemoteEncoder`, a ZeroMQ client.

    local = SamEngine.from_cache()
    encoder = RemoteEncoder("tcp://gpu-box:5561", timeout_ms=5000, retries=2, fallback=local, curve=keys)
    embedding = encoder.encode(rgb)          # same ImageEmbedding as local.encode(rgb)

Each request waits ``timeout_ms`` for its reply. On a timeout the socket is closed (linger 0, so the stale
request is dropped) and a new one sends the request again, up to ``retries`` times: ZeroMQ's "lazy pirate"
pattern. When every attempt fails the server is taken as gone: with a ``fallback`` encoder the image is encoded
locally (a warning is logged once per outage) and later calls go straight to the fallback, probing the server
again every ``recheck_s`` seconds; without one, :class:`EncoderUnavailableError` is raised.

``encode`` is thread-safe: up to ``max_in_flight`` calls run at once (each on its own socket); more callers wait
for a free slot (at most ``timeout_ms``). The server answers requests one at a time, so a queued request's
timeout also covers the time spent on the requests ahead of it.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt
import zmq

from xrseg.errors import InputError, ModelError, ProtocolError, XrsegError
from xrseg.sam.records import ImageEmbedding
from xrseg.stream import sockets
from xrseg.stream.auth import CurveClientKeys, configure_client
from xrseg.stream.codecs import IMAGE_ENCODINGS, check_rgb
from xrseg.stream.encoder_wire import (
    REPLY_DTYPES,
    EmbeddingReply,
    ErrorReply,
    PongReply,
    Reply,
    ReplyDtype,
    encode_request_frames,
    parse_reply,
    ping_frames,
)
from xrseg.stream.protocol import Limits

logger = logging.getLogger(__name__)

REPLY_LIMITS = Limits(max_header_bytes=64 * 1024, max_payload_frames=4, max_payload_bytes=32 * 1024 * 1024,
                      max_total_bytes=33 * 1024 * 1024)  # fmt: skip
"""Replies carry one 1x256x64x64 float32 embedding (4 MiB); these limits leave room for larger models."""


@runtime_checkable
class Encoder(Protocol):
    """Anything that turns an image into a Segment Anything embedding (SamEngine, RemoteEncoder...)."""

    def encode(self, rgb: npt.NDArray[np.uint8]) -> ImageEmbedding:
        """``rgb`` HxWx3 uint8 RGB -> :class:`ImageEmbedding` (1x256x64x64 float32 and the two sizes)."""
        ...


class EncoderUnavailableError(XrsegError, TimeoutError):
    """The remote encoder did not answer (after every retry) and there is no fallback encoder."""


@dataclass
class RemoteEncoderStats:
    """Counters of a :class:`RemoteEncoder` (mutable)."""

    requests: int = 0
    replies: int = 0
    timeouts: int = 0
    retries: int = 0
    fallbacks: int = 0
    stale_replies: int = 0
    last_server_encode_ms: float | None = None
    """How long the server's encoder took for the latest answered request (the rest of a call is transport)."""


class RemoteEncoder:
    """An :class:`Encoder` that asks an ``xrseg serve-encoder`` server (ROUTER) over a DEALER socket.

    ``image_encoding``: ``"png"`` (lossless, default), ``"raw"`` (lossless, no compression cost, more bytes) or
    ``"jpeg"`` (``jpeg_quality``; lossy, so the embedding differs from a local one). ``reply_dtype="float16"``
    halves the reply; each value is then within ``FLOAT16_RTOL * |v| + FLOAT16_ATOL`` of the float32 one.
    """

    def __init__(
        self,
        endpoint: str = "tcp://127.0.0.1:5561",
        *,
        timeout_ms: int = 10_000,
        max_in_flight: int = 1,
        retries: int = 2,
        fallback: Encoder | None = None,
        image_encoding: str = "png",
        jpeg_quality: int = 90,
        reply_dtype: ReplyDtype = "float32",
        curve: CurveClientKeys | None = None,
        recheck_s: float = 5.0,
        limits: Limits = REPLY_LIMITS,
        context: zmq.Context | None = None,
    ) -> None:
        sockets.check_endpoint(endpoint)
        if timeout_ms <= 0 or max_in_flight < 1 or retries < 0 or recheck_s < 0:
            raise InputError("need timeout_ms > 0, max_in_flight >= 1, retries >= 0 and recheck_s >= 0")
        if image_encoding not in IMAGE_ENCODINGS:
            raise InputError(f"image_encoding must be one of {IMAGE_ENCODINGS}, got {image_encoding!r}")
        if reply_dtype not in REPLY_DTYPES:
            raise InputError(f"reply_dtype must be one of {list(REPLY_DTYPES)}, got {reply_dtype!r}")
        if not 1 <= jpeg_quality <= 100:
            raise InputError(f"jpeg_quality must be 1-100, got {jpeg_quality}")
        self.endpoint = endpoint
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.fallback = fallback
        self.image_encoding = image_encoding
        self.jpeg_quality = jpeg_quality
        self.reply_dtype: ReplyDtype = reply_dtype
        self.curve = curve
        self.recheck_s = recheck_s
        self.limits = limits
        self.stats = RemoteEncoderStats()
        self._context = context or zmq.Context.instance()
        self._client_id = secrets.token_hex(4)
        self._counter = 0
        self._lock = threading.Lock()
        self._down_until: float | None = None  # monotonic time of the next probe while the server is down
        self._closed = False
        self._slots: queue.Queue[zmq.Socket | None] = queue.Queue()
        for _ in range(max_in_flight):
            self._slots.put(None)
        if curve is not None:
            self._new_socket().close(linger=0)  # fail now, not on the first frame, if the keys are unreadable

    # --- public ----------------------------------------------------------------------------------------------

    def encode(self, rgb: npt.NDArray[np.uint8]) -> ImageEmbedding:
        """``rgb`` HxWx3 uint8 RGB -> its embedding, computed by the server (or by the fallback if it is gone)."""
        rgb = check_rgb(rgb)
        if self.fallback is not None and self._skip_remote():
            return self._use_fallback(rgb, None)
        request_id = self._next_id()
        frames = encode_request_frames(request_id, rgb, self.image_encoding, self.jpeg_quality, self.reply_dtype)
        attempts = 1 if self._down_until is not None else self.retries + 1
        reply = self._request(request_id, frames, attempts, self.timeout_ms)
        if reply is None:
            return self._server_gone(rgb, attempts)
        self._server_back()
        if isinstance(reply, EmbeddingReply):
            self.stats.last_server_encode_ms = reply.encode_ms
        if isinstance(reply, ErrorReply):
            raise self._error(reply)
        if not isinstance(reply, EmbeddingReply):
            raise ProtocolError(
                f"encoder server {self.endpoint} answered an encode request with {type(reply).__name__}"
            )
        embedding = reply.embedding
        if embedding.original_size != (int(rgb.shape[0]), int(rgb.shape[1])):
            raise ProtocolError(
                f"encoder server reported original_size {embedding.original_size} for a {rgb.shape} image"
            )
        return embedding

    def ping(self, timeout_ms: int | None = None) -> dict[str, Any] | None:
        """The server's info (versions, encoder, counters), or None when it does not answer within the timeout."""
        request_id = self._next_id()
        reply = self._request(request_id, ping_frames(request_id), 1, timeout_ms or self.timeout_ms)
        if isinstance(reply, ErrorReply):
            raise self._error(reply)
        return dict(reply.info) if isinstance(reply, PongReply) else None

    def close(self) -> None:
        """Close the idle sockets (calls still in flight close theirs when they finish)."""
        self._closed = True
        for _ in range(self._slots.qsize()):
            try:
                sockets.close(self._slots.get_nowait())
            except queue.Empty:
                break
            self._slots.put(None)

    def __enter__(self) -> RemoteEncoder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- internals -------------------------------------------------------------------------------------------

    def _next_id(self) -> str:
        with self._lock:
            self._counter += 1
            return f"{self._client_id}-{self._counter}"

    def _new_socket(self) -> zmq.Socket:
        sock = self._context.socket(zmq.DEALER)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.MAXMSGSIZE, self.limits.max_total_bytes)
            if self.curve is not None:
                configure_client(sock, self.curve)
            sockets.connect(sock, self.endpoint)
        except BaseException:
            sockets.close(sock)
            raise
        return sock

    def _request(self, request_id: str, frames: list[bytes], attempts: int, timeout_ms: int) -> Reply | None:
        """Send and wait for the matching reply, with a new socket per attempt; None if none answered."""
        if self._closed:
            raise InputError("the remote encoder is closed")
        try:
            sock = self._slots.get(timeout=self.timeout_ms / 1000)
        except queue.Empty as err:
            raise EncoderUnavailableError(
                f"no free request slot for {self.endpoint} within {self.timeout_ms} ms"
            ) from err
        try:
            for attempt in range(attempts):
                if attempt:
                    self.stats.retries += 1
                    logger.info("no reply from %s in %d ms; retrying on a new socket (%d/%d)",
                                self.endpoint, timeout_ms, attempt, attempts - 1)  # fmt: skip
                sock = sock or self._new_socket()
                self.stats.requests += 1
                reply = self._send_and_wait(sock, request_id, frames, timeout_ms)
                if reply is not None:
                    self.stats.replies += 1
                    return reply
                self.stats.timeouts += 1
                sockets.close(sock)  # lazy pirate: drop the socket and anything queued on it
                sock = None
            return None
        finally:
            if self._closed:
                sockets.close(sock)
                sock = None
            self._slots.put(sock)

    def _send_and_wait(
        self, sock: zmq.Socket, request_id: str, frames: list[bytes], timeout_ms: int
    ) -> Reply | None:
        deadline = time.monotonic() + timeout_ms / 1000
        try:
            sock.send_multipart(frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            return None
        while True:
            remaining_ms = round((deadline - time.monotonic()) * 1000)
            if remaining_ms <= 0 or not sock.poll(remaining_ms, zmq.POLLIN):
                return None
            message = sock.recv_multipart(flags=zmq.NOBLOCK)
            if message and message[0] == b"":
                message = message[1:]
            reply = parse_reply(message, self.limits)
            if reply.request_id == request_id:
                return reply
            self.stats.stale_replies += 1  # an answer to an earlier request on this socket

    def _error(self, reply: ErrorReply) -> XrsegError:
        text = f"encoder server {self.endpoint} answered {reply.code}: {reply.message}"
        return ModelError(text) if reply.code == "encoder_failed" else ProtocolError(text)

    def _skip_remote(self) -> bool:
        """True while the server is known to be down and the next probe is not due yet."""
        with self._lock:
            return self._down_until is not None and time.monotonic() < self._down_until

    def _server_gone(self, rgb: npt.NDArray[np.uint8], attempts: int) -> ImageEmbedding:
        with self._lock:
            first = self._down_until is None
            self._down_until = time.monotonic() + self.recheck_s
        if self.fallback is None:
            raise EncoderUnavailableError(
                f"encoder server {self.endpoint} did not answer {attempts} attempt(s) of {self.timeout_ms} ms"
            )
        return self._use_fallback(rgb, first)

    def _use_fallback(self, rgb: npt.NDArray[np.uint8], announce: bool | None) -> ImageEmbedding:
        if announce:
            logger.warning(
                "encoder server %s is not answering; encoding locally with %s (probing it every %.0f s)",
                self.endpoint, type(self.fallback).__name__, self.recheck_s,
            )  # fmt: skip
        self.stats.fallbacks += 1
        if self.fallback is None:  # pragma: no cover - guarded by the callers
            raise EncoderUnavailableError(f"encoder server {self.endpoint} is not answering")
        return self.fallback.encode(rgb)

    def _server_back(self) -> None:
        with self._lock:
            was_down = self._down_until is not None
            self._down_until = None
        if was_down:
            logger.warning("encoder server %s answers again; using it", self.endpoint)
