"""A ZeroMQ ROUTER that computes image embeddings for remote clients (``xrseg serve-encoder``).

    server = EncoderServer(SamEngine.from_cache(), "tcp://127.0.0.1:5561")
    server.serve(stop_event)            # until stop_event is set (or max_requests were handled)

Requests are handled one at a time, fair-queued across clients. Every malformed, oversized or wrong-version
request is answered with an error reply when the server can tell who sent it, counted in
:attr:`EncoderServer.stats`, and never stops the server.

Memory is bounded by configuration (docs/protocol.md, "Limits and memory"):

- a frame larger than ``limits.max_payload_bytes`` is cut off by ZeroMQ itself (``ZMQ_MAXMSGSIZE``) as soon as
  its size arrives: the connection is dropped and the sender gets no answer;
- a request is read one frame at a time without copying (:meth:`EncoderServer._receive`); once its frame count
  or running total passes the limits its frames are released as they are read and it is answered ``too_large``;
- each client may have ``max_queued_per_client`` complete requests waiting (``ZMQ_RCVHWM``); beyond that
  ZeroMQ stops reading that client's connection (back-pressure: nothing is dropped, nothing grows);
- none of that limits a message's number of frames, and ZeroMQ buffers a whole message before the server sees
  it: when the process's memory grows by more than ``memory_budget_bytes`` while serving, a
  :class:`~xrseg.stream.memguard.MemoryGuard` closes the socket (ZeroMQ frees every message in progress) and
  binds it again; every client is disconnected (its requests unanswered; ZeroMQ clients reconnect).

The server binds loopback by default; binding any other address needs CURVE keys (or ``allow_insecure=True``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import zmq

from xrseg import __version__
from xrseg.errors import InputError, ProtocolError
from xrseg.stream import auth, sockets
from xrseg.stream.auth import CurveServerKeys, configure_server, start_authenticator
from xrseg.stream.encoder_client import Encoder
from xrseg.stream.encoder_wire import (
    SCHEMA,
    EncodeRequest,
    ErrorCode,
    embedding_reply_frames,
    error_reply_frames,
    parse_request,
    peek_request_id,
    pong_frames,
)
from xrseg.stream.memguard import MemoryGuard
from xrseg.stream.protocol import DEFAULT_LIMITS, Limits, MessageTooLargeError, UnsupportedVersionError

logger = logging.getLogger(__name__)

DEFAULT_ENCODER_ENDPOINT = "tcp://127.0.0.1:5561"
DEFAULT_MEMORY_BUDGET_BYTES = 1 << 30
"""How much the server's memory may grow while serving before every connection is dropped (1 GiB)."""
_POLL_SLICE_MS = 10
"""The serving thread holds the socket at most this long at a time while waiting, so the guard can act."""
_REBIND_ATTEMPTS = 500
"""A closed socket's port is released by ZeroMQ's I/O thread a moment later: retry binding (10 ms apart)."""


def check_bind_security(bind: str, curve: CurveServerKeys | None, allow_insecure: bool) -> None:
    """Refuse to serve on an address reachable from other machines without CURVE and an allow-list of client
    keys, unless explicitly allowed (:func:`xrseg.stream.auth.check_bind_security`)."""
    auth.check_bind_security(bind, curve, allow_insecure, "serve embeddings")


@dataclass
class EncoderServerStats:
    """Counters of an :class:`EncoderServer` (mutable; read them from the serving thread or after it stops)."""

    requests: int = 0
    embeddings: int = 0
    pings: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    unsent_replies: int = 0
    connection_resets: int = 0

    @property
    def rejected(self) -> int:
        return sum(self.errors.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "embeddings": self.embeddings,
            "pings": self.pings,
            "rejected": self.rejected,
            "errors": dict(self.errors),
            "unsent_replies": self.unsent_replies,
            "connection_resets": self.connection_resets,
        }


