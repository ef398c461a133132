"""The pipeline: sensor items in, selections out. Replay and live runs drive the same :class:`Pipeline`.

Per gaze sample: One Euro filter -> I-VT fixation detector -> dwell trigger (and SELECT events). Per trigger:
pick the keyframe (see below), make point prompts from the fixation's raw samples through that keyframe's
pose and depth (:mod:`xrseg.select.prompter`), decode, choose a mask with the keyframe's depth (and prompt again if
the gaze looked through a hole; :mod:`xrseg.select.maskchoice`), and hand a :class:`~xrseg.types.Selection` to the
sinks. REJECT, LARGER and SMALLER events act on the latest selection.

Keyframes. Deterministic mode (replay, the default): the keyframe for a trigger is the newest frame at or
before the trigger's time, encoded on demand and cached, so a replay gives the same selections on every
machine. Asynchronous mode (live, ``--realtime``): a background encoder takes the newest frame whenever it is
free (latest wins; superseded frames are counted as dropped), and a trigger uses the newest frame that already
has an embedding, so the gaze path never waits for the encoder. Either way the prompter projects every gaze
sample with the head pose at the sample's own time, so head motion since the keyframe is corrected for.

Sinks receive what happens (:class:`Sink`); they write files, publish over ZeroMQ, lift meshes or draw.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import queue
import threading
import time
from bisect import bisect_right
from collections import Counter, OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from xrseg.errors import InputError
from xrseg.geometry import PoseTrack
from xrseg.sam.records import ImageEmbedding, MaskPrediction
from xrseg.select.filters import OneEuroFilter
from xrseg.select.fixations import IVTDetector
from xrseg.select.maskchoice import ChoiceOptions, ChoiceReason, MaskChoice, choose_mask, look_through_point
from xrseg.select.prompter import Prompt, Prompter, PromptMiss, evenly_spaced
from xrseg.select.triggers import DwellTrigger, EventTrigger, GazeHistory, Trigger
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


class Encoder(Protocol):
    """Anything that turns an HxWx3 uint8 RGB image into an embedding: the local engine or a remote one."""

    def encode(self, image: np.ndarray) -> ImageEmbedding: ...


class Decoder(Protocol):
    def decode(
        self,
        embedding: ImageEmbedding | None = None,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = True,
    ) -> MaskPrediction: ...


@dataclass(frozen=True)
class PipelineOptions:
    """Tunable behaviour. Times in milliseconds, angles in degrees, distances in metres."""

    dwell_ms: float = 500.0
    """A fixation this long selects what it looks at (0 disables dwell; then only SELECT events select)."""
    select_on_events: bool = True
    """SELECT events (button, pinch) select the current fixation."""
    velocity_threshold_deg_s: float = 50.0
    """I-VT threshold on the filtered gaze. Tobii's 30 deg/s assumes its own noise reduction; on the bundled
    scenes (0.5 deg RMS precision at 120 Hz) 50 deg/s on 1 Hz-filtered gaze finds 31 of 33 scripted fixations
    against 25 at 30 deg/s."""
    min_fixation_ms: float = 100.0
    filter_min_cutoff_hz: float = 1.0
    filter_beta: float = 0.0
    """One Euro speed coefficient for the gaze that feeds the detector. 0 (a plain 1 Hz low-pass) because
    tracker noise itself looks like speed: any beta > 0 let noise through and split fixations."""
    max_prompt_samples: int = 12
    """At most this many of a fixation's samples (evenly spaced) are projected to make its prompt."""
    max_points: int = 5
    fallback_depth_m: float = 1.0
    multimask: bool = True
    depth_mask_choice: bool = True
    """Choose among the candidate masks with the keyframe's depth and correct look-throughs
    (:mod:`xrseg.select.maskchoice`); False keeps SAM's own ambiguity rule."""
    choice: ChoiceOptions = field(default_factory=ChoiceOptions)
    realtime: bool = False
    """Encode keyframes asynchronously (latest wins) instead of on demand."""
    max_keyframe_age_ms: float = 1000.0
    """A keyframe older than this at trigger time is not used (the selection is dropped with a reason)."""
    history_s: float = 5.0

    def __post_init__(self) -> None:
        if self.dwell_ms < 0 or self.max_keyframe_age_ms <= 0 or self.history_s <= 0:
            raise InputError("dwell_ms must be >= 0 and max_keyframe_age_ms, history_s > 0")


