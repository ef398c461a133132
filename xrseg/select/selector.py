"""From a triggered fixation on an encoded keyframe to the chosen mask: prompt, decode, choose, search the cone.

1. The fixation's samples become a point prompt on the keyframe (:mod:`xrseg.select.prompter`).
2. The decoder answers with candidate masks; the keyframe's depth chooses among them and corrects
   look-throughs (:mod:`xrseg.select.maskchoice`).
3. If the chosen mask is not a plausible target under the gaze (it lies on a support plane, covers most of the
   image, or the gaze is not on it), the other candidates and the objects standing out in depth within the
   tracker's error cone are prompted and scored (:mod:`xrseg.select.candidates`); the best plausible one wins.

Every step is timed (:class:`Timing`). Nothing here holds state across selections except a small per-keyframe
cache of the depth analysis.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from xrseg.geometry import PoseTrack
from xrseg.masks import mask_iou
from xrseg.sam.records import Decoder, ImageEmbedding, MaskPrediction
from xrseg.select.candidates import CandidateOptions, KeyframeScene, analyse_keyframe, proposal_points, score_mask
from xrseg.select.maskchoice import ChoiceOptions, ChoiceReason, MaskChoice, choose_mask, look_through_point
from xrseg.select.prompter import Prompt, Prompter, PromptMiss
from xrseg.sinks.base import Timing
from xrseg.types import CameraModel, Fixation, Frame, GazeSample, Selection, Transform, Vec3

log = logging.getLogger(__name__)

WORLD_UP = np.array([0.0, 1.0, 0.0])
"""The world's up: OpenXR's LOCAL and STAGE spaces (and the session format) are gravity-aligned, +y up."""

__all__ = ["Decision", "Selector"]


@dataclass(frozen=True)
class Decision:
    """The chosen mask ``prediction.masks[index]`` for ``prompt`` (the prompt that made ``prediction``), why
    it was chosen, whether the gaze looked through a hole, and the time it took."""

    prompt: Prompt
    prediction: MaskPrediction
    index: int
    reason: ChoiceReason
    look_through: bool
    timing: Timing

    def to_selection(
        self,
        selection_id: int,
        timestamp_ns: int,
        fixation: Fixation,
        frame: Frame,
        mask_choice: str | None = None,
    ) -> Selection:
        """The :class:`~xrseg.types.Selection` record of this decision on keyframe ``frame``;
        ``mask_choice`` overrides the recorded reason (``runner_up``, ``step``)."""
        prompt, prediction, index = self.prompt, self.prediction, self.index
        return Selection(
            selection_id=selection_id,
            timestamp_ns=timestamp_ns,
            keyframe_index=frame.index,
            keyframe_timestamp_ns=frame.timestamp_ns,
            fixation=fixation,
            mask=prediction.masks[index],
            score=float(prediction.scores[index]),
            mask_index=index,
            candidate_scores=tuple(float(s) for s in prediction.scores),
            prompt_points_xy=prompt.points_xy,
            prompt_labels=prompt.labels,
            gaze_xy=prompt.gaze_xy,
            depth_source=prompt.depth_source,
            point_world_m=prompt.point_world_m,
            mask_choice=self.reason.value if mask_choice is None else mask_choice,
            look_through=self.look_through,
        )


def moved_prompt(prompt: Prompt, point_xy: tuple[float, float]) -> Prompt:
    """``prompt`` with its positives replaced by the single (x, y) pixel ``point_xy``; negatives kept."""
    negatives = prompt.points_xy[prompt.labels == 0]
    return dataclasses.replace(
        prompt,
        points_xy=np.vstack([np.asarray([point_xy], np.float32), negatives]).astype(np.float32),
        labels=np.concatenate([np.ones(1, np.int32), np.zeros(len(negatives), np.int32)]),
    )


@dataclass
class _Clock:
    decode_ms: float = 0.0
    choose_ms: float = 0.0


class Selector:
    """Makes one :class:`Decision` per trigger (module docstring). ``depth_choice`` False keeps SAM's own rule
    and skips the cone search (the ``--sam-choice`` comparison); ``cone_search`` False skips step 3 only."""

    def __init__(
        self,
        camera: CameraModel,
        decoder: Decoder,
        prompter: Prompter,
        choice: ChoiceOptions,
        candidates: CandidateOptions,
        *,
        depth_choice: bool = True,
        cone_search: bool = True,
        multimask: bool = True,
    ) -> None:
        self.camera = camera
        self.decoder = decoder
        self.prompter = prompter
        self.choice = choice
        self.candidates = candidates
        self.depth_choice = depth_choice
        self.cone_search = cone_search and depth_choice
        self.multimask = multimask
        self._scenes: OrderedDict[int, KeyframeScene] = OrderedDict()

    def decide(
        self,
        frame: Frame,
        embedding: ImageEmbedding,
        encode_ms: float,
        samples: Sequence[GazeSample],
        track: PoseTrack,
        world_from_camera: Transform,
        negatives_world_m: Sequence[Vec3],
    ) -> Decision | PromptMiss:
        """Choose the mask for ``samples`` (a fixation's gaze) on ``frame`` encoded as ``embedding``."""
        started = time.perf_counter()
        prompt = self.prompter.make_prompt(
            samples, track, world_from_camera, self.camera, frame.depth_m, negatives_world_m
        )
        prompt_ms = (time.perf_counter() - started) * 1000.0
        if isinstance(prompt, PromptMiss):
            return prompt
        clock = _Clock()
        prediction = self._decode(embedding, prompt, clock)
        choice = self._choose(prediction, frame.depth_m, prompt, clock)
        look_through = False
        if self.depth_choice:
            started = time.perf_counter()
            point = look_through_point(prediction.masks[choice.index], frame.depth_m, prompt.gaze_xy, self.choice)
            clock.choose_ms += (time.perf_counter() - started) * 1000.0
            if point is not None:
                log.info(
                    "gaze at (%.0f, %.0f) looks through a hole: prompting at (%.0f, %.0f)", *prompt.gaze_xy, *point
                )
                prompt, look_through = moved_prompt(prompt, point), True
                prediction = self._decode(embedding, prompt, clock)
                choice = self._choose(prediction, frame.depth_m, prompt, clock)
        decision = Decision(prompt, prediction, choice.index, choice.reason, look_through, Timing(0, 0, 0))
        if self.cone_search:
            decision = self._search_cone(decision, frame, world_from_camera, embedding, clock)
        timing = Timing(prompt_ms, clock.decode_ms, encode_ms, clock.choose_ms)
        return dataclasses.replace(decision, timing=timing)

    # -- steps

    def _decode(self, embedding: ImageEmbedding, prompt: Prompt, clock: _Clock) -> MaskPrediction:
        started = time.perf_counter()
        prediction = self.decoder.decode(
            embedding, points=prompt.points_xy, labels=prompt.labels, multimask=self.multimask
        )
        clock.decode_ms += (time.perf_counter() - started) * 1000.0
        return prediction

    def _choose(
        self, prediction: MaskPrediction, depth_m: np.ndarray | None, prompt: Prompt, clock: _Clock
    ) -> MaskChoice:
        if not self.depth_choice:
            return MaskChoice(prediction.best, ChoiceReason.SAM)
        started = time.perf_counter()
        choice = choose_mask(prediction, depth_m, prompt.points_xy, prompt.labels, self.choice)
        clock.choose_ms += (time.perf_counter() - started) * 1000.0
        return choice

    def prepare(self, frame: Frame, world_from_camera: Transform | None) -> None:
        """Analyse a new keyframe for the cone search ahead of the decisions that will use it (no-op without
        the cone search or the camera pose)."""
        if self.cone_search and world_from_camera is not None:
            self._scene(frame, world_from_camera)

    def _scene(self, frame: Frame, world_from_camera: Transform) -> KeyframeScene:
        scene = self._scenes.get(frame.index)
        if scene is None:
            up_camera = np.asarray(world_from_camera)[:3, :3].T @ WORLD_UP
            scene = analyse_keyframe(frame.depth_m, self.camera, self.choice.edge_jump, self.candidates, up_camera)
            self._scenes[frame.index] = scene
            while len(self._scenes) > 4:
                self._scenes.popitem(last=False)
        return scene

    def _search_cone(
        self,
        decision: Decision,
        frame: Frame,
        world_from_camera: Transform,
        embedding: ImageEmbedding,
        clock: _Clock,
    ) -> Decision:
        """Step 3 of the module docstring: keep ``decision`` when its mask is a plausible target under the
        gaze, else the best plausible candidate of the gaze prompt or of the proposals in the cone."""
        started = time.perf_counter()
        scene = self._scene(frame, world_from_camera)
        mask, score = decision.prediction.masks[decision.index], float(decision.prediction.scores[decision.index])
        chosen = score_mask(mask, score, decision.prompt.gaze_xy, scene, self.camera, self.candidates)
        clock.choose_ms += (time.perf_counter() - started) * 1000.0
        if chosen.plausible and chosen.distance_deg == 0.0:
            return decision
        ranked = self._ranked(decision, frame, world_from_camera, embedding, clock)
        if not ranked:
            return decision
        if ranked[0].reason is ChoiceReason.GAZE_CONE:
            log.info("gaze cone: a candidate near the gaze replaces a %s mask", decision.reason.value)
        return ranked[0]

    def alternatives(
        self,
        decision: Decision,
        frame: Frame,
        world_from_camera: Transform,
        embedding: ImageEmbedding,
        exclude: Sequence[np.ndarray] = (),
    ) -> list[Decision]:
        """The plausible candidates for ``decision``'s gaze, best first, without those overlapping any of the
        HxW bool masks in ``exclude`` (IoU over 0.5): what REJECT steps through."""
        ranked = self._ranked(decision, frame, world_from_camera, embedding, _Clock())
        return [d for d in ranked if all(mask_iou(d.prediction.masks[d.index], m) <= 0.5 for m in exclude)]

    def _ranked(
        self,
        decision: Decision,
        frame: Frame,
        world_from_camera: Transform,
        embedding: ImageEmbedding,
        clock: _Clock,
    ) -> list[Decision]:
        """Every plausible mask of the gaze prompt and of the prompts at the proposals in the cone, best first."""
        started = time.perf_counter()
        scene = self._scene(frame, world_from_camera)
        gaze = decision.prompt.gaze_xy
        points = proposal_points(scene, gaze, self.camera, self.candidates)
        clock.choose_ms += (time.perf_counter() - started) * 1000.0
        pools = [decision]
        for point in points:  # every mask of a proposal is scored below: no choice among them needed here
            prompt = moved_prompt(decision.prompt, point)
            prediction = self._decode(embedding, prompt, clock)
            pools.append(
                Decision(prompt, prediction, prediction.best, ChoiceReason.GAZE_CONE, False, decision.timing)
            )
        started = time.perf_counter()
        scored: list[tuple[float, int, Decision]] = []
        for pool in pools:
            masks, scores = pool.prediction.masks, pool.prediction.scores
            for index in range(len(masks)):
                score = score_mask(masks[index], float(scores[index]), gaze, scene, self.camera, self.candidates)
                if score.plausible:
                    reason = pool.reason if index == pool.index else ChoiceReason.GAZE_CONE
                    scored.append(
                        (score.score, len(scored), dataclasses.replace(pool, index=index, reason=reason))
                    )
        scored.sort(key=lambda item: (-item[0], item[1]))
        unique: list[Decision] = []
        for _, _, candidate in scored:
            mask = candidate.prediction.masks[candidate.index]
            if all(mask_iou(mask, d.prediction.masks[d.index]) <= 0.9 for d in unique):
                unique.append(candidate)
        clock.choose_ms += (time.perf_counter() - started) * 1000.0
        return unique
