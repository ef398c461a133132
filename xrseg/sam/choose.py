"""Which model variant this machine runs by default: measured at build time, not hard-coded.

Whether the int8 encoder pays depends on the CPU (VNNI and AMX make int8 matrix products cheap; plain AVX2
much less) and its accuracy cost on the graphs ONNX Runtime builds there. ``xrseg model build`` therefore times
every built variant's encoder on the parity photos, decodes the same prompts on each variant's embeddings and
on float32's, and takes the fastest variant whose masks keep mean IoU >= ``min_iou`` against float32 and whose
encoder is at least ``min_speedup`` times faster; otherwise float32. The choice and its measurements go into
the manifest (``default_variant``, ``variant_choice``); ``xrseg model info`` and ``xrseg bench`` show them.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from xrseg.masks import mask_iou

if TYPE_CHECKING:
    from xrseg.sam.engine import SamEngine
    from xrseg.sam.records import ImageEmbedding

__all__ = ["VariantChoice", "VariantTrial", "choose_variant"]

REFERENCE_VARIANT = "fp32"


@dataclass(frozen=True)
class VariantTrial:
    """One variant measured on this machine: encoder p50 milliseconds, and the mean IoU of its best masks
    against float32's for the same prompts (1.0 for float32 itself)."""

    variant: str
    encoder_p50_ms: float
    mean_iou_vs_fp32: float


@dataclass(frozen=True)
class VariantChoice:
    """The variant this machine runs by default, why, and what was measured."""

    variant: str
    reason: str
    min_iou: float
    min_speedup: float
    trials: tuple[VariantTrial, ...]

    def to_json(self) -> dict[str, Any]:
        record = asdict(self)
        record["trials"] = [asdict(t) for t in self.trials]
        return record


def _grid_prompts(image: npt.NDArray[np.uint8], count: int) -> list[npt.NDArray[np.float64]]:
    """``count`` single-point prompts (1x2 float64 (x, y) pixels) on a grid over the image's middle."""
    height, width = image.shape[:2]
    side = max(1, int(np.ceil(np.sqrt(count))))
    xs = np.linspace(0.25 * width, 0.75 * width, side)
    ys = np.linspace(0.25 * height, 0.75 * height, side)
    return [np.array([[x, y]]) for y in ys for x in xs][:count]


def _timed_encodes(
    engine: SamEngine, images: Sequence[npt.NDArray[np.uint8]], runs: int
) -> tuple[float, list[ImageEmbedding]]:
    """The engine's encoder p50 milliseconds over ``runs`` encodes of each image, and each image's embedding."""
    engine.encode(images[0])  # warm-up: graph optimisation and first-run allocations
    times_ms, embeddings = [], []
    for image in images:
        for _ in range(runs):
            started = time.perf_counter()
            embedding = engine.encode(image)
            times_ms.append((time.perf_counter() - started) * 1000.0)
        embeddings.append(embedding)
    return statistics.median(times_ms), embeddings


def _mean_iou(
    engine: SamEngine,
    embeddings: Sequence[ImageEmbedding],
    reference: SamEngine,
    reference_embeddings: Sequence[ImageEmbedding],
    images: Sequence[npt.NDArray[np.uint8]],
    prompts: int,
) -> float:
    """Mean IoU of ``engine``'s masks against ``reference``'s (its best mask) for the same grid prompts."""
    ious = []
    for image, ours_embedding, theirs_embedding in zip(images, embeddings, reference_embeddings, strict=True):
        for point in _grid_prompts(image, prompts):
            ours = engine.decode(ours_embedding, points=point, labels=[1])
            theirs = reference.decode(theirs_embedding, points=point, labels=[1])
            ious.append(mask_iou(ours.masks[theirs.best], theirs.masks[theirs.best]))
    return float(np.mean(ious))


def choose_variant(
    variants: Sequence[str],
    images: Sequence[npt.NDArray[np.uint8]],
    *,
    min_iou: float = 0.98,
    min_speedup: float = 1.1,
    runs: int = 2,
    prompts: int = 9,
    home: Path | None = None,
    threads: int | None = None,
) -> VariantChoice:
    """Measure ``variants`` (names in the built cache, float32 among them) on ``images`` (HxWx3 uint8 RGB) and
    choose (module docstring)."""
    from xrseg.sam.engine import SamEngine

    reference = SamEngine.from_cache(variant=REFERENCE_VARIANT, home=home, threads=threads)
    base_ms, reference_embeddings = _timed_encodes(reference, images, runs)
    trials = [VariantTrial(REFERENCE_VARIANT, base_ms, 1.0)]
    for name in sorted(set(variants) - {REFERENCE_VARIANT}):
        engine = SamEngine.from_cache(variant=name, home=home, threads=threads)
        encoder_ms, embeddings = _timed_encodes(engine, images, runs)
        iou = _mean_iou(engine, embeddings, reference, reference_embeddings, images, prompts)
        trials.append(VariantTrial(name, encoder_ms, iou))
    good = [t for t in trials[1:] if t.mean_iou_vs_fp32 >= min_iou and base_ms / t.encoder_p50_ms >= min_speedup]
    if good:
        best = min(good, key=lambda t: t.encoder_p50_ms)
        reason = (
            f"{best.variant}: encoder {base_ms / best.encoder_p50_ms:.2f}x faster than fp32 here, "
            f"mask IoU {best.mean_iou_vs_fp32:.3f} against it"
        )
        return VariantChoice(best.variant, reason, min_iou, min_speedup, tuple(trials))
    others = "; ".join(
        f"{t.variant} {base_ms / t.encoder_p50_ms:.2f}x, IoU {t.mean_iou_vs_fp32:.3f}" for t in trials[1:]
    )
    reason = f"fp32: no variant is both >= {min_speedup}x faster and IoU >= {min_iou} here ({others or 'none'})"
    return VariantChoice(REFERENCE_VARIANT, reason, min_iou, min_speedup, tuple(trials))
