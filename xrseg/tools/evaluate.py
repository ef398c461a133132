"""``xrseg eval``: how well the pipeline selects on a session with ground truth.

The session is replayed through the same pipeline as ``xrseg replay`` (selections, following, fusion, mesh
export), then each selection is scored against the session's ground truth:

- *target*: the scripted fixation (``FixationTarget``) that overlaps the selection's fixation the most;
- *picked object*: the ground-truth id holding most of the selected mask's pixels, background (0) included
  (:mod:`xrseg.tools.scoring`);
- *clicks*: the scripted fixations with a SELECT event inside; *selection accuracy*: the share of all clicks
  whose first selection picked the target object (a click that selected nothing is a miss); *coverage*: the
  share of clicks that got a selection at all;
- *mask IoU*: of each right first pick against the target object's ground-truth mask on that keyframe
  (``mean_mask_iou_all_picks``: over every first pick);
- *fixation recall* and *detection lag*: detected fixations against the scripted ones;
- *gaze-to-pixel angular error*: the angle, seen from the keyframe camera, between the prompt's gaze pixel and
  the projection of the target's true 3D point; also computed with the depth image ignored and a fixed 1 m
  gaze distance, to show what depth-aware reprojection buys (split by target distance below/above 1 m);
- *latency*: from trigger to mask (prompt + decode; keyframes are encoded ahead on a live run);
- *meshes*, per exported mesh against the ground-truth mesh of the object it depicts (the selected object;
  meshes of background picks are not scored): ``chamfer_m``, the Chamfer distance
  from the exported mesh to the ground-truth mesh (mean distance of its surface to the true surface, exact to
  the triangles: how far it strays); ``completeness_1cm``, the share of the ground-truth surface within 1 cm
  of it (how much it covers); ``chamfer_symmetric_m``, the mean of both directions. The same symmetric
  distance and completeness against only the part of the object the fused frames saw (from the ground-truth
  depth and instance images): ``chamfer_seen_m``, ``completeness_seen_1cm``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xrseg.app import RunResult, run_pipeline
from xrseg.config import RunOptions
from xrseg.errors import SessionError
from xrseg.geometry import PoseTrack, angle_between_deg, invert_transform, project_points, transform_points
from xrseg.masks import mask_iou
from xrseg.scratch import scratch_dir
from xrseg.select.prompter import Prompt, Prompter, evenly_spaced
from xrseg.session.format import FixationTarget
from xrseg.session.reader import Session
from xrseg.sinks.base import FixationEvent, SelectionEvent, Sink
from xrseg.sinks.runstate import RunSummary, open_run
from xrseg.sources.replay import ReplaySource
from xrseg.tools.scoring import best_target, clicked_targets, fixation_recall, picked_object
from xrseg.types import CameraModel, Fixation, InputEvent, Selection, Transform

log = logging.getLogger(__name__)

NEAR_M = 1.0
"""Targets nearer than this are reported separately for the depth-vs-fixed-distance comparison."""
GOAL_SIZE_M = (0.10, 0.40)
GOAL_DISTANCE_M = (0.5, 2.0)
"""The mesh accuracy goal (Chamfer <= 1 cm) is set for objects of this size seen from this distance."""


class _Collector(Sink):
    """Keeps every selection's latest version, its keyframe pose and whether it was rejected."""

    def __init__(self) -> None:
        self.selections: dict[int, tuple[Selection, Transform]] = {}
        self.rejected: set[int] = set()
        self.fixations: list[Fixation] = []

    def on_fixation(self, event: FixationEvent) -> None:
        self.fixations.append(event.fixation)

    def on_selection(self, event: SelectionEvent) -> None:
        self.selections[event.selection.selection_id] = (event.selection, event.world_from_camera)

    def on_reject(self, selection: Selection) -> None:
        self.rejected.add(selection.selection_id)


@dataclass(frozen=True)
class SelectionScore:
    selection_id: int
    timestamp_ns: int
    target_index: int | None
    """Index of the matched scripted fixation in the session's fixation targets."""
    target_object_id: int | None
    selected_object_id: int
    correct: bool
    mask_iou: float
    target_distance_m: float | None
    angular_error_deg: float | None
    angular_error_fixed_1m_deg: float | None


