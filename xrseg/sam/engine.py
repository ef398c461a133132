"""The Segment Anything engine on ONNX Runtime: encode once per image, decode per prompt.

    engine = SamEngine.from_cache()
    embedding = engine.encode(rgb)                                   # HxWx3 uint8 RGB, any size
    prediction = engine.decode(embedding, points=[[320, 240]], labels=[1])
    mask = prediction.masks[prediction.best]                         # HxW bool

Coordinates: points are Nx2 float (x, y) pixels of the original image (origin at the centre of the top-left
pixel), labels 1 = foreground, 0 = background; a box is (x0, y0, x1, y1) in the same pixels.

Ambiguity rule (``MaskPrediction.best``): a single click is ambiguous between a part and a whole, so with
``multimask=True`` the decoder proposes three masks (roughly subpart, part, whole). Like Segment Anything's
automatic mask generator, a mask counts as *stable* when its stability score (the IoU between the mask
thresholded at logit +1 and at -1) is at least :data:`STABILITY_THRESHOLD`; ``best`` is the stable mask with
the highest predicted IoU, or the highest predicted IoU overall when none is stable. The candidates stay
available so a user can step to a larger or smaller mask. With ``multimask=False`` the decoder's single-mask
output is returned; Segment Anything recommends it when several points disambiguate the object.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError, ModelError, UsageError
from xrseg.sam import transforms
from xrseg.sam.records import ImageEmbedding, MaskPrediction
from xrseg.sam.runtime import GraphOptimization, RuntimeProfile, Schedule, SessionSettings

log = logging.getLogger(__name__)

STABILITY_THRESHOLD = 0.85
"""Masks whose stability score is below this are only chosen as ``best`` when no mask is stable."""
STABILITY_OFFSET = 1.0
"""Logit offset for the stability score (Segment Anything's default)."""

_PREFERRED_PROVIDERS = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "DmlExecutionProvider",
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)


def default_providers() -> list[str]:
    """The installed ONNX Runtime providers in order of preference: TensorRT, CUDA, DirectML, CoreML, OpenVINO,
    then CPU (ONNX Runtime falls back along the list for operators a provider lacks)."""
    import onnxruntime as ort

    available = set(ort.get_available_providers())
    return [p for p in _PREFERRED_PROVIDERS if p in available]


@dataclass(frozen=True)
class EngineConfig:
    """How to run the graphs: ``providers`` (None: :func:`default_providers`) and each graph's threads and
    spinning (``profile``; None: :meth:`RuntimeProfile.fallback`, one thread per core)."""

    providers: tuple[str, ...] | None = None
    profile: RuntimeProfile | None = None


def _session(path: Path, providers: Sequence[str] | None, settings: SessionSettings) -> object:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = {
        GraphOptimization.ALL: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        GraphOptimization.EXTENDED: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[settings.optimization]
    options.intra_op_num_threads = settings.threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if settings.spinning else "0")
    chosen = list(providers) if providers else default_providers()
    unknown = [p for p in chosen if p not in ort.get_available_providers()]
    if unknown:  # onnxruntime would only warn and fall back to the CPU
        available = ", ".join(ort.get_available_providers())
        missing = ", ".join(unknown)
        raise ModelError(f"execution provider {missing} is not in this onnxruntime (it has {available})")
    try:
        return ort.InferenceSession(str(path), options, providers=chosen)
    except Exception as err:  # onnxruntime raises its own exception types for bad files and providers
        raise ModelError(f"cannot load {path.name}: {str(err).splitlines()[0]}") from err


