"""``xrseg bench``: latency of every stage, against the official MobileSAM predictor in the same run.

Encoder and decoder are timed on Segment Anything's four sample photographs resized to 640x480, each call
timed alone after warm-up calls. The decoder call is the public ``SamEngine.decode`` (prompt mapping, the ONNX
graph, three masks upsampled to 640x480, stability scores). The reference is the official MobileSAM
``SamPredictor`` (``set_image`` and ``predict(multimask_output=True)``) when the ``export`` extra is installed.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np

from xrseg.timing import time_calls_ms

log = logging.getLogger(__name__)

IMAGE_SIZE = (640, 480)


@dataclass(frozen=True)
class BenchConfig:
    encoder_runs: int = 12
    decoder_runs: int = 120
    reference_encoder_runs: int = 6
    reference_decoder_runs: int = 40
    threads: int | None = None
    variants: tuple[str, ...] | None = None
    reference: bool = True
    lift: bool = True
    stream: bool = True
    click: bool = True


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    array = np.asarray(samples_ms, dtype=np.float64)
    return {
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "min": float(array.min()),
        "n": float(len(array)),
    }


def _images() -> list[np.ndarray]:
    from xrseg.tools.testdata import ensure_sample_images, load_rgb

    return [load_rgb(path, IMAGE_SIZE) for path in ensure_sample_images().values()]


def _prompts(count: int) -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    width, height = IMAGE_SIZE
    return [rng.uniform([0.2 * width, 0.2 * height], [0.8 * width, 0.8 * height], (1, 2)) for _ in range(count)]


def machine() -> dict[str, Any]:
    import onnxruntime as ort

    from xrseg.sam.engine import default_providers

    flags: list[str] = []
    model = platform.processor()
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name") and not model:
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    present = set(line.split(":", 1)[1].split())
                    flags = sorted(present & {"avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8"})
                    break
    except OSError:
        pass
    return {
        "cpu": model or platform.machine(),
        "cores": os.cpu_count(),
        "simd": flags,
        "onnxruntime": ort.__version__,
        "providers": default_providers(),
        "python": platform.python_version(),
        "runtime": _runtime_profiles(),
    }


def _runtime_profiles() -> dict[str, str]:
    """Each schedule's threads and spinning as recorded by ``xrseg model build`` (:mod:`xrseg.sam.runtime`)."""
    from xrseg.sam.build import recorded_runtime
    from xrseg.sam.runtime import Schedule

    choice = recorded_runtime()
    suffix = "" if choice.profiles else " (not measured)"
    return {s.value: choice.profile(s).describe() + suffix for s in Schedule}


def bench_engine(variant: str, images: list[np.ndarray], config: BenchConfig) -> dict[str, Any]:
    from xrseg.sam.engine import SamEngine

    engine = SamEngine.from_cache(variant=variant, threads=config.threads)
    encode_ms = time_calls_ms([partial(engine.encode, im) for im in images], config.encoder_runs)
    embeddings = [engine.encode(im) for im in images]
    calls: list[Callable[[], object]] = [
        partial(engine.decode, embeddings[i % len(embeddings)], points=p, labels=[1])
        for i, p in enumerate(_prompts(16))
    ]
    decode_ms = time_calls_ms(calls, config.decoder_runs, warmup=4)
    return {"encoder_ms": percentiles(encode_ms), "decoder_ms": percentiles(decode_ms)}


def bench_reference(images: list[np.ndarray], config: BenchConfig) -> dict[str, Any] | None:
    """The official MobileSAM predictor, or None without the export extra."""
    import importlib.util

    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("mobile_sam") is None:
        return None
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # timm's deprecation and registry notices on import
        from mobile_sam import SamPredictor

    from xrseg.sam.export import load_mobile_sam
    from xrseg.sam.weights import models_dir

    torch.set_num_threads(config.threads or os.cpu_count() or 1)
    predictor = SamPredictor(load_mobile_sam(models_dir() / "mobile_sam.pt"))

    def encode(image: np.ndarray) -> None:
        with torch.no_grad():
            predictor.set_image(image)

    encode_ms = time_calls_ms([partial(encode, im) for im in images], config.reference_encoder_runs)
    encode(images[0])
    prompts = _prompts(16)

    def decode(point: np.ndarray) -> None:
        with torch.no_grad():
            predictor.predict(point_coords=point, point_labels=np.array([1]), multimask_output=True)

    decode_ms = time_calls_ms([partial(decode, p) for p in prompts], config.reference_decoder_runs, warmup=4)
    return {"encoder_ms": percentiles(encode_ms), "decoder_ms": percentiles(decode_ms), "torch": torch.__version__}


