"""How well ``--track`` follows each object: IoU against the ground truth on every frame where it is visible.

For each object of a run written with ``--track`` (``summary.json``'s ``objects``, ``tracks/``), its ground-truth
object is the one its first selection picked (:func:`xrseg.tools.scoring.picked_object`). From that selection's
keyframe to the end of the recording, every frame where the ground-truth object has at least ``min_visible_px``
pixels counts; a frame without a tracked mask scores IoU 0 (a lost track is not excused).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from xrseg.errors import SessionError
from xrseg.masks import mask_iou
from xrseg.session.reader import Session
from xrseg.tools.scoring import picked_object

__all__ = ["TrackScore", "track_scores"]


@dataclass(frozen=True)
class TrackScore:
    """One object's track: ``truth_id`` the ground-truth object, ``frames`` the frames where it is visible,
    ``found`` how many of them have a tracked mask, ``mean_iou`` / ``min_iou`` over all of them."""

    object_id: int
    truth_id: int
    frames: int
    found: int
    mean_iou: float
    min_iou: float


def _mask(path: Path) -> np.ndarray | None:
    if not path.is_file():
        return None
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    return None if image is None else np.asarray(image) > 127


def track_scores(out_dir: Path, session: Session, min_visible_px: int = 1) -> list[TrackScore]:
    """Score every tracked object in ``out_dir`` (a ``--track`` run of ``session``; see the module docstring)."""
    if not session.has_ground_truth:
        raise SessionError(f"{session.path} has no ground truth to score tracks against")
    scores = []
    for entry in json.loads((out_dir / "summary.json").read_text()).get("objects", []):
        first = json.loads((out_dir / "selections" / f"{entry['selections'][0]:04d}.json").read_text())
        keyframe = int(first["keyframe_index"])
        selected = _mask(out_dir / first["mask_png"])
        ids = session.instance_ids(keyframe)
        if selected is None or ids is None:
            continue
        truth_id = picked_object(selected, ids)
        if truth_id == 0:
            continue  # a background pick has no object to track
        folder = out_dir / "tracks" / f"object_{entry['object_id']:04d}"
        ious, found = [], 0
        for index in range(keyframe, session.frame_count):
            truth = session.instance_ids(index)
            if truth is None or np.count_nonzero(truth == truth_id) < min_visible_px:
                continue
            tracked = _mask(folder / f"{index:06d}.png")
            found += tracked is not None
            ious.append(0.0 if tracked is None else mask_iou(tracked, truth == truth_id))
        if ious:
            scores.append(
                TrackScore(entry["object_id"], truth_id, len(ious), found, float(np.mean(ious)), min(ious))
            )
    return scores