def _prompt_points(
    points: npt.ArrayLike | None,
    labels: npt.ArrayLike | None,
    box: npt.ArrayLike | None,
    original_size: tuple[int, int],
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The decoder's point tokens: Nx2 float32 (x, y) original pixels and N float32 labels, the box as two corner
    points (labels 2, 3) or, without a box, a padding point (label -1) as Segment Anything does."""
    pts, lab = _as_points(points, labels)
    _check_in_image("point", pts, original_size)
    if box is not None:
        corners = np.asarray(box, dtype=np.float32)
        if corners.shape != (4,) or not np.all(np.isfinite(corners)):
            raise InputError(f"box must be 4 finite floats (x0, y0, x1, y1), got {corners!r}")
        if corners[2] <= corners[0] or corners[3] <= corners[1]:
            raise InputError(f"box must have x1 > x0 and y1 > y0, got {corners.tolist()}")
        _check_in_image("box corner", corners.reshape(2, 2), original_size)
        pts = np.concatenate([pts, corners.reshape(2, 2)])
        lab = np.concatenate([lab, np.array([2.0, 3.0], np.float32)])
    elif len(pts) > 0:
        # Segment Anything pads point-only prompts with a "not a point" entry.
        pts = np.concatenate([pts, np.zeros((1, 2), np.float32)])
        lab = np.concatenate([lab, np.array([-1.0], np.float32)])
    if len(pts) == 0:
        raise InputError("decode() needs at least one point or a box")
    return pts, lab


def _mask_prompt(
    mask_input: npt.ArrayLike | None, no_mask: npt.NDArray[np.float32]
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """The decoder's mask input (1x1x256x256 float32 logits, ``no_mask`` when None) and its has-mask flag (1)."""
    if mask_input is None:
        return no_mask, np.zeros(1, np.float32)
    mask = np.asarray(mask_input, dtype=np.float32).reshape(1, 1, *np.shape(mask_input)[-2:])
    if mask.shape[2:] != (transforms.LOW_RES_SIZE,) * 2 or not np.all(np.isfinite(mask)):
        raise InputError(f"mask_input must be 256x256 finite float32 logits, got {np.shape(mask_input)}")
    return mask, np.ones(1, np.float32)


def _as_points(points: npt.ArrayLike | None, labels: npt.ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    if points is None and labels is None:
        return np.zeros((0, 2), np.float32), np.zeros((0,), np.float32)
    if points is None or labels is None:
        raise InputError("points and labels must be given together")
    pts = np.asarray(points, dtype=np.float32)
    lab = np.asarray(labels)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InputError(f"points must be Nx2 (x, y) pixels, got shape {pts.shape}")
    if lab.shape != (pts.shape[0],):
        raise InputError(f"labels must have shape ({pts.shape[0]},) to match the points, got {lab.shape}")
    if not np.all(np.isfinite(pts)):
        raise InputError("points contain NaN or infinite coordinates")
    if not np.all(np.isin(lab, (0, 1))):
        raise InputError(f"labels must be 1 (foreground) or 0 (background), got {sorted(set(lab.tolist()))}")
    return pts, lab.astype(np.float32)


def _check_in_image(name: str, xy: np.ndarray, size_hw: tuple[int, int]) -> None:
    height, width = size_hw
    inside = (xy[:, 0] >= -0.5) & (xy[:, 0] <= width - 0.5) & (xy[:, 1] >= -0.5) & (xy[:, 1] <= height - 0.5)
    if not np.all(inside):
        bad = xy[~inside][0]
        raise InputError(f"{name} ({bad[0]:.1f}, {bad[1]:.1f}) lies outside the {width}x{height} image")


def stability_scores(low_res_logits: npt.NDArray[np.float32], offset: float = STABILITY_OFFSET) -> np.ndarray:
    """K float32 stability scores of Kx256x256 logits: IoU of the masks at ``+offset`` and ``-offset``."""
    flat = low_res_logits.reshape(low_res_logits.shape[0], -1)
    intersections = np.count_nonzero(flat > offset, axis=1)
    unions = np.count_nonzero(flat > -offset, axis=1)
    return np.where(unions > 0, intersections / np.maximum(unions, 1), 0.0).astype(np.float32)


def choose_best(scores: np.ndarray, stability: np.ndarray, threshold: float = STABILITY_THRESHOLD) -> int:
    """The ambiguity rule: the stable mask with the highest predicted IoU, else the highest predicted IoU."""
    stable = stability >= threshold
    if np.any(stable):
        return int(np.argmax(np.where(stable, scores, -np.inf)))
    return int(np.argmax(scores))


class SamEngine:
    """MobileSAM on ONNX Runtime. Thread-compatible: use one engine per thread, or serialise calls."""

    def __init__(self, encoder_path: Path, decoder_path: Path, config: EngineConfig | None = None) -> None:
        self.config = config or EngineConfig()
        self.encoder_path = Path(encoder_path)
        self.decoder_path = Path(decoder_path)
        for path in (self.encoder_path, self.decoder_path):
            if not path.is_file():
                raise ModelError(f"model file {path} is missing; run `xrseg model build`")
        self.profile = self.config.profile or RuntimeProfile.fallback()
        self._encoder = _session(self.encoder_path, self.config.providers, self.profile.encoder)
        self._decoder = _session(self.decoder_path, self.config.providers, self.profile.decoder)
        self._last: ImageEmbedding | None = None
        self._no_mask = np.zeros((1, 1, 4, 4), np.float32)
        """The mask input without a mask: the graph's mask branch is weighted 0 then, so it runs on 4x4, not on
        256x256 (:mod:`xrseg.sam.export`)."""
        self._input = np.zeros((1, 3, transforms.MODEL_SIZE, transforms.MODEL_SIZE), np.float32)
        """The encoder's input, written in place for every image (:func:`transforms.preprocess`)."""
        log.info("SAM engine on %s", ", ".join(self.providers))

    @classmethod
    def from_cache(
        cls,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        variant: str | None = None,
        home: Path | None = None,
        schedule: Schedule = Schedule.SEQUENTIAL,
    ) -> SamEngine:
        """Load the models built by ``xrseg model build`` (verifying their hashes).

        ``variant`` picks a graph variant from the manifest (``xrseg model info`` lists them); None takes the
        manifest's default. Each graph runs with the threads and spinning measured on this machine for
        ``schedule`` (:mod:`xrseg.sam.runtime`); ``threads`` overrides the thread count of both.
        """
        from xrseg.sam.build import load_verified_variant, recorded_runtime

        encoder, decoder = load_verified_variant(variant, home=home)
        profile = recorded_runtime(home).profile(schedule)
        if threads is not None:
            profile = profile.with_threads(threads)
        return cls(encoder, decoder, EngineConfig(tuple(providers) if providers else None, profile))

    @property
    def providers(self) -> list[str]:
        return list(self._encoder.get_providers())  # type: ignore[attr-defined]

    def encode(self, image: npt.NDArray[np.uint8]) -> ImageEmbedding:
        """Encode an HxWx3 uint8 RGB image of any size into an :class:`ImageEmbedding`."""
        tensor, input_size = transforms.preprocess(image, out=self._input)
        (embedding,) = self._encoder.run(["image_embeddings"], {"image": tensor})  # type: ignore[attr-defined]
        result = ImageEmbedding(
            embedding=np.ascontiguousarray(embedding, dtype=np.float32),
            original_size=(int(image.shape[0]), int(image.shape[1])),
            input_size=input_size,
        )
        self._last = result
        return result

    def warm_up(self) -> None:
        """Encode a blank image and decode one prompt on it, so the first real encode and decode do not also pay
        for ONNX Runtime's first-run allocations (a live run's first keyframe comes sooner)."""
        image = np.zeros((transforms.MODEL_SIZE, transforms.MODEL_SIZE, 3), np.uint8)
        embedding = self.encode(image)
        self.decode(embedding, points=[[transforms.MODEL_SIZE / 2, transforms.MODEL_SIZE / 2]], labels=[1])
        self._last = None

    def decode(
        self,
        embedding: ImageEmbedding | None = None,
        points: npt.ArrayLike | None = None,
        labels: npt.ArrayLike | None = None,
        box: npt.ArrayLike | None = None,
        mask_input: npt.ArrayLike | None = None,
        multimask: bool = True,
    ) -> MaskPrediction:
        """Predict masks for one prompt on an encoded image.

        ``embedding`` defaults to the last one this engine encoded. ``points`` Nx2 float (x, y) pixels and
        ``labels`` N ints (1 fg, 0 bg); ``box`` 4 floats (x0, y0, x1, y1) pixels; ``mask_input`` 256x256 (or
        1x1x256x256) float32 logits from a previous :attr:`MaskPrediction.low_res_logits`. At least one of
        points or box is required. Returns 3 masks with ``multimask=True``, else 1, upsampled to the original
        image only for the masks returned.
        """
        if embedding is None:
            if self._last is None:
                raise UsageError("decode() needs an embedding: call encode(image) first")
            embedding = self._last
        if not isinstance(embedding, ImageEmbedding) or embedding.embedding.shape != transforms.EMBEDDING_SHAPE:
            raise InputError("embedding must be an ImageEmbedding from encode() (1x256x64x64 float32)")
        original_size, input_size = embedding.original_size, embedding.input_size
        pts, lab = _prompt_points(points, labels, box, original_size)
        mask, has_mask = _mask_prompt(mask_input, self._no_mask)
        feed = {
            "image_embeddings": embedding.embedding,
            "point_coords": transforms.points_to_model(pts, original_size, input_size)[None],
            "point_labels": lab[None],
            "mask_input": mask,
            "has_mask_input": has_mask,
        }
        low_res, iou = self._decoder.run(None, feed)  # type: ignore[attr-defined]
        chosen = slice(1, None) if multimask else slice(0, 1)
        logits = transforms.unshuffle_low_res(np.asarray(low_res[0, chosen], dtype=np.float32))
        scores = np.asarray(iou[0, chosen], dtype=np.float32)
        stability = stability_scores(logits)
        masks = np.stack([transforms.low_res_to_original(m, original_size, input_size) > 0.0 for m in logits])
        return MaskPrediction(
            masks=masks,
            scores=scores,
            low_res_logits=logits,
            stability=stability,
            best=choose_best(scores, stability),
        )
