"""What the Segment Anything engine returns."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class ImageEmbedding:
    """The encoder's output for one image.

    ``embedding`` is 1x256x64x64 float32. ``original_size`` is (height, width) of the image that was encoded
    and ``input_size`` (height, width) of that image resized so its long side is 1024 (before padding to
    1024x1024). Coordinates of prompts are mapped with these two sizes only.
    """

    embedding: npt.NDArray[np.float32]
    original_size: tuple[int, int]
    input_size: tuple[int, int]


@dataclass(frozen=True)
class MaskPrediction:
    """The decoder's output for one prompt.

    ``masks`` K x H x W bool in original-image pixels (K = 3 with ``multimask=True``, else 1), ``scores`` K
    float32 predicted IoU, ``low_res_logits`` K x 256 x 256 float32 (feed one back as ``mask_input``), ``best``
    the index chosen by the ambiguity rule (see :meth:`xrseg.sam.engine.SamEngine.decode`).
    ``stability`` K float32 stability scores (IoU of the mask thresholded at +1 and -1 logits).
    """

    masks: npt.NDArray[np.bool_]
    scores: npt.NDArray[np.float32]
    low_res_logits: npt.NDArray[np.float32]
    stability: npt.NDArray[np.float32]
    best: int


class Decoder(Protocol):
    """Anything that decodes point/box/mask prompts on an embedding: the local engine (or a wrapper)."""

    def decode(
        self,
        embedding: ImageEmbedding | None = None,
        points: np.ndarray | None = None,
        labels: np.ndarray | None = None,
        box: np.ndarray | None = None,
        mask_input: np.ndarray | None = None,
        multimask: bool = True,
    ) -> MaskPrediction: ...
