"""``xrseg export-mesh``: replay a session and export every confirmed selection as a mesh."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrseg.app import check_out_dir, replay_session
from xrseg.commands.pipeline_args import add_pipeline_arguments, run_options
from xrseg.errors import SessionError
from xrseg.session.reader import Session


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-mesh",
        help="export one mesh (PLY, OBJ, GLB) per object selected in a session",
        description=(
            "Replay a recorded session; every selection that is not rejected is followed into later frames and "
            "fused (TSDF). Selections of the same object (their lifted points overlap) make one object: one mesh "
            "per object, DIR/meshes/object_NNNN.{ply,obj,glb}, with its object id, the selections that built "
            "it, the source session and frames in the metadata. Selections (mask PNG + JSON) and summary.json "
            "are written beside them. Exits 1 when no mesh could be made, with the reason for each object."
        ),
    )
    parser.add_argument("session", type=Path, help="session directory with depth (see docs/session-format.md)")
    parser.add_argument("--json", action="store_true", help="also print the per-selection records as JSON")
    add_pipeline_arguments(parser, out_required=True, mesh_optional=False)
    parser.set_defaults(func=run_export_mesh, no_video=True)


def run_export_mesh(args: argparse.Namespace) -> int:
    check_out_dir(args.out)
    session = Session.open(args.session)
    for warning in session.warnings:
        print(f"xrseg: warning: {warning}")
    if session.frame_count > 0 and not session.header.has_depth:  # no frames at all: replay_session says so
        raise SessionError(f"{args.session} has no depth images: meshes need depth (docs/lifting.md)")
    result = replay_session(session, run_options(args))
    objects = result.summary.get("objects", [])
    written = 0
    for entry in objects:
        files = entry.get("mesh_files") or {}
        label = f"object {entry['object_id']} (selection {', '.join(str(s) for s in entry['selections'])})"
        if files:
            written += 1
            paths = ", ".join(str(Path(args.out) / name) for name in files.values())
            print(f"{label}: {entry['triangles']} triangles -> {paths}")
        else:
            print(f"{label}: no mesh ({entry.get('stopped', 'unknown reason')})")
    selections = sum(len(entry["selections"]) for entry in objects)
    print(f"{written} mesh(es) of {len(objects)} object(s) from {selections} selection(s) written to {args.out}")
    if args.json:
        print(json.dumps(objects, indent=2, sort_keys=True))
    return 0 if written else 1
