"""``xrseg model build`` and ``xrseg model info``."""

from __future__ import annotations

import argparse
import json
import logging
from typing import TYPE_CHECKING

from xrseg.errors import ModelError

if TYPE_CHECKING:
    from xrseg.sam.choose import VariantChoice

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

    report = build_models(force=args.force, chooser=_measure_variants)
    if report.up_to_date:
        print(f"models in {report.models_dir} are built and verified; nothing to do")
    else:
        rebuilt = ", ".join(report.rebuilt) or "no model file (manifest updated)"
        print(f"models in {report.models_dir}: rebuilt {rebuilt}; checkpoint from {report.checkpoint_source}")
    return run_info(argparse.Namespace(json=False))


def _measure_variants(variants: list[str]) -> VariantChoice | None:
    """This machine's default variant, measured on the parity photos (:mod:`xrseg.sam.choose`); None (with a
    warning) when the photos cannot be fetched: the build stands with the float32 default."""
    from xrseg.errors import DownloadError
    from xrseg.sam.choose import choose_variant
    from xrseg.tools.testdata import ensure_sample_images, load_rgb

    try:
        images = [load_rgb(path, (640, 480)) for path in ensure_sample_images().values()]
    except DownloadError as err:
        log.warning("cannot measure the variants (%s); the default stays float32 until the next build", err)
        return None
    print("measuring the model variants on this machine ...", flush=True)
    choice = choose_variant(variants, images)
    print(f"default variant: {choice.reason}")
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
    if any(status != "ok" for status in statuses.values()):
        raise ModelError(f"the model cache in {models} is incomplete or corrupted; run `xrseg model build`")
    return 0
