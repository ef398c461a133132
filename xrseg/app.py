"""Wiring shared by ``xrseg replay``, ``xrseg demo``, ``xrseg eval`` and ``xrseg run``: options -> engine,
encoder, sinks.

The command modules only parse arguments (into a :class:`~xrseg.config.RunOptions`,
:mod:`xrseg.commands.pipeline_args`) and pick a source; everything after that is here, so a live run and a
replay are the same pipeline with the same outputs. Sinks are independent of each other: each gets the events
of :mod:`xrseg.sinks.base`, in any order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from xrseg.config import ModelOptions, OutputOptions, PublishOptions, RunOptions
from xrseg.errors import InputError, SessionError, UsageError
from xrseg.select.pipeline import Pipeline
from xrseg.sinks.base import FixationEvent, GazeEvent, PipelineStats, PreviewEvent, SelectionEvent, Sink
from xrseg.sources.base import Source, SourceItem
from xrseg.types import Transform

if TYPE_CHECKING:
    from xrseg.session.reader import Session
    from xrseg.sinks.runstate import RunSummary

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunResult:
    stats: PipelineStats
    summary: dict[str, Any]
    out_dir: Path | None


def replay_session(session: Session, options: RunOptions, *, speed: float = 1.0) -> RunResult:
    """Run the pipeline on a recorded session with the outputs ``options`` asks for, with a progress bar;
    ``options.pipeline.realtime``: paced at ``speed`` times the recorded speed, encoded asynchronously.

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
        ReplaySource(session, realtime=options.pipeline.realtime, speed=speed),
        session.header.camera,
        session.header.head_from_camera,
        options,
        total_items=total,
        session_path=session.path,
    )


class _Progress(Sink):
    def __init__(self, bar: tqdm) -> None:
        self.bar = bar
        self.selections = 0

    def on_selection(self, event: SelectionEvent) -> None:
        self.selections += 1
        self.bar.set_postfix(selections=self.selections)


class _Publisher(Sink):
    """Publishes fixations, selections, once-a-second stats and (when asked) hover previews on a ZeroMQ PUB
    socket."""

    def __init__(self, options: PublishOptions, pipeline_stats: PipelineStats) -> None:
        from xrseg.stream.auth import CurveServerKeys
        from xrseg.stream.pubsub import EventPublisher

        keys = options.curve_keys
        curve = None if keys is None else CurveServerKeys(keys[0], keys[1])
        self.publisher = EventPublisher(options.endpoint, curve=curve, allow_insecure=options.insecure)
        self.stats = pipeline_stats
        self.preview = options.preview
        self._last_stats_s = 0.0

    def on_fixation(self, event: FixationEvent) -> None:
        self.publisher.publish_fixation(event.fixation)

    def on_selection(self, event: SelectionEvent) -> None:
        self.publisher.publish_selection(event.selection)

    def on_preview(self, event: PreviewEvent) -> None:
        if self.preview:
            self.publisher.publish_preview(event.candidate)

    def on_gaze(self, event: GazeEvent) -> None:
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


def make_engine_and_encoder(options: ModelOptions, realtime: bool) -> tuple[Any, Any]:
    """The engine (decodes, and encodes unless a remote encoder does) and the encoder the run uses. A
    ``realtime`` run encodes in the background while it decodes: its graphs run with the threads and spinning
    measured for that (:class:`~xrseg.sam.runtime.Schedule`)."""
    from xrseg.sam.engine import SamEngine
    from xrseg.sam.runtime import Schedule

    providers = list(options.providers) if options.providers is not None else None
    schedule = Schedule.CONCURRENT if realtime else Schedule.SEQUENTIAL
    engine = SamEngine.from_cache(
        variant=options.variant, threads=options.threads, providers=providers, schedule=schedule
    )
    if realtime:  # before the stream starts: its first keyframe should not wait for first-run allocations
        engine.warm_up()
    encoder: Any = engine
    if options.encoder_endpoint:
        from xrseg.stream.encoder_client import RemoteEncoder

        encoder = RemoteEncoder(options.encoder_endpoint, fallback=engine)
    return engine, encoder


def run_pipeline(
    source: Source | Iterable[SourceItem],
    camera: Any,
    head_from_camera: Transform,
    options: RunOptions,
    *,
    total_items: int | None = None,
    session_path: Path | None = None,
    extra_sinks: Iterable[Sink] = (),
    run: RunSummary | None = None,
) -> RunResult:
    """Run the pipeline on ``source`` with the outputs ``options`` asks for; returns stats and the summary.

    ``summary.json`` in the output folder says whether the run completed (:mod:`xrseg.sinks.runstate`). A caller
    that does more after the pipeline (``eval`` scores it) passes its own entered ``run`` (from
    :func:`~xrseg.sinks.runstate.open_run`) and completes it itself."""
    from xrseg.sinks.runstate import open_run

    parts = (source, camera, head_from_camera, options, total_items, session_path, extra_sinks)
    if run is not None:
        return _run_pipeline(*parts, run)
    outputs = options.outputs
    # The output folder's check comes before the model loads: fail fast.
    with open_run(outputs.out_dir, outputs.overwrite, options.command) as own:
        return _run_pipeline(*parts, own)