@dataclass(frozen=True)
class Drop:
    """A trigger that produced no selection, and why (``kind`` is a short machine-readable key)."""

    timestamp_ns: int
    kind: str
    reason: str
    fixation: Fixation | None = None


@dataclass(frozen=True)
class Timing:
    """Milliseconds spent on one selection: prompt making, decoding (twice after a look-through), choosing
    the mask, and encoding when it was on demand."""

    prompt_ms: float
    decode_ms: float
    encode_ms: float
    choose_ms: float = 0.0

    @property
    def gaze_to_mask_ms(self) -> float:
        """From the trigger to the mask, not counting an on-demand encode (live keyframes are encoded ahead)."""
        return self.prompt_ms + self.decode_ms + self.choose_ms


class Sink:
    """Receives what the pipeline does. Override what you need; every method defaults to doing nothing."""

    def on_frame(self, frame: Frame, world_from_camera: Transform | None) -> None:
        """Every frame, as it arrives, with the camera pose at its time when the head pose is known."""

    def on_gaze(self, sample: GazeSample, filtered: GazeSample) -> None:
        """Every gaze sample, raw and One-Euro filtered."""

    def on_fixation(self, fixation: Fixation) -> None:
        """Every completed fixation."""

    def on_selection(self, selection: Selection, keyframe: Frame, world_from_camera: Transform) -> None:
        """A new or changed selection on ``keyframe`` (taken at ``world_from_camera``)."""

    def on_reject(self, selection: Selection) -> None:
        """The user rejected ``selection``."""

    def on_drop(self, drop: Drop) -> None:
        """A trigger that gave no selection."""

    def close(self) -> None:
        """The stream ended."""


@dataclass
class PipelineStats:
    frames: int = 0
    gaze_samples: int = 0
    head_poses: int = 0
    events: int = 0
    fixations: int = 0
    triggers: int = 0
    selections: int = 0
    rejected: int = 0
    encodes: int = 0
    frames_dropped_by_encoder: int = 0
    drops: Counter[str] = field(default_factory=Counter)
    timings: list[Timing] = field(default_factory=list)
    encode_ms: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class _Keyframe:
    frame: Frame
    embedding: ImageEmbedding
    encode_ms: float


class AsyncEncoder:
    """Encodes the newest submitted frame on a background thread; a newer submission replaces a waiting one.

    The mailbox holds one frame, so the queue can never grow: a frame replaced before the thread took it is
    counted in :attr:`dropped`. :meth:`latest_at` returns the newest encoded keyframe at or before a time.
    """

    def __init__(self, encoder: Encoder, keep: int = 4) -> None:
        self._encoder = encoder
        self._mailbox: queue.Queue[Frame | None] = queue.Queue(maxsize=1)
        self._done: deque[_Keyframe] = deque(maxlen=keep)
        self._lock = threading.Lock()
        self.dropped = 0
        self.encoded = 0
        self.encode_ms: list[float] = []
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="xrseg-encoder", daemon=True)
        self._thread.start()

    def submit(self, frame: Frame) -> None:
        if self._error is not None:
            raise self._error
        try:
            self._mailbox.get_nowait()
            self.dropped += 1
        except queue.Empty:
            pass
        self._mailbox.put_nowait(frame)

    def _run(self) -> None:
        while True:
            frame = self._mailbox.get()
            if frame is None:
                return
            started = time.perf_counter()
            try:
                embedding = self._encoder.encode(frame.rgb)
            except BaseException as err:  # surfaced to the pipeline thread on its next submit
                self._error = err
                return
            elapsed = (time.perf_counter() - started) * 1000.0
            with self._lock:
                self._done.append(_Keyframe(frame, embedding, 0.0))
                self.encoded += 1
                self.encode_ms.append(elapsed)

    def latest_at(self, timestamp_ns: int) -> _Keyframe | None:
        with self._lock:
            candidates = [k for k in self._done if k.frame.timestamp_ns <= timestamp_ns]
        return max(candidates, key=lambda k: k.frame.timestamp_ns) if candidates else None

    def close(self) -> None:
        with contextlib.suppress(queue.Empty):
            self._mailbox.get_nowait()
        self._mailbox.put(None)
        self._thread.join(timeout=30)


