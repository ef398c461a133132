"""Access control and subscriber robustness (issue 15): bind checks, CURVE allow-lists, key file modes,
malformed and oversized messages, and how gaps are counted for a late joiner."""

from __future__ import annotations

import json
import stat
import time
from pathlib import Path

import pytest
import zmq

from tests.test_stream_pubsub import connect_pair
from xrseg.cli import main
from xrseg.errors import InputError
from xrseg.stream.auth import CurveClientKeys, CurveServerKeys, check_bind_security, make_curve_keys
from xrseg.stream.events import EventMeta, stats_frames
from xrseg.stream.pubsub import EventPublisher, EventSubscriber

ANY_PORT = "tcp://127.0.0.1:*"


def test_non_loopback_binds_need_curve_with_an_allow_list(tmp_path: Path) -> None:
    server_keys, _ = make_curve_keys(tmp_path / "keys")
    open_curve = CurveServerKeys(server_keys.secret_key_file, None)
    with pytest.raises(InputError, match="without CURVE keys"):
        check_bind_security("tcp://0.0.0.0:5561", None, False, "serve")
    with pytest.raises(InputError, match="no allow-list"):
        check_bind_security("tcp://0.0.0.0:5561", open_curve, False, "serve")
    check_bind_security("tcp://0.0.0.0:5561", server_keys, False, "serve")
    check_bind_security("tcp://0.0.0.0:5561", None, True, "serve")
    check_bind_security("tcp://127.0.0.1:5561", None, False, "serve")
    with pytest.raises(InputError, match="without CURVE keys"):
        EventPublisher("tcp://0.0.0.0:*")
    argv = ["serve-encoder", "--bind", "tcp://0.0.0.0:5561", "--curve-secret", str(server_keys.secret_key_file)]
    assert main(argv) == 2  # refused before the model is loaded


def test_secret_keys_are_private(tmp_path: Path) -> None:
    server_keys, client_keys = make_curve_keys(tmp_path / "keys")
    for secret in (server_keys.secret_key_file, client_keys.secret_key_file):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert stat.S_IMODE(client_keys.server_public_key_file.stat().st_mode) == 0o644
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == [
        "authorized_clients",
        "client.key",
        "client.key_secret",
        "server.key",
        "server.key_secret",
    ]


def test_publisher_with_curve_serves_only_allowed_subscribers(tmp_path: Path) -> None:
    server_keys, client_keys = make_curve_keys(tmp_path / "keys")
    _, stranger_keys = make_curve_keys(tmp_path / "stranger")
    stranger = CurveClientKeys(stranger_keys.secret_key_file, client_keys.server_public_key_file)
    with (
        EventPublisher(ANY_PORT, curve=server_keys) as publisher,
        EventSubscriber(publisher.endpoint, ["stats"], curve=client_keys) as allowed,
        EventSubscriber(publisher.endpoint, ["stats"], curve=stranger) as intruder,
        EventSubscriber(publisher.endpoint, ["stats"]) as plain,
    ):
        connect_pair(publisher, allowed)
        publisher.publish_stats({"secret": 1})
        assert allowed.receive(timeout_ms=5000) is not None
        assert intruder.receive(timeout_ms=300) is None and plain.receive(timeout_ms=300) is None


def _raw_publisher() -> tuple[zmq.Socket, str]:
    sock = zmq.Context.instance().socket(zmq.PUB)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(ANY_PORT)
    return sock, sock.getsockopt_string(zmq.LAST_ENDPOINT)


def _stats(seq: int, stream_id: str = "s1") -> list[bytes]:
    return stats_frames({"n": seq}, EventMeta("stats", seq, stream_id, time.time_ns()), seq)


def _join(raw: zmq.Socket, subscriber: EventSubscriber) -> None:
    """Publish until the subscription has reached the publisher, then drain (the "handshake" stream, seq 0)."""
    for _ in range(250):
        raw.send_multipart(_stats(0, "handshake"))
        if subscriber.receive(timeout_ms=20) is not None:
            while subscriber.receive(timeout_ms=50) is not None:
                pass
            return
    raise AssertionError("subscriber never connected")


def test_subscriber_survives_malformed_and_oversized_messages() -> None:
    raw, endpoint = _raw_publisher()
    header = json.loads(_stats(0)[1])
    hostile = [
        [b"stats", b'{"schema": "xrseg.events/1", "seq": ' + b"9" * 5000 + b"}"],
        [b"stats", json.dumps(header).replace('"n": 0', '"n": 1e400').encode()],
        [b"stats", b"\xff\xfe not utf-8"],
        [b"stats", b"[" * 5000],
        [b"stats", json.dumps(header | {"seq": 2**64}).encode()],
        [b"stats"],
    ]
    try:
        with EventSubscriber(endpoint, ["stats"]) as subscriber:
            _join(raw, subscriber)
            for frames in hostile:
                raw.send_multipart(frames)
            raw.send_multipart([b"stats", bytes((64 << 20) + 1)])  # over the per-payload limit
            raw.send_multipart(_stats(10))
            received = subscriber.receive(timeout_ms=5000)
            assert received is not None and received.meta.seq == 10, "nothing received after the oversized frame"
            assert subscriber.rejected == len(hostile) + 1
    finally:
        raw.close(linger=0)


def test_gaps_count_from_the_first_sequence_number_seen() -> None:
    raw, endpoint = _raw_publisher()
    try:
        with EventSubscriber(endpoint, ["stats"]) as subscriber:
            _join(raw, subscriber)
            for seq in (27, 28, 31, 29, 32):  # a late joiner: 27 went out before; 29-30 lost, then a stale 29
                raw.send_multipart(_stats(seq))
                assert subscriber.receive(timeout_ms=5000) is not None
            raw.send_multipart(_stats(3, "restarted"))  # a new publisher instance: counted on its own
            assert subscriber.receive(timeout_ms=5000) is not None
            assert subscriber.dropped == 2
            assert subscriber.before_first == 27 + 3
    finally:
        raw.close(linger=0)
