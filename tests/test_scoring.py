"""The honest score's rules: majority object with background, clicks, fixation recall and lag."""

from __future__ import annotations

import numpy as np

from xrseg.session.format import FixationTarget
from xrseg.tools.scoring import clicked_targets, fixation_recall, picked_object
from xrseg.types import EventKind, Fixation, InputEvent

MS = 1_000_000


def fixation(start_ms: int, end_ms: int, detected_ms: int | None = None) -> Fixation:
    detected = None if detected_ms is None else detected_ms * MS
    return Fixation(start_ms * MS, end_ms * MS, np.zeros(3), np.array([0, 0, -1.0]), 0.1, (), None, detected)


def test_a_table_mask_touching_the_target_is_a_table_pick() -> None:
    ids = np.zeros((10, 10), np.uint16)
    ids[4:6, 4:6] = 3
    mask = np.ones((10, 10), bool)
    assert picked_object(mask, ids) == 0
    assert picked_object(ids == 3, ids) == 3
    assert picked_object(np.zeros((10, 10), bool), ids) == 0


def test_clicks_are_fixations_with_a_select_inside() -> None:
    targets = [
        FixationTarget(0, 100 * MS, 1),
        FixationTarget(150 * MS, 300 * MS, 2),
        FixationTarget(350 * MS, 500 * MS, 3),
    ]
    events = [
        InputEvent(90 * MS, EventKind.SELECT),
        InputEvent(450 * MS, EventKind.SELECT),
        InputEvent(200 * MS, EventKind.REJECT),
    ]
    assert clicked_targets(targets, events) == [0, 2]
    assert clicked_targets(targets, []) == [0, 1, 2]


def test_merged_fixations_count_once_and_lag_is_measured() -> None:
    targets = [
        FixationTarget(0, 200 * MS, 1),
        FixationTarget(250 * MS, 450 * MS, 2),
        FixationTarget(500 * MS, 700 * MS, 3),
    ]
    found = [fixation(5, 440, detected_ms=90), fixation(510, 700, detected_ms=600)]  # the first merges two
    recall = fixation_recall(targets, found)
    assert (recall.recalled, recall.total, recall.detected) == (2, 3, 2)
    assert recall.lags_ms == (90.0, 100.0)
