"""``xrseg export-annotations``: replay a session and write its selections as a labelled data set (COCO, MOT)."""

from __future__ import annotations

import argparse
import enum
from pathlib import Path

from xrseg.app import check_out_dir, replay_session
from xrseg.commands.pipeline_args import add_pipeline_arguments, run_options
from xrseg.session.reader import Session


class AnnotationFormat(enum.Enum):
    COCO = "coco"

    def __str__(self) -> str:  # how --help and argparse's errors name it
        return self.value


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export-annotations",
        help="export a session's selections as a labelled data set (COCO instances, MOT tracks)",
        description=(
            "Replay a recorded session and write what was selected as a data set that X-AnyLabeling, CVAT or "
            "FiftyOne open: DIR/images/FFFFFF.png (the annotated frames), DIR/annotations/instances.json (COCO "
            "instance segmentation: RLE masks, boxes, one track_id per object) and DIR/annotations/"
            "tracks_mot.csv (MOT-style boxes). Selections of the same object share its id. With --track each "
            "object is followed through the rest of the recording and every frame it is found in is annotated."
        ),
    )
    parser.add_argument("session", type=Path, help="session directory (see docs/session-format.md)")
    parser.add_argument(
        "--format",
        type=AnnotationFormat,
        choices=list(AnnotationFormat),
        default=AnnotationFormat.COCO,
        help="annotation format (coco: COCO instances JSON plus a MOT CSV of boxes)",
    )
    add_pipeline_arguments(parser, out_required=True, mesh_optional=False)
    parser.set_defaults(func=run_export_annotations, no_video=True)


def run_export_annotations(args: argparse.Namespace) -> int:
    from xrseg.annotations.coco import write_annotations

    check_out_dir(args.out)
    session = Session.open(args.session)
    for warning in session.warnings:
        print(f"xrseg: warning: {warning}")
    result = replay_session(session, run_options(args))
    files = write_annotations(Path(args.out), session)
    objects = len(result.summary.get("objects", []))
    print(
        f"{files.annotations} annotation(s) of {objects} object(s) on {files.images} image(s): "
        f"{files.coco_json}, {files.mot_csv}"
    )
    return 0 if files.annotations else 1
