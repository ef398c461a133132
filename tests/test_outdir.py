"""The --out folder: another run is refused unless --overwrite; a killed run's temporary files are removed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from xrseg.cli import _stopped_while_unwinding, main
from xrseg.errors import InputError
from xrseg.interrupts import Terminated
from xrseg.sinks.outdir import prepare_out_dir, remove_leftovers
from xrseg.sinks.runstate import open_run

SCENES = Path(__file__).resolve().parents[1] / "scenes"


def killed_run(out: Path) -> None:
    """What a run killed with SIGKILL leaves: finished outputs beside temporary names."""
    (out / "selections").mkdir(parents=True)
    (out / "selections" / "0000.png").write_bytes(b"png")
    (out / "selections" / ".0001.png.k2j3h4").write_bytes(b"half")
    (out / "meshes" / ".object_00003.x8y9.tmp").mkdir(parents=True)
    (out / "meshes" / ".object_00003.x8y9.tmp" / "object_00003.ply").write_bytes(b"ply")
    (out / ".overlay.mp4.partial.mp4").write_bytes(b"mp4")
    (out / ".summary.json.abc123").write_bytes(b"{")


def test_leftovers_are_removed_and_nothing_else(tmp_path: Path) -> None:
    killed_run(tmp_path)
    (tmp_path / ".mine").write_text("not ours")
    (tmp_path / "notes.txt").write_text("not ours")
    assert remove_leftovers(tmp_path) == 4
    left = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*"))
    assert left == [".mine", "meshes", "notes.txt", "selections", "selections/0000.png"]


def test_another_run_is_refused_unless_overwrite(tmp_path: Path) -> None:
    killed_run(tmp_path)
    (tmp_path / "notes.txt").write_text("not ours")
    with pytest.raises(InputError, match=r"holds another run .*--overwrite"):
        prepare_out_dir(tmp_path)
    assert not (tmp_path / ".overlay.mp4.partial.mp4").exists()  # leftovers go even when refused
    prepare_out_dir(tmp_path, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
    prepare_out_dir(tmp_path)  # nothing of a run left: accepted
    prepare_out_dir(tmp_path / "new")


def test_replay_refuses_an_earlier_run_before_loading_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "summary.json").write_text("{}")
    assert main(["replay", str(SCENES / "tabletop-small"), "--out", str(tmp_path)]) == 2
    assert "holds another run (summary.json)" in capsys.readouterr().err


def _summary(out: Path) -> dict[str, Any]:
    return dict(json.loads((out / "summary.json").read_text()))


def _failed_while_stopping(interrupt: BaseException | None = None, error: Exception | None = None) -> Exception:
    """An error raised while unwinding from a Ctrl-C (its ``__context__`` is the interrupt)."""
    try:
        try:
            raise interrupt or KeyboardInterrupt()
        except BaseException:
            raise error or OSError("cleanup failed") from None
    except Exception as err:
        return err


@pytest.mark.parametrize(
    ("interrupt", "status", "said"),
    [(KeyboardInterrupt(), 130, "xrseg: interrupted"), (Terminated(), 143, "xrseg: terminated")],
)
def test_an_error_of_ours_while_stopping_exits_as_the_signal(
    interrupt: BaseException, status: int, said: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """One of xrseg's own errors from cleanup after the signal (a sink that could not finish): the exit status
    is the signal's, not a usage error's."""
    error = _failed_while_stopping(interrupt, InputError("the sink could not finish"))
    assert _stopped_while_unwinding(error) == status
    assert capsys.readouterr().err.strip() == said


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (InputError("bad frame"), "failed"),
        (KeyboardInterrupt(), "interrupted"),
        (_failed_while_stopping(), "interrupted"),
    ],
)
def test_a_run_that_stops_early_says_so_and_leaves_no_temporary_file(
    tmp_path: Path, error: BaseException, outcome: str
) -> None:
    out = tmp_path / "out"
    with pytest.raises(type(error)), open_run(out, False, "replay") as run:
        started = _summary(out)
        assert started["complete"] is False and started["run"]["outcome"] == "running"
        assert started["run"]["ended_unix_ns"] is None and started["run"]["pid"] > 0
        (out / ".overlay.mp4.partial.mp4").write_bytes(b"mp4")
        run.partial = lambda: {"frames": 3}
        raise error
    summary = _summary(out)
    assert summary["complete"] is False and summary["run"]["outcome"] == outcome and summary["frames"] == 3
    assert summary["run"]["error"].startswith(type(error).__name__)
    assert sorted(p.name for p in out.iterdir()) == ["summary.json"]
    with open_run(out, True, "replay") as run:  # the next run replaces it
        run.summary = {"frames": 12}
    summary = _summary(out)
    assert summary["complete"] is True and summary["run"]["outcome"] == "completed" and summary["frames"] == 12
    assert summary["run"]["ended_unix_ns"] >= summary["run"]["started_unix_ns"]
