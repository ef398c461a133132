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


def listened(out: Path, *replay_options: str) -> list[dict]:
    """`xrseg replay SESSION --out OUT --publish ... REPLAY_OPTIONS` with `xrseg listen --json` in another
    process: the events it printed."""
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
        argv = ["replay", str(SESSION), "--out", str(out), "--no-mesh", "--no-video", "--publish", endpoint]
        done = xrseg(*argv, *replay_options)
        assert done.returncode == 0, done.stderr
    finally:
        listener.terminate()
        stdout, _ = listener.communicate(timeout=30)
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def test_listen_shows_every_selection_published_by_replay(tmp_path: Path) -> None:
    out = tmp_path / "out"
    events = listened(out)
    published = [e for e in events if e.get("topic") == "selection"]
    written = selections(out)
    assert written, "the replay made selections"
    assert sorted(e["selection_id"] for e in published) == sorted(s["selection_id"] for s in written)
    assert any(e.get("topic") == "fixation" for e in events)
    assert not any(e.get("topic") == "preview" for e in events)  # only when asked, and only asynchronously


def test_a_live_run_publishes_the_hover_preview_when_asked(tmp_path: Path) -> None:
    """Replayed in real time (the live path) with --publish-preview: the look-aheads reach a listener as
    `preview` events (id 0) besides the selections."""
    events = listened(tmp_path / "out", "--realtime", "--publish-preview")
    previews = [e for e in events if e.get("topic") == "preview"]
    assert previews and all(e["selection_id"] == 0 and e["area_px"] > 0 for e in previews)
    assert any(e.get("topic") == "selection" for e in events)


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