def run_bench(config: BenchConfig) -> dict[str, Any]:
    """Run every benchmark; returns a JSON-ready dict (flat headline keys plus details)."""
    from xrseg.sam.build import read_manifest

    manifest = read_manifest()
    if manifest is None:
        from xrseg.errors import ModelError

        raise ModelError("no models built; run `xrseg model build`")
    default = manifest.get("default_variant", "fp32")
    variants = list(config.variants or sorted(manifest.get("variants", {})))
    images = _images()
    report: dict[str, Any] = {"machine": machine(), "image_size": list(IMAGE_SIZE), "default_variant": default}
    results = {}
    for variant in variants:
        log.info("timing variant %s", variant)
        results[variant] = bench_engine(variant, images, config)
    report["variants"] = results
    headline = results.get(default) or next(iter(results.values()))
    report["encoder_p50_ms"] = headline["encoder_ms"]["p50"]
    report["encoder_p99_ms"] = headline["encoder_ms"]["p99"]
    report["decoder_p50_ms"] = headline["decoder_ms"]["p50"]
    report["decoder_p99_ms"] = headline["decoder_ms"]["p99"]
    if config.reference:
        report.update(_reference_report(images, config, report["encoder_p50_ms"], report["decoder_p50_ms"]))
    if config.lift:
        report.update(_lift_report())
    if config.stream:
        report.update(_stream_report(default, images, config))
    if config.click:
        from xrseg.sam.engine import SamEngine
        from xrseg.tools.bench_click import click_report

        log.info("replaying the bundled scenes in real time, with and without look-ahead")
        from xrseg.sam.runtime import Schedule

        engine = SamEngine.from_cache(variant=default, threads=config.threads, schedule=Schedule.CONCURRENT)
        engine.warm_up()  # as a live run does before its stream starts
        report.update(click_report(engine))
    return report


def _reference_report(
    images: list[np.ndarray], config: BenchConfig, encoder_p50_ms: float, decoder_p50_ms: float
) -> dict[str, Any]:
    """The official predictor's times and our speed-up over them (empty when it is not installed)."""
    report: dict[str, Any] = {}
    log.info("timing the official MobileSAM predictor")
    reference = bench_reference(images, config)
    if reference is not None:
        report["reference"] = reference
        report["reference_encoder_p50_ms"] = reference["encoder_ms"]["p50"]
        report["reference_decoder_p50_ms"] = reference["decoder_ms"]["p50"]
        report["encoder_speedup"] = reference["encoder_ms"]["p50"] / encoder_p50_ms
        report["decoder_speedup"] = reference["decoder_ms"]["p50"] / decoder_p50_ms
    return report


def _lift_report() -> dict[str, Any]:
    """Times of lifting, TSDF integration, mesh export, mask choice and keyframe analysis."""
    from xrseg.tools.bench_lift import (
        bench_extract_and_export,
        bench_keyframe_analysis,
        bench_lift,
        bench_mask_choice,
        bench_tsdf_integrate,
    )

    report: dict[str, Any] = {}
    log.info("timing lifting, TSDF integration and mesh export")
    lift = percentiles(bench_lift())
    tsdf = percentiles(bench_tsdf_integrate())
    export = percentiles(bench_extract_and_export())
    choice = percentiles(bench_mask_choice())
    analysis = percentiles(bench_keyframe_analysis())
    report["mask_choice_ms"] = choice["p50"]
    report["keyframe_analysis_ms"] = analysis["p50"]
    report["lift_ms"] = lift["p50"]
    report["tsdf_integrate_ms"] = tsdf["p50"]
    report["extract_export_ms"] = export["p50"]
    report["lifting"] = {
        "mask_choice_ms": choice,
        "keyframe_analysis_ms": analysis,
        "lift_ms": lift,
        "tsdf_integrate_ms": tsdf,
        "extract_export_ms": export,
    }
    return report


def _stream_report(default: str, images: list[np.ndarray], config: BenchConfig) -> dict[str, Any]:
    """Times of the remote encoder over loopback and the event publisher's rate."""
    from xrseg.sam.engine import SamEngine
    from xrseg.tools.bench_stream import bench_publisher, bench_remote_roundtrip

    report: dict[str, Any] = {}
    log.info("timing the remote encoder over loopback and the event publisher")
    engine = SamEngine.from_cache(variant=default, threads=config.threads)
    roundtrip = bench_remote_roundtrip(engine, images[0], n=4)
    publisher = bench_publisher(n=300)
    report["remote_encoder"] = roundtrip.__dict__
    report["remote_overhead_p50_ms"] = roundtrip.overhead_p50_ms
    report["publisher_events_per_s"] = publisher.events_per_s
    report["publisher"] = publisher.__dict__
    return report


