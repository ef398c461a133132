"""The user's corrections of the latest selection: REJECT offers the runner-up, LARGER/SMALLER step the mask.

Both act on :class:`LatestSelection`, the latest selection with what it was decided from; the pipeline keeps
one and publishes what these functions return.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from xrseg.sam.records import ImageEmbedding
from xrseg.select.selector import Decision, Selector
from xrseg.types import Frame, Selection, Transform

__all__ = ["LatestSelection", "runner_up", "stepped"]


@dataclass(frozen=True)
class LatestSelection:
    """The latest selection with what REJECT, LARGER and SMALLER need to act on it: its keyframe, the
    camera pose there, the decision and embedding it came from, and the HxW bool masks rejected so far."""

    selection: Selection
    frame: Frame
    world_from_camera: Transform
    decision: Decision
    embedding: ImageEmbedding
    rejected_masks: tuple[np.ndarray, ...] = ()


def runner_up(
    latest: LatestSelection, selector: Selector, selection_id: int, timestamp_ns: int
) -> LatestSelection | None:
    """After ``latest`` was rejected: the next plausible candidate for the same gaze, as new selection
    ``selection_id``, or None when there is none (every candidate overlaps a rejected mask)."""
    rejected = (*latest.rejected_masks, latest.selection.mask)
    alternatives = selector.alternatives(
        latest.decision, latest.frame, latest.world_from_camera, latest.embedding, rejected
    )
    if not alternatives:
        return None
    decision = alternatives[0]
    offered = decision.to_selection(
        selection_id, timestamp_ns, latest.selection.fixation, latest.frame, mask_choice="runner_up"
    )
    return dataclasses.replace(latest, selection=offered, decision=decision, rejected_masks=rejected)


def stepped(latest: LatestSelection, larger: bool, timestamp_ns: int) -> LatestSelection | None:
    """``latest`` with the next larger (or smaller) of its decoder's masks by area, the same selection id;
    None at the end of the range."""
    selection, prediction = latest.selection, latest.decision.prediction
    areas = prediction.masks.reshape(len(prediction.masks), -1).sum(axis=1)
    order = list(np.argsort(areas, kind="stable"))
    position = order.index(selection.mask_index) + (1 if larger else -1)
    if not 0 <= position < len(order):
        return None
    decision = dataclasses.replace(latest.decision, index=int(order[position]))
    changed = decision.to_selection(
        selection.selection_id, timestamp_ns, selection.fixation, latest.frame, mask_choice="step"
    )
    return dataclasses.replace(latest, selection=changed, decision=decision)
