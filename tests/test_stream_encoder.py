"""The remote encoder on real ZeroMQ sockets over loopback, with the real MobileSAM engine.

Transport-only behaviour (malformed requests, fallback logging, concurrency) uses :class:`MeanEncoder`, a
deterministic test fixture whose "embedding" is a fixed function of the image, so no model time is spent on it.
Everything about results (bit-exact PNG/raw, float16 and JPEG tolerances, a server restart) uses the real engine.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
import zmq

from xrseg.errors import InputError
from xrseg.sam.records import ImageEmbedding
from xrseg.stream.auth import CurveClientKeys, CurveServerKeys, make_curve_keys
from xrseg.stream.encoder_client import Encoder, EncoderUnavailableError, RemoteEncoder
from xrseg.stream.encoder_server import EncoderServer
from xrseg.stream.encoder_wire import FLOAT16_ATOL, FLOAT16_RTOL, encode_request_frames, ping_frames
from xrseg.stream.protocol import Limits

ANY_PORT = "tcp://127.0.0.1:*"
ENCODE_TIMEOUT_MS = 180_000  # the real encoder takes seconds on a busy 2-core machine
JPEG_MAX_RELATIVE_L2 = 0.15
"""Stated tolerance for JPEG transport at quality 90: ||remote - local|| / ||local|| of the embedding
(measured 0.07-0.13 on Segment Anything's four sample photographs at 640 px wide)."""
JPEG_MIN_MASK_IOU = 0.95
"""Stated tolerance for JPEG transport at quality 90: IoU of the best mask for the same point prompt
(measured >= 0.97 on the same photographs)."""


class MeanEncoder:
    """Test fixture for transport only: a deterministic embedding filled with per-channel image means."""

    def encode(self, rgb: npt.NDArray[np.uint8]) -> ImageEmbedding:
        embedding = np.zeros((1, 256, 64, 64), dtype=np.float32)
        embedding[0, :3] = rgb.reshape(-1, 3).mean(axis=0)[:, None, None]
        embedding[0, 3] = rgb.shape[0] + rgb.shape[1] / 1000
        return ImageEmbedding(embedding, (int(rgb.shape[0]), int(rgb.shape[1])), (1024, 1024))


class ServerThread:
    """An EncoderServer serving from a thread until stopped."""

    def __init__(self, encoder: Encoder, bind: str = ANY_PORT, **kwargs: object) -> None:
        self.server = EncoderServer(encoder, bind, **kwargs)  # type: ignore[arg-type]
        self.endpoint = self.server.endpoint
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.server.serve, args=(self._stop, None, 20), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=ENCODE_TIMEOUT_MS / 1000)
        self.server.close()

    def __enter__(self) -> ServerThread:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture(scope="module")
def photo(sample_images: dict[str, np.ndarray]) -> np.ndarray:
    """The dog photograph at 640x480-ish: HxWx3 uint8 RGB."""
    rgb = sample_images["dog"]
    width = 640
    height = round(rgb.shape[0] * width / rgb.shape[1])
    return cv2.resize(rgb, (width, height), interpolation=cv2.INTER_AREA)


@pytest.fixture(scope="module")
def reference(engine, photo: np.ndarray) -> ImageEmbedding:  # type: ignore[no-untyped-def]
    emb = engine.encode(photo)
    return ImageEmbedding(emb.embedding.copy(), emb.original_size, emb.input_size)


@pytest.fixture(scope="module")
def engine_server(engine, reference: ImageEmbedding) -> Iterator[ServerThread]:  # type: ignore[no-untyped-def]
    # `reference` first: the engine is used by one thread at a time (this module never encodes locally while
    # a request is in flight).
    with ServerThread(engine) as server:
        yield server


@pytest.fixture
def mean_server() -> Iterator[ServerThread]:
    with ServerThread(MeanEncoder(), limits=Limits(max_total_bytes=1 << 20, max_payload_bytes=1 << 20)) as server:
        yield server


# --- results match the local engine -------------------------------------------------------------------------


@pytest.mark.parametrize("image_encoding", ["raw", "png"])
def test_lossless_transport_is_bit_exact(
    engine_server: ServerThread, photo: np.ndarray, reference: ImageEmbedding, image_encoding: str
) -> None:
    with RemoteEncoder(
        engine_server.endpoint, timeout_ms=ENCODE_TIMEOUT_MS, image_encoding=image_encoding
    ) as remote:
        result = remote.encode(photo)
    assert result.embedding.dtype == np.float32 and result.embedding.shape == (1, 256, 64, 64)
    assert np.array_equal(result.embedding, reference.embedding)
    assert result.original_size == reference.original_size and result.input_size == reference.input_size


