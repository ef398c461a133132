"""The ONNX Runtime engine against the official MobileSAM predictor, on real photographs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_reference, skip_or_fail
from xrseg.cli import main
from xrseg.errors import InputError, ModelError, UsageError
from xrseg.sam import transforms
from xrseg.sam.engine import SamEngine, choose_best, stability_scores
from xrseg.sam.records import ImageEmbedding


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def prompts_for(image: np.ndarray, seed: int) -> list[dict]:
    """Several point and box prompts spread over the image (deterministic)."""
    h, w = image.shape[:2]
    rng = np.random.default_rng(seed)
    prompts = []
    for k in range(5):
        centre = rng.uniform([0.25 * w, 0.25 * h], [0.75 * w, 0.75 * h]).astype(np.float32)
        if k == 0:
            prompts.append({"points": centre[None], "labels": np.array([1])})
        elif k == 1:
            other = centre + np.float32([0.05 * w, 0.03 * h])
            prompts.append({"points": np.stack([centre, other]), "labels": np.array([1, 1])})
        elif k == 2:
            negative = centre + np.float32([0.15 * w, -0.1 * h])
            prompts.append({"points": np.stack([centre, negative]), "labels": np.array([1, 0])})
        elif k == 3:
            half = np.float32([0.15 * w, 0.15 * h])
            prompts.append({"box": np.concatenate([centre - half, centre + half])})
        else:
            half = np.float32([0.2 * w, 0.12 * h])
            box = np.concatenate([centre - half, centre + half])
            prompts.append({"points": centre[None], "labels": np.array([1]), "box": box})
    return prompts


@requires_reference
def test_parity_with_official_mobilesam_predictor(engine: SamEngine, sample_images) -> None:
    import torch
    from mobile_sam import SamPredictor

    from xrseg.sam.export import load_mobile_sam
    from xrseg.sam.weights import models_dir

    ours = SamEngine.from_cache(variant="fp32")
    predictor = SamPredictor(load_mobile_sam(models_dir() / "mobile_sam.pt"))
    ious = []
    for seed, (name, image) in enumerate(sorted(sample_images.items())):
        embedding = ours.encode(image)
        with torch.no_grad():
            predictor.set_image(image)
        reference_embedding = predictor.features.numpy()
        relative = np.abs(reference_embedding - embedding.embedding).mean() / np.abs(reference_embedding).mean()
        assert relative < 1e-3, f"{name}: embeddings differ by {relative:.2%}"
        for prompt in prompts_for(image, seed):
            with torch.no_grad():
                ref_masks, ref_scores, _ = predictor.predict(
                    point_coords=prompt.get("points"),
                    point_labels=prompt.get("labels"),
                    box=prompt.get("box"),
                    multimask_output=True,
                )
            prediction = ours.decode(embedding, **prompt)
            assert prediction.masks.shape == ref_masks.shape
            np.testing.assert_allclose(prediction.scores, ref_scores, atol=0.02)
            ious.extend(mask_iou(a, b) for a, b in zip(prediction.masks, ref_masks, strict=True))
    assert len(ious) == 4 * 5 * 3
    assert np.mean(ious) >= 0.98, f"mean IoU {np.mean(ious):.4f}"


def test_every_variant_agrees_with_fp32(sample_images) -> None:
    """Quantised variants keep mask IoU >= 0.95 against the float32 graphs (every variant the build makes)."""
    from xrseg.sam.build import VARIANTS, read_manifest

    reference = SamEngine.from_cache(variant="fp32")
    manifest = read_manifest()
    assert manifest is not None
    missing = sorted(set(VARIANTS) - set(manifest["variants"]))
    if missing:
        skip_or_fail(f"variants not built: {', '.join(missing)} (run `xrseg model build`)")
    for variant in sorted(set(manifest["variants"]) - {"fp32"}):
        candidate = SamEngine.from_cache(variant=variant)
        ious = []
        for seed, (_, image) in enumerate(sorted(sample_images.items())):
            emb_ref, emb_var = reference.encode(image), candidate.encode(image)
            for prompt in prompts_for(image, seed):
                a = reference.decode(emb_ref, **prompt)
                b = candidate.decode(emb_var, **prompt)
                ious.append(mask_iou(a.masks[a.best], b.masks[a.best]))
        assert np.mean(ious) >= 0.95, f"variant {variant}: mean IoU {np.mean(ious):.4f} against fp32"


def test_masks_come_back_in_original_pixels(engine: SamEngine, sample_images) -> None:
    image = sample_images["dog"]
    embedding = engine.encode(image)
    assert embedding.embedding.shape == (1, 256, 64, 64)
    assert embedding.original_size == image.shape[:2]
    assert embedding.input_size == (684, 1024)  # 534 x 800 scaled by 1024 / 800 = 683.52, rounded
    prediction = engine.decode(embedding, points=[[400.0, 300.0]], labels=[1])
    assert prediction.masks.shape == (3, 534, 800) and prediction.masks.dtype == np.bool_
    assert prediction.low_res_logits.shape == (3, 256, 256)
    assert prediction.masks[prediction.best][300, 400], "the clicked pixel belongs to the chosen mask"
    single = engine.decode(embedding, points=[[400.0, 300.0]], labels=[1], multimask=False)
    assert single.masks.shape == (1, 534, 800) and single.best == 0


def test_mask_input_refines_the_same_object(engine: SamEngine, sample_images) -> None:
    image = sample_images["truck"]
    embedding = engine.encode(image)
    first = engine.decode(embedding, points=[[500.0, 375.0]], labels=[1])
    refined = engine.decode(
        embedding,
        points=[[500.0, 375.0]],
        labels=[1],
        mask_input=first.low_res_logits[first.best],
        multimask=False,
    )
    assert refined.masks[0][375, 500]
    iou = (
        np.logical_and(refined.masks[0], first.masks[first.best]).sum()
        / np.logical_or(refined.masks[0], first.masks[first.best]).sum()
    )
    assert iou > 0.8


def test_decode_uses_last_encoding_and_refuses_before_any(engine: SamEngine) -> None:
    fresh = SamEngine(engine.encoder_path, engine.decoder_path)
    fresh.warm_up()  # its blank image is no one's last encoding
    with pytest.raises(UsageError, match="encode"):
        fresh.decode(points=[[1.0, 1.0]], labels=[1])
    fresh.encode(np.full((48, 64, 3), 128, np.uint8))
    assert fresh.decode(points=[[10.0, 10.0]], labels=[1]).masks.shape == (3, 48, 64)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"points": [[np.nan, 3.0]], "labels": [1]}, "NaN"),
        ({"points": [[1.0, 2.0, 3.0]], "labels": [1]}, "Nx2"),
        ({"points": [[1.0, 2.0]], "labels": [1, 1]}, "labels must have shape"),
        ({"points": [[1.0, 2.0]], "labels": [2]}, "labels must be 1"),
        ({"points": [[1.0, 2.0]]}, "together"),
        ({"points": [[700.0, 2.0]], "labels": [1]}, "outside the 64x48 image"),
        ({"box": [10.0, 10.0, 5.0, 20.0]}, "x1 > x0"),
        ({"box": [1.0, 2.0, 3.0]}, "4 finite floats"),
        ({"points": [[1.0, 2.0]], "labels": [1], "mask_input": np.zeros((64, 64), np.float32)}, "256x256"),
        ({}, "at least one point or a box"),
    ],
)
def test_bad_prompts_raise_clear_errors(engine: SamEngine, kwargs: dict, message: str) -> None:
    embedding = engine.encode(np.zeros((48, 64, 3), np.uint8))
    with pytest.raises(InputError, match=message):
        engine.decode(embedding, **kwargs)


@pytest.mark.parametrize(
    "image",
    [np.zeros((48, 64), np.uint8), np.zeros((48, 64, 3), np.float32), np.zeros((48, 64, 4), np.uint8), [[1, 2]]],
)
def test_bad_images_raise_clear_errors(engine: SamEngine, image) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match="image must be"):
        engine.encode(image)


def test_an_encoder_input_reused_across_image_sizes_is_the_fresh_one(engine: SamEngine, sample_images) -> None:
    """The engine writes every image into one input tensor: a wide image after a tall one (whose pixels lie
    where the wide one's padding is) must give the tensor, and so the embedding, of a fresh encoder."""
    wide = next(iter(sample_images.values()))  # 640x480
    tall = np.ascontiguousarray(wide.transpose(1, 0, 2))  # 480x640
    fresh, _ = transforms.preprocess(wide)
    engine.encode(tall)
    reused, _ = transforms.preprocess(wide, out=engine._input)
    assert reused is engine._input and np.array_equal(reused, fresh)
    with pytest.raises(InputError, match="C-contiguous"):
        transforms.preprocess(wide, out=np.zeros((1, 3, 1024, 1024), np.float64))


def test_foreign_embedding_is_refused(engine: SamEngine) -> None:
    bogus = ImageEmbedding(np.zeros((1, 256, 32, 32), np.float32), (48, 64), (768, 1024))
    with pytest.raises(InputError, match="1x256x64x64"):
        engine.decode(bogus, points=[[1.0, 1.0]], labels=[1])


def test_ambiguity_rule_prefers_stable_masks() -> None:
    scores = np.array([0.95, 0.90, 0.80], np.float32)
    assert choose_best(scores, np.array([0.99, 0.99, 0.99], np.float32)) == 0
    assert choose_best(scores, np.array([0.50, 0.90, 0.99], np.float32)) == 1
    assert choose_best(scores, np.array([0.10, 0.20, 0.30], np.float32)) == 0  # nothing stable: highest IoU


def test_stability_score_known_answer() -> None:
    logits = np.full((1, 256, 256), -5.0, np.float32)
    logits[0, :128] = 5.0  # 32768 pixels above +1
    logits[0, 128:160] = 0.0  # 8192 more pixels above -1 only
    assert stability_scores(logits)[0] == pytest.approx(32768 / (32768 + 8192))


def test_runtime_never_imports_torch(models_dir) -> None:
    code = (
        "import sys, numpy as np\n"
        "from xrseg import SamEngine\n"
        "engine = SamEngine.from_cache()\n"
        "emb = engine.encode(np.zeros((48, 64, 3), np.uint8))\n"
        "engine.decode(emb, points=[[5.0, 5.0]], labels=[1])\n"
        "import xrseg.cli, xrseg.sam.build\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_gpu_provider_gives_the_cpu_masks(sample_images) -> None:  # type: ignore[no-untyped-def]
    """On a machine whose onnxruntime offers CUDA or TensorRT the engine picks it by default and its masks match
    the CPU's; elsewhere (CI, this project's CPU machines) there is nothing to compare."""
    import onnxruntime as ort

    gpu = [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in ort.get_available_providers()]
    if not gpu:
        pytest.skip(f"no GPU execution provider in this onnxruntime ({', '.join(ort.get_available_providers())})")
    on_gpu = SamEngine.from_cache()
    assert on_gpu.providers[0] == gpu[0]
    on_cpu = SamEngine.from_cache(providers=["CPUExecutionProvider"])
    image = sample_images["dog"]
    a = on_gpu.decode(on_gpu.encode(image), points=[[400.0, 300.0]], labels=[1])
    b = on_cpu.decode(on_cpu.encode(image), points=[[400.0, 300.0]], labels=[1])
    assert mask_iou(a.masks[b.best], b.masks[b.best]) >= 0.98


def test_an_unknown_execution_provider_is_an_error_not_a_silent_cpu_fallback() -> None:
    with pytest.raises(ModelError, match="execution provider NoSuchProvider is not in this onnxruntime"):
        SamEngine.from_cache(providers=["NoSuchProvider", "CPUExecutionProvider"])
    scene = Path(__file__).resolve().parents[1] / "scenes" / "desk-near"
    assert main(["replay", str(scene), "--no-mesh", "--providers", "NoSuchProvider"]) == 2