class EncoderServer:
    """Serve ``encoder.encode`` over a ROUTER socket bound to ``bind`` (``tcp://127.0.0.1:*`` for any free port;
    read :attr:`endpoint`). Use :meth:`serve` from one thread; :meth:`close` after it returned."""

    def __init__(
        self,
        encoder: Encoder,
        bind: str = DEFAULT_ENCODER_ENDPOINT,
        *,
        limits: Limits = DEFAULT_LIMITS,
        curve: CurveServerKeys | None = None,
        allow_insecure: bool = False,
        max_queued_per_client: int = 1,
        memory_budget_bytes: int | None = DEFAULT_MEMORY_BUDGET_BYTES,
    ) -> None:
        check_bind_security(bind, curve, allow_insecure)
        if max_queued_per_client < 1:
            raise InputError(f"max_queued_per_client must be >= 1, got {max_queued_per_client}")
        if memory_budget_bytes is not None and memory_budget_bytes <= 0:
            raise InputError(f"memory_budget_bytes must be positive, got {memory_budget_bytes}")
        self.encoder = encoder
        self.limits = limits
        self.stats = EncoderServerStats()
        self.max_queued_per_client = max_queued_per_client
        self.guard = None if memory_budget_bytes is None else MemoryGuard(memory_budget_bytes, self.reset)
        self._curve = curve
        self._context = zmq.Context()
        self._auth = None
        self._lock = threading.Lock()  # the socket is used by the serving thread and, on a reset, the guard's
        self._resetting = threading.Event()  # the serving thread steps aside (a Lock is not fair)
        self._sock: zmq.Socket | None = None
        try:
            if curve is not None:
                self._auth = start_authenticator(self._context, curve)
            self._sock = self._open_socket()
            self.endpoint = sockets.bind(self._sock, bind)
        except BaseException:
            self.close()
            raise
        secured = "CURVE" if curve is not None else "no authentication"
        logger.info("encoder server listening on %s (%s, %s)", self.endpoint, SCHEMA, secured)

    def _open_socket(self) -> zmq.Socket:
        sock = self._context.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        # With CURVE a connection's first slot is taken by its handshake: one more (an HWM of 1 left
        # authenticated clients unanswered).
        sock.setsockopt(zmq.RCVHWM, self.max_queued_per_client + (self._curve is not None))
        sock.setsockopt(zmq.MAXMSGSIZE, max(self.limits.max_payload_bytes, self.limits.max_header_bytes))
        if self._curve is not None:
            configure_server(sock, self._curve)
        return sock

    def reset(self) -> None:
        """Drop every connection and what ZeroMQ buffered for it: close the socket, bind a new one on
        :attr:`endpoint`. Called by the memory guard (from its thread); safe from any thread."""
        self._resetting.set()
        try:
            self._reset()
        finally:
            self._resetting.clear()

    def _reset(self) -> None:
        with self._lock:
            sockets.close(self._sock)
            self._sock = self._open_socket()
            for _ in range(_REBIND_ATTEMPTS):
                try:
                    self._sock.bind(self.endpoint)
                    break
                except zmq.ZMQError:
                    time.sleep(0.01)
            else:
                self._sock.bind(self.endpoint)  # raises the error
            self.stats.connection_resets += 1

    def serve(
        self, stop: threading.Event | None = None, max_requests: int | None = None, poll_ms: int = 100
    ) -> int:
        """Handle requests until ``stop`` is set or ``max_requests`` were handled; returns how many were.
        The memory guard (``memory_budget_bytes``) watches while this runs."""
        handled = 0
        if self.guard is not None:
            self.guard.start()
        try:
            while (stop is None or not stop.is_set()) and (max_requests is None or handled < max_requests):
                if self.handle_once(poll_ms):
                    handled += 1
        finally:
            if self.guard is not None:
                self.guard.stop()
        return handled

    @contextmanager
    def _socket(self) -> Iterator[zmq.Socket]:
        while self._resetting.is_set():
            time.sleep(0.001)
        with self._lock:
            if self._sock is None:
                raise RuntimeError("the encoder server is closed")
            yield self._sock

    def _wait(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for a request, holding the socket a slice at a time."""
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            slice_ms = max(0, min(_POLL_SLICE_MS, int((deadline - time.monotonic()) * 1000)))
            with self._socket() as sock:
                if sock.poll(slice_ms, zmq.POLLIN):
                    return True
            if time.monotonic() >= deadline:
                return False

    def handle_once(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for one request and answer it. Returns False when none came."""
        if not self._wait(timeout_ms):
            return False
        with self._socket() as sock:
            if not sock.poll(0, zmq.POLLIN):  # the guard dropped it meanwhile
                return False
            route, body, refusal = self._receive(sock)
        self.stats.requests += 1
        try:
            reply = self._refuse(body, refusal) if refusal is not None else self._handle(body)
        except Exception:  # the server must survive anything a request triggers
            logger.exception("unexpected failure handling a request")
            self._count("internal")
            reply = error_reply_frames(None, "encoder_failed", "internal server error")
        with self._socket() as sock:
            try:
                sock.send_multipart([*route, *reply], flags=zmq.NOBLOCK)
            except zmq.Again:
                self.stats.unsent_replies += 1
        return True

    def _receive(self, sock: zmq.Socket) -> tuple[list[bytes], list[bytes], MessageTooLargeError | None]:
        """One request, frame by frame: (route, body, refusal). Frames are not copied until the whole request
        is known to be within the limits; over them, only the header frame is kept (for the request id)."""
        limits = self.limits
        route = [sock.recv(flags=zmq.NOBLOCK)]
        frames: list[zmq.Frame] = []
        total_bytes = 0
        refusal: MessageTooLargeError | None = None
        while sock.getsockopt(zmq.RCVMORE):
            frame = sock.recv(copy=False)
            if not frames and len(route) == 1 and len(frame) == 0:
                route.append(b"")  # a REQ client's envelope delimiter: echoed back
                continue
            total_bytes += len(frame)
            if refusal is None and len(frames) > limits.max_payload_frames:
                refusal = MessageTooLargeError(f"request has more than {1 + limits.max_payload_frames} frames")
            elif refusal is None and total_bytes > limits.max_total_bytes:
                refusal = MessageTooLargeError(f"request is over the limit of {limits.max_total_bytes} bytes")
            if refusal is None or not frames:
                frames.append(frame)
            if refusal is not None:
                del frames[1:]  # release everything but the header as soon as the request is refused
        return route, [frame.bytes for frame in frames], refusal

    def _refuse(self, body: list[bytes], error: MessageTooLargeError) -> list[bytes]:
        self._count("too_large")
        request_id = peek_request_id(body[0], self.limits) if body else None
        logger.debug("refused request %s: %s", request_id, error)
        return error_reply_frames(request_id, "too_large", str(error))

    def _count(self, code: str) -> None:
        self.stats.errors[code] = self.stats.errors.get(code, 0) + 1

    def _handle(self, body: list[bytes]) -> list[bytes]:
        code: ErrorCode
        error: ProtocolError
        try:
            request = parse_request(body, self.limits)
        except UnsupportedVersionError as err:
            code, error = "unsupported_version", err
        except MessageTooLargeError as err:
            code, error = "too_large", err
        except ProtocolError as err:
            code, error = "bad_request", err
        else:
            if not isinstance(request, EncodeRequest):
                self.stats.pings += 1
                return pong_frames(request.request_id, self.info())
            return self._encode(request)
        self._count(code)
        request_id = peek_request_id(body[0], self.limits) if body else None
        log = logger.warning if self.stats.rejected <= 3 else logger.debug
        log("rejected request %s (%s): %s", request_id, code, error)
        return error_reply_frames(request_id, code, str(error))

    def _encode(self, request: EncodeRequest) -> list[bytes]:
        start_ns = time.perf_counter_ns()
        try:
            embedding = self.encoder.encode(request.rgb)
        except Exception as err:
            self._count("encoder_failed")
            logger.exception("encoder failed on request %s", request.request_id)
            return error_reply_frames(request.request_id, "encoder_failed", f"{type(err).__name__}: {err}")
        encode_ms = (time.perf_counter_ns() - start_ns) / 1e6
        self.stats.embeddings += 1
        logger.debug(
            "request %s: %s image encoded in %.1f ms", request.request_id, request.image_encoding, encode_ms
        )
        return embedding_reply_frames(request.request_id, embedding, request.reply_dtype, encode_ms)

    def info(self) -> dict[str, Any]:
        """What a ping answers: versions, encoder and counters."""
        return {
            "xrseg": __version__,
            "schema": SCHEMA,
            "encoder": type(self.encoder).__name__,
        } | self.stats.as_dict()

    def close(self) -> None:
        with self._lock:
            sockets.close(self._sock)
            self._sock = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._context.closed:
            self._context.term()

    def __enter__(self) -> EncoderServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
