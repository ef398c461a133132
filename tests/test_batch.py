"""`xrseg batch`: the bundled sessions and a corrupted one, locally (2 worker processes) and as Ray tasks on a
local Ray the command starts; each session's figures are those of `xrseg eval` on it alone."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import skip_or_fail
from xrseg.batch import BatchTask, SessionStatus, run
from xrseg.batch.records import SessionJob
from xrseg.batch.runner import previous_result
from xrseg.batch.sessions import expand_sessions
from xrseg.cli import main

SCENES = Path(__file__).resolve().parents[1] / "scenes"
GOOD = ("desk-near", "tabletop-small")
OPTIONS = ("--no-video",)
THREADS = max(1, (os.cpu_count() or 1) // 2)
"""Intra-op threads of each of the batch's two workers; the reference evals use as many, since ONNX Runtime's
sums (and so a follower's masks near their thresholds) change with the thread count."""
TIMES = {"gaze_to_mask_ms", "encode_ms"}
"""Wall-clock figures of a report: they differ run to run, everything else must not."""


def _main(argv: list[str]) -> tuple[int, str]:
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = main(argv)
    return status, printed.getvalue()


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in TIMES | {"meshes"}}


def _same_meshes(ours: list[dict[str, Any]], theirs: list[dict[str, Any]]) -> None:
    """The same meshes of the same selections and objects from the same frames; their distances to the truth
    within 10%: the mesh stage is not bit-reproducible (on 2026-11-28 two identical `xrseg eval --threads 1`
    runs of desk-near differed by up to 0.3% in Chamfer and completeness, a batch and a plain eval of
    tabletop-small by 2%), while every other figure of a report is."""
    assert len(ours) == len(theirs)
    for mine, other in zip(ours, theirs, strict=True):
        assert mine.keys() == other.keys()
        for key, value in mine.items():
            if isinstance(value, float):
                assert value == pytest.approx(other[key], rel=0.1, abs=1e-4), (mine["selection_id"], key)
            else:
                assert value == other[key], (mine["selection_id"], key)


