"""Wiring shared by ``xrseg replay``, ``xrseg demo`` and ``xrseg run``: options -> engine, encoder, sinks.

The command modules only parse arguments and pick a source; everything after that is here, so a live run and
a replay are the same pipeline with the same outputs.
"""

from __future__ import annotations

import argparse
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from xrseg.config import PipelineOptions
from xrseg.errors import InputError, SessionError, UsageError
from xrseg.select.candidates import CandidateOptions
from xrseg.select.gaze_path import GazeOptions
from xrseg.select.pipeline import Pipeline
from xrseg.select.recalibration import RecalibrationOptions
from xrseg.sinks.base import PipelineStats, Sink
from xrseg.sinks.cutouts import DEFAULT_FEATHER_PX
from xrseg.sources.base import Source, SourceItem
from xrseg.types import Fixation, Frame, GazeSample, Selection, Transform

if TYPE_CHECKING:
    from xrseg.session.reader import Session
    from xrseg.sinks.runstate import RunSummary

log = logging.getLogger(__name__)


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
    group.add_argument("--encoder", metavar="ENDPOINT", help="encode keyframes on an `xrseg serve-encoder` server")


def _add_output_arguments(
    parser: argparse.ArgumentParser, group: argparse._ArgumentGroup, mesh_optional: bool
) -> None:
    """Options of what a run produces besides selections: meshes, tracks, cutouts, video, viewers."""
    if mesh_optional:
        group.add_argument("--no-mesh", action="store_true", help="do not lift selections or export meshes")
    else:
        parser.set_defaults(no_mesh=False)
    group.add_argument("--follow-frames", type=int, default=6, help="frames to follow a selected object into")
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
        default=DEFAULT_FEATHER_PX,
        help="with --cutouts: soften the alpha edge over this many pixels (default 0: alpha is the mask)",
    )
    group.add_argument("--no-video", action="store_true", help="with --out: no overlay MP4 or contact sheet")
    group.add_argument("--view", action="store_true", help="show an overlay window (keys: space + - r q)")
    group.add_argument("--rerun", type=Path, metavar="FILE.rrd", help="write a Rerun recording (the rerun extra)")


def pipeline_options(args: argparse.Namespace, realtime: bool) -> PipelineOptions:
    return PipelineOptions(
        gaze=GazeOptions(dwell_ms=args.dwell_ms),
        fallback_depth_m=args.fallback_depth_m,
        max_points=args.max_points,
        depth_mask_choice=not getattr(args, "sam_choice", False),
        cone_search=not getattr(args, "no_cone_search", False),
        candidates=CandidateOptions(
            accuracy_deg=getattr(args, "gaze_accuracy_deg", CandidateOptions.accuracy_deg)
        ),
        recalibration=RecalibrationOptions(enabled=not getattr(args, "no_recalibration", False)),
        realtime=realtime,
        max_keyframe_head_motion_deg=getattr(
            args, "max_head_motion_deg", PipelineOptions.max_keyframe_head_motion_deg
        ),
        max_keyframe_age_ms=getattr(args, "max_keyframe_age_ms", PipelineOptions.max_keyframe_age_ms),
    )


@dataclass(frozen=True)
class RunResult:
    stats: PipelineStats
    summary: dict[str, Any]
    out_dir: Path | None


def replay_session(
    session: Session, args: argparse.Namespace, *, realtime: bool = False, speed: float = 1.0
) -> RunResult:
    """Run the pipeline on a recorded session with the outputs ``args`` asks for, with a progress bar.

    Raises :class:`SessionError` for a session without camera frames (nothing to segment).
    """
    from xrseg.sources.replay import ReplaySource

    if session.frame_count == 0:
        raise SessionError(
            f"{session.path} has no camera frames: nothing to segment (an imported gaze-only session?)"
        )
    total = (
        session.frame_count
        + len(session.head_timestamps_ns)
        + len(session.gaze_timestamps_ns)
        + len(session.events())
    )
    return run_pipeline(
        ReplaySource(session, realtime=realtime, speed=speed),
        session.header.camera,
        session.header.head_from_camera,
        args,
        realtime=realtime,
        total_items=total,
        session_path=session.path,
    )