def test_float16_reply_is_within_its_stated_tolerance(
    engine_server: ServerThread, photo: np.ndarray, reference: ImageEmbedding
) -> None:
    with RemoteEncoder(engine_server.endpoint, timeout_ms=ENCODE_TIMEOUT_MS, reply_dtype="float16") as remote:
        result = remote.encode(photo)
    error = np.abs(result.embedding - reference.embedding)
    assert np.all(error <= FLOAT16_RTOL * np.abs(reference.embedding) + FLOAT16_ATOL)
    assert error.max() > 0


def _best_mask(engine, embedding: ImageEmbedding, xy: tuple[float, float]) -> np.ndarray:  # type: ignore[no-untyped-def]
    prediction = engine.decode(embedding, points=[list(xy)], labels=[1])
    return np.asarray(prediction.masks[prediction.best])


def test_jpeg_transport_is_within_its_stated_tolerance(
    engine,
    engine_server: ServerThread,
    photo: np.ndarray,
    reference: ImageEmbedding,  # type: ignore[no-untyped-def]
) -> None:
    with RemoteEncoder(
        engine_server.endpoint, timeout_ms=ENCODE_TIMEOUT_MS, image_encoding="jpeg", jpeg_quality=90
    ) as remote:
        result = remote.encode(photo)
    assert not np.array_equal(result.embedding, reference.embedding)  # JPEG really is lossy
    relative = np.linalg.norm(result.embedding - reference.embedding) / np.linalg.norm(reference.embedding)
    assert relative <= JPEG_MAX_RELATIVE_L2
    height, width = photo.shape[:2]
    for xy in [(width / 2, height / 2), (width / 3, height / 2)]:
        local, remote_mask = _best_mask(engine, reference, xy), _best_mask(engine, result, xy)
        iou = np.count_nonzero(local & remote_mask) / max(np.count_nonzero(local | remote_mask), 1)
        assert iou >= JPEG_MIN_MASK_IOU, f"mask IoU {iou:.3f} at {xy}"


# --- robustness ----------------------------------------------------------------------------------------------


def _dealer(endpoint: str) -> zmq.Socket:
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(endpoint)
    return sock


def _ask(sock: zmq.Socket, frames: list[bytes], timeout_ms: int = 10_000) -> dict | None:
    sock.send_multipart(frames)
    if not sock.poll(timeout_ms, zmq.POLLIN):
        return None
    reply = sock.recv_multipart()
    assert len(reply) == 1  # error and pong replies carry no payload
    return json.loads(reply[0])


def _with_shape(header: dict, shape: list[int]) -> bytes:
    return json.dumps(header | {"payloads": [{**header["payloads"][0], "shape": shape}]}).encode()


def test_bad_requests_get_error_replies_and_are_counted(mean_server: ServerThread) -> None:
    rgb = np.zeros((8, 8, 3), np.uint8)
    good = encode_request_frames("ok-1", rgb, "png")
    header = json.loads(good[0])
    cases: list[tuple[list[bytes], str, str | None]] = [
        ([b"not json at all"], "bad_request", None),
        ([json.dumps(header | {"schema": "xrseg.encoder/2"}).encode(), good[1]], "unsupported_version", None),
        ([json.dumps(header | {"type": "teleport"}).encode(), good[1]], "bad_request", "ok-1"),
        ([good[0]], "bad_request", "ok-1"),  # the image frame is missing
        ([good[0], good[1][:-3]], "bad_request", "ok-1"),  # truncated image
        ([good[0], b"\x89PNG\r\n\x1a\n" + bytes(40)], "bad_request", "ok-1"),  # not really a PNG
        ([b" " * 70_000], "too_large", None),
        ([_with_shape(header, [40000, 40000, 3]), good[1]], "too_large", "ok-1"),
        ([good[0], good[1], good[1]], "bad_request", "ok-1"),  # a frame nobody described
    ]
    sock = _dealer(mean_server.endpoint)
    try:
        for frames, code, request_id in cases:
            reply = _ask(sock, frames)
            assert reply is not None, f"no reply for {code}"
            assert reply["type"] == "error" and reply["code"] == code, reply
            assert reply["request_id"] == request_id and reply["message"]
        pong = _ask(sock, ping_frames("ping-1"))
        assert pong is not None and pong["type"] == "pong"
        info = pong["info"]
        assert info["rejected"] == len(cases) and info["errors"] == {
            "bad_request": 6,
            "unsupported_version": 1,
            "too_large": 2,
        }
        with RemoteEncoder(mean_server.endpoint, timeout_ms=10_000) as client:  # and the server still works
            assert client.encode(rgb).original_size == (8, 8)
    finally:
        sock.close(linger=0)


