"""The pipeline commands' options (``replay``, ``demo``, ``eval``, ``run``, the exports): the argparse group
every one of them takes, and the typed :class:`~xrseg.config.RunOptions` a parsed command line becomes. Defaults
come from :mod:`xrseg.config`; argparse stays in :mod:`xrseg.commands`."""

from __future__ import annotations

import argparse
from pathlib import Path

from xrseg.config import (
    FEATHER_PX,
    FOLLOW_FRAMES,
    ModelOptions,
    OutputOptions,
    PipelineOptions,
    PublishOptions,
    RunOptions,
)
from xrseg.errors import UsageError
from xrseg.select.candidates import CandidateOptions
from xrseg.select.gaze_path import GazeOptions
from xrseg.select.recalibration import RecalibrationOptions

__all__ = ["add_pipeline_arguments", "run_options"]


def add_pipeline_arguments(
    parser: argparse.ArgumentParser, *, out_required: bool = False, mesh_optional: bool = True
) -> None:
    """The options every pipeline command takes; a command that needs ``--out`` (or meshes: no ``--no-mesh``)
    says so, and its ``--help`` shows it."""
    group = parser.add_argument_group("pipeline")
    group.add_argument(
        "--out",
        type=Path,
        required=out_required,
        help="write selections (mask PNG + JSON), meshes and a summary here",
    )
    group.add_argument(
        "--overwrite", action="store_true", help="replace the outputs of an earlier run in --out (else refused)"
    )
    _add_selection_arguments(group)
    _add_model_and_network_arguments(group)
    _add_output_arguments(parser, group, mesh_optional)


def _add_selection_arguments(group: argparse._ArgumentGroup) -> None:
    """Options of the selection core: dwell, prompts, mask choice, cone search, keyframe policy."""
    group.add_argument(
        "--dwell-ms", type=float, default=GazeOptions.dwell_ms, help="dwell time that selects (0: events only)"
    )
    group.add_argument(
        "--fallback-depth-m",
        type=float,
        default=PipelineOptions.fallback_depth_m,
        help="gaze distance when there is no depth",
    )
    group.add_argument(
        "--max-points", type=int, default=PipelineOptions.max_points, help="positive prompt points per fixation"
    )
    group.add_argument(
        "--sam-choice",
        action="store_true",
        help="choose masks by SAM's predicted IoU only (no depth-aware choice, no look-through correction)",
    )
    group.add_argument(
        "--gaze-accuracy-deg",
        type=float,
        default=CandidateOptions.accuracy_deg,
        help="the eye tracker's accuracy: how far from the gaze a target is searched for (default 2)",
    )
    group.add_argument(
        "--no-cone-search",
        action="store_true",
        help="keep the mask under the gaze even when it is a support or most of the image",
    )
    group.add_argument(
        "--no-recalibration",
        action="store_true",
        help="do not learn the tracker's constant offset from the selections made",
    )
    group.add_argument(
        "--max-head-motion-deg",
        type=float,
        default=PipelineOptions.max_keyframe_head_motion_deg,
        help="live/--realtime: use a keyframe only if the head turned at most this much since (default 30)",
    )
    group.add_argument(
        "--max-keyframe-age-ms",
        type=float,
        default=PipelineOptions.max_keyframe_age_ms,
        help="live/--realtime: how far a keyframe may be from the fixation, and how long one waits (default 8000)",
    )


def _add_model_and_network_arguments(group: argparse._ArgumentGroup) -> None:
    """Options of the model (variant, threads), the event publisher and the remote encoder."""
    group.add_argument("--variant", help="model variant (see `xrseg model info`); default: the manifest's")
    group.add_argument("--threads", type=int, help="ONNX Runtime intra-op threads (default: one per core)")
    group.add_argument(
        "--providers",
        nargs="+",
        metavar="PROVIDER",
        help="ONNX Runtime execution providers in order, e.g. CUDAExecutionProvider CPUExecutionProvider "
        "(default: every installed one of TensorRT, CUDA, DirectML, CoreML, OpenVINO, then CPU)",
    )
    group.add_argument(
        "--publish", metavar="ENDPOINT", help="publish events over ZeroMQ, e.g. tcp://127.0.0.1:5560"
    )
    group.add_argument(
        "--publish-curve",
        nargs=2,
        type=Path,
        metavar=("SERVER_SECRET", "CLIENTS_DIR"),
        help="CURVE for --publish: the publisher's secret certificate and the directory of allowed subscriber "
        "keys (needed to publish on a non-loopback address; see `xrseg serve-encoder --make-keys`)",
    )
    group.add_argument(
        "--publish-insecure", action="store_true", help="allow --publish on a non-loopback address without CURVE"
    )
    group.add_argument(
        "--publish-preview",
        action="store_true",
        help="with --publish and --realtime or live: also publish the hover preview (what a press now would "
        "select, about every 100 ms while a fixation is in progress) on the `preview` topic",
    )
    group.add_argument("--encoder", metavar="ENDPOINT", help="encode keyframes on an `xrseg serve-encoder` server")


