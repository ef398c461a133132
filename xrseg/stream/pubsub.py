"""Publish pipeline events over ZeroMQ PUB and receive them with a typed SUB (schema ``xrseg.events/1``).

    with EventPublisher("tcp://127.0.0.1:5560") as pub:
        pub.publish_selection(selection, lifted=LiftSummary(centroid, extent), mesh_path="out/obj_3.glb")

    with EventSubscriber("tcp://127.0.0.1:5560", topics=["selection"]) as sub:
        event = sub.receive(timeout_ms=1000)       # SelectionEvent | FixationEvent | StatsEvent | None

Sending never blocks: the PUB socket's high-water mark bounds the messages queued per subscriber and ZeroMQ
drops what does not fit (a slow subscriber loses events, the publisher's memory does not grow). PUB cannot see
those drops; subscribers count them from gaps in the per-topic ``seq`` numbers (:attr:`EventSubscriber.dropped`).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import zmq

from xrseg.errors import InputError, ProtocolError
from xrseg.stream import sockets
from xrseg.stream.events import (
    MASK_ENCODINGS,
    TOPICS,
    Event,
    EventMeta,
    LiftSummary,
    MaskEncoding,
    decode_event,
    fixation_frames,
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
    ) -> None:
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
        self._sock = (context or zmq.Context.instance()).socket(zmq.PUB)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.SNDHWM, sndhwm)
            if sndbuf_bytes is not None:
                self._sock.setsockopt(zmq.SNDBUF, sndbuf_bytes)
            self.endpoint = sockets.bind(self._sock, endpoint)
        except BaseException:
            sockets.close(self._sock)
            raise
        logger.info("publishing %s events on %s (sndhwm=%d)", ", ".join(TOPICS), self.endpoint, sndhwm)

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

    def __enter__(self) -> EventPublisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class EventSubscriber:
    """A ZeroMQ SUB socket connected to a publisher, returning typed events.

    ``topics`` selects what to receive (exact names from ``fixation``, ``selection``, ``stats``). Malformed
    messages are skipped, counted in :attr:`rejected` and logged; gaps in a topic's ``seq`` are counted in
    :attr:`dropped`. Not thread-safe: use one subscriber per thread.
    """

    def __init__(
        self,
        endpoint: str = DEFAULT_EVENTS_ENDPOINT,
        topics: Iterable[str] = TOPICS,
        *,
        rcvhwm: int = 1000,
        rcvbuf_bytes: int | None = None,
        limits: Limits = DEFAULT_LIMITS,
        context: zmq.Context | None = None,
    ) -> None:
        self.topics = tuple(dict.fromkeys(topics))
        unknown = [t for t in self.topics if t not in TOPICS]
        if unknown or not self.topics:
            raise InputError(f"topics must be among {list(TOPICS)}, got {list(self.topics)}")
        self.limits = limits
        self.received = 0
        self.rejected = 0
        self.dropped = 0
        self._last_seq: dict[str, tuple[str, int]] = {}
        self._sock = (context or zmq.Context.instance()).socket(zmq.SUB)
        try:
            self._sock.setsockopt(zmq.LINGER, 0)
            self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
            self._sock.setsockopt(zmq.MAXMSGSIZE, max(limits.max_payload_bytes, limits.max_header_bytes))
            if rcvbuf_bytes is not None:
                self._sock.setsockopt(zmq.RCVBUF, rcvbuf_bytes)
            for topic in self.topics:
                self._sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
            sockets.connect(self._sock, endpoint)
        except BaseException:
            sockets.close(self._sock)
            raise
        self.endpoint = endpoint

    def receive(self, timeout_ms: int | None = 1000) -> Event | None:
        """The next event, or None when none arrives within ``timeout_ms`` (None waits forever, 0 polls)."""
        deadline = None if timeout_ms is None else time.monotonic() + max(timeout_ms, 0) / 1000.0
        while True:
            wait_ms = None if deadline is None else max(0, round((deadline - time.monotonic()) * 1000))
            if not self._sock.poll(wait_ms, zmq.POLLIN):
                return None
            frames = self._sock.recv_multipart(flags=zmq.NOBLOCK)
            if frames[0].decode("ascii", errors="replace") not in self.topics:
                continue  # a longer topic that merely starts with a subscribed prefix
            try:
                event = decode_event(frames, self.limits)
            except ProtocolError as err:
                self.rejected += 1
                log = logger.warning if self.rejected == 1 else logger.debug
                log("rejected a message from %s (%d so far): %s", self.endpoint, self.rejected, err)
                if deadline is not None and time.monotonic() >= deadline:
                    return None
                continue
            self._count_gap(event)
            self.received += 1
            return event

    def _count_gap(self, event: Event) -> None:
        meta = event.meta
        last = self._last_seq.get(meta.topic)
        if last is not None and last[0] == meta.stream_id and meta.seq > last[1] + 1:
            self.dropped += meta.seq - last[1] - 1
        self._last_seq[meta.topic] = (meta.stream_id, meta.seq)

    def close(self) -> None:
        sockets.close(self._sock)

    def __enter__(self) -> EventSubscriber:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
