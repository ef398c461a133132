"""Helpers for the tests on the real recordings in ../shared/realdata (see its README.md).

The recordings are read in place, never copied into the repository; tests skip with the reason when the folder
or a vendor reader (the ``aria`` / ``neon`` extra) is missing.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from xrseg.geometry import PoseTrack
from xrseg.select.projection import GazeProjector
from xrseg.session import Session
from xrseg.types import GazeSample

REALDATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "realdata"


def recording(name: str) -> Path:
    """The path of one real recording, or a skip when ../shared/realdata does not have it."""
    path = REALDATA / name
    if not path.exists():
        pytest.skip(f"real recording {name} not found in ../shared/realdata (a checkout without ../shared)")
    return path


@dataclass(frozen=True)
class SavedSelection:
    """One selection as ``xrseg replay --out`` wrote it: its JSON record and its HxW bool mask."""

    record: dict
    mask: npt.NDArray[np.bool_]


def read_selections(out: Path) -> list[SavedSelection]:
    selections = []
    for path in sorted((out / "selections").glob("*.json")):
        record = json.loads(path.read_text())
        mask = cv2.imread(str(out / record["mask_png"]), cv2.IMREAD_UNCHANGED) > 0
        selections.append(SavedSelection(record, mask))
    return selections


def mask_holds_prompt(selection: SavedSelection) -> bool:
    """The mask contains its first positive prompt point (the fixation's median gaze pixel)."""
    x, y = selection.record["prompt_points_xy"][0]
    return bool(selection.mask[round(y), round(x)])


def session_pixels(session: Session, samples: list[GazeSample], fallback_depth_m: float = 1.0) -> np.ndarray:
    """Nx2 pixels where the pipeline's gaze projection puts each sample in the camera at the sample's own time.

    The camera pose is the head pose at the sample's time composed with ``head_from_camera``, so head motion
    plays no part: what is compared with a vendor's projection is the import's frames, axes and camera model.
    """
    track = PoseTrack.from_head_poses(session.head_poses())
    header = session.header
    pixels = np.full((len(samples), 2), np.nan)
    for i, sample in enumerate(samples):
        world_from_head = track.at(sample.timestamp_ns)
        assert world_from_head is not None, f"no head pose at {sample.timestamp_ns}"
        projector = GazeProjector(world_from_head @ header.head_from_camera, header.camera, None, fallback_depth_m)
        projection = projector.project(sample.ray, world_from_head, sample.vergence_depth_m)
        if projection.pixel_xy is not None:
            pixels[i] = projection.pixel_xy
    return pixels


BLOCK_VENDOR_READERS = """
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {"projectaria_tools", "pupil_labs"}:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
from xrseg.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_without_vendor_readers(*args: str) -> subprocess.CompletedProcess[str]:
    """``xrseg ARGS`` in a fresh interpreter where importing projectaria_tools or pupil_labs fails."""
    return subprocess.run(
        [sys.executable, "-c", BLOCK_VENDOR_READERS, *args], capture_output=True, text=True, timeout=120
    )
