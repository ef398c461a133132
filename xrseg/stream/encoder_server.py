"""A ZeroMQ ROUTER that computes image embeddings for remote clients (``xrseg serve-encoder``).

    server = EncoderServer(SamEngine.from_cache(), "tcp://127.0.0.1:5561")
    server.serve(stop_event)            # until stop_event is set (or max_requests were handled)

Requests are handled one at a time, in arrival order. Every malformed, oversized or wrong-version request is
answered with an error reply when the server can tell who sent it, counted in :attr:`EncoderServer.stats`, and
never stops the server. Frames larger than ``limits.max_total_bytes`` are cut off by ZeroMQ itself
(``ZMQ_MAXMSGSIZE``: the connection is dropped and the sender gets no answer).

The server binds loopback by default; binding any other address needs CURVE keys (or ``allow_insecure=True``).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import zmq

from xrseg import __version__
from xrseg.errors import InputError, ProtocolError
from xrseg.stream import sockets
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
from xrseg.stream.protocol import DEFAULT_LIMITS, Limits, MessageTooLargeError, UnsupportedVersionError

logger = logging.getLogger(__name__)

DEFAULT_ENCODER_ENDPOINT = "tcp://127.0.0.1:5561"


def check_bind_security(bind: str, curve: CurveServerKeys | None, allow_insecure: bool) -> None:
    """Refuse to serve on an address reachable from other machines without CURVE, unless explicitly allowed."""
    if curve is None and not allow_insecure and not sockets.is_loopback(bind):
        raise InputError(
            f"refusing to serve embeddings on {bind} without CURVE keys: bind 127.0.0.1, give keys "
            "(xrseg serve-encoder --make-keys DIR), or allow insecure access explicitly (--insecure)"
        )


@dataclass
class EncoderServerStats:
    """Counters of an :class:`EncoderServer` (mutable; read them from the serving thread or after it stops)."""

    requests: int = 0
    embeddings: int = 0
    pings: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    unsent_replies: int = 0

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
        rcvhwm: int = 16,
    ) -> None:
        check_bind_security(bind, curve, allow_insecure)
        self.encoder = encoder
        self.limits = limits
        self.stats = EncoderServerStats()
        self._context = zmq.Context()
        self._auth = None
        self._sock = self._context.socket(zmq.ROUTER)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
            self._sock.setsockopt(zmq.MAXMSGSIZE, limits.max_total_bytes)
            if curve is not None:
                self._auth = start_authenticator(self._context, curve)
                configure_server(self._sock, curve)
            self.endpoint = sockets.bind(self._sock, bind)
        except BaseException:
            self.close()
            raise
        secured = "CURVE" if curve is not None else "no authentication"
        logger.info("encoder server listening on %s (%s, %s)", self.endpoint, SCHEMA, secured)

    def serve(
        self, stop: threading.Event | None = None, max_requests: int | None = None, poll_ms: int = 100
    ) -> int:
        """Handle requests until ``stop`` is set or ``max_requests`` were handled; returns how many were."""
        handled = 0
        while (stop is None or not stop.is_set()) and (max_requests is None or handled < max_requests):
            if self.handle_once(poll_ms):
                handled += 1
        return handled

    def handle_once(self, timeout_ms: int) -> bool:
        """Wait up to ``timeout_ms`` for one request and answer it. Returns False when none came."""
        if not self._sock.poll(timeout_ms, zmq.POLLIN):
            return False
        message = self._sock.recv_multipart(flags=zmq.NOBLOCK)
        self.stats.requests += 1
        route, body = message[:1], message[1:]
        if body and body[0] == b"":  # a REQ client's envelope delimiter: echo it back
            route, body = [*route, b""], body[1:]
        try:
            reply = self._handle(body)
        except Exception:  # the server must survive anything a request triggers
            logger.exception("unexpected failure handling a request")
            self._count("internal")
            reply = error_reply_frames(None, "encoder_failed", "internal server error")
        try:
            self._sock.send_multipart([*route, *reply], flags=zmq.NOBLOCK)
        except zmq.Again:
            self.stats.unsent_replies += 1
        return True

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
        sockets.close(getattr(self, "_sock", None))
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if not self._context.closed:
            self._context.term()

    def __enter__(self) -> EncoderServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
