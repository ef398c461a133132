"""The event stream on real ZeroMQ sockets over loopback (ephemeral ports)."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from tests.test_stream_protocol import make_fixation, make_selection
from xrseg.cli import main
from xrseg.errors import InputError
from xrseg.stream.events import EventMeta, FixationEvent, LiftSummary, SelectionEvent, StatsEvent, stats_frames
from xrseg.stream.pubsub import EventPublisher, EventSubscriber

ANY_PORT = "tcp://127.0.0.1:*"


def connect_pair(publisher: EventPublisher, subscriber: EventSubscriber) -> None:
    """Publish stats until the subscriber sees one (ZeroMQ subscriptions take a moment to reach the PUB)."""
    for _ in range(250):
        publisher.publish_stats({"handshake": 1})
        if subscriber.receive(timeout_ms=20) is not None:
            while subscriber.receive(timeout_ms=50) is not None:  # drain the extra handshakes
                pass
            return
    raise AssertionError("subscriber never connected")


@pytest.fixture
def pair() -> Iterator[tuple[EventPublisher, EventSubscriber]]:
    with EventPublisher(ANY_PORT) as publisher, EventSubscriber(publisher.endpoint) as subscriber:
        connect_pair(publisher, subscriber)
        yield publisher, subscriber


def test_events_arrive_typed_and_in_order(pair: tuple[EventPublisher, EventSubscriber]) -> None:
    publisher, subscriber = pair
    selection = make_selection(480, 640)
    assert publisher.publish_fixation(make_fixation())
    assert publisher.publish_selection(selection, LiftSummary([0, 0, -1], [0.2, 0.1, 0.1]), "mesh.glb")
    assert publisher.publish_stats({"encode_ms": 412.5})
    fixation = subscriber.receive(timeout_ms=5000)
    chosen = subscriber.receive(timeout_ms=5000)
    stats = subscriber.receive(timeout_ms=5000)
    assert isinstance(fixation, FixationEvent) and fixation.fixation.end_ns == 1_250_000_000
    assert isinstance(chosen, SelectionEvent) and np.array_equal(chosen.selection.mask, selection.mask)
    assert chosen.mesh_path == "mesh.glb" and chosen.meta.stream_id == publisher.stream_id
    assert isinstance(stats, StatsEvent) and stats.values == {"encode_ms": 412.5}
    assert subscriber.receive(timeout_ms=50) is None
    assert subscriber.dropped == 0 and subscriber.rejected == 0


def test_topic_filter_is_exact() -> None:
    with EventPublisher(ANY_PORT) as publisher, EventSubscriber(publisher.endpoint, ["stats"]) as subscriber:
        connect_pair(publisher, subscriber)
        publisher.publish_selection(make_selection())
        publisher.publish_fixation(make_fixation())
        publisher.publish_stats({"marker": 2})
        event = subscriber.receive(timeout_ms=5000)
        assert isinstance(event, StatsEvent) and event.values == {"marker": 2}
        assert subscriber.receive(timeout_ms=100) is None


def test_a_preview_is_a_candidate_on_its_own_topic() -> None:
    """The hover preview has a selection's body with id 0; a subscriber of `selection` never sees it."""
    candidate = dataclasses.replace(make_selection(480, 640), selection_id=0)
    with (
        EventPublisher(ANY_PORT) as publisher,
        EventSubscriber(publisher.endpoint, ["preview", "stats"]) as previews,
        EventSubscriber(publisher.endpoint, ["selection", "stats"]) as selections,
    ):
        connect_pair(publisher, previews)
        connect_pair(publisher, selections)
        while previews.receive(timeout_ms=50) is not None:  # the second handshake's stats
            pass
        assert publisher.publish_preview(candidate)
        publisher.publish_stats({"marker": 3})
        event = previews.receive(timeout_ms=5000)
        assert isinstance(event, SelectionEvent) and event.meta.topic == "preview"
        assert event.selection.selection_id == 0 and np.array_equal(event.selection.mask, candidate.mask)
        assert event.lifted is None and event.mesh_path is None
        marker = selections.receive(timeout_ms=5000)
        assert isinstance(marker, StatsEvent) and marker.values == {"marker": 3}


def test_unknown_topics_are_refused() -> None:
    with pytest.raises(InputError, match="topics must be among"):
        EventSubscriber("tcp://127.0.0.1:5999", ["gossip"])


def test_malformed_messages_are_skipped_and_counted() -> None:
    """A foreign PUB sends garbage between valid events: the subscriber returns only the valid ones."""
    raw = zmq.Context.instance().socket(zmq.PUB)
    raw.setsockopt(zmq.LINGER, 0)
    try:
        raw.bind(ANY_PORT)
        endpoint = raw.getsockopt_string(zmq.LAST_ENDPOINT)
        with EventSubscriber(endpoint, ["stats", "selection"]) as subscriber:
            for seq in range(250):  # wait for the subscription to arrive
                raw.send_multipart(stats_frames({"handshake": 1}, EventMeta("stats", seq, "raw", 0), 0))
                if subscriber.receive(timeout_ms=20) is not None:
                    break
            while subscriber.receive(timeout_ms=50) is not None:
                pass
            valid = stats_frames({"marker": 1}, EventMeta("stats", 1000, "raw", 0), 0)
            raw.send_multipart([b"stats", b"not json"])
            raw.send_multipart([valid[0], valid[1].replace(b"xrseg.events/1", b"xrseg.events/7")])
            raw.send_multipart([b"selection", b'{"schema": "xrseg.events/1", "topic": "selection"}'])
            raw.send_multipart([b"stats"])
            raw.send_multipart([b"statsX", valid[1]])  # prefix-matches the subscription: ignored, not counted
            raw.send_multipart(valid)
            event = subscriber.receive(timeout_ms=5000)
        assert isinstance(event, StatsEvent) and event.values == {"marker": 1}
        assert subscriber.rejected == 4
    finally:
        raw.close(linger=0)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096


