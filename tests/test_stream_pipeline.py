"""Issue 6 end to end, in separate processes over loopback: `replay --publish` with `listen`, and
`replay --encoder` against `serve-encoder` giving the same selections as a local replay."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

from tests.test_stream_encoder import _start_server_process

SCENES = Path(__file__).resolve().parents[1] / "scenes"
SESSION = SCENES / "desk-near"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def xrseg(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xrseg.cli", "-q", *args], capture_output=True, text=True, timeout=timeout
    )


def selections(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "selections").glob("*.json"))]


def test_listen_shows_every_selection_published_by_replay(tmp_path: Path) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    listener = subprocess.Popen(
        [sys.executable, "-m", "xrseg.cli", "-q", "listen", endpoint, "--json", "--timeout", "300"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=dict(os.environ, PYTHONUNBUFFERED="1"),  # every event line reaches the pipe before terminate()
    )
    try:
        # The listener connects before replay binds; ZeroMQ reconnects until the publisher is there, and the
        # first selection comes seconds after the start, long after the subscription is in place.
        out = tmp_path / "out"
        done = xrseg("replay", str(SESSION), "--out", str(out), "--no-mesh", "--no-video", "--publish", endpoint)
        assert done.returncode == 0, done.stderr
    finally:
        listener.terminate()
        stdout, _ = listener.communicate(timeout=30)
    events = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    published = [e for e in events if e.get("topic") == "selection"]
    written = selections(out)
    assert written, "the replay made selections"
    assert sorted(e["selection_id"] for e in published) == sorted(s["selection_id"] for s in written)
    assert any(e.get("topic") == "fixation" for e in events)


def test_remote_encoder_gives_the_same_selections_as_local(tmp_path: Path) -> None:
    local = tmp_path / "local"
    done = xrseg("replay", str(SESSION), "--out", str(local), "--no-mesh", "--no-video")
    assert done.returncode == 0, done.stderr
    server, endpoint = _start_server_process("tcp://127.0.0.1:*")
    try:
        remote = tmp_path / "remote"
        done = xrseg(
            "replay", str(SESSION), "--out", str(remote), "--no-mesh", "--no-video", "--encoder", endpoint
        )
        assert done.returncode == 0, done.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    ours, theirs = selections(local), selections(remote)
    assert len(ours) == len(theirs) > 0
    for a, b in zip(ours, theirs, strict=True):
        assert (a["keyframe_index"], a["mask_index"], a["area_px"]) == (
            b["keyframe_index"],
            b["mask_index"],
            b["area_px"],
        )
        assert (local / a["mask_png"]).read_bytes() == (remote / b["mask_png"]).read_bytes()
