"""The pipeline: sensor items in, selections out. Replay and live runs drive the same :class:`Pipeline`.

Per gaze sample (:mod:`xrseg.select.gaze_path`): the direction in the world frame (head pose at its time) ->
centroid-shift fixation detector -> dwell trigger; a SELECT event selects the fixation in progress. Per
trigger: pick the keyframe (below), then :class:`~xrseg.select.selector.Selector` prompts with the fixation's
raw samples (turned by the tracker bias learnt so far, :mod:`xrseg.select.recalibration`) through that
keyframe's pose and depth, decodes, chooses a mask with the depth, corrects look-throughs and, when the mask
under the gaze is no plausible target, searches the tracker's error cone; the selection goes to the sinks.
REJECT, LARGER and SMALLER act on the latest selection (:mod:`xrseg.select.corrections`).

Keyframes come from one :class:`~xrseg.sam.embeddings.EmbeddingService` (the only caller of the encoder,
shared with the sinks). Deterministic mode (replay, the default): the keyframe for a trigger is the newest
frame at or before the trigger's time, encoded on demand and cached, so a replay gives the same selections on
every machine. Asynchronous mode (live, ``--realtime``): the service's worker encodes the newest frame whenever
it is free (latest wins), a trigger uses an already encoded keyframe chosen by head motion
(:mod:`xrseg.select.keyframes`) or waits for one (holding up no later trigger; dropped as stale after
``max_keyframe_age_ms``), and the fixation in progress is decoded ahead so a SELECT finds its mask made
(:mod:`xrseg.select.speculation`). Either way every gaze sample is projected with the head pose at its own time.
"""

from __future__ import annotations

import itertools
import logging
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

from xrseg.config import PipelineOptions
from xrseg.errors import InputError
from xrseg.interrupts import closes_with
from xrseg.sam.embeddings import EmbeddingService, EncodeMode, Encoder, Keyframe
from xrseg.sam.records import Decoder
from xrseg.select.corrections import LatestSelection, runner_up, stepped
from xrseg.select.gaze_path import GazePath
from xrseg.select.keyframes import GazeView, KeyframeRefusal, choose_keyframe
from xrseg.select.prompter import Prompter, PromptMiss, evenly_spaced
from xrseg.select.recalibration import GazeBias, selection_offset_rad
from xrseg.select.selector import Selector
from xrseg.select.sink_events import SinkEvents
from xrseg.select.speculation import Made, Speculator
from xrseg.select.triggers import Trigger
from xrseg.sinks.base import Drop, PipelineStats, Sink, finish_and_close
from xrseg.sources.base import Source, SourceItem
from xrseg.sync.poses import PoseHistory
from xrseg.types import (
    CameraModel,
    EventKind,
    Fixation,
    Frame,
    GazeSample,
    HeadPose,
    InputEvent,
    Selection,
    Transform,
    as_transform,
)

log = logging.getLogger(__name__)

_MS = 1_000_000
_FINAL_ENCODES = 4
"""At the end of a stream, at most this many waiting triggers get their own keyframe encoded."""


