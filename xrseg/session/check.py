"""Validate a recorded session thoroughly: every stream, every frame image, every ground-truth mesh.

:func:`check_session` never raises for a bad session: it collects one line per problem in
:attr:`CheckReport.errors` (the session is unusable or wrong) and :attr:`CheckReport.warnings` (usable, but
worth knowing: a torn last record, a writer that did not close, no head poses...).
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np
from tqdm import tqdm

from xrseg.errors import SessionError
from xrseg.session.format import FRAMES_DIR, MESHES_DIR, TMP_PREFIX, SessionHeader
from xrseg.session.reader import (
    Session,
    SessionParts,
    check_closed_counts,
    load_events,
    load_fixation_targets,
    load_frames,
    load_gaze,
    load_head_poses,
    load_header,
    load_objects,
    record_counts,
)

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class CheckReport:
    """The result of :func:`check_session`. Rates are in Hz (0 when a stream has fewer than 2 records)."""

    path: str
    ok: bool
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    source: str = ""
    frame_count: int = 0
    duration_s: float = 0.0
    frame_rate_hz: float = 0.0
    head_pose_count: int = 0
    head_rate_hz: float = 0.0
    gaze_count: int = 0
    gaze_rate_hz: float = 0.0
    valid_gaze_fraction: float = 0.0
    event_count: int = 0
    has_depth: bool = False
    has_ground_truth: bool = False
    object_count: int = 0
    fixation_target_count: int = 0
    size_bytes: int = 0

    def summary_lines(self) -> list[str]:
        """Human-readable summary, one fact per line."""
        return [
            f"session:          {self.path} ({self.source})",
            f"duration:         {self.duration_s:.3f} s",
            f"frames:           {self.frame_count} ({self.frame_rate_hz:.2f} Hz)",
            f"head poses:       {self.head_pose_count} ({self.head_rate_hz:.2f} Hz)",
            f"gaze samples:     {self.gaze_count} ({self.gaze_rate_hz:.2f} Hz, "
            f"{100 * self.valid_gaze_fraction:.1f}% valid)",
            f"events:           {self.event_count}",
            f"depth:            {'yes' if self.has_depth else 'no'}",
            f"ground truth:     {'yes' if self.has_ground_truth else 'no'} "
            f"({self.object_count} objects, {self.fixation_target_count} fixation targets)",
            f"size:             {self.size_bytes / 1e6:.2f} MB",
        ]


def rate_hz(timestamps_ns: np.ndarray) -> float:
    """Mean rate of a timestamp series: (N - 1) / (last - first), 0 for fewer than 2 samples."""
    if timestamps_ns.size < 2 or timestamps_ns[-1] <= timestamps_ns[0]:
        return 0.0
    return float((timestamps_ns.size - 1) * 1e9 / (int(timestamps_ns[-1]) - int(timestamps_ns[0])))


def _attempt(errors: list[str], load: Callable[[], T], default: T) -> T:
    try:
        return load()
    except SessionError as err:
        errors.append(str(err))
        return default


def _directory_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def check_session(path: str | Path) -> CheckReport:
    """Validate the session at ``path`` (decodes every frame; a few ms per frame)."""
    root = Path(path)
    errors: list[str] = []
    warnings: list[str] = []
    try:
        header = load_header(root)
    except SessionError as err:
        return CheckReport(path=str(root), ok=False, errors=[str(err)])
    parts = SessionParts(
        header=header,
        frames=_attempt(errors, lambda: load_frames(root, warnings), []),
        head_poses=_attempt(errors, lambda: load_head_poses(root, warnings), []),
        gaze=_attempt(errors, lambda: load_gaze(root, warnings), []),
        events=_attempt(errors, lambda: load_events(root, warnings), []),
        objects=_attempt(errors, lambda: load_objects(root, warnings), []),
        targets=_attempt(errors, lambda: load_fixation_targets(root, warnings), []),
    )
    if not errors:
        _attempt(errors, lambda: check_closed_counts(root, record_counts(parts), warnings), None)
    session = Session(root, parts, warnings)
    _check_content(session, header, errors, warnings)
    _check_frames(session, errors)
    _check_stray_files(root, warnings)
    counts = record_counts(parts)
    gaze = parts.gaze
    return CheckReport(
        path=str(root),
        ok=not errors,
        errors=errors,
        warnings=list(dict.fromkeys(warnings)),
        source=header.source,
        frame_count=session.frame_count,
        duration_s=session.duration_ns / 1e9,
        frame_rate_hz=rate_hz(session.frame_timestamps_ns),
        head_pose_count=len(parts.head_poses),
        head_rate_hz=rate_hz(session.head_timestamps_ns),
        gaze_count=len(gaze),
        gaze_rate_hz=rate_hz(session.gaze_timestamps_ns),
        valid_gaze_fraction=sum(g.usable for g in gaze) / len(gaze) if gaze else 0.0,
        event_count=counts["events.jsonl"],
        has_depth=header.has_depth,
        has_ground_truth=session.has_ground_truth,
        object_count=len(parts.objects),
        fixation_target_count=len(parts.targets),
        size_bytes=_directory_size(root),
    )


def _check_content(session: Session, header: SessionHeader, errors: list[str], warnings: list[str]) -> None:
    """Checks that need more than one record: completeness rules, references between streams, meshes."""
    if session.frame_count == 0:
        if header.source == "imported":
            warnings.append("no frames: a gaze-only imported session (valid only for imports)")
        else:
            errors.append(f"no frames: only imported sessions may be frame-less (source is {header.source!r})")
    if session.frame_count and session.head_timestamps_ns.size == 0:
        warnings.append("no head poses: gaze cannot be related to the world")
    if session.gaze_timestamps_ns.size == 0:
        warnings.append("no gaze samples")
    _check_overlap(session, warnings)
    for sample in session.gaze_samples():
        depth = sample.vergence_depth_m
        if depth is not None and not (math.isfinite(depth) and depth > 0):
            errors.append(f"gaze at {sample.timestamp_ns} ns: vergence_depth_m {depth} is not a positive distance")
            break
    objects = {obj.object_id: obj for obj in session.objects()}
    for target in session.fixation_targets():
        if target.object_id not in objects:
            errors.append(f"fixation target at {target.start_ns} ns refers to unknown object {target.object_id}")
    for obj in objects.values():
        if obj.mesh_file is None:
            continue
        try:
            session.object_mesh(obj.object_id)
        except SessionError as err:
            errors.append(str(err))


def _check_overlap(session: Session, warnings: list[str]) -> None:
    """Warn when head poses or gaze do not span the frames (to within one frame interval at either end)."""
    frames = session.frame_timestamps_ns
    if frames.size < 2:
        return
    interval_ns = int(np.median(np.diff(frames)))
    first, last = int(frames[0]), int(frames[-1])
    for name, times in (("head poses", session.head_timestamps_ns), ("gaze samples", session.gaze_timestamps_ns)):
        if times.size == 0:
            continue
        start, end = int(times[0]), int(times[-1])
        if start - first > interval_ns or last - end > interval_ns:
            uncovered = int(np.count_nonzero((frames < start) | (frames > end)))
            warnings.append(
                f"streams do not overlap: {name} span {start / 1e9:.3f}-{end / 1e9:.3f} s but frames span "
                f"{first / 1e9:.3f}-{last / 1e9:.3f} s ({uncovered} of {frames.size} frames outside)"
            )


def _check_frames(session: Session, errors: list[str]) -> None:
    """Decode every frame: images present, decodable, of the camera's size; depth present when promised."""
    show = sys.stderr.isatty()
    for index in tqdm(range(session.frame_count), desc="checking frames", unit="frame", disable=not show):
        try:
            record = session.frame_record(index)
            session.frame(index)
            if record.instance_ids_file is not None:
                session.instance_ids(index)
        except SessionError as err:
            errors.append(str(err))
            if len(errors) >= 20:
                errors.append("too many frame errors; stopped checking frames")
                return


def _check_stray_files(root: Path, warnings: list[str]) -> None:
    for folder in (root, root / FRAMES_DIR, root / MESHES_DIR):
        if not folder.is_dir():
            continue
        leftovers = [p.name for p in folder.iterdir() if p.name.startswith(TMP_PREFIX)]
        if leftovers:
            warnings.append(f"{len(leftovers)} unfinished temporary files in {folder.name}/ (writer interrupted)")
