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
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from xrseg.errors import InputError, MissingExtraError
from xrseg.types import CameraModel, EventKind, HeadPose, InputEvent

__all__ = ["GazeSource", "ImportResult", "PoseSource", "fixed_head_poses", "require", "select_events"]


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
    """Identity ``world_from_head`` at the first and last of ``timestamps_ns``: the head held still, so the
    world frame is the head frame and every gaze sample is projected as if the head had not moved."""
    ends = sorted({min(timestamps_ns), max(timestamps_ns)})
    return [HeadPose(t, np.eye(4)) for t in ends]


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
