"""``xrseg export-mesh``: replay a session and export every confirmed selection as a mesh."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrseg.app import add_pipeline_arguments, check_out_dir, replay_session
from xrseg.errors import SessionError, UsageError
from xrseg.session.reader import Session


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-mesh",
        help="export each object selected in a session as a mesh (PLY, OBJ, GLB)",
        description=(
            "Replay a recorded session; every selection that is not rejected is followed into later frames, "
            "fused (TSDF) and written as DIR/meshes/object_NNNN.{ply,obj,glb} with its object id, source "
            "session and frames in the metadata. Selections (mask PNG + JSON) and summary.json are written "
            "beside them. Exits 1 when no mesh could be made, with the reason for each selection."
        ),
    )
    parser.add_argument("session", type=Path, help="session directory with depth (see docs/session-format.md)")
    parser.add_argument("--json", action="store_true", help="also print the per-selection records as JSON")
    add_pipeline_arguments(parser)
    parser.set_defaults(func=run_export_mesh, no_video=True)


def run_export_mesh(args: argparse.Namespace) -> int:
    if args.out is None:
        raise UsageError("export-mesh needs --out DIR")
    if args.no_mesh:
        raise UsageError("export-mesh exports meshes: drop --no-mesh")
    check_out_dir(args.out)
    session = Session.open(args.session)
    for warning in session.warnings:
        print(f"xrseg: warning: {warning}")
    if session.frame_count > 0 and not session.header.has_depth:  # no frames at all: replay_session says so
        raise SessionError(f"{args.session} has no depth images: meshes need depth (docs/lifting.md)")
    result = replay_session(session, args)
    objects = result.summary.get("objects", [])
    written = 0
    for entry in objects:
        files = entry.get("mesh_files") or {}
        if files:
            written += 1
            paths = ", ".join(str(Path(args.out) / name) for name in files.values())
            print(f"selection {entry['selection_id']}: {entry['triangles']} triangles -> {paths}")
        else:
            print(f"selection {entry['selection_id']}: no mesh ({entry.get('stopped', 'unknown reason')})")
    print(f"{written} mesh(es) from {len(objects)} selection(s) written to {args.out}")
    if args.json:
        print(json.dumps(objects, indent=2, sort_keys=True))
    return 0 if written else 1