def test_frames_over_the_hard_limit_are_cut_off_without_harming_the_server(mean_server: ServerThread) -> None:
    sock = _dealer(mean_server.endpoint)
    try:
        assert _ask(sock, [b"x" * (2 << 20)], timeout_ms=1000) is None  # ZMQ_MAXMSGSIZE drops the connection
    finally:
        sock.close(linger=0)
    with RemoteEncoder(mean_server.endpoint, timeout_ms=10_000) as client:
        info = client.ping()
        assert info is not None and info["requests"] == 1  # only the ping reached the server
        assert client.encode(np.full((4, 6, 3), 9, np.uint8)).embedding[0, 0, 0, 0] == 9.0


def test_req_clients_work_too(mean_server: ServerThread) -> None:
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(mean_server.endpoint)
        reply = _ask(sock, ping_frames("req-1"))
        assert reply is not None and reply["type"] == "pong" and reply["request_id"] == "req-1"
    finally:
        sock.close(linger=0)


def test_concurrent_callers_get_their_own_answers(mean_server: ServerThread) -> None:
    images = [np.full((10 + i, 20, 3), 10 * i, np.uint8) for i in range(6)]
    results: dict[int, ImageEmbedding] = {}
    with RemoteEncoder(mean_server.endpoint, timeout_ms=10_000, max_in_flight=2) as client:

        def work(i: int) -> None:
            results[i] = client.encode(images[i])

        threads = [threading.Thread(target=work, args=(i,)) for i in range(len(images))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert sorted(results) == list(range(6))
    for i, embedding in results.items():
        assert embedding.original_size == (10 + i, 20) and embedding.embedding[0, 0, 0, 0] == 10 * i


def test_fallback_is_used_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    with ServerThread(MeanEncoder()) as probe:
        endpoint = probe.endpoint  # a port that was free a moment ago and now has nobody behind it
    fallback = MeanEncoder()
    rgb = np.full((6, 8, 3), 50, np.uint8)
    with (
        RemoteEncoder(endpoint, timeout_ms=200, retries=1, fallback=fallback, recheck_s=3600) as client,
        caplog.at_level(logging.WARNING, logger="xrseg.stream.encoder_client"),
    ):
        first = client.encode(rgb)
        second = client.encode(rgb)
    assert np.array_equal(first.embedding, fallback.encode(rgb).embedding)
    assert np.array_equal(second.embedding, first.embedding)
    warnings = [r.getMessage() for r in caplog.records if r.name == "xrseg.stream.encoder_client"]
    assert len(warnings) == 1 and "not answering" in warnings[0]
    # The first call tried twice (one retry on a new socket); the second went straight to the fallback.
    assert (client.stats.timeouts, client.stats.retries, client.stats.fallbacks) == (2, 1, 2)


def test_server_is_used_again_when_it_comes_back() -> None:
    with ServerThread(MeanEncoder()) as probe:
        endpoint = probe.endpoint
    with RemoteEncoder(endpoint, timeout_ms=1000, retries=0, fallback=MeanEncoder(), recheck_s=0) as client:
        assert client.encode(np.full((6, 8, 3), 50, np.uint8)).embedding[0, 0, 0, 0] == 50.0
        assert client.stats.fallbacks == 1
        with ServerThread(MeanEncoder(), endpoint):
            assert client.encode(np.full((6, 8, 3), 70, np.uint8)).embedding[0, 0, 0, 0] == 70.0
        assert client.stats.fallbacks == 1 and client.stats.replies == 1


def test_no_server_and_no_fallback_raises_a_clear_error() -> None:
    with ServerThread(MeanEncoder()) as probe:
        endpoint = probe.endpoint
    with RemoteEncoder(endpoint, timeout_ms=150, retries=2) as client:
        with pytest.raises(EncoderUnavailableError, match="did not answer 3 attempt"):
            client.encode(np.zeros((4, 4, 3), np.uint8))
        assert (client.stats.requests, client.stats.timeouts, client.stats.retries) == (3, 3, 2)
        with pytest.raises(InputError, match="HxWx3 uint8"):
            client.encode(np.zeros((4, 4), np.uint8))


def test_server_refuses_a_public_bind_without_curve() -> None:
    with pytest.raises(InputError, match="without CURVE"):
        EncoderServer(MeanEncoder(), "tcp://0.0.0.0:*")


def test_curve_lets_in_only_authorised_clients(tmp_path: Path) -> None:
    server_keys, client_keys = make_curve_keys(tmp_path / "keys")
    _, stranger_keys = make_curve_keys(tmp_path / "stranger")  # a valid key pair the server does not know
    stranger = CurveClientKeys(stranger_keys.secret_key_file, client_keys.server_public_key_file)
    with ServerThread(
        MeanEncoder(), curve=CurveServerKeys(server_keys.secret_key_file, server_keys.authorized_clients_dir)
    ) as server:
        with RemoteEncoder(server.endpoint, timeout_ms=10_000, curve=client_keys) as client:
            assert client.encode(np.full((4, 4, 3), 3, np.uint8)).embedding[0, 0, 0, 0] == 3.0
        with RemoteEncoder(server.endpoint, timeout_ms=500, retries=0) as plain:
            assert plain.ping() is None
        with RemoteEncoder(server.endpoint, timeout_ms=500, retries=0, curve=stranger) as intruder:
            assert intruder.ping() is None
            with pytest.raises(EncoderUnavailableError):
                intruder.encode(np.zeros((4, 4, 3), np.uint8))
        assert server.server.stats.requests == 1  # only the authorised request reached the server


def test_bad_curve_key_file_is_a_clear_error(tmp_path: Path) -> None:
    bogus = tmp_path / "nothing.key_secret"
    bogus.write_text("not a certificate\n")
    with pytest.raises(InputError, match=r"CURVE certificate|no secret key"):
        RemoteEncoder("tcp://127.0.0.1:5999", curve=CurveClientKeys(bogus, bogus))


# --- a real server process restarting -----------------------------------------------------------------------


def _start_server_process(bind: str) -> tuple[subprocess.Popen[str], str]:
    """`xrseg serve-encoder` in a subprocess; returns it and the endpoint it printed."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen(
        [sys.executable, "-m", "xrseg.cli", "-q", "serve-encoder", "--bind", bind],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline and process.poll() is None:
            if selector.select(timeout=1.0):
                line = process.stdout.readline()
                if line.startswith("listening on "):
                    return process, line.split()[-1]
        process.kill()
        raise AssertionError(f"serve-encoder did not start (exit code {process.poll()})")
    finally:
        selector.close()


def test_client_survives_a_server_restart(photo: np.ndarray, reference: ImageEmbedding) -> None:
    first, endpoint = _start_server_process(ANY_PORT)
    second = None
    try:
        with RemoteEncoder(endpoint, timeout_ms=ENCODE_TIMEOUT_MS, retries=1) as client:
            assert np.array_equal(client.encode(photo).embedding, reference.embedding)
            first.send_signal(signal.SIGKILL)  # a crash, not a clean stop
            first.wait(timeout=30)
            # A request made while the server is down is answered by its replacement.
            result: dict[str, ImageEmbedding] = {}
            request = threading.Thread(target=lambda: result.update(embedding=client.encode(photo)))
            request.start()
            second, again = _start_server_process(endpoint)
            assert again == endpoint
            request.join(timeout=2 * ENCODE_TIMEOUT_MS / 1000)
            assert np.array_equal(result["embedding"].embedding, reference.embedding)
            assert client.stats.replies == 2
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=30)
            if process is not None and process.stdout is not None:
                process.stdout.close()


def test_bench_remote_roundtrip_reports_both_sides() -> None:
    from xrseg.tools.bench_stream import bench_remote_roundtrip

    image = np.full((30, 40, 3), 7, np.uint8)
    result = bench_remote_roundtrip(MeanEncoder(), image, n=3, image_encoding="raw")
    assert result.n == 3 and result.image_hw == (30, 40) and result.image_encoding == "raw"
    assert result.request_bytes > 30 * 40 * 3  # the raw image plus its header
    assert 0 < result.local_p50_ms <= result.local_p99_ms and 0 < result.remote_p50_ms <= result.remote_p99_ms
    assert result.overhead_p50_ms <= result.remote_p50_ms


def test_serve_encoder_command_makes_keys_and_refuses_public_binds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from xrseg.cli import main

    assert main(["serve-encoder", "--make-keys", str(tmp_path)]) == 0
    assert (tmp_path / "server.key_secret").is_file() and (
        tmp_path / "authorized_clients" / "client.key"
    ).is_file()
    assert main(["serve-encoder", "--make-keys", str(tmp_path)]) == 2  # never overwrites keys
    assert main(["serve-encoder", "--bind", "tcp://0.0.0.0:5561"]) == 2  # refused before loading the model
    assert "without CURVE keys" in capsys.readouterr().err