def _moved_prompt(prompt: Prompt, point_xy: tuple[float, float]) -> Prompt:
    """``prompt`` with its positives replaced by the single (x, y) pixel ``point_xy``; negatives kept."""
    negatives = prompt.points_xy[prompt.labels == 0]
    return dataclasses.replace(
        prompt,
        points_xy=np.vstack([np.asarray([point_xy], np.float32), negatives]).astype(np.float32),
        labels=np.concatenate([np.ones(1, np.int32), np.zeros(len(negatives), np.int32)]),
    )


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
    ) -> None:
        self.camera = camera
        self.head_from_camera = as_transform(head_from_camera, "head_from_camera")
        self.options = options or PipelineOptions()
        self.decoder = decoder
        self.encoder: Encoder = encoder if encoder is not None else decoder  # type: ignore[assignment]
        self.sinks = list(sinks)
        self.stats = PipelineStats()
        opts = self.options
        history_ns = int(opts.history_s * 1e9)
        self._filter = OneEuroFilter(min_cutoff_hz=opts.filter_min_cutoff_hz, beta=opts.filter_beta)
        self._detector = IVTDetector(
            velocity_threshold_deg_s=opts.velocity_threshold_deg_s, min_fixation_ns=int(opts.min_fixation_ms * _MS)
        )
        self._dwell = DwellTrigger(int(opts.dwell_ms * _MS)) if opts.dwell_ms > 0 else None
        self._events = EventTrigger()
        self._raw = GazeHistory(history_ns)
        self._prompter = Prompter(max_points=opts.max_points, fallback_depth_m=opts.fallback_depth_m)
        self._frames: deque[Frame] = deque()
        self._history_ns = history_ns
        self._pose_times: deque[int] = deque()
        self._poses: deque[np.ndarray] = deque()
        self._track: PoseTrack | None = None
        self._embeddings: OrderedDict[int, _Keyframe] = OrderedDict()
        self._async = AsyncEncoder(self.encoder) if opts.realtime else None
        self._negatives: list[np.ndarray] = []
        self._last: tuple[Selection, Frame, Transform, MaskPrediction] | None = None
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
        for fixation in self._detector.flush():
            self._fixation_done(fixation)

    def close(self) -> None:
        if self._async is not None:
            self._async.close()
            self.stats.frames_dropped_by_encoder = self._async.dropped
            self.stats.encodes += self._async.encoded
            self.stats.encode_ms.extend(self._async.encode_ms)
            self._async = None
        for sink in self.sinks:
            sink.close()

    def _on_frame(self, frame: Frame) -> None:
        self.stats.frames += 1
        self._frames.append(frame)
        while self._frames and frame.timestamp_ns - self._frames[0].timestamp_ns > self._history_ns:
            self._frames.popleft()
        if self._async is not None:
            self._async.submit(frame)
            self.stats.frames_dropped_by_encoder = self._async.dropped  # live, for heads-up displays
        world_from_camera = self.world_from_camera_at(frame.timestamp_ns)
        for sink in self.sinks:
            sink.on_frame(frame, world_from_camera)

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
        self._raw.push(sample)
        filtered = self._filter.filter_sample(sample) if sample.usable else sample
        for sink in self.sinks:
            sink.on_gaze(sample, filtered)
        for fixation in self._detector.push(filtered):
            self._fixation_done(fixation)
        if self._dwell is not None:
            trigger = self._dwell.update(self._detector.current())
            if trigger is not None:
                self._select(trigger)

    def _fixation_done(self, fixation: Fixation) -> None:
        self.stats.fixations += 1
        for sink in self.sinks:
            sink.on_fixation(fixation)

    def _on_event(self, event: InputEvent) -> None:
        self.stats.events += 1
        if event.kind is EventKind.SELECT:
            if self.options.select_on_events:
                trigger = self._events.on_event(event, self._detector.current(), self._detector.last_ended())
                if trigger is None:
                    self._drop(Drop(event.timestamp_ns, "no_fixation", "select event with no fixation to select"))
                else:
                    self._select(trigger)
        elif event.kind is EventKind.REJECT:
            self._reject()
        elif event.kind in (EventKind.LARGER, EventKind.SMALLER):
            self._step(event.kind is EventKind.LARGER, event.timestamp_ns)

    # ------------------------------------------------------------------ selection

    def _pose_track(self) -> PoseTrack | None:
        if self._track is None and self._pose_times:
            self._track = PoseTrack(np.fromiter(self._pose_times, np.int64), np.stack(list(self._poses)))
        return self._track

    def world_from_camera_at(self, timestamp_ns: int) -> Transform | None:
        """The camera's pose at ``timestamp_ns`` from the head poses so far (4x4 float64), or None."""
        track = self._pose_track()
        world_from_head = track.at(timestamp_ns) if track is not None else None
        return None if world_from_head is None else world_from_head @ self.head_from_camera

    def _keyframe(self, timestamp_ns: int) -> _Keyframe | None:
        if self._async is not None:
            return self._async.latest_at(timestamp_ns)
        times = [f.timestamp_ns for f in self._frames]
        index = bisect_right(times, timestamp_ns) - 1
        if index < 0:
            return None
        frame = self._frames[index]
        cached = self._embeddings.get(frame.index)
        if cached is not None:
            return _Keyframe(cached.frame, cached.embedding, 0.0)
        started = time.perf_counter()
        embedding = self.encoder.encode(frame.rgb)
        elapsed = (time.perf_counter() - started) * 1000.0
        self.stats.encodes += 1
        self.stats.encode_ms.append(elapsed)
        keyframe = _Keyframe(frame, embedding, elapsed)
        self._embeddings[frame.index] = keyframe
        while len(self._embeddings) > 4:
            self._embeddings.popitem(last=False)
        return keyframe

    def _drop(self, drop: Drop) -> None:
        self.stats.drops[drop.kind] += 1
        log.info("no selection at %.3f s: %s", drop.timestamp_ns / 1e9, drop.reason)
        for sink in self.sinks:
            sink.on_drop(drop)

    def _select(self, trigger: Trigger) -> None:
        self.stats.triggers += 1
        opts = self.options
        fixation = trigger.fixation
        if self._last is not None and fixation.start_ns <= self._last[0].fixation.end_ns:
            # A SELECT press during a fixation that dwell already selected confirms it: no second selection.
            self._drop(
                Drop(trigger.timestamp_ns, "already_selected", "this fixation is already selected", fixation)
            )
            return
        keyframe = self._keyframe(trigger.timestamp_ns)
        if keyframe is None:
            self._drop(Drop(trigger.timestamp_ns, "no_keyframe", "no encoded camera frame yet", fixation))
            return
        age_ms = (trigger.timestamp_ns - keyframe.frame.timestamp_ns) / _MS
        if age_ms > self.options.max_keyframe_age_ms:
            reason = f"newest keyframe is {age_ms:.0f} ms old (limit {self.options.max_keyframe_age_ms:.0f} ms)"
            self._drop(Drop(trigger.timestamp_ns, "stale_keyframe", reason, fixation))
            return
        track = self._pose_track()
        world_from_camera = self.world_from_camera_at(keyframe.frame.timestamp_ns)
        if track is None or world_from_camera is None:
            self._drop(Drop(trigger.timestamp_ns, "no_head_pose", "no head pose at the keyframe's time", fixation))
            return
        started = time.perf_counter()
        samples = evenly_spaced(self._raw.samples_for(fixation), opts.max_prompt_samples)
        prompt = self._prompter.make_prompt(
            samples,
            track,
            world_from_camera,
            self.camera,
            keyframe.frame.depth_m,
            self._negatives,
        )
        prompt_ms = (time.perf_counter() - started) * 1000.0
        if isinstance(prompt, PromptMiss):
            self._drop(Drop(trigger.timestamp_ns, "prompt_miss", prompt.reason, fixation))
            return
        started = time.perf_counter()
        prediction = self._decode(keyframe.embedding, prompt)
        decode_ms = (time.perf_counter() - started) * 1000.0
        started = time.perf_counter()
        depth_m = keyframe.frame.depth_m
        choice = self._choose(prediction, depth_m, prompt)
        point = None
        if opts.depth_mask_choice:
            point = look_through_point(prediction.masks[choice.index], depth_m, prompt.gaze_xy, opts.choice)
        choose_ms = (time.perf_counter() - started) * 1000.0
        if point is not None:
            log.info(
                "gaze at (%.0f, %.0f) looks through a hole: prompting at (%.0f, %.0f)", *prompt.gaze_xy, *point
            )
            prompt = _moved_prompt(prompt, point)
            started = time.perf_counter()
            prediction = self._decode(keyframe.embedding, prompt)
            decode_ms += (time.perf_counter() - started) * 1000.0
            started = time.perf_counter()
            choice = self._choose(prediction, depth_m, prompt)
            choose_ms += (time.perf_counter() - started) * 1000.0
        self.stats.timings.append(Timing(prompt_ms, decode_ms, keyframe.encode_ms, choose_ms))
        selection = self._make_selection(
            trigger.timestamp_ns,
            fixation,
            keyframe.frame,
            prompt,
            prediction,
            choice.index,
            mask_choice=choice.reason.value,
            look_through=point is not None,
        )
        self._publish(selection, keyframe.frame, world_from_camera, prediction)

    def _decode(self, embedding: ImageEmbedding, prompt: Prompt) -> MaskPrediction:
        return self.decoder.decode(
            embedding, points=prompt.points_xy, labels=prompt.labels, multimask=self.options.multimask
        )

    def _choose(self, prediction: MaskPrediction, depth_m: np.ndarray | None, prompt: Prompt) -> MaskChoice:
        if not self.options.depth_mask_choice:
            return MaskChoice(prediction.best, ChoiceReason.SAM)
        return choose_mask(prediction, depth_m, prompt.points_xy, prompt.labels, self.options.choice)

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

    def _publish(
        self, selection: Selection, frame: Frame, world_from_camera: Transform, pred: MaskPrediction
    ) -> None:
        self.stats.selections += 1
        self._last = (selection, frame, world_from_camera, pred)
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
            sink.on_selection(selection, frame, world_from_camera)

    def _reject(self) -> None:
        if self._last is None:
            return
        selection = self._last[0]
        self.stats.rejected += 1
        if selection.point_world_m is not None:
            self._negatives.append(np.asarray(selection.point_world_m))
        for sink in self.sinks:
            sink.on_reject(selection)
        self._last = None

    def _step(self, larger: bool, timestamp_ns: int) -> None:
        """Step the latest selection to the next larger (or smaller) candidate mask, by area."""
        if self._last is None:
            return
        selection, frame, world_from_camera, prediction = self._last
        areas = prediction.masks.reshape(len(prediction.masks), -1).sum(axis=1)
        order = list(np.argsort(areas, kind="stable"))
        position = order.index(selection.mask_index) + (1 if larger else -1)
        if not 0 <= position < len(order):
            return
        prompt = Prompt(
            points_xy=selection.prompt_points_xy,
            labels=selection.prompt_labels,
            gaze_xy=selection.gaze_xy,
            depth_source=selection.depth_source,
            point_world_m=selection.point_world_m,
            samples_used=0,
            samples_missed=0,
        )
        stepped = self._make_selection(
            timestamp_ns,
            selection.fixation,
            frame,
            prompt,
            prediction,
            int(order[position]),
            selection.selection_id,
            mask_choice="step",
            look_through=selection.look_through,
        )
        self.stats.selections -= 1  # the same selection, changed
        self._publish(stepped, frame, world_from_camera, prediction)
