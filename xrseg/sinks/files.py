"""Writing a run's results to a directory: one mask PNG and one JSON per selection, and a summary.

Layout of ``--out DIR``::

    selections/0001.png     the mask (8-bit, 255 = selected) in keyframe pixels
    selections/0001.json    the selection's metadata (see :func:`selection_record`)
    summary.json            counts, drops by reason, latency percentiles, options

Every file is written to a temporary name and renamed, so a killed run leaves whole files only. A selection
changed later (stepped to a larger/smaller mask, rejected) is rewritten in place.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from xrseg.errors import InputError
from xrseg.fileio import write_bytes_atomic, write_json_atomic
from xrseg.sinks.base import PipelineStats, SelectionEvent, Sink
from xrseg.types import Fixation, Selection

if TYPE_CHECKING:  # the options are only recorded, never used here
    from xrseg.config import PipelineOptions

log = logging.getLogger(__name__)


def fixation_record(fixation: Fixation) -> dict[str, Any]:
    return {
        "start_ns": fixation.start_ns,
        "end_ns": fixation.end_ns,
        "duration_ms": fixation.duration_ns / 1e6,
        "direction_head": [float(v) for v in fixation.direction],
        "dispersion_deg": fixation.dispersion_deg,
        "samples": len(fixation.sample_timestamps_ns),
    }


def selection_record(selection: Selection) -> dict[str, Any]:
    """A JSON-ready dict of a selection (without the mask itself)."""
    return {
        "selection_id": selection.selection_id,
        "timestamp_ns": selection.timestamp_ns,
        "keyframe_index": selection.keyframe_index,
        "keyframe_timestamp_ns": selection.keyframe_timestamp_ns,
        "score": selection.score,
        "mask_index": selection.mask_index,
        "mask_choice": selection.mask_choice,
        "look_through": selection.look_through,
        "candidate_scores": list(selection.candidate_scores),
        "area_px": selection.area_px,
        "bbox_xyxy": list(selection.bbox_xyxy) if selection.bbox_xyxy else None,
        "gaze_xy": list(selection.gaze_xy),
        "depth_source": selection.depth_source.value,
        "point_world_m": None if selection.point_world_m is None else [float(v) for v in selection.point_world_m],
        "prompt_points_xy": np.asarray(selection.prompt_points_xy).tolist(),
        "prompt_labels": np.asarray(selection.prompt_labels).tolist(),
        "fixation": fixation_record(selection.fixation),
    }


def percentiles_ms(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "n": 0}
    array = np.asarray(values)
    return {"p50": float(np.percentile(array, 50)), "p99": float(np.percentile(array, 99)), "n": len(values)}


def summary_record(stats: PipelineStats, options: PipelineOptions, extra: dict[str, Any] | None = None) -> dict:
    return {
        "frames": stats.frames,
        "gaze_samples": stats.gaze_samples,
        "head_poses": stats.head_poses,
        "events": stats.events,
        "fixations": stats.fixations,
        "triggers": stats.triggers,
        "selections": stats.selections,
        "rejected": stats.rejected,
        "confirmations": stats.confirmations,
        "encodes": stats.encodes,
        "frames_dropped_by_encoder": stats.frames_dropped_by_encoder,
        "gaze_bias_deg": None if stats.gaze_bias_deg is None else list(stats.gaze_bias_deg),
        "drops": dict(stats.drops),
        "gaze_to_mask_ms": percentiles_ms([t.gaze_to_mask_ms for t in stats.timings]),
        "click_to_mask_ms": percentiles_ms(stats.click_to_mask_ms),
        "look_aheads": stats.look_aheads,
        "look_ahead_hits": stats.look_ahead_hits,
        "decode_ms": percentiles_ms([t.decode_ms for t in stats.timings]),
        "prompt_ms": percentiles_ms([t.prompt_ms for t in stats.timings]),
        "encode_ms": percentiles_ms(stats.encode_ms),
        "options": asdict(options),
        **(extra or {}),
    }


class SelectionWriter(Sink):
    """Writes each selection's mask and metadata under ``out_dir / "selections"``."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(f"--out {self.out_dir} exists and is not a directory")
        self.selections_dir = self.out_dir / "selections"
        self.selections_dir.mkdir(parents=True, exist_ok=True)
        self.written: dict[int, dict[str, Any]] = {}

    def on_selection(self, event: SelectionEvent) -> None:
        selection = event.selection
        stem = f"{selection.selection_id:04d}"
        ok, png = cv2.imencode(".png", selection.mask.astype(np.uint8) * 255)
        if not ok:
            raise InputError(f"cannot encode the mask of selection {selection.selection_id}")
        write_bytes_atomic(self.selections_dir / f"{stem}.png", png.tobytes())
        record = selection_record(selection) | {"status": "selected", "mask_png": f"selections/{stem}.png"}
        self.written[selection.selection_id] = record
        write_json_atomic(self.selections_dir / f"{stem}.json", record)

    def on_reject(self, selection: Selection) -> None:
        record = self.written.get(selection.selection_id)
        if record is not None:
            record["status"] = "rejected"
            write_json_atomic(self.selections_dir / f"{selection.selection_id:04d}.json", record)
