"""``xrseg export-cutouts``: replay a session and write each selection as a cropped RGBA PNG."""

from __future__ import annotations

import argparse
from pathlib import Path

from xrseg.app import check_out_dir, replay_session
from xrseg.commands.pipeline_args import add_pipeline_arguments, run_options
from xrseg.session.reader import Session


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-cutouts",
        help="export each selection as an RGBA PNG cropped to its mask (for content creation)",
        description=(
            "Replay a recorded session and write DIR/cutouts/NNNN.png per selection: the keyframe's pixels in "
            "the mask's box, alpha 255 on the mask and 0 off it (--feather-px for a soft edge). Selections "
            "(mask PNG + JSON) and summary.json are written beside them."
        ),
    )
    parser.add_argument("session", type=Path, help="session directory (see docs/session-format.md)")
    add_pipeline_arguments(parser, out_required=True)
    parser.set_defaults(func=run_export_cutouts, no_video=True, no_mesh=True, cutouts=True)


def run_export_cutouts(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    session = Session.open(args.session)
    for warning in session.warnings:
        print(f"xrseg: warning: {warning}")
    replay_session(session, run_options(args))
    written = sorted((Path(args.out) / "cutouts").glob("*.png"))
    print(f"{len(written)} cutout(s) written to {Path(args.out) / 'cutouts'}")
    return 0 if written else 1