@pytest.fixture(scope="module")
def broken(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """desk-near with a truncated header.json."""
    path = tmp_path_factory.mktemp("sessions") / "broken"
    shutil.copytree(SCENES / "desk-near", path)
    (path / "header.json").write_text('{"version": 1, "camera": ')
    return path


@pytest.fixture(scope="module")
def reference() -> dict[str, dict[str, Any]]:
    """`xrseg eval SESSION --json` on each good session."""
    reports = {}
    for name in GOOD:
        status, printed = _main(["-q", "eval", str(SCENES / name), "--json", "--threads", str(THREADS), *OPTIONS])
        assert status == 0
        reports[name] = json.loads(printed)
    return reports


@pytest.fixture(scope="module")
def local_batch(tmp_path_factory: pytest.TempPathFactory, broken: Path) -> tuple[int, str, Path]:
    out = tmp_path_factory.mktemp("batch") / "out"
    sessions = [str(SCENES / name) for name in GOOD] + [str(broken)]
    argv = ["-q", "batch", *sessions, "--task", "eval", "--out", str(out), "--workers", "2"]
    status, printed = _main([*argv, "--task-options", *OPTIONS])
    return status, printed, out


def _check_batch(out: Path, reference: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The batch's eval.json of each good session has `xrseg eval`'s figures, batch.json repeats them, and the
    corrupted session failed with the reader's one-line error."""
    batch = json.loads((out / "batch.json").read_text())
    assert batch["complete"] is True and batch["interrupted"] is False
    assert batch["counts"]["ok"] == 2 and batch["counts"]["failed"] == 1
    by_name = {s["name"]: s for s in batch["sessions"]}
    for name in GOOD:
        report = json.loads((out / name / "eval.json").read_text())
        assert _figures(report) == _figures(reference[name]), name
        _same_meshes(report["meshes"], reference[name]["meshes"])
        entry = by_name[name]
        assert entry["status"] == "ok" and entry["error"] is None
        assert entry["selections"] == report["selections"] > 0
        assert entry["selection_accuracy"] == report["selection_accuracy"]
        assert entry["mean_mask_iou"] == report["mean_mask_iou"]
        assert json.loads((out / name / "summary.json").read_text())["complete"] is True
    failed = by_name["broken"]
    assert failed["status"] == "failed" and "header.json" in failed["error"] and "\n" not in failed["error"]
    clicks = sum(by_name[n]["clicks"] for n in GOOD)
    assert batch["totals"]["selection_accuracy"] == sum(by_name[n]["clicks_right"] for n in GOOD) / clicks
    return batch


def test_local_batch_gives_eval_figures(local_batch: tuple[int, str, Path], reference: dict[str, Any]) -> None:
    status, printed, out = local_batch
    assert status == 1  # a session failed
    batch = _check_batch(out, reference)
    assert batch["backend"] == "local" and batch["workers"] == 2
    assert batch["threads_per_session"] == THREADS
    lines = printed.splitlines()
    assert lines[0].split()[:3] == ["session", "status", "selections"]
    rows = {line.split()[0]: line.split()[1] for line in lines[1:4]}  # in path order, which depends on the clone
    assert rows == {"broken": "failed", "desk-near": "ok", "tabletop-small": "ok"}
    assert any(line.startswith("broken: header.json") for line in lines)
    assert "3 sessions: 2 ok, 1 failed" in lines[-1]


def test_second_run_skips_what_is_done(local_batch: tuple[int, str, Path], broken: Path) -> None:
    _, _, out = local_batch
    before = {name: (out / name / "summary.json").stat().st_mtime_ns for name in GOOD}
    earlier = json.loads((out / "batch.json").read_text())
    sessions = [str(SCENES / name) for name in GOOD] + [str(broken)]
    report = run(sessions, out, BatchTask.EVAL, workers=2, pipeline_args=OPTIONS, progress=False)
    statuses = {r.name: r.status for r in report.results}
    assert statuses == {
        "desk-near": SessionStatus.SKIPPED,
        "tabletop-small": SessionStatus.SKIPPED,
        "broken": SessionStatus.FAILED,
    }
    assert {name: (out / name / "summary.json").stat().st_mtime_ns for name in GOOD} == before
    reused = {r.name: r.selection_accuracy for r in report.results}
    assert all(reused[s["name"]] == s["selection_accuracy"] for s in earlier["sessions"])
    # Other options make another result: the earlier one is not reused.
    done = next(r for r in report.results if r.name == "desk-near")
    job = SessionJob("desk-near", done.session_dir, str(out / "desk-near"), BatchTask.EVAL, (), 1, "other")
    assert previous_result(job) is None


def _ray_processes() -> list[str]:
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            if "xrseg-ray-" in text:
                found.append(text)
    return found


def test_ray_auto_gives_eval_figures(
    tmp_path: Path, broken: Path, reference: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local Ray started by the command (2 CPUs, 1 per session): same figures; afterwards no Ray process,
    temporary folder or token file is left."""
    try:
        import ray
    except ImportError:
        skip_or_fail("needs the ray extra")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    temp_before = set(Path("/tmp").glob("xrseg-ray-*"))
    token = Path.home() / ".ray" / "auth_token"
    token_before = token.exists()
    out = tmp_path / "out"
    sessions = [str(SCENES / name) for name in GOOD] + [str(broken)]
    argv = ["-q", "batch", *sessions, "--out", str(out), "--ray", "auto", "--workers", "2"]
    status, _ = _main([*argv, "--cpus-per-session", str(THREADS), "--task-options", *OPTIONS])
    assert status == 1
    batch = _check_batch(out, reference)
    assert batch["backend"] == "ray auto" and batch["threads_per_session"] == THREADS
    assert not ray.is_initialized()
    assert set(Path("/tmp").glob("xrseg-ray-*")) == temp_before
    assert token.exists() == token_before
    assert _ray_processes() == []


def test_ctrl_c_leaves_a_consistent_batch_json(tmp_path: Path) -> None:
    """SIGINT while a session runs: the worker is stopped (its summary.json says interrupted), batch.json says
    interrupted with the session interrupted, and the next run would do it again."""
    out = tmp_path / "out"
    command = [sys.executable, "-m", "xrseg.cli", "-q", "batch", str(SCENES / "desk-near"), "--out", str(out)]
    batch = subprocess.Popen([*command, "--task-options", *OPTIONS], stderr=subprocess.PIPE, text=True)
    summary = out / "desk-near" / "summary.json"
    deadline = time.monotonic() + 120
    while not summary.exists() and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    assert summary.exists(), "the session's run never started"
    batch.send_signal(signal.SIGINT)
    _, stderr = batch.communicate(timeout=60)
    assert batch.returncode == 130, stderr
    report = json.loads((out / "batch.json").read_text())
    assert report["interrupted"] is True and report["complete"] is False
    assert [s["status"] for s in report["sessions"]] == ["interrupted"]
    run_state = json.loads(summary.read_text())
    assert run_state["complete"] is False and run_state["run"]["outcome"] == "interrupted", run_state["run"]
    assert not Path(f"/proc/{run_state['run']['pid']}").exists()
    assert not (out / "desk-near" / "result.json").exists()
    assert [p.name for p in (out / "desk-near").iterdir() if p.name.startswith(".")] == []


def test_sessions_are_directories_among_the_paths() -> None:
    """`scenes/*` names the recipes too: only the session directories are taken, each named by its folder."""
    assert [s.name for s in expand_sessions([str(SCENES / "*")])] == ["desk-near", "room-small", "tabletop-small"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["nowhere/*"], "xrseg: error: no session at nowhere/*"),
        ([str(SCENES / "*"), "--task-options", "--bogus"], "unrecognized arguments: --bogus"),
        ([str(SCENES / "*"), "--task-options", "--threads", "3"], "a batch does not take --threads"),
        ([str(SCENES / "*"), "--workers", "0"], "--workers must be finite and positive"),
        ([str(SCENES / "*"), "--gpus-per-session", "1"], "--gpus-per-session needs --ray"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["batch", "--out", str(tmp_path / "out"), *argv]) == 2  # --task-options last
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("xrseg: error: ") and message in err[0]
    assert not (tmp_path / "out").exists()