def _pixel_angle_deg(camera: CameraModel, a_xy: tuple[float, float], b_xy: np.ndarray) -> float:
    from xrseg.geometry import unproject_pixels

    rays = unproject_pixels(camera, np.array([a_xy, b_xy], dtype=np.float64), np.ones(2))
    return float(angle_between_deg(rays[0], rays[1]))


class _Scorer:
    def __init__(self, session: Session, fallback_depth_m: float, max_prompt_samples: int) -> None:
        self.session = session
        self.camera = session.header.camera
        self.head_from_camera = session.header.head_from_camera
        self.targets = session.fixation_targets()
        self.track = PoseTrack.from_head_poses(session.head_poses())
        self.gaze = {g.timestamp_ns: g for g in session.gaze_samples()}
        self.fixed = Prompter(fallback_depth_m=fallback_depth_m)
        self.max_prompt_samples = max_prompt_samples

    def world_from_camera(self, frame_index: int) -> Transform | None:
        pose = self.track.at(int(self.session.frame_timestamps_ns[frame_index]))
        return None if pose is None else pose @ self.head_from_camera

    def score(self, selection: Selection, world_from_camera: Transform) -> SelectionScore:
        ids = self.session.instance_ids(selection.keyframe_index)
        if ids is None:
            raise SessionError(f"frame {selection.keyframe_index} has no ground-truth instance ids")
        fixation = selection.fixation
        target_index = best_target(self.targets, fixation.start_ns, fixation.end_ns)
        target = None if target_index is None else self.targets[target_index]
        selected = picked_object(selection.mask, ids)
        target_id = None if target is None else target.object_id
        iou = 0.0 if target is None else mask_iou(selection.mask, ids == target.object_id)
        distance = error = error_fixed = None
        if target is not None and target.target_world_m is not None:
            point_camera = transform_points(invert_transform(world_from_camera), np.array([target.target_world_m]))
            distance = float(np.linalg.norm(point_camera[0]))
            true_xy, in_front = project_points(self.camera, point_camera)
            if in_front[0] and np.all(np.isfinite(true_xy[0])):
                error = _pixel_angle_deg(self.camera, selection.gaze_xy, true_xy[0])
                # The same samples without vergence, so the prompter really falls back to the fixed distance.
                samples = [
                    dataclasses.replace(self.gaze[t], vergence_depth_m=None)
                    for t in selection.fixation.sample_timestamps_ns
                    if t in self.gaze
                ]
                samples = evenly_spaced(samples, self.max_prompt_samples)
                fixed = self.fixed.make_prompt(samples, self.track, world_from_camera, self.camera, None)
                if isinstance(fixed, Prompt):
                    error_fixed = _pixel_angle_deg(self.camera, fixed.gaze_xy, true_xy[0])
        return SelectionScore(
            selection_id=selection.selection_id,
            timestamp_ns=selection.timestamp_ns,
            target_index=target_index,
            target_object_id=target_id,
            selected_object_id=selected,
            correct=target_id is not None and selected == target_id,
            mask_iou=iou,
            target_distance_m=distance,
            angular_error_deg=error,
            angular_error_fixed_1m_deg=error_fixed,
        )


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"mean": None, "p50": None, "p90": None, "n": 0}
    array = np.asarray(values, dtype=np.float64)
    return {
        "mean": float(array.mean()),
        "p50": float(np.percentile(array, 50)),
        "p90": float(np.percentile(array, 90)),
        "n": len(values),
    }


def _at_border(session: Session, frames: list[int], object_id: int) -> bool:
    """Whether the object runs off the image on the selection's keyframe (the first fused frame): following then
    grows only what that frame saw."""
    ids = session.instance_ids(frames[0]) if frames else None
    if ids is None:
        return False
    edge = np.concatenate([ids[0], ids[-1], ids[:, 0], ids[:, -1]])
    return bool(np.any(edge == object_id))