class Pipeline:
    """Turns a time-ordered stream of sensor items into selections. See the module docstring."""

    def __init__(
        self,
        camera: CameraModel,
        head_from_camera: Transform,
        decoder: Decoder,
        encoder: Encoder | None = None,
        options: PipelineOptions | None = None,
        sinks: Sequence[Sink] = (),
        embeddings: EmbeddingService | None = None,
    ) -> None:
        """``embeddings``: the run's embedding service when sinks share it (its mode must match
        ``options.realtime``); by default the pipeline makes its own around ``encoder``."""
        self.camera = camera
        self.head_from_camera = as_transform(head_from_camera, "head_from_camera")
        self.options = options or PipelineOptions()
        self.decoder = decoder
        self.encoder: Encoder = encoder if encoder is not None else decoder  # type: ignore[assignment]
        self.sinks = list(sinks)
        self.stats = PipelineStats()
        opts = self.options
        history_ns = int(opts.history_s * 1e9)
        self._gaze = GazePath(opts.gaze, history_ns)
        self._selector = Selector(
            camera,
            decoder,
            Prompter(max_points=opts.max_points, fallback_depth_m=opts.fallback_depth_m),
            opts.choice,
            opts.candidates,
            depth_choice=opts.depth_mask_choice,
            cone_search=opts.cone_search,
            multimask=opts.multimask,
        )
        self._frames: deque[Frame] = deque()
        self._history_ns = history_ns
        self.poses = PoseHistory(history_ns, self.head_from_camera)
        """The run's head-pose track (sinks and keyframe choice ask it too)."""
        self._events = SinkEvents(camera, self.poses, opts.fallback_depth_m)
        mode = EncodeMode.BACKGROUND if opts.realtime else EncodeMode.ON_DEMAND
        if embeddings is not None and embeddings.mode is not mode:
            raise InputError(
                f"the embedding service encodes {embeddings.mode.value}; this pipeline needs {mode.value}"
            )
        self.embeddings = embeddings if embeddings is not None else EmbeddingService(self.encoder, mode)
        """The one owner of encoder calls and cached embeddings; sinks may share it (see MeshSink)."""
        self._pending: deque[Trigger] = deque()
        self._waiting_since_s: dict[int, float] = {}
        """Wall time (perf_counter) of each waiting trigger's arrival, by its timestamp: click-to-mask."""
        self._keyframes_seen: set[int] = set()
        self._negatives: list[np.ndarray] = []
        self._bias = GazeBias(opts.recalibration)
        speculates = opts.speculate_ms > 0 and self.embeddings.mode is EncodeMode.BACKGROUND
        self._speculator = Speculator(opts.speculate_ms, self.poses) if speculates else None
        self._last: LatestSelection | None = None
        self._ids = itertools.count(1)  # selection ids; 0 marks a hover preview's candidate

    @property
    def negatives_world_m(self) -> tuple[np.ndarray, ...]:
        """World points (3 float64 each) of rejected selections, prompted as background from now on."""
        return tuple(self._negatives)

    # ------------------------------------------------------------------ input

    def run(self, source: Source | Iterable[SourceItem]) -> PipelineStats:
        """Process every item of ``source`` and close the sinks; returns the statistics."""
        with closes_with(self.close, log):
            for item in source:
                self.push(item)
            self.finish()
        return self.stats

    def push(self, item: SourceItem) -> None:
        if isinstance(item, GazeSample):
            self._on_gaze(item)
        elif isinstance(item, Frame):
            self._on_frame(item)
        elif isinstance(item, HeadPose):
            self._on_pose(item)
        elif isinstance(item, InputEvent):
            self._on_event(item)
        else:
            raise InputError(f"unknown source item {type(item).__name__}")

    def finish(self) -> None:
        """Flush the fixation detector (the stream has ended)."""
        for fixation in self._gaze.flush():
            self._fixation_done(fixation)

    def close(self) -> None:
        """Finish waiting triggers, stop the encoder, close the sinks.

        Triggers still waiting for a keyframe get the one being encoded, else (the stream is over, nothing
        waits on the gaze path any more) the frame at their own time encoded now, at most
        ``_FINAL_ENCODES`` of them. Raises :class:`~xrseg.errors.ModelError` when the background encoder
        failed (after the sinks closed)."""
        try:
            if self._pending and self.embeddings.wait_idle(timeout_s=30.0):
                self._new_keyframes()
            self._retry_pending(final=False)
            for trigger in list(self._pending)[:_FINAL_ENCODES]:
                frame = self._frame_at(trigger.timestamp_ns)
                if frame is not None and not self.embeddings.failed:
                    self.embeddings.encode_soon(frame, timeout_s=30.0)
            self._retry_pending(final=True)
        finally:
            try:
                self.embeddings.close()
            finally:
                self._sync_encoder_stats()
                finish_and_close(self.sinks)

    def _sync_encoder_stats(self) -> None:
        encoder = self.embeddings.stats
        self.stats.encodes = encoder.encoded
        self.stats.frames_dropped_by_encoder = encoder.dropped
        self.stats.encode_ms[len(self.stats.encode_ms) :] = encoder.encode_ms[len(self.stats.encode_ms) :]

    def _on_frame(self, frame: Frame) -> None:
        self.stats.frames += 1
        self._frames.append(frame)
        while self._frames and frame.timestamp_ns - self._frames[0].timestamp_ns > self._history_ns:
            self._frames.popleft()
        if self.embeddings.mode is EncodeMode.BACKGROUND:
            self.embeddings.submit(frame)
            self._new_keyframes()
        self._sync_encoder_stats()  # live, for heads-up displays
        event = self._events.frame(frame)
        for sink in self.sinks:
            sink.on_frame(event)
        self._retry_pending(final=False, now_ns=frame.timestamp_ns)

    def _frame_at(self, timestamp_ns: int) -> Frame | None:
        """The newest frame in the history at or before ``timestamp_ns`` (else the oldest one), or None."""
        times = [f.timestamp_ns for f in self._frames]
        if not times:
            return None
        return self._frames[max(0, bisect_right(times, timestamp_ns) - 1)]

    def _new_keyframes(self) -> None:
        """Tell the sinks about newly encoded keyframes; analyse each for the cone search before decisions wait."""
        for keyframe in self.embeddings.keyframes():
            if keyframe.frame.index in self._keyframes_seen:
                continue
            self._keyframes_seen.add(keyframe.frame.index)
            self._selector.prepare(keyframe.frame, self.poses.world_from_camera_at(keyframe.frame.timestamp_ns))
            event = self._events.keyframe(keyframe)
            for sink in self.sinks:
                sink.on_keyframe(event)
        if len(self._keyframes_seen) > 64:
            cached = {k.frame.index for k in self.embeddings.keyframes()}
            self._keyframes_seen &= cached

    def _retry_pending(self, final: bool, now_ns: int | None = None) -> None:
        """Select the waiting triggers that now have a usable keyframe, oldest first; drop the expired ones."""
        limit_ns = int(self.options.max_keyframe_age_ms * _MS)
        for trigger in list(self._pending):
            choice = self._choose_keyframe(trigger)
            expired = final or (now_ns is not None and now_ns - trigger.timestamp_ns > limit_ns)
            if isinstance(choice, KeyframeRefusal) and not expired:
                continue
            self._pending.remove(trigger)
            if isinstance(choice, KeyframeRefusal):
                self._waiting_since_s.pop(trigger.timestamp_ns, None)
                self._drop(Drop(trigger.timestamp_ns, choice.kind.value, choice.reason, trigger.fixation))
            else:
                self._select(trigger, retry=True)

    def _on_pose(self, pose: HeadPose) -> None:
        self.stats.head_poses += 1
        self.poses.push(pose)

    def _on_gaze(self, sample: GazeSample) -> None:
        self.stats.gaze_samples += 1
        world_from_head = self.poses.world_from_head_at(sample.timestamp_ns)
        step = self._gaze.push(sample, world_from_head)
        event = self._events.gaze(sample, step.filtered, world_from_head)
        for sink in self.sinks:
            sink.on_gaze(event)
        for fixation in step.fixations:
            self._fixation_done(fixation)
        if step.trigger is not None:
            self._select(step.trigger)
        elif self._speculator is not None:
            self._speculate(sample.timestamp_ns)

    def _fixation_done(self, fixation: Fixation) -> None:
        self.stats.fixations += 1
        event = self._events.fixation(fixation)
        for sink in self.sinks:
            sink.on_fixation(event)

    def _on_event(self, event: InputEvent) -> None:
        self.stats.events += 1
        if event.kind is EventKind.SELECT:
            if self.options.select_on_events:
                trigger = self._gaze.on_select(event)
                if trigger is None:
                    reason = "select event while no fixation was in progress or had just ended"
                    self._drop(Drop(event.timestamp_ns, "no_fixation", reason))
                else:
                    self._select(trigger)
        elif event.kind is EventKind.REJECT:
            self._reject(event.timestamp_ns)
        elif event.kind in (EventKind.LARGER, EventKind.SMALLER):
            self._step(event.kind is EventKind.LARGER, event.timestamp_ns)

    # ------------------------------------------------------------------ selection

    def _choose_keyframe(self, trigger: Trigger) -> Keyframe | KeyframeRefusal:
        """Asynchronous mode: an encoded keyframe usable for ``trigger`` (by head motion), or why none is."""
        fixation, time_ns = trigger.fixation, trigger.timestamp_ns
        direction = np.asarray(fixation.direction, dtype=np.float64)
        view = GazeView(direction, min(fixation.centre_ns, time_ns), self.camera, self.head_from_camera)
        policy, track = self.options.keyframe_policy, self.poses.track()
        return choose_keyframe(self.embeddings.keyframes(), time_ns, fixation.start_ns, track, policy, view)

    def _keyframe(self, trigger: Trigger) -> Keyframe | None:
        """The keyframe for ``trigger``; None when it has none (yet: then it waits in ``_pending``)."""
        if self.embeddings.mode is EncodeMode.BACKGROUND:
            choice = self._choose_keyframe(trigger)
            if isinstance(choice, Keyframe):
                return choice
            if self.embeddings.failed:  # no keyframe will come
                self._drop(Drop(trigger.timestamp_ns, choice.kind.value, choice.reason, trigger.fixation))
            else:
                self._pending.append(trigger)  # a later keyframe may do
                log.info("selection at %.3f s waits for a keyframe", trigger.timestamp_ns / 1e9)
            return None
        times = [f.timestamp_ns for f in self._frames]
        index = bisect_right(times, trigger.timestamp_ns) - 1
        if index < 0:
            self._drop(Drop(trigger.timestamp_ns, "no_keyframe", "no camera frame yet", trigger.fixation))
            return None
        keyframe = self.embeddings.embedding_for(self._frames[index])
        self._sync_encoder_stats()
        return keyframe

    def _drop(self, drop: Drop) -> None:
        self.stats.drops[drop.kind] += 1
        log.info("no selection at %.3f s: %s", drop.timestamp_ns / 1e9, drop.reason)
        for sink in self.sinks:
            sink.on_drop(drop)

    def _select(self, trigger: Trigger, retry: bool = False) -> None:
        started = self._waiting_since_s.pop(trigger.timestamp_ns, time.perf_counter())
        if not retry:
            self.stats.triggers += 1
        if self._is_selected(trigger.fixation):
            # A SELECT press during a fixation that dwell already selected confirms it: no second selection.
            self.stats.confirmations += 1
            log.info("select at %.3f s confirms an earlier selection", trigger.timestamp_ns / 1e9)
            return
        made = self._look_ahead_for(trigger) if trigger.reason == "event" and not retry else None
        if made is not None:
            self.stats.look_ahead_hits += 1
        else:
            keyframe = self._keyframe(trigger)  # None: dropped, or waiting for a keyframe
            if keyframe is None:
                if self._pending and self._pending[-1] is trigger:
                    self._waiting_since_s[trigger.timestamp_ns] = started
                return
            decided = self._decide(trigger, keyframe)
            if isinstance(decided, Drop):
                self._drop(decided)
                return
            made = decided
        self.stats.timings.append(made.decision.timing)
        frame = made.keyframe.frame
        selection = made.decision.to_selection(next(self._ids), trigger.timestamp_ns, trigger.fixation, frame)
        self._publish(
            LatestSelection(selection, frame, made.world_from_camera, made.decision, made.keyframe.embedding)
        )
        if trigger.reason == "event":  # a press that waited for a keyframe counts its wait
            self.stats.add_click((time.perf_counter() - started) * 1000.0, waited=retry)
        if self.options.recalibration.enabled:
            self._learn_bias(selection, made)

    def _is_selected(self, fixation: Fixation) -> bool:
        """True when ``fixation`` overlaps the latest selection's (the same fixation, selected already)."""
        last = None if self._last is None else self._last.selection.fixation
        return last is not None and fixation.start_ns <= last.end_ns and last.start_ns <= fixation.end_ns

    def _decide(self, trigger: Trigger, keyframe: Keyframe) -> Made | Drop:
        """Decide ``trigger`` on ``keyframe`` (:class:`~xrseg.select.selector.Selector`), or why not."""
        fixation = trigger.fixation
        track = self.poses.track()
        world_from_camera = self.poses.world_from_camera_at(keyframe.frame.timestamp_ns)
        if track is None or world_from_camera is None:
            return Drop(trigger.timestamp_ns, "no_head_pose", "no head pose at the keyframe's time", fixation)
        samples = tuple(evenly_spaced(self._gaze.samples_for(fixation), self.options.max_prompt_samples))
        decision = self._selector.decide(
            keyframe.frame,
            keyframe.embedding,
            keyframe.encode_ms,
            self._bias.correct(samples),
            track,
            world_from_camera,
            self._negatives,
        )
        if isinstance(decision, PromptMiss):
            return Drop(trigger.timestamp_ns, "prompt_miss", decision.reason, fixation)
        return Made(keyframe, world_from_camera, track, samples, decision)

    def _speculate(self, now_ns: int) -> None:
        """Decode what a SELECT press now would select, ahead of the press (:mod:`xrseg.select.speculation`)."""
        ahead = self._speculator
        if ahead is None or not ahead.due(now_ns, self._gaze.detector.start_ns):
            return
        preview = self._gaze.preview(now_ns)
        if preview is None:
            return
        start_ns, trigger = preview
        ahead.tried(now_ns, start_ns)
        if self._is_selected(trigger.fixation):
            return
        keyframe = self._choose_keyframe(trigger)
        made = self._decide(trigger, keyframe) if isinstance(keyframe, Keyframe) else None
        if isinstance(made, Made):
            ahead.keep(now_ns, trigger.fixation, made)
            self.stats.look_aheads += 1
            event = self._events.preview(now_ns, trigger.fixation, made)
            for sink in self.sinks:
                sink.on_preview(event)

    def _look_ahead_for(self, trigger: Trigger) -> Made | None:
        """The look-ahead decision for a SELECT ``trigger``, if one was made for this fixation."""
        if self._speculator is None:
            return None
        return self._speculator.take(self._gaze.press_fixation_start_ns(trigger.timestamp_ns), trigger.fixation)

    def _learn_bias(self, selection: Selection, made: Made) -> None:
        """The selection's offset from its raw gaze to its mask is an observation of the tracker's bias."""
        opts, frame = self.options, made.keyframe.frame
        offset = selection_offset_rad(
            made.samples, selection.mask, frame.depth_m, opts.fallback_depth_m, self.camera,
            made.world_from_camera, made.track, opts.recalibration,
        )  # fmt: skip
        self._bias.learn(selection.selection_id, offset)
        self.stats.gaze_bias_deg = self._bias.offset_deg

    def _publish(self, latest: LatestSelection) -> None:
        self.stats.selections += 1
        if self._last is None or latest.selection.timestamp_ns >= self._last.selection.timestamp_ns:
            self._last = latest  # not a press that waited for its keyframe over a later one
        selection, frame = latest.selection, latest.frame
        log.info(
            "selection %d on frame %d: %d px, score %.2f, gaze (%.0f, %.0f) via %s", selection.selection_id,
            frame.index, selection.area_px, selection.score, *selection.gaze_xy, selection.depth_source.value,
        )  # fmt: skip
        event = self._events.selection(selection, frame, latest.world_from_camera)
        for sink in self.sinks:
            sink.on_selection(event)

    def _reject(self, timestamp_ns: int) -> None:
        """The user rejected the latest selection: its point becomes a negative prompt, and the next plausible
        candidate for the same gaze (if any) is offered as a new selection."""
        latest = self._last
        if latest is None:
            return
        selection = latest.selection
        self.stats.rejected += 1
        self._bias.forget(selection.selection_id)
        self.stats.gaze_bias_deg = self._bias.offset_deg
        if self._speculator is not None:
            self._speculator.clear()  # a new negative point: decode afresh
        if selection.point_world_m is not None:
            self._negatives.append(np.asarray(selection.point_world_m))
        for sink in self.sinks:
            sink.on_reject(selection)
        self._last = None
        offered = runner_up(latest, self._selector, next(self._ids), timestamp_ns)
        if offered is not None:
            self._publish(offered)

    def _step(self, larger: bool, timestamp_ns: int) -> None:
        """Step the latest selection to the next larger (or smaller) candidate mask, by area."""
        changed = None if self._last is None else stepped(self._last, larger, timestamp_ns)
        if changed is not None:
            self.stats.selections -= 1  # the same selection, changed
            self._publish(changed)