def _add_output_arguments(
    parser: argparse.ArgumentParser, group: argparse._ArgumentGroup, mesh_optional: bool
) -> None:
    """Options of what a run produces besides selections: meshes, tracks, cutouts, video, viewers."""
    if mesh_optional:
        group.add_argument("--no-mesh", action="store_true", help="do not lift selections or export meshes")
    else:
        parser.set_defaults(no_mesh=False)
    group.add_argument(
        "--follow-frames", type=int, default=FOLLOW_FRAMES, help="frames to follow a selected object into"
    )
    group.add_argument(
        "--track",
        action="store_true",
        help="with --out: follow each selected object through the rest of the recording, every frame, and write "
        "its mask per frame (DIR/tracks/object_NNNN/FFFFFF.png; `xrseg export-annotations` exports them)",
    )
    group.add_argument(
        "--cutouts", action="store_true", help="with --out: an RGBA PNG per selection, cropped (DIR/cutouts/)"
    )
    group.add_argument(
        "--feather-px",
        type=float,
        default=FEATHER_PX,
        help="with --cutouts: soften the alpha edge over this many pixels (default 0: alpha is the mask)",
    )
    group.add_argument("--no-video", action="store_true", help="with --out: no overlay MP4 or contact sheet")
    group.add_argument("--view", action="store_true", help="show an overlay window (keys: space + - r q)")
    group.add_argument("--rerun", type=Path, metavar="FILE.rrd", help="write a Rerun recording (the rerun extra)")


def run_options(args: argparse.Namespace, *, realtime: bool | None = None) -> RunOptions:
    """The options of a command line parsed with :func:`add_pipeline_arguments`, typed and frozen. ``realtime``
    (the asynchronous encoder) defaults to the command's ``--realtime``, else off."""
    is_realtime = bool(getattr(args, "realtime", False)) if realtime is None else realtime
    return RunOptions(
        pipeline=_pipeline_options(args, is_realtime),
        outputs=OutputOptions(
            out_dir=args.out,
            overwrite=args.overwrite,
            meshes=not args.no_mesh,
            follow_frames=args.follow_frames,
            track=args.track,
            cutouts=args.cutouts,
            feather_px=args.feather_px,
            video=not args.no_video,
            view=args.view,
            rerun_path=args.rerun,
        ),
        model=ModelOptions(
            variant=args.variant,
            threads=args.threads,
            providers=tuple(args.providers) if args.providers else None,
            encoder_endpoint=args.encoder,
        ),
        publish=_publish_options(args, is_realtime),
        command=str(getattr(args, "command", None) or "pipeline"),
        quiet=bool(getattr(args, "quiet", False)),
    )


def _pipeline_options(args: argparse.Namespace, realtime: bool) -> PipelineOptions:
    return PipelineOptions(
        gaze=GazeOptions(dwell_ms=args.dwell_ms),
        fallback_depth_m=args.fallback_depth_m,
        max_points=args.max_points,
        depth_mask_choice=not args.sam_choice,
        cone_search=not args.no_cone_search,
        candidates=CandidateOptions(accuracy_deg=args.gaze_accuracy_deg),
        recalibration=RecalibrationOptions(enabled=not args.no_recalibration),
        realtime=realtime,
        max_keyframe_head_motion_deg=args.max_head_motion_deg,
        max_keyframe_age_ms=args.max_keyframe_age_ms,
    )


def _publish_options(args: argparse.Namespace, realtime: bool) -> PublishOptions | None:
    """The publisher's options; UsageError for a publishing option that would do nothing."""
    given = [
        flag
        for flag, on in (
            ("--publish-curve", args.publish_curve is not None),
            ("--publish-insecure", args.publish_insecure),
            ("--publish-preview", args.publish_preview),
        )
        if on
    ]
    if not args.publish:
        if given:
            raise UsageError(f"without --publish ENDPOINT, {' and '.join(given)} would do nothing")
        return None
    if args.publish_preview and not realtime:
        raise UsageError(
            "--publish-preview needs an asynchronous run (--realtime, or `xrseg run`): a deterministic replay "
            "decodes at the press and has no hover preview"
        )
    keys = args.publish_curve
    curve = None if keys is None else (Path(keys[0]), Path(keys[1]))
    return PublishOptions(
        args.publish, curve_keys=curve, insecure=args.publish_insecure, preview=args.publish_preview
    )
