"""The pipeline: sensor items in, selections out. Replay and live runs drive the same :class:`Pipeline`.

Per gaze sample (:mod:`xrseg.select.gaze_path`): the direction in the world frame (head pose at its time) ->
centroid-shift fixation detector -> dwell trigger; a SELECT event selects the fixation in progress. Per
trigger: pick the keyframe (see below), then :class:`~xrseg.select.selector.Selector` makes point prompts from
the fixation's raw samples through that keyframe's pose and depth, decodes, chooses a mask with the depth,
corrects look-throughs and, when the mask under the gaze is no plausible target, searches the tracker's error
cone; the :class:`~xrseg.types.Selection` goes to the sinks. REJECT offers the next plausible candidate for
the same gaze; LARGER and SMALLER step through the decoder's masks.

Keyframes come from one :class:`~xrseg.sam.embeddings.EmbeddingService` (the only caller of the encoder,
shared with the sinks). Deterministic mode (replay, the default): the keyframe for a trigger is the newest
frame at or before the trigger's time, encoded on demand and cached, so a replay gives the same selections on
every machine. Asynchronous mode (live, ``--realtime``): the service's worker encodes the newest frame whenever
it is free (latest wins; superseded frames are counted as dropped), and a trigger uses an already encoded
keyframe chosen by head motion (:mod:`xrseg.select.keyframes`), so the gaze path never waits for the encoder;
a trigger with no usable keyframe yet waits for the next one (checked on every frame) and is dropped as stale
only after ``max_keyframe_age_ms``. Either way the prompter projects every gaze sample with the head pose at
the sample's own time, so head motion since the keyframe is corrected for.

Sinks receive what happens (:class:`~xrseg.sinks.base.Sink`); they write files, publish over ZeroMQ, lift meshes or
draw.
"""

from __future__ import annotations

import dataclasses
import logging
from bisect import bisect_right
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from xrseg.errors import InputError
from xrseg.geometry import PoseTrack
from xrseg.sam.embeddings import EmbeddingService, EncodeMode, Encoder, Keyframe
from xrseg.sam.records import Decoder, ImageEmbedding, MaskPrediction
from xrseg.select.candidates import CandidateOptions
from xrseg.select.gaze_path import GazeOptions, GazePath
from xrseg.select.keyframes import GazeView, KeyframePolicy, KeyframeRefusal, choose_keyframe
from xrseg.select.maskchoice import ChoiceOptions
from xrseg.select.prompter import Prompt, Prompter, PromptMiss, evenly_spaced
from xrseg.select.recalibration import GazeBias, RecalibrationOptions, selection_offset_rad
from xrseg.select.selector import Decision, Selector
from xrseg.select.triggers import Trigger
from xrseg.sinks.base import Drop, PipelineStats, Sink
from xrseg.sources.base import Source, SourceItem
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


