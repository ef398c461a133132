"""``xrseg model build`` and ``xrseg model info``."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from xrseg.errors import ModelError

if TYPE_CHECKING:
    import numpy as np

    from xrseg.sam.choose import VariantChoice
    from xrseg.sam.runtime import RuntimeChoice

log = logging.getLogger(__name__)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("model", help="build and inspect the ONNX models")
    actions = parser.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    build = actions.add_parser("build", help="fetch the MobileSAM weights, export and quantise the ONNX graphs")
    build.add_argument("--force", action="store_true", help="rebuild every file even when the cache verifies")
    build.set_defaults(func=run_build)
    info = actions.add_parser("info", help="show the model cache, verifying every file's hash")
    info.add_argument("--json", action="store_true", help="print a JSON object")
    info.set_defaults(func=run_info)


def run_build(args: argparse.Namespace) -> int:
    from xrseg.sam.build import build_models

    report = build_models(force=args.force, chooser=_measure_variants, runtime_chooser=_measure_runtime)
    if report.up_to_date:
        print(f"models in {report.models_dir} are built and verified; nothing to do")
    else:
        rebuilt = ", ".join(report.rebuilt) or "no model file (manifest updated)"
        print(f"models in {report.models_dir}: rebuilt {rebuilt}; checkpoint from {report.checkpoint_source}")
    return run_info(argparse.Namespace(json=False))


def _parity_photos(what: str) -> list[np.ndarray] | None:
    """The parity photos at 640x480 (HxWx3 uint8 RGB); None (with a warning) when they cannot be fetched."""
    from xrseg.errors import DownloadError
    from xrseg.tools.testdata import ensure_sample_images, load_rgb

    try:
        return [load_rgb(path, (640, 480)) for path in ensure_sample_images().values()]
    except DownloadError as err:
        log.warning("cannot measure %s (%s); measured at the next build", what, err)
        return None


def _measure_variants(variants: list[str]) -> VariantChoice | None:
    """This machine's default variant, measured on the parity photos (:mod:`xrseg.sam.choose`); None when the
    photos cannot be fetched: the build stands with the float32 default."""
    from xrseg.sam.choose import choose_variant

    images = _parity_photos("the variants")
    if images is None:
        return None
    print("measuring the model variants on this machine ...", flush=True)
    choice = choose_variant(variants, images)
    print(f"default variant: {choice.reason}")
    return choice


def _measure_runtime(variant: str) -> RuntimeChoice | None:
    """This machine's threads and spinning per schedule for ``variant`` (:mod:`xrseg.sam.choose_runtime`); None
    when the parity photos cannot be fetched (ONNX Runtime's defaults run until the next build)."""
    from xrseg.sam.build import load_verified_variant
    from xrseg.sam.choose_runtime import choose_runtime

    images = _parity_photos("threads and spinning")
    if images is None:
        return None
    print("measuring threads and spinning on this machine ...", flush=True)
    choice = choose_runtime(*load_verified_variant(variant), images[0])
    for schedule, profile in choice.profiles.items():
        print(f"  {schedule.value}: {profile.describe()}")
    return choice


def run_info(args: argparse.Namespace) -> int:
    from xrseg.sam import weights
    from xrseg.sam.build import STEPS, file_status, read_manifest
    from xrseg.sam.engine import default_providers

    models = weights.models_dir()
    manifest = read_manifest()
    names = [weights.CHECKPOINT_NAME, *(step.output for step in STEPS)]
    statuses = {name: file_status(models, name, manifest) for name in names}
    recorded = (manifest or {}).get("files", {})
    info = {
        "models_dir": str(models),
        "manifest": manifest is not None,
        "files": {
            name: {
                "status": statuses[name],
                "bytes": (models / name).stat().st_size if (models / name).is_file() else None,
                "sha256": weights.CHECKPOINT_SHA256
                if name == weights.CHECKPOINT_NAME
                else recorded.get(name, {}).get("sha256"),
            }
            for name in names
        },
        "variants": (manifest or {}).get("variants", {}),
        "default_variant": (manifest or {}).get("default_variant"),
        "variant_choice": (manifest or {}).get("variant_choice"),
        "runtime_choice": (manifest or {}).get("runtime_choice"),
        "checkpoint_source": (manifest or {}).get("checkpoint", {}).get("source"),
        "providers": default_providers(),
        "tools": (manifest or {}).get("tools", {}),
    }
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        print(f"models: {models}")
        for name, entry in info["files"].items():
            size = f"{entry['bytes'] / 1e6:7.1f} MB" if entry["bytes"] else "        -"
            sha = (entry["sha256"] or "")[:16]
            print(f"  {entry['status']:10s} {size}  {name:22s} sha256 {sha}")
        for name, variant in info["variants"].items():
            marker = "*" if name == info["default_variant"] else " "
            pair = f"{variant['encoder']} + {variant['decoder']}"
            print(f"  {marker} variant {name:6s} {pair}: {variant['description']}")
        print(f"  execution providers (in order): {', '.join(info['providers'])}")
        if info["variant_choice"]:
            print(f"  default chosen on this machine: {info['variant_choice'].get('reason')}")
        _print_runtime()
    if any(status != "ok" for status in statuses.values()):
        raise ModelError(f"the model cache in {models} is incomplete or corrupted; run `xrseg model build`")
    return 0


def _print_runtime() -> None:
    from xrseg.sam.build import recorded_runtime
    from xrseg.sam.runtime import Schedule

    choice = recorded_runtime()
    measured = "measured on this machine" if choice.profiles else "not measured: ONNX Runtime's defaults"
    print(f"  threads and spinning ({measured}):")
    for schedule in Schedule:
        print(f"    {schedule.value:10s}  {choice.profile(schedule).describe()}")