def test_slow_subscriber_cannot_grow_the_publisher() -> None:
    """200 selection events of ~0.6 MB (a noise mask as RLE) to a subscriber that does not read: sending never
    blocks, memory stays flat, and the subscriber later gets at most about the two high-water marks' worth."""
    hwm, sockbuf, n = 4, 64 * 1024, 200
    selection = make_selection(480, 640)
    noisy = np.random.default_rng(0).random((480, 640)) > 0.5
    selection = type(selection)(**{**selection.__dict__, "mask": noisy})
    with (
        EventPublisher(ANY_PORT, sndhwm=hwm, sndbuf_bytes=sockbuf, mask_encoding="rle") as publisher,
        EventSubscriber(publisher.endpoint, rcvhwm=hwm, rcvbuf_bytes=sockbuf) as subscriber,
    ):
        connect_pair(publisher, subscriber)
        rss_before = _rss_bytes()
        results = [publisher.publish_selection(selection) for _ in range(n)]
        rss_growth = _rss_bytes() - rss_before
        received: list[SelectionEvent] = []
        for _ in range(n):
            event = subscriber.receive(timeout_ms=1000)
            if event is None:
                break
            assert isinstance(event, SelectionEvent)
            received.append(event)
        # PUB drops what finds its pipe full; the pipe learns of the I/O thread's reads only in batches, so the
        # losses are mostly at the tail but can also be gaps in between. One more event reveals the tail's.
        publisher.publish_selection(make_selection())
        marker = subscriber.receive(timeout_ms=5000)
    message_bytes = 4 * noisy.size // 2  # about half the pixels start a run; 4 bytes per count
    assert all(results) and publisher.dropped == 0  # every send returned at once, none refused
    assert rss_growth < 48 * 1024 * 1024, (
        f"publisher grew by {rss_growth / 1e6:.0f} MB (all messages: {n * message_bytes / 1e6:.0f} MB)"
    )
    # Queued: the PUB's and the SUB's high-water marks, plus what fits in the kernel buffers (< 1 message here)
    # and one message in flight on each side.
    assert 1 <= len(received) <= 2 * hwm + 4
    seqs = [e.meta.seq for e in received]
    assert seqs[0] == 0 and seqs == sorted(set(seqs)), seqs  # in order, none twice
    assert isinstance(marker, SelectionEvent) and marker.meta.seq == n
    assert subscriber.dropped == n - len(received) > 0
    assert np.array_equal(received[-1].selection.mask, noisy)


@pytest.fixture
def chatty_publisher() -> Iterator[str]:
    """A publisher thread sending a fixation, a selection and stats every 10 ms (for at most 30 s)."""
    stop = threading.Event()
    publisher = EventPublisher(ANY_PORT)

    def run() -> None:
        selection = make_selection()
        for i in range(3000):
            if stop.wait(0.01):
                return
            publisher.publish_fixation(make_fixation())
            publisher.publish_selection(selection, mesh_path=f"mesh_{i}.glb")
            publisher.publish_stats({"i": i})

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield publisher.endpoint
    finally:
        stop.set()
        thread.join(timeout=10)
        publisher.close()


def test_listen_prints_json_lines(chatty_publisher: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", chatty_publisher, "--count", "4", "--timeout", "30", "--json"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    records = [json.loads(line) for line in lines]
    assert {r["topic"] for r in records} <= {"fixation", "selection", "stats"}
    selections = [r for r in records if r["topic"] == "selection"]
    assert all(r["area_px"] == 20 * 30 + 1 and r["mask_hw"] == [48, 64] for r in selections)


def test_listen_filters_topics_in_human_form(chatty_publisher: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", chatty_publisher, "--topics", "selection", "--count", "2", "--timeout", "30"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(line.startswith("selection #") and "area=601 px" in line and "mesh=mesh_" in line for line in lines)


def test_listen_without_publisher_times_out_with_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", "tcp://127.0.0.1:9", "--count", "1", "--timeout", "0.3"]) == 1
    assert "only 0 of 1" in capsys.readouterr().err


def test_listen_rejects_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["listen", "not-an-endpoint", "--timeout", "0.1"]) == 2
    assert "endpoint must look like" in capsys.readouterr().err


def test_bench_publisher_delivers_every_event_to_a_live_subscriber() -> None:
    from xrseg.tools.bench_stream import bench_publisher

    result = bench_publisher(20, "png+rle", 120, 160)
    assert result.n == 20 and result.received == 20 and result.mask_hw == (120, 160)
    assert result.events_per_s > 0 and result.bytes_per_event > 0
