"""Importers: recordings of other devices converted into the session format (see docs/session-format.md).

- :mod:`~xrseg.session.importers.aria_mps`: a Project Aria MPS eye-gaze CSV (no extra needed).
- :mod:`~xrseg.session.importers.aria`: a Project Aria VRS recording (the ``aria`` extra, projectaria-tools).
- :mod:`~xrseg.session.importers.neon`: a Pupil Labs Neon recording folder (the ``neon`` extra).

Vendor readers are optional dependencies: :func:`require` imports one or raises
:class:`~xrseg.errors.MissingExtraError` naming the extra to install. This module holds what the importers
share: that check, the record of what an import wrote, and the head poses of a recording without head tracking.
"""

from __future__ import annotations

import enum
import importlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import numpy.typing as npt
from tqdm import tqdm

from xrseg.errors import InputError, MissingExtraError
from xrseg.session.format import SessionHeader
from xrseg.session.writer import SessionWriter
from xrseg.types import CameraModel, EventKind, Frame, GazeSample, HeadPose, InputEvent, Transform

__all__ = [
    "GazeSource",
    "ImportResult",
    "ImportedStreams",
    "PoseSource",
    "fixed_head_poses",
    "require",
    "select_events",
    "write_import",
]

logger = logging.getLogger(__name__)


def require(module: str, extra: str) -> ModuleType:
    """Import ``module`` (a vendor reader) or raise MissingExtraError saying which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise MissingExtraError(
            f"{module} is not installed: install the '{extra}' extra (pip install 'xrseg[{extra}]')"
        ) from err


class GazeSource(enum.Enum):
    """Where an import's gaze came from."""

    MPS_CSV = "mps eye gaze csv"
    DEVICE = "on-device eye gaze"
    NEON = "neon gaze (scene camera pixels)"


class PoseSource(enum.Enum):
    """Where an import's head poses came from."""

    MPS_TRAJECTORY = "mps closed-loop trajectory"
    DEVICE_VIO = "device vio"
    IMU_ROTATION = "imu orientation (rotation only, no translation)"
    FIXED = "none in the recording: head fixed (identity poses)"


@dataclass(frozen=True)
class ImportResult:
    """What an importer wrote: counts, sources and the camera of the new session."""

    path: Path
    frames: int
    gaze_count: int
    valid_count: int
    head_poses: int
    gaze_source: GazeSource
    pose_source: PoseSource
    camera: CameraModel
    has_vergence: bool
    events: int = 0
    notes: tuple[str, ...] = ()

    def describe(self) -> str:
        """One line for the terminal."""
        camera = self.camera
        return (
            f"wrote {self.path}: {self.frames} frames ({camera.width_px}x{camera.height_px}, "
            f"fx={camera.fx_px:g}), {self.gaze_count} gaze samples ({self.valid_count} valid, "
            f"{self.gaze_source.value}{', with vergence depth' if self.has_vergence else ''}), "
            f"{self.head_poses} head poses ({self.pose_source.value})"
            + (f", {self.events} select events" if self.events else "")
            + "; no depth"
        )


def fixed_head_poses(timestamps_ns: list[int]) -> list[HeadPose]:
    """Identity ``world_from_head`` at each of ``timestamps_ns`` (the frames' and gaze samples'): the head held
    still, so the world frame is the head frame and every gaze sample is projected as if the head had not moved.
    A pose at every sample time, not just the ends, so a replay knows the pose whenever it needs it."""
    return [HeadPose(t, np.eye(4)) for t in sorted(set(timestamps_ns))]


def select_events(first_frame_ns: int, last_frame_ns: int, select_at_s: tuple[float, ...]) -> list[InputEvent]:
    """SELECT events (what a button press records) at ``select_at_s`` seconds after the first frame.

    For recordings that carry no input events: the moments a user marks to select what is looked at then.
    Raises InputError for a time outside the imported frames."""
    events = []
    for seconds in sorted(select_at_s):
        timestamp_ns = first_frame_ns + round(seconds * 1e9)
        if not first_frame_ns <= timestamp_ns <= last_frame_ns + 1_000_000_000:
            span_s = (last_frame_ns - first_frame_ns) / 1e9
            raise InputError(f"--select-at {seconds:g} s is outside the imported frames (0-{span_s:.3f} s)")
        events.append(InputEvent(timestamp_ns, EventKind.SELECT))
    return events


@dataclass(frozen=True)
class ImportedStreams:
    """What an importer read, ready to write: frame timestamps (the images come from a reader callback), the
    streams, where they came from, and the notes that become the header's description (one line each)."""

    name: str
    camera: CameraModel
    head_from_camera: Transform
    frame_times_ns: Sequence[int]
    gaze: Sequence[GazeSample]
    gaze_source: GazeSource
    poses: Sequence[HeadPose]
    pose_source: PoseSource
    events: Sequence[InputEvent]
    notes: tuple[str, ...]


def write_import(
    streams: ImportedStreams,
    read_rgb: Callable[[int], npt.NDArray[np.uint8]],
    out: str | Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> ImportResult:
    """Write ``streams`` as a session without depth; ``read_rgb(i)`` gives frame i as HxWx3 uint8 RGB."""
    header = SessionHeader(
        name=streams.name,
        camera=streams.camera,
        head_from_camera=streams.head_from_camera,
        source="imported",
        has_depth=False,
        description="; ".join(streams.notes),
    )
    times = streams.frame_times_ns
    with SessionWriter(out, header, overwrite=overwrite) as writer:
        bar = tqdm(times, desc="frames", unit="frame", leave=False, disable=None if progress else True)
        for index, timestamp_ns in enumerate(bar):
            writer.write_frame(Frame(index, timestamp_ns, read_rgb(index)))
        for pose in streams.poses:
            writer.write_head_pose(pose)
        for sample in streams.gaze:
            writer.write_gaze(sample)
        for event in streams.events:
            writer.write_event(event)
    for note in streams.notes:
        logger.info("%s", note)
    return ImportResult(
        path=Path(out),
        frames=len(times),
        gaze_count=len(streams.gaze),
        valid_count=sum(s.usable for s in streams.gaze),
        head_poses=len(streams.poses),
        gaze_source=streams.gaze_source,
        pose_source=streams.pose_source,
        camera=streams.camera,
        has_vergence=any(s.vergence_depth_m is not None for s in streams.gaze),
        events=len(streams.events),
        notes=streams.notes,
    )


def select_note(select_at_s: Sequence[float]) -> list[str]:
    """The description line for ``--select-at`` events ([] without any)."""
    if not select_at_s:
        return []
    return ["select events (--select-at): " + ", ".join(f"{t:g} s" for t in sorted(select_at_s))]
