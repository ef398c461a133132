"""A run killed or interrupted at any point leaves no temporary file after the next run, and its summary.json says
whether it completed (issue 15). Real processes, real signals; the kill point waits for files, not for time.

The broader random probe is ``python -m xrseg.tools.killprobe`` (docs/hardening.md has its figures).
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from xrseg.errors import InputError
from xrseg.scratch import remove_stale
from xrseg.sinks.outdir import RUN_ENTRIES
from xrseg.sinks.runlock import LOCK_NAME
from xrseg.sinks.runstate import open_run
from xrseg.tools.killprobe import default_sigint, leftovers

SEED = 15
HANG_GUARD_S = 300.0
"""Only against a hang: a wait that passes this fails the test; nothing is asserted about durations."""

HOLDER = """
import sys
from pathlib import Path
from xrseg.interrupts import Terminated, sigterm_raises
from xrseg.scratch import scratch_dir
try:
    with sigterm_raises(), scratch_dir("xrseg-eval-", Path(sys.argv[1])) as folder:
        print(folder, flush=True)
        sys.stdin.read()
except Terminated:
    sys.exit(143)
"""


def _holder(temp_dir: Path) -> tuple[subprocess.Popen[str], Path]:
    """A process holding an eval work folder (as ``xrseg eval`` without --out does) until its stdin closes."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(temp_dir)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return process, Path(process.stdout.readline().strip())


def test_work_folders_go_with_their_run_and_stale_ones_at_the_next(tmp_path: Path) -> None:
    killed, killed_folder = _holder(tmp_path)
    terminated, terminated_folder = _holder(tmp_path)
    alive, alive_folder = _holder(tmp_path)
    assert killed_folder.is_dir() and terminated_folder.is_dir() and alive_folder.is_dir()
    killed.kill()
    terminated.terminate()
    assert killed.wait() == -signal.SIGKILL and terminated.wait() == 143
    assert not terminated_folder.exists()  # SIGTERM unwinds: removed by its own run
    assert killed_folder.is_dir()  # SIGKILL cannot be caught ...
    assert remove_stale("xrseg-eval-", tmp_path) == 1  # ... the next run removes it
    assert not killed_folder.exists() and alive_folder.is_dir()  # a running one's lock keeps its folder
    assert alive.stdin is not None
    alive.stdin.close()
    assert alive.wait() == 0
    assert sorted(tmp_path.iterdir()) == []


RUN_HOLDER = """
import sys
from pathlib import Path
from xrseg.sinks.runstate import open_run
with open_run(Path(sys.argv[1]), False, "replay"):
    (Path(sys.argv[1]) / ".overlay.mp4.partial.mp4").write_bytes(b"half a video")
    print("writing", flush=True)
    sys.stdin.read()
"""


def test_a_killed_runs_leftovers_go_at_the_next_run_into_any_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XRSEG_HOME", str(tmp_path / "home"))
    first = tmp_path / "first"
    env = dict(os.environ, XRSEG_HOME=str(tmp_path / "home"))
    holder = subprocess.Popen(
        [sys.executable, "-c", RUN_HOLDER, str(first)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env
    )
    assert holder.stdout is not None and holder.stdout.readline() == b"writing\n"
    with pytest.raises(InputError, match=r"being written by another xrseg run \(pid \d+\)"):
        open_run(first, True, "replay")  # --overwrite does not clear a folder under a running run
    holder.kill()
    assert holder.wait() == -signal.SIGKILL
    assert (first / ".overlay.mp4.partial.mp4").exists() and (first / LOCK_NAME).exists()
    with open_run(tmp_path / "second", False, "replay"):
        pass
    assert sorted(p.name for p in first.iterdir()) == ["summary.json"]
    assert json.loads((first / "summary.json").read_text())["complete"] is False
    assert list((tmp_path / "home" / "runs").iterdir()) == []


@pytest.fixture(scope="module")
def short_session(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from xrseg.tools.scenes import generate_session, load_recipe
    from xrseg.tools.scenes.recipe import resolve_recipe

    recipe = dataclasses.replace(load_recipe(resolve_recipe("tabletop")), duration_s=2.5)
    out = tmp_path_factory.mktemp("kill") / "tabletop-short"
    generate_session(recipe, out, overwrite=True, progress=None)
    return out


def _xrseg(args: list[str], temp_dir: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "xrseg.cli", "-q", *args]
    env = dict(os.environ, TMPDIR=str(temp_dir))
    return subprocess.Popen(
        command, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, preexec_fn=default_sigint
    )


def _wait_for(process: subprocess.Popen[bytes], folder: Path, *patterns: str) -> None:
    """Until each glob pattern matches in ``folder`` (the run is in the middle of writing its outputs)."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not all(any(folder.glob(p)) for p in patterns):
        assert process.poll() is None, f"the run ended (exit {process.returncode}) before writing {patterns}"
        assert time.monotonic() < deadline, f"hang: {patterns} never appeared"
        time.sleep(0.05)


def test_a_replay_killed_mid_run_is_cleaned_up_by_the_next(short_session: Path, tmp_path: Path) -> None:
    sig = random.Random(SEED).choice([signal.SIGKILL, signal.SIGINT, signal.SIGTERM])
    out, temp_dir = tmp_path / "out", tmp_path / "tmp"
    temp_dir.mkdir()
    args = ["replay", str(short_session), "--out", str(out), "--follow-frames", "1"]
    run = _xrseg(args, temp_dir)
    partial_video = out / ".overlay.mp4.partial.mp4"
    _wait_for(run, out, "selections/*.png", partial_video.name)  # a temporary file exists now
    run.send_signal(sig)
    code = run.wait(timeout=HANG_GUARD_S)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is False, sig
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL and summary["run"]["outcome"] == "running"
        assert partial_video.exists()  # SIGKILL cannot be caught: the next run removes it
    else:
        assert run.stderr is not None
        stderr = run.stderr.read().decode()
        assert code == (130 if sig == signal.SIGINT else 143) and "Traceback" not in stderr, stderr
        assert summary["run"]["outcome"] == "interrupted"
        assert leftovers(out, temp_dir) == ()
    rerun = _xrseg([*args, "--overwrite", "--no-mesh", "--no-video"], temp_dir)
    assert rerun.wait(timeout=HANG_GUARD_S) == 0
    assert leftovers(out, temp_dir) == ()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["complete"] is True and summary["run"]["outcome"] == "completed"
    assert {e.name for e in out.iterdir()} <= RUN_ENTRIES
