"""Kill probe: interrupt ``replay``, ``export-mesh`` and ``eval`` at random points, run again, look for leftovers.

    python -m xrseg.tools.killprobe SESSION --rounds 12 --seed 1 [--max-delay-s 20] [--json] [-- --follow-frames 1]

Each round picks (from ``--seed``) a command, a signal (SIGKILL, SIGINT or SIGTERM) and a delay; starts
``xrseg <command> SESSION`` in a process with a private system temp folder (``TMPDIR``); sends the signal after
the delay; then runs the same command again to its end (``--overwrite`` into the same ``--out``). It checks:

- after the interrupted run: SIGINT and SIGTERM leave no temporary file, in ``--out`` or in the temp folder;
  an ``--out`` holding any output has a ``summary.json`` whose ``complete`` is true only if the run had ended;
- after the next run: no temporary file anywhere (SIGKILL's leftovers included), ``complete`` true.

``eval`` runs both with ``--out`` and without (its work folder then lives in the temp folder). Never imported by
the runtime.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from enum import Enum
from pathlib import Path

from xrseg.errors import InputError, XrsegError
from xrseg.sinks.outdir import RUN_ENTRIES, is_leftover
from xrseg.sinks.runlock import LOCK_NAME

log = logging.getLogger(__name__)


class ProbeCommand(Enum):
    REPLAY = "replay"
    EXPORT_MESH = "export-mesh"
    EVAL = "eval"
    EVAL_WITHOUT_OUT = "eval-without-out"

    def argv(self, session: Path, out: Path, overwrite: bool, extra: Sequence[str] = ()) -> list[str]:
        name = "eval" if self is ProbeCommand.EVAL_WITHOUT_OUT else self.value
        args = [sys.executable, "-m", "xrseg.cli", "-q", name, str(session), *extra]
        if self is not ProbeCommand.EVAL_WITHOUT_OUT:
            args += ["--out", str(out)] + (["--overwrite"] if overwrite else [])
        return args


class ProbeSignal(Enum):
    KILL = signal.SIGKILL
    INT = signal.SIGINT
    TERM = signal.SIGTERM


@dataclass(frozen=True)
class RunState:
    """An ``--out`` folder and the temp folder after a run: its exit code, summary and leftovers."""

    exit_code: int
    complete: bool | None
    outcome: str | None
    has_outputs: bool
    leftovers: tuple[str, ...]


@dataclass(frozen=True)
class ProbeRound:
    index: int
    command: ProbeCommand
    signal: ProbeSignal
    delay_s: float
    interrupted: RunState
    rerun: RunState

    def problems(self) -> list[str]:
        """What this round got wrong (empty: it passed)."""
        found = []
        killed, again = self.interrupted, self.rerun
        if self.signal is not ProbeSignal.KILL and killed.leftovers:
            found.append(f"{self.signal.name} left {list(killed.leftovers)}")
        if killed.has_outputs and killed.complete is not (killed.exit_code == 0):
            found.append(f"after exit {killed.exit_code} summary.json says complete={killed.complete}")
        if again.leftovers:
            found.append(f"the next run left {list(again.leftovers)}")
        if again.exit_code not in (0, 1) or (
            self.command is not ProbeCommand.EVAL_WITHOUT_OUT and not again.complete
        ):
            found.append(f"the next run exited {again.exit_code} with complete={again.complete}")
        return found


FOREIGN_TEMP_NAMES = frozenset({".ses"})
"""Not a run's leftovers: ONNX Runtime (1.32) keeps its telemetry session id in ``$TMPDIR/.ses``, one file that
every process rewrites (``onnxruntime.disable_telemetry_events()`` does not stop it)."""


def leftovers(out: Path | None, temp_dir: Path) -> tuple[str, ...]:
    """Temporary names of a run in ``out`` (:func:`xrseg.sinks.outdir.is_leftover`, at any depth) and anything
    in ``temp_dir`` (the run's private system temp folder) but :data:`FOREIGN_TEMP_NAMES`."""
    entries = temp_dir.iterdir() if temp_dir.is_dir() else iter(())
    found = [str(p) for p in entries if p.name not in FOREIGN_TEMP_NAMES]
    if out is not None and out.is_dir():
        for path in out.rglob(".*"):
            if path.name == LOCK_NAME or is_leftover(path, in_run_folder=path.parent != out):
                found.append(str(path))
    return tuple(sorted(found))


def run_state(exit_code: int, out: Path | None, temp_dir: Path) -> RunState:
    summary_path = None if out is None else out / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path is not None and summary_path.is_file() else {}
    has_outputs = out is not None and out.is_dir() and any(e.name in RUN_ENTRIES for e in out.iterdir())
    outcome = summary.get("run", {}).get("outcome") if summary else None
    return RunState(exit_code, summary.get("complete"), outcome, has_outputs, leftovers(out, temp_dir))


def default_sigint() -> None:
    """In a child before exec: SIGINT as in a terminal. A shell starts background jobs with SIGINT ignored,
    and Python keeps an ignored SIGINT ignored (no KeyboardInterrupt): a probe run in the background would
    test nothing."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _run(argv: list[str], temp_dir: Path, signal_after_s: float | None, sig: ProbeSignal) -> int:
    temp_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TMPDIR=str(temp_dir))
    process = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=default_sigint
    )
    if signal_after_s is not None:
        try:
            process.wait(timeout=signal_after_s)
        except subprocess.TimeoutExpired:
            process.send_signal(sig.value)
    return process.wait()


@dataclass(frozen=True)
class ProbePlan:
    """What the rounds run: ``xrseg <command> session <extra...>``, signalled 0 to ``max_delay_s`` in."""

    session: Path
    work: Path
    commands: tuple[ProbeCommand, ...]
    max_delay_s: float
    extra: tuple[str, ...] = ()
    signals: tuple[ProbeSignal, ...] = tuple(ProbeSignal)


def probe_round(index: int, rng: random.Random, plan: ProbePlan) -> ProbeRound:
    """One round (see the module docstring) in ``plan.work/<index>``."""
    command, sig = rng.choice(plan.commands), rng.choice(plan.signals)
    delay_s = round(rng.uniform(0.0, plan.max_delay_s), 2)
    folder = plan.work / f"{index:03d}"
    out = None if command is ProbeCommand.EVAL_WITHOUT_OUT else folder / "out"
    temp_dir = folder / "tmp"
    code = _run(command.argv(plan.session, folder / "out", False, plan.extra), temp_dir, delay_s, sig)
    interrupted = run_state(code, out, temp_dir)
    code = _run(command.argv(plan.session, folder / "out", True, plan.extra), temp_dir, None, sig)
    return ProbeRound(index, command, sig, delay_s, interrupted, run_state(code, out, temp_dir))


def _json_value(value: object) -> object:
    if isinstance(value, ProbeSignal):
        return value.name
    return value.value if isinstance(value, ProbeCommand) else str(value)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m xrseg.tools.killprobe", description=__doc__.split("\n")[0])
    parser.add_argument("session", type=Path)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--max-delay-s", type=float, default=20.0, help="signal after 0 to this many seconds")
    parser.add_argument("--work", type=Path, default=Path("killprobe-work"), help="folder for the rounds' runs")
    parser.add_argument("--commands", nargs="+", choices=[c.value for c in ProbeCommand])
    parser.add_argument("--signals", nargs="+", choices=[s.name for s in ProbeSignal])
    parser.add_argument("--json", action="store_true")
    argv = list(sys.argv[1:] if argv is None else argv)
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: len(argv) - len(extra) - (1 if "--" in argv else 0)])
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if not args.session.is_dir():
            raise InputError(f"session {args.session} does not exist")
        if args.rounds < 1 or not args.max_delay_s > 0:
            raise InputError("--rounds must be >= 1 and --max-delay-s > 0")
        commands = tuple(ProbeCommand(c) for c in args.commands) if args.commands else tuple(ProbeCommand)
        signals = tuple(ProbeSignal[s] for s in args.signals) if args.signals else tuple(ProbeSignal)
        plan = ProbePlan(
            args.session.resolve(), args.work.resolve(), commands, args.max_delay_s, tuple(extra), signals
        )
        rng = random.Random(args.seed)
        rounds = []
        for index in range(args.rounds):
            started = time.monotonic()
            result = probe_round(index, rng, plan)
            rounds.append(result)
            verdict = "; ".join(result.problems()) or "ok"
            log.info(
                "%2d %-16s %-4s after %5.2f s: exit %4d complete=%-5s outcome=%-11s | next run exit %d "
                "complete=%-5s (%.0f s) %s",
                index, result.command.value, result.signal.name, result.delay_s, result.interrupted.exit_code,
                result.interrupted.complete, result.interrupted.outcome, result.rerun.exit_code,
                result.rerun.complete, time.monotonic() - started, verdict,
            )  # fmt: skip
    except XrsegError as err:
        print(f"killprobe: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([asdict(r) | {"problems": r.problems()} for r in rounds], default=_json_value, indent=2))
    return 1 if any(r.problems() for r in rounds) else 0


if __name__ == "__main__":
    sys.exit(main())
