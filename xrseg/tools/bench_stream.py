"""Benchmarks of the stream for ``xrseg bench``: remote-encoder round trips and publisher throughput.

Both run real sockets on loopback (ephemeral ports) and return frozen records; nothing is printed.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.stream.encoder_client import Encoder, RemoteEncoder
from xrseg.stream.encoder_server import EncoderServer
from xrseg.stream.encoder_wire import ReplyDtype, encode_request_frames
from xrseg.stream.events import EventMeta, MaskEncoding, selection_frames
from xrseg.stream.pubsub import EventPublisher, EventSubscriber
from xrseg.types import DepthSource, Fixation, Selection

logger = logging.getLogger(__name__)

LOOPBACK_ANY_PORT = "tcp://127.0.0.1:*"


@dataclass(frozen=True)
class RoundtripBench:
    """Milliseconds per encode: local (in process) against remote (server on loopback, same encoder).
    ``overhead_*_ms`` is a remote call minus the server's own encode time (compression, copies, sockets)."""

    n: int
    image_encoding: str
    reply_dtype: str
    image_hw: tuple[int, int]
    local_p50_ms: float
    local_p99_ms: float
    remote_p50_ms: float
    remote_p99_ms: float
    overhead_p50_ms: float
    overhead_p99_ms: float
    request_bytes: int


@dataclass(frozen=True)
class PublisherBench:
    """Sustained rate of ``selection`` events with an HxW mask through a PUB socket to one live subscriber."""

    n: int
    mask_hw: tuple[int, int]
    mask_encoding: str
    seconds: float
    events_per_s: float
    bytes_per_event: int
    megabytes_per_s: float
    received: int


def _percentiles(values_ms: list[float]) -> tuple[float, float]:
    p50, p99 = np.percentile(np.asarray(values_ms, dtype=np.float64), [50, 99])
    return float(p50), float(p99)


def bench_remote_roundtrip(
    engine: Encoder,
    image: npt.NDArray[np.uint8],
    n: int = 5,
    image_encoding: str = "png",
    reply_dtype: ReplyDtype = "float32",
) -> RoundtripBench:
    """Encode ``image`` (HxWx3 uint8 RGB) ``n`` times locally, then ``n`` times through an EncoderServer that
    wraps the same ``engine`` in a thread on loopback. Calls never overlap, so one engine serves both."""
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    local_ms: list[float] = []
    for _ in range(n):
        start = time.perf_counter()
        engine.encode(image)
        local_ms.append((time.perf_counter() - start) * 1000)
    remote_ms: list[float] = []
    overhead_ms: list[float] = []
    stop = threading.Event()
    with EncoderServer(engine, LOOPBACK_ANY_PORT) as server:
        thread = threading.Thread(target=server.serve, args=(stop, None, 20), daemon=True)
        thread.start()
        try:
            timeout_ms = int(max(60_000, 20 * max(local_ms)))
            with RemoteEncoder(
                server.endpoint,
                timeout_ms=timeout_ms,
                retries=0,
                image_encoding=image_encoding,
                reply_dtype=reply_dtype,
            ) as remote:
                remote.encode(image)  # warm-up: connection set-up
                for _ in range(n):
                    start = time.perf_counter()
                    remote.encode(image)
                    elapsed_ms = (time.perf_counter() - start) * 1000
                    remote_ms.append(elapsed_ms)
                    overhead_ms.append(elapsed_ms - (remote.stats.last_server_encode_ms or 0.0))
        finally:
            stop.set()
            thread.join(timeout=timeout_ms / 1000)
    request_bytes = sum(len(f) for f in encode_request_frames("bench-1", image, image_encoding))
    local = _percentiles(local_ms)
    remote_p = _percentiles(remote_ms)
    overhead = _percentiles(overhead_ms)
    return RoundtripBench(
        n, image_encoding, reply_dtype, (int(image.shape[0]), int(image.shape[1])),
        local[0], local[1], remote_p[0], remote_p[1], overhead[0], overhead[1], request_bytes,
    )  # fmt: skip


def bench_selection(height: int = 480, width: int = 640) -> Selection:
    """A plausible selection: an elliptical object mask of HxW pixels with one gaze prompt."""
    mask = np.zeros((height, width), np.uint8)
    cv2.ellipse(mask, (width // 2, height // 2), (width // 5, height // 4), 15.0, 0.0, 360.0, 1, -1)
    fixation = Fixation(0, 250_000_000, np.zeros(3), np.array([0.0, 0.0, -1.0]), 0.4, tuple(range(0, 250, 10)))
    return Selection(
        selection_id=1, timestamp_ns=260_000_000, keyframe_index=3, keyframe_timestamp_ns=200_000_000,
        fixation=fixation, mask=mask.astype(bool), score=0.95, mask_index=1, candidate_scores=(0.7, 0.95, 0.9),
        prompt_points_xy=np.array([[width / 2, height / 2]], np.float32), prompt_labels=np.array([1], np.int32),
        gaze_xy=(width / 2, height / 2), depth_source=DepthSource.DEPTH_IMAGE, point_world_m=np.array([0, 0, -1.0])
    )  # fmt: skip


def bench_publisher(
    n: int = 500, mask_encoding: MaskEncoding = "png", height: int = 480, width: int = 640
) -> PublisherBench:
    """Publish ``n`` selection events (each encoding its HxW mask) as fast as possible to one subscriber that
    decodes them in another thread; the rate counts encoding and sending."""
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    selection = bench_selection(height, width)
    bytes_per_event = sum(len(f) for f in selection_frames(selection, EventMeta("selection", 0, "bench", 0),
                                                           mask_encoding=mask_encoding))  # fmt: skip
    received = 0
    stop = threading.Event()
    with (
        EventPublisher(LOOPBACK_ANY_PORT, sndhwm=max(1000, n), mask_encoding=mask_encoding) as publisher,
        EventSubscriber(publisher.endpoint, ["selection", "stats"], rcvhwm=max(1000, n)) as subscriber,
    ):
        for _ in range(500):  # wait until the subscription has reached the publisher
            publisher.publish_stats({"bench": 1})
            if subscriber.receive(timeout_ms=10) is not None:
                break

        def drain() -> None:
            nonlocal received
            while not stop.is_set() and received < n:
                event = subscriber.receive(timeout_ms=100)
                if event is not None and event.meta.topic == "selection":
                    received += 1

        thread = threading.Thread(target=drain, daemon=True)
        thread.start()
        start = time.perf_counter()
        for _ in range(n):
            publisher.publish_selection(selection)
        seconds = time.perf_counter() - start
        thread.join(timeout=max(10.0, 10 * seconds))
        stop.set()
        thread.join(timeout=1.0)
    return PublisherBench(
        n, (height, width), mask_encoding, seconds, n / seconds, bytes_per_event,
        n * bytes_per_event / seconds / 1e6, received,
    )  # fmt: skip
