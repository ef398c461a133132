"""Mask utilities every stage shares (one definition each)."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


def mask_iou(a: npt.NDArray[np.bool_], b: npt.NDArray[np.bool_]) -> float:
    """Intersection over union of two HxW bool masks (0.0 when both are empty)."""
    union = int(np.count_nonzero(a | b))
    return 0.0 if union == 0 else int(np.count_nonzero(a & b)) / union
