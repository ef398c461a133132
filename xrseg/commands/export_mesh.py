"""``xrseg export-mesh``: replay a session and export every confirmed selection as a mesh."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from xrseg.app import add_pipeline_arguments, check_out_dir, run_pipeline
from xrseg.errors import SessionError, UsageError
from xrseg.session.reader import Session
from xrseg.sources.replay import ReplaySource


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
    if session.frame_count == 0:
        raise SessionError(f"{args.session} has no camera frames: nothing to lift")
    if not session.header.has_depth:
        raise SessionError(f"{args.session} has no depth images: meshes need depth (docs/lifting.md)")
    total = session.frame_count + len(session.head_timestamps_ns) + len(session.gaze_timestamps_ns)
    result = run_pipeline(
        ReplaySource(session),
        session.header.camera,
        session.header.head_from_camera,
        args,
        realtime=False,
        total_items=total + len(session.events()),
        session_path=Path(args.session),
    )
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