def _run_pipeline(
    source: Source | Iterable[SourceItem],
    camera: Any,
    head_from_camera: Transform,
    options: RunOptions,
    total_items: int | None,
    session_path: Path | None,
    extra_sinks: Iterable[Sink],
    run: RunSummary,
) -> RunResult:
    from xrseg.sam.embeddings import EmbeddingService, EncodeMode
    from xrseg.sinks.files import summary_record

    realtime = options.pipeline.realtime
    engine, encoder = make_engine_and_encoder(options.model, realtime)
    embeddings = EmbeddingService(encoder, EncodeMode.BACKGROUND if realtime else EncodeMode.ON_DEMAND)
    pipeline = Pipeline(camera, head_from_camera, engine, encoder, options.pipeline, (), embeddings)
    run.partial = lambda: summary_record(pipeline.stats, options.pipeline, {"session": str(session_path or "")})
    sinks = _sinks(options, camera, engine, embeddings, session_path, pipeline.stats)
    if options.outputs.view:
        from xrseg.sinks.viz.window import ViewerSink

        viewer = ViewerSink(camera, stats=pipeline.stats, source_label=_label(session_path))
        sinks.append(viewer)
        source = viewer.interleave(source)  # key presses become LARGER / SMALLER / REJECT events
    pipeline.sinks.extend([*sinks, *extra_sinks])
    started = time.perf_counter()
    # disable=None: a progress bar on a terminal, nothing in logs; -q turns it off everywhere.
    with tqdm(
        total=total_items,
        desc="replay" if session_path else "run",
        unit="item",
        leave=False,
        disable=True if options.quiet else None,
    ) as bar:
        pipeline.sinks.append(_Progress(bar))
        stats = pipeline.run(_counted(source, bar))
    elapsed = time.perf_counter() - started
    summary = summary_record(stats, options.pipeline, {"wall_s": elapsed, "session": str(session_path or "")})
    for sink in pipeline.sinks:
        summary.update(sink.summary())
    run.summary = summary
    return RunResult(stats, summary, options.outputs.out_dir)


def _sinks(
    options: RunOptions,
    camera: Any,
    engine: Any,
    embeddings: Any,
    session_path: Path | None,
    stats: PipelineStats,
) -> list[Sink]:
    """The sinks ``options`` asks for but the window: the output folder's, the Rerun log, the publisher. Those
    that show counters get ``stats``; a mesh sink tells the Rerun log of every mesh it writes."""
    outputs = options.outputs
    sinks: list[Sink] = []
    rerun = None
    if outputs.rerun_path is not None:
        from xrseg.sinks.viz.rerun_log import RerunSink

        rerun = RerunSink(outputs.rerun_path, camera, stats=stats)
        sinks.append(rerun)
    sinks.extend(_out_sinks(outputs, camera, engine, embeddings, session_path, stats, rerun))
    if options.publish is not None:
        sinks.append(_Publisher(options.publish, stats))
    return sinks


def _out_sinks(
    outputs: OutputOptions,
    camera: Any,
    engine: Any,
    embeddings: Any,
    session_path: Path | None,
    stats: PipelineStats,
    mesh_listener: Sink | None,
) -> list[Sink]:
    """The sinks writing into ``outputs.out_dir`` (none without it)."""
    from xrseg.sinks.files import SelectionWriter

    out_dir = outputs.out_dir
    if out_dir is None:
        wants = [f"--{name}" for name, on in (("track", outputs.track), ("cutouts", outputs.cutouts)) if on]
        if wants:
            raise UsageError(f"{' and '.join(wants)} write into --out DIR: give one")
        return []
    sinks: list[Sink] = [SelectionWriter(out_dir)]
    if outputs.meshes:
        from xrseg.sinks.mesh import MeshSink

        listeners = [mesh_listener] if mesh_listener is not None else []
        follow = outputs.follow_frames
        meshes = MeshSink(out_dir, camera, engine, embeddings, follow, session_path, track=outputs.track)
        meshes.listeners.extend(listeners)
        sinks.append(meshes)
    if outputs.cutouts:
        from xrseg.sinks.cutouts import CutoutWriter

        sinks.append(CutoutWriter(out_dir, outputs.feather_px))
    if outputs.video:
        from xrseg.sinks.viz.video import OverlayVideoSink

        sinks.append(OverlayVideoSink(out_dir, camera, stats=stats, source_label=_label(session_path)))
    return sinks


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