class _Progress(Sink):
    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.selections = 0

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        self.selections += 1
        self.bar.set_postfix(selections=self.selections)


class _Publisher(Sink):
    """Publishes fixations, selections and once-a-second stats on a ZeroMQ PUB socket."""

    def __init__(self, args: argparse.Namespace, pipeline_stats: PipelineStats) -> None:
        from xrseg.stream.auth import CurveServerKeys
        from xrseg.stream.pubsub import EventPublisher

        keys = getattr(args, "publish_curve", None)
        curve = None if keys is None else CurveServerKeys(keys[0], keys[1])
        insecure = bool(getattr(args, "publish_insecure", False))
        self.publisher = EventPublisher(args.publish, curve=curve, allow_insecure=insecure)
        self.stats = pipeline_stats
        self._last_stats_s = 0.0

    def on_fixation(self, fixation: Fixation) -> None:
        self.publisher.publish_fixation(fixation)

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        self.publisher.publish_selection(selection)

    def on_gaze(self, sample: GazeSample, filtered: GazeSample) -> None:
        now = time.monotonic()
        if now - self._last_stats_s >= 1.0:
            self._last_stats_s = now
            self.publisher.publish_stats(
                {
                    "frames": self.stats.frames,
                    "fixations": self.stats.fixations,
                    "selections": self.stats.selections,
                    "drops": sum(self.stats.drops.values()),
                    "encodes": self.stats.encodes,
                }
            )

    def close(self) -> None:
        # Give subscribers a moment to receive what is queued before the socket goes (linger is 0).
        time.sleep(0.2)
        self.publisher.close()


def make_engine_and_encoder(args: argparse.Namespace) -> tuple[Any, Any]:
    from xrseg.sam.engine import SamEngine

    engine = SamEngine.from_cache(
        variant=args.variant, threads=args.threads, providers=getattr(args, "providers", None)
    )
    encoder: Any = engine
    if args.encoder:
        from xrseg.stream.encoder_client import RemoteEncoder

        encoder = RemoteEncoder(args.encoder, fallback=engine)
    return engine, encoder


def run_pipeline(
    source: Source | Iterable[SourceItem],
    camera: Any,
    head_from_camera: Transform,
    args: argparse.Namespace,
    *,
    realtime: bool,
    total_items: int | None = None,
    session_path: Path | None = None,
    extra_sinks: Iterable[Sink] = (),
    run: RunSummary | None = None,
) -> RunResult:
    """Run the pipeline on ``source`` with the outputs ``args`` asks for; returns stats and the summary.

    ``summary.json`` in ``--out`` says whether the run completed (:mod:`xrseg.sinks.runstate`). A caller that
    does more after the pipeline (``eval`` scores it) passes its own entered ``run`` (from
    :func:`~xrseg.sinks.runstate.open_run`) and completes it itself."""
    from xrseg.sinks.runstate import open_run

    parts = (source, camera, head_from_camera, args, realtime, total_items, session_path, extra_sinks)
    if run is not None:
        return _run_pipeline(*parts, run)
    overwrite = bool(getattr(args, "overwrite", False))
    # The --out check comes before the model loads: fail fast.
    with open_run(args.out, overwrite, str(getattr(args, "command", None) or "pipeline")) as own:
        return _run_pipeline(*parts, own)