def _mesh_scores(
    session: Session,
    scorer: _Scorer,
    objects: list[dict[str, Any]],
    out_dir: Path,
    scores: dict[int, SelectionScore],
) -> list[dict[str, Any]]:
    import open3d as o3d

    from xrseg.lift.metrics import chamfer_distance_m, completeness, mesh_to_truth_distance_m

    results = []
    for entry in objects:
        score = scores.get(entry["selection_id"])
        ply = entry.get("mesh_files", {}).get("ply")
        if score is None or score.target_object_id is None or ply is None or score.selected_object_id == 0:
            continue
        # The mesh depicts what was selected: score it against that object's ground truth, so a wrong pick
        # counts against selection accuracy, not twice against the mesh as well.
        object_id = score.selected_object_id
        mesh = o3d.io.read_triangle_mesh(out_dir / ply)
        truth = session.object_mesh(object_id)
        record: dict[str, Any] = {
            "selection_id": entry["selection_id"],
            "object_id": object_id,
            "target_object_id": score.target_object_id,
            "selection_correct": score.correct,
            "selection_mask_iou": score.mask_iou,
            "distance_m": score.target_distance_m,
            "frames": len(entry["frames"]),
            "cut_by_image_border": _at_border(session, entry["frames"], object_id),
            "chamfer_m": mesh_to_truth_distance_m(mesh, truth),
            "chamfer_symmetric_m": chamfer_distance_m(mesh, truth),
            "completeness_1cm": completeness(mesh, truth, threshold_m=0.01),
        }
        extent = np.asarray(truth.get_axis_aligned_bounding_box().get_extent())
        record["object_size_m"] = float(extent.max())
        distance = score.target_distance_m
        record["in_goal_range"] = bool(
            GOAL_SIZE_M[0] <= record["object_size_m"] <= GOAL_SIZE_M[1]
            and distance is not None
            and GOAL_DISTANCE_M[0] <= distance <= GOAL_DISTANCE_M[1]
        )
        visible = _visible_truth_points(session, scorer, entry["frames"], object_id)
        if visible:
            record.update(_seen_scores(mesh, visible))
        results.append(record)
    return results


def _visible_truth_points(
    session: Session, scorer: _Scorer, frames: list[int], object_id: int
) -> list[np.ndarray]:
    """Per frame of ``frames`` with depth, pose and instance ids: the object's ground-truth pixels lifted to Nx3
    float64 world points (metres)."""
    from xrseg.lift.pointcloud import lift_mask

    visible: list[np.ndarray] = []
    for index in frames:
        world_from_camera = scorer.world_from_camera(index)
        frame = session.frame(index)
        ids = session.instance_ids(index)
        if world_from_camera is None or frame.depth_m is None or ids is None:
            continue
        lifted = lift_mask(ids == object_id, frame.depth_m, frame.rgb, scorer.camera, world_from_camera)
        visible.append(lifted.points_world_m)
    return visible


def _seen_scores(mesh: Any, visible: list[np.ndarray]) -> dict[str, float]:
    """Chamfer distance and 1 cm completeness of ``mesh`` against the object's surface the frames saw."""
    import open3d as o3d

    from xrseg.lift.metrics import sample_surface_points

    seen = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.concatenate(visible)))
    seen = seen.voxel_down_sample(0.002)
    sampled = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(sample_surface_points(mesh, 20000)))
    to_seen = np.asarray(sampled.compute_point_cloud_distance(seen))
    to_mesh = np.asarray(seen.compute_point_cloud_distance(sampled))
    return {
        "chamfer_seen_m": float((to_seen.mean() + to_mesh.mean()) / 2.0),
        "completeness_seen_1cm": float(np.mean(to_mesh <= 0.01)),
    }


