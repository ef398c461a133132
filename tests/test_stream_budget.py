"""The encoder server's memory under a multi-client flood of oversized requests (loopback, bounded loops).

The server runs in its own process (so its peak RSS, ``VmHWM``, is its own) with a trivial encoder: what is
measured is the transport. Three clients each send requests of 8 frames of just under the per-frame limit
(over the per-request total), the shape of issue 15's flood at a smaller frame size, and a ping must still be
answered afterwards. A hostile client sends one message of far more frames than the protocol allows (ZeroMQ
buffers all of it before the server sees any): the memory guard must drop the connections within the budget.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import zmq

from xrseg.stream.encoder_wire import SCHEMA, ping_frames
from xrseg.stream.protocol import Limits

FRAME_BYTES = 8 << 20
LIMITS = Limits(max_payload_bytes=FRAME_BYTES + 4096, max_total_bytes=3 * FRAME_BYTES)
CLIENTS = 3
REQUESTS_PER_CLIENT = 4
FRAMES_PER_REQUEST = 8
MAX_QUEUED_PER_CLIENT = 1
SLACK_BYTES = 200 << 20
"""Allowed on top of the stated budget (the acceptance criterion of issue 15)."""
MEMORY_BUDGET_BYTES = 256 << 20
"""The server's memory guard: growth over this drops every connection."""
HOSTILE_FRAMES = 64
"""A message of 64 frames of 8 MiB (512 MiB, twice the guard's budget), each frame within the frame limit."""

SERVER = """
import sys, threading
import numpy as np
from xrseg.sam.records import ImageEmbedding
from xrseg.stream.encoder_server import EncoderServer
from xrseg.stream.protocol import Limits

class ZeroEncoder:
    def encode(self, rgb):
        return ImageEmbedding(np.zeros((1, 256, 64, 64), np.float32), rgb.shape[:2], (1024, 1024))

limits = Limits(max_payload_bytes=int(sys.argv[1]), max_total_bytes=int(sys.argv[2]))
server = EncoderServer(
    ZeroEncoder(), "tcp://127.0.0.1:*", limits=limits, max_queued_per_client=int(sys.argv[3]),
    memory_budget_bytes=int(sys.argv[4]),
)
print(server.endpoint, flush=True)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
server.serve(stop)
print(server.stats.as_dict()["connection_resets"], flush=True)
server.close()
"""


def budget_bytes(clients: int) -> int:
    """docs/protocol.md's bound for requests of at most 1 + max_payload_frames frames: per client,
    (max_queued_per_client + 1) requests held by ZeroMQ, plus the server's copy of one request."""
    request = (1 + LIMITS.max_payload_frames) * LIMITS.max_payload_bytes
    return clients * (MAX_QUEUED_PER_CLIENT + 1) * request + LIMITS.max_total_bytes


def _status_bytes(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {key} in /proc/{pid}/status")


def _flood(endpoint: str, replies: list[dict[str, object]]) -> None:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    big = bytes(FRAME_BYTES)  # one buffer, sent by reference: the client side stays small
    try:
        for i in range(REQUESTS_PER_CLIENT):
            header = {"schema": SCHEMA, "type": "encode", "request_id": f"flood-{i}", "payloads": []}
            sock.send_multipart([json.dumps(header).encode(), *([big] * FRAMES_PER_REQUEST)], copy=False)
        for _ in range(REQUESTS_PER_CLIENT):
            if not sock.poll(60_000):
                break
            replies.append(json.loads(sock.recv_multipart()[0]))
    finally:
        sock.close(linger=0)


def _hostile_until_dropped(endpoint: str) -> bool:
    """Send one message of ``HOSTILE_FRAMES`` frames; True once the server dropped the connection (a socket
    monitor's ``DISCONNECTED``), False if it never did (60 s: a guard against a hang, not a timing check)."""
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)
    sock.connect(endpoint)
    try:
        sock.send_multipart([bytes(FRAME_BYTES)] * HOSTILE_FRAMES, copy=False)
        return bool(monitor.poll(60_000))
    finally:
        sock.disable_monitor()
        monitor.close(linger=0)
        sock.close(linger=0)


def _ping(endpoint: str) -> dict[str, object]:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    try:
        sock.send_multipart(ping_frames("after-flood"))
        assert sock.poll(30_000), "the server stopped answering after the flood"
        return dict(json.loads(sock.recv_multipart()[0]))
    finally:
        sock.close(linger=0)


class ServerProcess:
    """The server in a process of its own; :meth:`stop` returns how many times its guard dropped connections."""

    def __init__(self) -> None:
        args = [str(LIMITS.max_payload_bytes), str(LIMITS.max_total_bytes), str(MAX_QUEUED_PER_CLIENT)]
        self.process = subprocess.Popen(
            [sys.executable, "-c", SERVER, *args, str(MEMORY_BUDGET_BYTES)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.endpoint = self.process.stdout.readline().strip()
        self.baseline = _status_bytes(self.process.pid, "VmRSS")

    def peak_growth(self) -> int:
        return _status_bytes(self.process.pid, "VmHWM") - self.baseline

    def stop(self) -> int:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.close()
        resets = int(self.process.stdout.readline())
        self.process.wait(timeout=60)
        return resets


def test_a_message_of_too_many_frames_is_dropped_within_the_guard_budget() -> None:
    server = ServerProcess()
    try:
        dropped = _hostile_until_dropped(server.endpoint)
        growth = server.peak_growth()
        assert _ping(server.endpoint)["type"] == "pong"
    finally:
        resets = server.stop()
    print(
        f"hostile message: server RSS grew by {growth / 2**20:.0f} MiB (guard budget 256 MiB), {resets} reset(s)"
    )
    assert dropped and resets >= 1
    assert growth < MEMORY_BUDGET_BYTES + SLACK_BYTES


def test_server_memory_stays_within_its_budget_under_a_flood() -> None:
    server = ServerProcess()
    try:
        replies: list[dict[str, object]] = []
        threads = [threading.Thread(target=_flood, args=(server.endpoint, replies)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        growth = server.peak_growth()
        assert _ping(server.endpoint)["type"] == "pong"
    finally:
        resets = server.stop()
    assert resets == 0, "well-formed requests within the budget tripped the guard"
    assert len(replies) == CLIENTS * REQUESTS_PER_CLIENT
    assert all(r["type"] == "error" and r["code"] == "too_large" for r in replies)
    budget_mib = budget_bytes(CLIENTS) / 2**20
    print(f"server RSS {server.baseline / 2**20:.0f} MiB + {growth / 2**20:.0f} MiB (budget {budget_mib:.0f} MiB)")
    assert growth < budget_bytes(CLIENTS) + SLACK_BYTES