def _run_pipeline(
    source: Source | Iterable[SourceItem],
    camera: Any,
    head_from_camera: Transform,
    args: argparse.Namespace,
    realtime: bool,
    total_items: int | None,
    session_path: Path | None,
    extra_sinks: Iterable[Sink],
    run: RunSummary,
) -> RunResult:
    from xrseg.sam.embeddings import EmbeddingService, EncodeMode
    from xrseg.sinks.files import summary_record

    options = pipeline_options(args, realtime)
    engine, encoder = make_engine_and_encoder(args)
    embeddings = EmbeddingService(encoder, EncodeMode.BACKGROUND if realtime else EncodeMode.ON_DEMAND)
    out_dir: Path | None = args.out
    sinks, mesh_sink = _out_sinks(args, camera, head_from_camera, engine, embeddings, session_path)
    viewer = None
    if args.view:
        from xrseg.sinks.viz.window import ViewerSink

        viewer = ViewerSink(camera, head_from_camera, source_label=_label(session_path))
        sinks.append(viewer)
    if args.rerun is not None:
        from xrseg.sinks.viz.rerun_log import RerunSink

        sinks.append(RerunSink(args.rerun, camera, head_from_camera, mesh_sink=mesh_sink))  # after MeshSink
    sinks.extend(extra_sinks)
    pipeline = Pipeline(camera, head_from_camera, engine, encoder, options, sinks, embeddings)
    run.partial = lambda: summary_record(pipeline.stats, options, {"session": str(session_path or "")})
    for sink in sinks:
        if hasattr(sink, "stats") and getattr(sink, "stats", None) is None:
            sink.stats = pipeline.stats  # the viz sinks show live counters
    if viewer is not None:
        source = viewer.interleave(source)  # key presses become LARGER / SMALLER / REJECT events
    if args.publish:
        pipeline.sinks.append(_Publisher(args, pipeline.stats))
    started = time.perf_counter()
    # disable=None: a progress bar on a terminal, nothing in logs; -q turns it off everywhere.
    quiet = True if getattr(args, "quiet", False) else None
    with tqdm(
        total=total_items, desc="replay" if session_path else "run", unit="item", leave=False, disable=quiet
    ) as bar:
        pipeline.sinks.append(_Progress(bar))
        stats = pipeline.run(_counted(source, bar))
    elapsed = time.perf_counter() - started
    summary = summary_record(stats, options, {"wall_s": elapsed, "session": str(session_path or "")})
    for sink in pipeline.sinks:
        extra = getattr(sink, "summary", None)
        if callable(extra):
            summary.update(extra())
    run.summary = summary
    return RunResult(stats, summary, out_dir)


def _out_sinks(
    args: argparse.Namespace,
    camera: Any,
    head_from_camera: Transform,
    engine: Any,
    embeddings: Any,
    session_path: Path | None,
) -> tuple[list[Sink], Any]:
    """The sinks writing into ``args.out`` (none without it), and the mesh sink among them or None."""
    from xrseg.sinks.files import SelectionWriter

    if args.out is None:
        wants = [f"--{name}" for name in ("track", "cutouts") if getattr(args, name, False)]
        if wants:
            raise UsageError(f"{' and '.join(wants)} write into --out DIR: give one")
        return [], None
    sinks: list[Sink] = [SelectionWriter(args.out)]
    mesh_sink = None
    if not args.no_mesh:
        from xrseg.sinks.mesh import MeshSink

        track = bool(getattr(args, "track", False))
        mesh_sink = MeshSink(args.out, camera, engine, embeddings, args.follow_frames, session_path, track=track)
        sinks.append(mesh_sink)
    if getattr(args, "cutouts", False):
        from xrseg.sinks.cutouts import CutoutWriter

        sinks.append(CutoutWriter(args.out, getattr(args, "feather_px", DEFAULT_FEATHER_PX)))
    if not args.no_video:
        from xrseg.sinks.viz.video import OverlayVideoSink

        sinks.append(OverlayVideoSink(args.out, camera, head_from_camera, source_label=_label(session_path)))
    return sinks, mesh_sink


def _label(session_path: Path | None) -> str:
    return f"replay {session_path.name}" if session_path is not None else "live"


def _counted(items: Iterable[SourceItem], bar: tqdm) -> Iterator[SourceItem]:
    for item in items:
        bar.update(1)
        yield item


def describe(result: RunResult) -> str:
    """One line for the terminal."""
    stats, summary = result.stats, result.summary
    latency = summary["gaze_to_mask_ms"]["p50"]
    drops = ", ".join(f"{k} {v}" for k, v in sorted(stats.drops.items())) or "none"
    parts = [
        f"{stats.selections} selections from {stats.fixations} fixations",
        f"{stats.encodes} keyframes encoded",
        f"gaze-to-mask p50 {latency:.1f} ms" if latency is not None else "no selections timed",
        f"dropped: {drops}",
    ]
    if result.out_dir is not None:
        parts.append(f"written to {result.out_dir}")
    return "; ".join(parts)


def check_out_dir(path: Path | None) -> None:
    if path is not None and path.exists() and not path.is_dir():
        raise InputError(f"--out {path} exists and is not a directory")
