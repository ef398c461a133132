"""Publish pipeline events over ZeroMQ PUB and receive them with a typed SUB (schema ``xrseg.events/1``).

    with EventPublisher("tcp://127.0.0.1:5560") as pub:
        pub.publish_selection(selection, lifted=LiftSummary(centroid, extent), mesh_path="out/obj_3.glb")

    with EventSubscriber("tcp://127.0.0.1:5560", topics=["selection"]) as sub:
        event = sub.receive(timeout_ms=1000)       # SelectionEvent | FixationEvent | StatsEvent | None

Sending never blocks: the PUB socket's high-water mark bounds the messages queued per subscriber and ZeroMQ
drops what does not fit (a slow subscriber loses events, the publisher's memory does not grow). PUB cannot see
those drops; subscribers count them from gaps in the per-topic ``seq`` numbers (:attr:`EventSubscriber.dropped`),
counting from the first number they see of each publisher (a late joiner does not count what was published
before it joined: that is :attr:`EventSubscriber.before_first`).

Access: binding an address reachable from other machines needs CURVE with an allow-list of subscriber keys
(``curve=CurveServerKeys(secret, authorized_clients_dir)``), or ``allow_insecure=True``: events carry gaze and
masks. Subscribers give ``curve=CurveClientKeys(...)``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import zmq
from zmq.utils.monitor import recv_monitor_message

from xrseg.errors import InputError, ProtocolError
from xrseg.stream import auth, sockets
from xrseg.stream.auth import CurveClientKeys, CurveServerKeys
from xrseg.stream.events import (
    MASK_ENCODINGS,
    TOPICS,
    Event,
    EventMeta,
    LiftSummary,
    MaskEncoding,
    decode_event,
    fixation_frames,
    preview_frames,
    selection_frames,
    stats_frames,
)
from xrseg.stream.protocol import DEFAULT_LIMITS, Limits
from xrseg.types import Fixation, Selection

logger = logging.getLogger(__name__)

DEFAULT_EVENTS_ENDPOINT = "tcp://127.0.0.1:5560"


class EventPublisher:
    """A ZeroMQ PUB socket bound to ``endpoint`` that sends typed events. Thread-safe.

    ``sndhwm`` is the number of messages queued per subscriber before ZeroMQ drops new ones for that subscriber;
    ``sndbuf_bytes`` optionally sets the kernel send buffer (both bound the memory a slow subscriber can hold).
    ``mask_encoding`` chooses how selection masks travel: ``"png"``, ``"rle"`` (COCO) or ``"png+rle"``.
    Binding ``tcp://127.0.0.1:*`` picks a free port: read :attr:`endpoint`.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_EVENTS_ENDPOINT,
        *,
        sndhwm: int = 64,
        sndbuf_bytes: int | None = None,
        mask_encoding: MaskEncoding = "png",
        context: zmq.Context | None = None,
        curve: CurveServerKeys | None = None,
        allow_insecure: bool = False,
    ) -> None:
        auth.check_bind_security(endpoint, curve, allow_insecure, "publish events")
        if sndhwm < 1:
            raise InputError(f"sndhwm must be >= 1, got {sndhwm}")
        if mask_encoding not in MASK_ENCODINGS:
            raise InputError(f"mask_encoding must be one of {MASK_ENCODINGS}, got {mask_encoding!r}")
        self.mask_encoding: MaskEncoding = mask_encoding
        self.stream_id = secrets.token_hex(8)
        self.sent = 0
        """Messages handed to ZeroMQ."""
        self.dropped = 0
        """Messages ZeroMQ refused at once (PUB normally drops silently per subscriber instead)."""
        self._seq = dict.fromkeys(TOPICS, 0)
        self._lock = threading.Lock()
        # CURVE needs a ZAP handler on the socket's context: a context of our own, so it is ours to stop.
        self._context = zmq.Context() if curve is not None else None
        self._auth = None
        self._sock = (self._context or context or zmq.Context.instance()).socket(zmq.PUB)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.SNDHWM, sndhwm)
            if sndbuf_bytes is not None:
                self._sock.setsockopt(zmq.SNDBUF, sndbuf_bytes)
            if curve is not None and self._context is not None:
                self._auth = auth.start_authenticator(self._context, curve)
                auth.configure_server(self._sock, curve)
            self.endpoint = sockets.bind(self._sock, endpoint)
        except BaseException:
            self.close()
            raise
        secured = "CURVE" if curve is not None else "no authentication"
        topics = ", ".join(TOPICS)
        logger.info("publishing %s events on %s (sndhwm=%d, %s)", topics, self.endpoint, sndhwm, secured)

    def publish_fixation(self, fixation: Fixation) -> bool:
        """Send a ``fixation`` event. Returns False when ZeroMQ refused it (counted in :attr:`dropped`)."""
        return self._send("fixation", lambda meta: fixation_frames(fixation, meta))

    def publish_selection(
        self,
        selection: Selection,
        lifted: LiftSummary | None = None,
        mesh_path: str | os.PathLike[str] | None = None,
    ) -> bool:
        """Send a ``selection`` event with its mask, optionally where it is in 3D and the exported mesh file."""
        path = None if mesh_path is None else os.fspath(mesh_path)
        return self._send(
            "selection", lambda meta: selection_frames(selection, meta, lifted, path, self.mask_encoding)
        )

    def publish_preview(self, candidate: Selection) -> bool:
        """Send a ``preview`` event: the hover preview's candidate (``selection_id`` 0) with its mask."""
        return self._send("preview", lambda meta: preview_frames(candidate, meta, self.mask_encoding))

    def publish_stats(self, values: Mapping[str, Any], timestamp_ns: int | None = None) -> bool:
        """Send a ``stats`` event: names (with units, ``encode_ms``) to numbers, booleans or None.
        ``timestamp_ns`` defaults to ``time.monotonic_ns()``."""
        stamp = time.monotonic_ns() if timestamp_ns is None else int(timestamp_ns)
        return self._send("stats", lambda meta: stats_frames(values, meta, stamp))

    def _send(self, topic: str, build: Callable[[EventMeta], list[bytes]]) -> bool:
        with self._lock:
            if self._sock.closed:
                raise InputError("the event publisher is closed")
            frames = build(EventMeta(topic, self._seq[topic], self.stream_id, time.time_ns()))
            self._seq[topic] += 1
            try:
                self._sock.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.Again:
                self.dropped += 1
                return False
            self.sent += 1
            return True

    def close(self) -> None:
        with self._lock:
            sockets.close(self._sock)
            if self._auth is not None:
                self._auth.stop()
                self._auth = None
            if self._context is not None and not self._context.closed:
                self._context.term()

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventSubscriber:
    """A ZeroMQ SUB socket connected to a publisher, returning typed events.

    ``topics`` selects what to receive (exact names from ``fixation``, ``selection``, ``stats``, ``preview``). Any
    message that does not decode is skipped, counted in :attr:`rejected` and logged (the first at warning level).
    Gaps in a topic's ``seq`` are counted in :attr:`dropped`, per publisher instance (``stream_id``), from the
    first number seen: events published before this subscriber's first one are not losses but :attr:`before_first`
    (a late joiner gets what is published after its subscription reached the publisher, nothing earlier). A frame
    over the size limits is received and refused like any malformed message; should the connection drop, the
    subscriber connects again at once (:attr:`reconnects`). Not thread-safe: use one subscriber per thread."""

    def __init__(
        self,
        endpoint: str = DEFAULT_EVENTS_ENDPOINT,
        topics: Iterable[str] = TOPICS,
        *,
        rcvhwm: int = 1000,
        rcvbuf_bytes: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        context: zmq.Context | None = None,
        curve: CurveClientKeys | None = None,
    ) -> None:
        self.topics = tuple(dict.fromkeys(topics))
        unknown = [t for t in self.topics if t not in TOPICS]
        if unknown or not self.topics:
            raise InputError(f"topics must be among {list(TOPICS)}, got {list(self.topics)}")
        self.limits = limits
        self.received = 0
        self.rejected = 0
        self.dropped = 0
        self.before_first = 0
        self.reconnects = 0
        self._last_seq: dict[tuple[str, str], int] = {}
        self._monitor: zmq.Socket | None = None
        self._sock = (context or zmq.Context.instance()).socket(zmq.SUB)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
            # No ZMQ_MAXMSGSIZE: a frame over it makes ZeroMQ drop the connection, and when that happens while
            # a multipart message is half-read libzmq 4.3.5 aborts the process (fq.cpp "!_more"). Oversized
            # messages are received and refused by decode_event instead (memory: the publisher's largest frame).
            if rcvbuf_bytes is not None:
                self._sock.setsockopt(zmq.RCVBUF, rcvbuf_bytes)
            if curve is not None:
                auth.configure_client(self._sock, curve)
            for topic in self.topics:
                self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
            self._monitor = self._sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
            sockets.connect(self._sock, endpoint)
        except BaseException:
            self.close()
            raise
        self.endpoint = endpoint
        self._poller = zmq.Poller()
        self._poller.register(self._sock, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def receive(self, timeout_ms: int | None = 1000) -> Event | None:
        """The next event, or None when none arrives within ``timeout_ms`` (None waits forever, 0 polls)."""
        deadline = None if timeout_ms is None else time.monotonic() + max(timeout_ms, 0) / 1000.0
        while True:
            wait_ms = None if deadline is None else max(0, round((deadline - time.monotonic()) * 1000))
            ready = dict(self._poller.poll(wait_ms))
            if self._monitor in ready:
                self._reconnect_if_dropped()
            if self._sock in ready:
                event = self._decode(self._sock.recv_multipart(flags=zmq.NOBLOCK))
                if event is not None:
                    return event
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _decode(self, frames: list[bytes]) -> Event | None:
        if frames[0].decode("ascii", errors="replace") not in self.topics:
            return None  # a longer topic that merely starts with a subscribed prefix
        try:
            event = decode_event(frames, self.limits)
        except ProtocolError as err:
            self._reject(err)
            return None
        except Exception as err:  # a subscriber must survive any message; this is a bug to report, not a crash
            logger.debug("unexpected failure decoding an event", exc_info=True)
            self._reject(err)
            return None
        self._count_gap(event)
        self.received += 1
        return event

    def _reject(self, err: Exception) -> None:
        self.rejected += 1
        log = logger.warning if self.rejected == 1 else logger.debug
        log("rejected a message from %s (%d so far): %s", self.endpoint, self.rejected, err)

    def _reconnect_if_dropped(self) -> None:
        """After a protocol error (such as a malformed ZMTP frame) ZeroMQ closes the connection and never retries:
        connect again."""
        while self._monitor is not None and self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)
            if event["event"] != zmq.EVENT_DISCONNECTED:
                continue
            with contextlib.suppress(zmq.ZMQError):  # already gone
                self._sock.disconnect(self.endpoint)
            sockets.connect(self._sock, self.endpoint)
            self.reconnects += 1
            logger.info("reconnected to %s after the connection was dropped", self.endpoint)

    def _count_gap(self, event: Event) -> None:
        meta = event.meta
        key = (meta.stream_id, meta.topic)
        last = self._last_seq.get(key)
        if last is None:
            self.before_first += meta.seq
        elif meta.seq > last + 1:
            self.dropped += meta.seq - last - 1
        if last is None or meta.seq > last:
            self._last_seq[key] = meta.seq

    def close(self) -> None:
        if self._monitor is not None and not self._sock.closed:
            self._sock.disable_monitor()
        sockets.close(self._monitor)
        sockets.close(self._sock)

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