def evaluate_session(path: Path, options: RunOptions) -> dict[str, Any]:
    """Replay ``path`` with ``options`` and score it (see the module docstring); returns a JSON-ready report.
    Without ``options.outputs.out_dir`` the run writes into a temporary folder that goes with it.

    ``options.pipeline.realtime``: the live path instead of the deterministic replay: items paced at wall-clock
    speed and keyframes encoded by the background encoder at this machine's real speed (results vary run to
    run)."""
    session = Session.open(path)
    if not session.has_ground_truth or not session.fixation_targets():
        raise SessionError(f"{path} has no ground truth (instance ids and fixation targets) to evaluate against")
    collector = _Collector()
    with _eval_folder(options) as (out_dir, run):
        run_options = dataclasses.replace(options, outputs=dataclasses.replace(options.outputs, out_dir=out_dir))
        result: RunResult = run_pipeline(
            ReplaySource(session, realtime=options.pipeline.realtime),
            session.header.camera,
            session.header.head_from_camera,
            run_options,
            session_path=Path(path),
            extra_sinks=[collector],
            run=run,
        )
        pipeline = options.pipeline
        scorer = _Scorer(session, pipeline.fallback_depth_m, pipeline.max_prompt_samples)
        scores = [scorer.score(selection, pose) for _, (selection, pose) in sorted(collector.selections.items())]
        by_id = {s.selection_id: s for s in scores}
        meshes = _mesh_scores(session, scorer, result.summary.get("objects", []), out_dir, by_id)
    report = {"session": str(path), "targets": len(scorer.targets)}
    report |= _click_scores(scorer.targets, session.events(), scores, collector.fixations)
    report |= _gaze_errors(scores)
    summary = result.summary
    return report | {
        "selections": len(scores),
        "gaze_to_mask_ms": summary["gaze_to_mask_ms"],
        "encode_ms": summary["encode_ms"],
        "fixations": summary["fixations"],
        "drops": summary["drops"],
        "meshes": meshes,
        "per_selection": [s.__dict__ for s in scores],
    }


@contextlib.contextmanager
def _eval_folder(options: RunOptions) -> Iterator[tuple[Path, RunSummary]]:
    """Where the evaluated run writes: the output folder, else a work folder in the system temp dir that goes
    with the run (:func:`xrseg.scratch.scratch_dir`). Its summary.json says ``complete`` only once the run is
    scored."""
    outputs = options.outputs
    with contextlib.ExitStack() as stack:
        out_dir = (
            outputs.out_dir if outputs.out_dir is not None else stack.enter_context(scratch_dir("xrseg-eval-"))
        )
        with open_run(out_dir, outputs.overwrite, "eval") as run:
            yield out_dir, run


def _click_scores(
    targets: list[FixationTarget],
    events: list[InputEvent],
    scores: list[SelectionScore],
    fixations: list[Fixation],
) -> dict[str, Any]:
    """Right first picks over all clicks, coverage, IoU of the right picks, fixation recall and lag."""
    first: dict[int, SelectionScore] = {}
    for score in sorted(scores, key=lambda s: s.timestamp_ns):
        if score.target_index is not None:
            first.setdefault(score.target_index, score)
    clicks = clicked_targets(targets, events)
    answered = [first[i] for i in clicks if i in first]
    right = [s for s in answered if s.correct]
    recall = fixation_recall(targets, fixations)
    return {
        "clicks": len(clicks),
        "clicks_selected": len(answered),
        "clicks_right": len(right),
        "coverage": len(answered) / len(clicks) if clicks else 0.0,
        "selection_accuracy": len(right) / len(clicks) if clicks else 0.0,
        "mean_mask_iou": float(np.mean([s.mask_iou for s in right])) if right else 0.0,
        "mean_mask_iou_all_picks": float(np.mean([s.mask_iou for s in answered])) if answered else 0.0,
        "fixation_recall": recall.recall,
        "fixations_detected": recall.detected,
        "detection_lag_ms": _stats(list(recall.lags_ms)),
    }


def _gaze_errors(scores: list[SelectionScore]) -> dict[str, Any]:
    """Gaze-to-target angles with depth and at a fixed 1 m, overall and split at ``NEAR_M``."""
    near = [s for s in scores if s.target_distance_m is not None and s.target_distance_m < NEAR_M]
    far = [s for s in scores if s.target_distance_m is not None and s.target_distance_m >= NEAR_M]

    def errors(group: list[SelectionScore], fixed: bool) -> dict[str, float | int | None]:
        values = [s.angular_error_fixed_1m_deg if fixed else s.angular_error_deg for s in group]
        return _stats([v for v in values if v is not None])

    return {
        "angular_error_deg": errors(scores, fixed=False),
        "angular_error_fixed_1m_deg": errors(scores, fixed=True),
        "near_lt_1m": {"depth_aware_deg": errors(near, False), "fixed_1m_deg": errors(near, True)},
        "far_ge_1m": {"depth_aware_deg": errors(far, False), "fixed_1m_deg": errors(far, True)},
    }
