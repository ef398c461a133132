"""The encoder server's memory under a multi-client flood of oversized requests (loopback, bounded loops).

The server runs in its own process (so its peak RSS, ``VmHWM``, is its own) with a trivial encoder: what is
measured is the transport. Three clients each send requests of 8 frames of just under the per-frame limit
(over the per-request total), the shape of issue 15's flood at a smaller frame size, and a ping must still be
answered afterwards.
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
server = EncoderServer(ZeroEncoder(), "tcp://127.0.0.1:*", limits=limits, max_queued_per_client=int(sys.argv[3]))
print(server.endpoint, flush=True)
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
server.serve(stop)
print(server.stats.as_dict()["errors"], flush=True)
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


def test_server_memory_stays_within_its_budget_under_a_flood() -> None:
    args = [str(LIMITS.max_payload_bytes), str(LIMITS.max_total_bytes), str(MAX_QUEUED_PER_CLIENT)]
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None and server.stdin is not None
        endpoint = server.stdout.readline().strip()
        baseline = _status_bytes(server.pid, "VmRSS")
        replies: list[dict[str, object]] = []
        threads = [threading.Thread(target=_flood, args=(endpoint, replies)) for _ in range(CLIENTS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        peak = _status_bytes(server.pid, "VmHWM")
        sock = zmq.Context.instance().socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send_multipart(ping_frames("after-flood"))
        assert sock.poll(30_000), "the server stopped answering after the flood"
        assert json.loads(sock.recv_multipart()[0])["type"] == "pong"
        sock.close(linger=0)
    finally:
        if server.stdin is not None:
            server.stdin.close()
        server.wait(timeout=60)
    assert len(replies) == CLIENTS * REQUESTS_PER_CLIENT
    assert all(r["type"] == "error" and r["code"] == "too_large" for r in replies)
    growth = peak - baseline
    budget_mib = budget_bytes(CLIENTS) / 2**20
    print(f"server RSS {baseline / 2**20:.0f} MiB -> peak {peak / 2**20:.0f} MiB (budget {budget_mib:.0f} MiB)")
    assert growth < budget_bytes(CLIENTS) + SLACK_BYTES