@dataclass(frozen=True)
class PipelineOptions:
    """Tunable behaviour. Times in milliseconds, angles in degrees, distances in metres."""

    gaze: GazeOptions = field(default_factory=GazeOptions)
    """Fixation detection, dwell and SELECT handling (:mod:`xrseg.select.gaze_path`)."""
    select_on_events: bool = True
    """SELECT events (button, pinch) select what is being looked at."""
    max_prompt_samples: int = 12
    """At most this many of a fixation's samples (evenly spaced) are projected to make its prompt."""
    max_points: int = 5
    fallback_depth_m: float = 1.0
    multimask: bool = True
    depth_mask_choice: bool = True
    """Choose among the candidate masks with the keyframe's depth and correct look-throughs
    (:mod:`xrseg.select.maskchoice`); False keeps SAM's own ambiguity rule."""
    choice: ChoiceOptions = field(default_factory=ChoiceOptions)
    cone_search: bool = True
    """When the mask under the gaze is no plausible target, search the tracker's error cone for one
    (:mod:`xrseg.select.candidates`; needs depth and ``depth_mask_choice``)."""
    candidates: CandidateOptions = field(default_factory=CandidateOptions)
    recalibration: RecalibrationOptions = field(default_factory=RecalibrationOptions)
    """Learn the tracker's constant bias from the selections made (:mod:`xrseg.select.recalibration`)."""
    realtime: bool = False
    """Encode keyframes asynchronously (latest wins) instead of on demand."""
    max_keyframe_head_motion_deg: float = 30.0
    """Asynchronous mode: a keyframe is used for a fixation only if the head turned at most this much between
    them (:mod:`xrseg.select.keyframes`)."""
    max_keyframe_age_ms: float = 8000.0
    """Asynchronous mode: a keyframe at most this far from the trigger; a trigger waits this long for one."""
    history_s: float = 10.0
    """Frames, head poses and gaze samples kept (must cover ``max_keyframe_age_ms``)."""

    def __post_init__(self) -> None:
        if self.gaze.dwell_ms < 0 or self.history_s <= 0:
            raise InputError("dwell_ms must be >= 0 and history_s > 0")
        _ = self.keyframe_policy  # raises on bad keyframe limits
        if self.max_keyframe_age_ms > self.history_s * 1000.0:
            raise InputError("max_keyframe_age_ms must not exceed history_s (poses older than that are gone)")

    @property
    def keyframe_policy(self) -> KeyframePolicy:
        return KeyframePolicy(self.max_keyframe_head_motion_deg, self.max_keyframe_age_ms)


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
        self._pose_times: deque[int] = deque()
        self._poses: deque[np.ndarray] = deque()
        self._track: PoseTrack | None = None
        mode = EncodeMode.BACKGROUND if opts.realtime else EncodeMode.ON_DEMAND
        if embeddings is not None and embeddings.mode is not mode:
            raise InputError(
                f"the embedding service encodes {embeddings.mode.value}; this pipeline needs {mode.value}"
            )
        self.embeddings = embeddings if embeddings is not None else EmbeddingService(self.encoder, mode)
        """The one owner of encoder calls and cached embeddings; sinks may share it (see MeshSink)."""
        self._pending: deque[Trigger] = deque()
        self._keyframes_seen: set[int] = set()
        self._negatives: list[np.ndarray] = []
        self._bias = GazeBias(opts.recalibration)
        self._last: _Latest | None = None
        self._next_id = 1

    @property
    def negatives_world_m(self) -> tuple[np.ndarray, ...]:
        """World points (3 float64 each) of rejected selections, prompted as background from now on."""
        return tuple(self._negatives)

    # ------------------------------------------------------------------ input

    def run(self, source: Source | Iterable[SourceItem]) -> PipelineStats:
        """Process every item of ``source`` and close the sinks; returns the statistics."""
        try:
            for item in source:
                self.push(item)
            self.finish()
        finally:
            self.close()
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
                for sink in self.sinks:
                    sink.close()

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
        world_from_camera = self.world_from_camera_at(frame.timestamp_ns)
        for sink in self.sinks:
            sink.on_frame(frame, world_from_camera)
        self._retry_pending(final=False, now_ns=frame.timestamp_ns)

    def _frame_at(self, timestamp_ns: int) -> Frame | None:
        """The newest frame in the history at or before ``timestamp_ns`` (else the oldest one), or None."""
        times = [f.timestamp_ns for f in self._frames]
        if not times:
            return None
        return self._frames[max(0, bisect_right(times, timestamp_ns) - 1)]

    def _new_keyframes(self) -> None:
        """Tell the sinks about keyframes the background encoder finished since the last call."""
        for keyframe in self.embeddings.keyframes():
            if keyframe.frame.index in self._keyframes_seen:
                continue
            self._keyframes_seen.add(keyframe.frame.index)
            world_from_camera = self.world_from_camera_at(keyframe.frame.timestamp_ns)
            for sink in self.sinks:
                sink.on_keyframe(keyframe, world_from_camera)
        if len(self._keyframes_seen) > 64:
            cached = {k.frame.index for k in self.embeddings.keyframes()}
            self._keyframes_seen &= cached

    def _retry_pending(self, final: bool, now_ns: int | None = None) -> None:
        """Select the waiting triggers that now have a usable keyframe, oldest first; drop the expired ones."""
        limit_ns = int(self.options.max_keyframe_age_ms * _MS)
        while self._pending:
            trigger = self._pending[0]
            choice = self._choose_keyframe(trigger)
            expired = final or (now_ns is not None and now_ns - trigger.timestamp_ns > limit_ns)
            if isinstance(choice, KeyframeRefusal) and not expired:
                return
            self._pending.popleft()
            if isinstance(choice, KeyframeRefusal):
                drop = Drop(trigger.timestamp_ns, choice.kind.value, choice.reason, trigger.fixation)
                self._drop(drop)
            else:
                self._select(trigger, retry=True)

    def _on_pose(self, pose: HeadPose) -> None:
        self.stats.head_poses += 1
        if self._pose_times and pose.timestamp_ns <= self._pose_times[-1]:
            return
        self._pose_times.append(pose.timestamp_ns)
        self._poses.append(pose.world_from_head)
        self._track = None
        while self._pose_times and pose.timestamp_ns - self._pose_times[0] > self._history_ns:
            self._pose_times.popleft()
            self._poses.popleft()

    def _on_gaze(self, sample: GazeSample) -> None:
        self.stats.gaze_samples += 1
        track = self._pose_track()
        world_from_head = track.at(sample.timestamp_ns) if track is not None else None
        step = self._gaze.push(sample, world_from_head)
        for sink in self.sinks:
            sink.on_gaze(sample, step.filtered)
        for fixation in step.fixations:
            self._fixation_done(fixation)
        if step.trigger is not None:
            self._select(step.trigger)

    def _fixation_done(self, fixation: Fixation) -> None:
        self.stats.fixations += 1
        for sink in self.sinks:
            sink.on_fixation(fixation)

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

    def _pose_track(self) -> PoseTrack | None:
        if self._track is None and self._pose_times:
            # Each pose was checked once as a HeadPose and times ascend (_on_pose): no re-check per rebuild.
            self._track = PoseTrack.from_checked(self._pose_times, np.stack(list(self._poses)))
        return self._track

    def world_from_camera_at(self, timestamp_ns: int) -> Transform | None:
        """The camera's pose at ``timestamp_ns`` from the head poses so far (4x4 float64), or None."""
        track = self._pose_track()
        world_from_head = track.at(timestamp_ns) if track is not None else None
        return None if world_from_head is None else world_from_head @ self.head_from_camera

    def _choose_keyframe(self, trigger: Trigger) -> Keyframe | KeyframeRefusal:
        """Asynchronous mode: an encoded keyframe usable for ``trigger`` (by head motion), or why none is."""
        fixation = trigger.fixation
        view = GazeView(
            np.asarray(fixation.direction, dtype=np.float64),
            min(fixation.centre_ns, trigger.timestamp_ns),
            self.camera,
            self.head_from_camera,
        )
        return choose_keyframe(
            self.embeddings.keyframes(),
            trigger.timestamp_ns,
            fixation.start_ns,
            self._pose_track(),
            self.options.keyframe_policy,
            view,
        )

    def _keyframe(self, trigger: Trigger, retry: bool) -> Keyframe | None:
        """The keyframe for ``trigger``; None when it has none (yet: then it waits in ``_pending``)."""
        if self.embeddings.mode is EncodeMode.BACKGROUND:
            choice = self._choose_keyframe(trigger) if retry or not self._pending else None
            if isinstance(choice, Keyframe):
                return choice
            if choice is not None and self.embeddings.failed:  # no keyframe will come
                self._drop(Drop(trigger.timestamp_ns, choice.kind.value, choice.reason, trigger.fixation))
            else:
                self._pending.append(trigger)  # a later keyframe may do; oldest first
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
        if not retry:
            self.stats.triggers += 1
        opts = self.options
        fixation = trigger.fixation
        if self._last is not None and fixation.start_ns <= self._last.selection.fixation.end_ns:
            # A SELECT press during a fixation that dwell already selected confirms it: no second selection.
            self.stats.confirmations += 1
            log.info(
                "select at %.3f s confirms selection %d",
                trigger.timestamp_ns / 1e9,
                self._last.selection.selection_id,
            )
            return
        keyframe = self._keyframe(trigger, retry)  # None: dropped, or waiting for a keyframe
        if keyframe is None:
            return
        track = self._pose_track()
        world_from_camera = self.world_from_camera_at(keyframe.frame.timestamp_ns)
        if track is None or world_from_camera is None:
            self._drop(Drop(trigger.timestamp_ns, "no_head_pose", "no head pose at the keyframe's time", fixation))
            return
        samples = evenly_spaced(self._gaze.samples_for(fixation), opts.max_prompt_samples)
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
            self._drop(Drop(trigger.timestamp_ns, "prompt_miss", decision.reason, fixation))
            return
        self.stats.timings.append(decision.timing)
        selection = self._make_selection(
            trigger.timestamp_ns,
            fixation,
            keyframe.frame,
            decision.prompt,
            decision.prediction,
            decision.index,
            mask_choice=decision.reason.value,
            look_through=decision.look_through,
        )
        self._publish(_Latest(selection, keyframe.frame, world_from_camera, decision, keyframe.embedding))
        offset = selection_offset_rad(
            samples,
            selection.mask,
            keyframe.frame.depth_m,
            opts.fallback_depth_m,
            self.camera,
            world_from_camera,
            track,
            opts.recalibration,
        )
        if offset is not None:
            self._bias.observe(selection.selection_id, offset)

    def _make_selection(
        self,
        timestamp_ns: int,
        fixation: Fixation,
        frame: Frame,
        prompt: Prompt,
        prediction: MaskPrediction,
        index: int | None = None,
        selection_id: int | None = None,
        *,
        mask_choice: str = "sam",
        look_through: bool = False,
    ) -> Selection:
        chosen = prediction.best if index is None else index
        if selection_id is None:
            selection_id = self._next_id
            self._next_id += 1
        return Selection(
            selection_id=selection_id,
            timestamp_ns=timestamp_ns,
            keyframe_index=frame.index,
            keyframe_timestamp_ns=frame.timestamp_ns,
            fixation=fixation,
            mask=prediction.masks[chosen],
            score=float(prediction.scores[chosen]),
            mask_index=chosen,
            candidate_scores=tuple(float(s) for s in prediction.scores),
            prompt_points_xy=prompt.points_xy,
            prompt_labels=prompt.labels,
            gaze_xy=prompt.gaze_xy,
            depth_source=prompt.depth_source,
            point_world_m=prompt.point_world_m,
            mask_choice=mask_choice,
            look_through=look_through,
        )

    def _publish(self, latest: _Latest) -> None:
        self.stats.selections += 1
        self._last = latest
        selection, frame = latest.selection, latest.frame
        log.info(
            "selection %d on frame %d: %d px, score %.2f, gaze (%.0f, %.0f) via %s",
            selection.selection_id,
            frame.index,
            selection.area_px,
            selection.score,
            *selection.gaze_xy,
            selection.depth_source.value,
        )
        for sink in self.sinks:
            sink.on_selection(selection, frame, latest.world_from_camera)

    def _reject(self, timestamp_ns: int) -> None:
        """The user rejected the latest selection: its point becomes a negative prompt, and the next plausible
        candidate for the same gaze (if any) is offered as a new selection."""
        latest = self._last
        if latest is None:
            return
        selection = latest.selection
        self.stats.rejected += 1
        self._bias.forget(selection.selection_id)
        if selection.point_world_m is not None:
            self._negatives.append(np.asarray(selection.point_world_m))
        for sink in self.sinks:
            sink.on_reject(selection)
        self._last = None
        rejected = (*latest.rejected_masks, selection.mask)
        alternatives = self._selector.alternatives(
            latest.decision, latest.frame, latest.world_from_camera, latest.embedding, rejected
        )
        if not alternatives:
            return
        runner_up = alternatives[0]
        offered = self._make_selection(
            timestamp_ns,
            selection.fixation,
            latest.frame,
            runner_up.prompt,
            runner_up.prediction,
            runner_up.index,
            mask_choice="runner_up",
            look_through=runner_up.look_through,
        )
        self._publish(dataclasses.replace(latest, selection=offered, decision=runner_up, rejected_masks=rejected))

    def _step(self, larger: bool, timestamp_ns: int) -> None:
        """Step the latest selection to the next larger (or smaller) candidate mask, by area."""
        latest = self._last
        if latest is None:
            return
        selection, prediction = latest.selection, latest.decision.prediction
        areas = prediction.masks.reshape(len(prediction.masks), -1).sum(axis=1)
        order = list(np.argsort(areas, kind="stable"))
        position = order.index(selection.mask_index) + (1 if larger else -1)
        if not 0 <= position < len(order):
            return
        stepped = self._make_selection(
            timestamp_ns,
            selection.fixation,
            latest.frame,
            latest.decision.prompt,
            prediction,
            int(order[position]),
            selection.selection_id,
            mask_choice="step",
            look_through=selection.look_through,
        )
        self.stats.selections -= 1  # the same selection, changed
        self._publish(dataclasses.replace(latest, selection=stepped))


@dataclass(frozen=True)
class _Latest:
    """The latest selection with what REJECT, LARGER and SMALLER need to act on it."""

    selection: Selection
    frame: Frame
    world_from_camera: Transform
    decision: Decision
    embedding: ImageEmbedding
    rejected_masks: tuple[np.ndarray, ...] = ()
