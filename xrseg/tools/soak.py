"""Soak test: replay a session over and over for N minutes and report memory and open files over time.

    python -m xrseg.tools.soak scenes/tabletop-small --minutes 5 [--json] [-- --no-video --no-mesh]

Each round is what ``xrseg replay SESSION --out DIR`` does (the model loaded, the session opened, every
output written) in this one process, into a fresh temporary folder removed after the round. After each round
the process's resident set (``VmRSS``), its open file descriptors, its threads and the leftover temporary files
in the system temp folder are sampled. A leak shows as a column that keeps climbing; flat columns after the
first round or two (caches warming) are what a long-running process needs. Never imported by the runtime.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from xrseg.errors import InputError, XrsegError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SoakSample:
    """The process after round ``round_index`` (0 = before the first replay)."""

    round_index: int
    elapsed_s: float
    round_s: float
    rss_mib: float
    open_fds: int
    threads: int
    temp_entries: int
    selections: int


def rss_mib() -> float:
    """This process's resident set size in MiB (Linux ``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def temp_entries() -> int:
    """Entries in the system temp folder whose names xrseg uses (``xrseg-*``), to catch leftover temp files."""
    return sum(1 for name in os.listdir(tempfile.gettempdir()) if name.startswith("xrseg-"))


def _sample(round_index: int, started: float, round_s: float, selections: int) -> SoakSample:
    return SoakSample(
        round_index=round_index,
        elapsed_s=round(time.monotonic() - started, 1),
        round_s=round(round_s, 1),
        rss_mib=round(rss_mib(), 1),
        open_fds=open_fds(),
        threads=threading.active_count(),
        temp_entries=temp_entries(),
        selections=selections,
    )


def replay_once(session: Path, replay_args: Sequence[str]) -> int:
    """One ``xrseg replay`` into a temporary folder (removed afterwards); returns the number of selections."""
    from xrseg.app import replay_session
    from xrseg.cli import build_parser
    from xrseg.commands.pipeline_args import run_options
    from xrseg.session.reader import Session

    out = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        argv = ["-q", "replay", str(session), "--out", str(out / "run"), *replay_args]
        args = build_parser().parse_args(argv)
        result = replay_session(Session.open(args.session), run_options(args))
        return int(result.stats.selections)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def soak(session: Path, minutes: float, replay_args: Sequence[str] = ()) -> list[SoakSample]:
    """Replay ``session`` until ``minutes`` have passed (at least one round); one sample per round."""
    if not minutes > 0:
        raise InputError(f"--minutes must be > 0, got {minutes}")
    started = time.monotonic()
    samples = [_sample(0, started, 0.0, 0)]
    while time.monotonic() - started < minutes * 60 or len(samples) == 1:
        round_started = time.monotonic()
        selections = replay_once(session, replay_args)
        samples.append(_sample(len(samples), started, time.monotonic() - round_started, selections))
        log.info("%s", samples[-1])
    return samples


def table(samples: Sequence[SoakSample]) -> str:
    head = "round elapsed s round s  RSS MiB  fds threads  tmp  sel"
    rows = [
        f"{s.round_index:>5} {s.elapsed_s:>9.1f} {s.round_s:>7.1f} {s.rss_mib:>8.1f} {s.open_fds:>4} "
        f"{s.threads:>7} {s.temp_entries:>4} {s.selections:>4}"
        for s in samples
    ]
    return "\n".join([head, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    replay_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, replay_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("session", type=Path, help="session directory to replay")
    parser.add_argument("--minutes", type=float, default=5.0, help="how long to keep replaying (default 5)")
    parser.add_argument("--json", action="store_true", help="print the samples as JSON lines")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        samples = soak(args.session, args.minutes, replay_args)
    except XrsegError as err:
        sys.stderr.write(f"soak: error: {err}\n")
        return 2
    if args.json:
        sys.stdout.write("".join(json.dumps(asdict(s)) + "\n" for s in samples))
    else:
        sys.stdout.write(table(samples) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
