"""Cutouts for content creation: each selection as an RGBA PNG, cropped to its mask's box.

``--cutouts`` writes ``cutouts/NNNN.png`` (NNNN the selection id) beside ``selections/``: the keyframe's pixels
inside the mask's box, alpha 255 on the mask and 0 off it. ``--feather-px F`` softens the alpha edge instead (a
Gaussian of sigma F/2 pixels over the mask, the box grown by F so the fade is not cut off), for compositing
without a hard outline. A selection stepped to another mask is written again; a rejected one is removed.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.config import FEATHER_PX
from xrseg.errors import InputError
from xrseg.fileio import write_bytes_atomic
from xrseg.sinks.base import SelectionEvent, Sink
from xrseg.types import Selection, mask_bbox_xyxy

__all__ = ["CutoutWriter", "cutout_rgba"]


def cutout_rgba(
    rgb: npt.NDArray[np.uint8], mask: npt.NDArray[np.bool_], feather_px: float = FEATHER_PX
) -> tuple[npt.NDArray[np.uint8], tuple[int, int, int, int]] | None:
    """The hxwx4 uint8 RGBA cutout of HxWx3 uint8 ``rgb`` under HxW bool ``mask`` and its box (x0, y0, x1, y1),
    inclusive-exclusive pixels of the image; None for an empty mask. ``feather_px`` 0: alpha is the mask (255 or
    0); above 0: a soft edge about that wide."""
    if not (math.isfinite(feather_px) and feather_px >= 0):
        raise InputError(f"--feather-px must be finite and >= 0, got {feather_px}")
    box = mask_bbox_xyxy(mask)
    if box is None:
        return None
    alpha = mask.astype(np.uint8) * np.uint8(255)
    grow = math.ceil(feather_px)
    if grow > 0:
        alpha = np.asarray(cv2.GaussianBlur(alpha.astype(np.float32), (0, 0), feather_px / 2.0), np.float32)
        alpha = np.clip(np.rint(alpha), 0, 255).astype(np.uint8)
    height, width = mask.shape
    x0, y0 = max(box[0] - grow, 0), max(box[1] - grow, 0)
    x1, y1 = min(box[2] + grow, width), min(box[3] + grow, height)
    rgba = np.dstack([rgb[y0:y1, x0:x1], alpha[y0:y1, x0:x1]])
    return np.ascontiguousarray(rgba, dtype=np.uint8), (x0, y0, x1, y1)


class CutoutWriter(Sink):
    """Writes ``out_dir/cutouts/NNNN.png`` for each selection (see the module docstring)."""

    def __init__(self, out_dir: Path, feather_px: float = FEATHER_PX) -> None:
        cutout_rgba(np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.bool_), feather_px)  # validates
        self.folder = Path(out_dir) / "cutouts"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.feather_px = feather_px

    def path(self, selection_id: int) -> Path:
        return self.folder / f"{selection_id:04d}.png"

    def on_selection(self, event: SelectionEvent) -> None:
        selection = event.selection
        cut = cutout_rgba(event.keyframe.rgb, selection.mask, self.feather_px)
        if cut is None:
            return
        ok, png = cv2.imencode(".png", cv2.cvtColor(cut[0], cv2.COLOR_RGBA2BGRA))
        if not ok:
            raise InputError(f"cannot encode the cutout of selection {selection.selection_id}")
        write_bytes_atomic(self.path(selection.selection_id), png.tobytes())

    def on_reject(self, selection: Selection) -> None:
        self.path(selection.selection_id).unlink(missing_ok=True)