def format_report(report: dict[str, Any]) -> str:
    """A human-readable table of the report."""
    lines = [
        f"machine: {report['machine']['cpu']}, {report['machine']['cores']} cores, "
        f"SIMD {' '.join(report['machine']['simd']) or '-'}, onnxruntime {report['machine']['onnxruntime']}"
        f" ({', '.join(report['machine']['providers'])})",
        *(f"{name} runs: {profile}" for name, profile in report["machine"].get("runtime", {}).items()),
        f"images: 4 photos at {report['image_size'][0]}x{report['image_size'][1]}",
        "",
        f"{'stage':34s} {'p50 ms':>9s} {'p99 ms':>9s} {'vs reference':>13s}",
    ]
    reference = report.get("reference")
    for name, result in report["variants"].items():
        for stage in ("encoder", "decoder"):
            stats = result[f"{stage}_ms"]
            ratio = ""
            if reference:
                ratio = f"{reference[f'{stage}_ms']['p50'] / stats['p50']:.2f}x faster"
            marker = " (default)" if name == report["default_variant"] else ""
            label = f"xrseg {stage} [{name}]{marker}"
            lines.append(f"{label:34s} {stats['p50']:9.1f} {stats['p99']:9.1f} {ratio:>13s}")
    if reference:
        for stage in ("encoder", "decoder"):
            stats = reference[f"{stage}_ms"]
            lines.append(
                f"{'MobileSAM PyTorch ' + stage:34s} {stats['p50']:9.1f} {stats['p99']:9.1f} {'1.00x':>13s}"
            )
    for key, label in (
        ("mask_choice_ms", "depth-aware mask choice"),
        ("keyframe_analysis_ms", "cone search: keyframe analysis"),
        ("lift_ms", "lift mask to points"),
        ("tsdf_integrate_ms", "TSDF integrate"),
        ("extract_export_ms", "mesh extract + PLY/OBJ/GLB"),
    ):
        if "lifting" in report:
            stats = report["lifting"][key]
            lines.append(f"{label:34s} {stats['p50']:9.1f} {stats['p99']:9.1f}")
    if "remote_encoder" in report:
        remote = report["remote_encoder"]
        label = "remote encode overhead (loopback)"
        lines.append(f"{label:34s} {remote['overhead_p50_ms']:9.1f} {remote['overhead_p99_ms']:9.1f}")
        lines.append(f"publisher: {report['publisher_events_per_s']:.0f} selection events/s with 640x480 masks")
    lines.extend(_click_lines(report))
    return "\n".join(lines)


def _click_lines(report: dict[str, Any]) -> list[str]:
    """The click-to-mask table of :mod:`xrseg.tools.bench_click` (empty without its runs)."""
    lines: list[str] = []
    for run in report.get("click", []):
        mode = "look-ahead" if run["look_ahead"] else "decode at press"
        for key, label in (("click_to_mask_ms", "click to mask"), ("gaze_to_mask_ms", "gaze to mask")):
            p50, p99 = run[key]["p50"], run[key]["p99"]
            if p50 is not None:
                lines.append(f"{label + ', ' + mode:34s} {p50:9.1f} {p99:9.1f}")
        hits = f"{run['look_ahead_hits']} of {run['presses']} presses answered ahead" if run["look_ahead"] else ""
        lines.append(f"  ({run['scene']} replayed in real time{'; ' + hits if hits else ''})")
    if report.get("click_to_mask_p50_ms") is not None:
        pooled = (
            ("click to mask, every press", "click_to_mask_p50_ms", "click_to_mask_p99_ms"),
            (
                "  a keyframe had seen the target",
                "click_to_mask_keyframe_ready_p50_ms",
                "click_to_mask_keyframe_ready_p99_ms",
            ),
        )
        for label, p50_key, p99_key in pooled:
            if report[p50_key] is not None:
                lines.append(f"{label:34s} {report[p50_key]:9.1f} {report[p99_key]:9.1f}")
        wait = report["keyframe_wait"]
        if wait["n"]:
            label = f"  waited for a keyframe ({wait['n']})"
            lines.append(f"{label:34s} {wait['p50']:9.1f} {wait['p99']:9.1f}")
    return lines
