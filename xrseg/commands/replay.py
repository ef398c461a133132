"""``xrseg replay`` and ``xrseg demo``: the whole pipeline on a recorded session."""

from __future__ import annotations

import argparse
from pathlib import Path

from xrseg.app import check_out_dir, describe, replay_session
from xrseg.commands.pipeline_args import add_pipeline_arguments, run_options
from xrseg.errors import SessionError
from xrseg.session.reader import Session

DEMO_SESSION = "tabletop-small"
DEMO_OUT = "xrseg-demo"


def scenes_dir() -> Path:
    """The bundled ``scenes/`` folder of this checkout (sample sessions and recipes)."""
    return Path(__file__).resolve().parents[2] / "scenes"


def register(subparsers: argparse._SubParsersAction) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="run the pipeline on a recorded session",
        description="Replay a recorded gaze session through the whole pipeline: fixations, selections, meshes.",
    )
    replay.add_argument("session", type=Path, help="session directory (see docs/session-format.md)")
    replay.add_argument("--realtime", action="store_true", help="pace at recorded speed, encode asynchronously")
    replay.add_argument("--speed", type=float, default=1.0, help="with --realtime: playback speed factor")
    add_pipeline_arguments(replay)
    replay.set_defaults(func=run_replay)

    demo = subparsers.add_parser(
        "demo",
        help=f"replay the bundled sample session ({DEMO_SESSION}) and write its results to ./{DEMO_OUT}",
        description=(
            f"Replay a bundled sample session offline and write its selections, meshes, overlay video and "
            f"contact sheet to ./{DEMO_OUT} in the current directory (replaced on every run; --out elsewhere)."
        ),
    )
    demo.add_argument("--session", default=DEMO_SESSION, help="bundled session name under scenes/")
    demo.add_argument("--realtime", action="store_true", help=argparse.SUPPRESS)
    demo.add_argument("--speed", type=float, default=1.0, help=argparse.SUPPRESS)
    add_pipeline_arguments(demo)
    demo.set_defaults(func=run_demo, out=Path(DEMO_OUT), overwrite=True)  # the demo's own folder


def run_replay(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    session = Session.open(args.session)
    for warning in session.warnings:
        print(f"xrseg: warning: {warning}")
    print(describe(replay_session(session, run_options(args), speed=args.speed)))
    if not session.header.has_depth and not args.no_mesh:
        print(
            "xrseg: no meshes: the session has no depth "
            "(a mask lifted at the gaze depth is a flat cut-out, not an object)"
        )
    return 0


def run_demo(args: argparse.Namespace) -> int:
    path = scenes_dir() / args.session
    if not path.is_dir():
        raise SessionError(f"no bundled session {args.session!r} in {scenes_dir()}")
    args.session = path
    return run_replay(args)
