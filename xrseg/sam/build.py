"""``xrseg model build``: checkpoint -> ONNX graphs -> quantised variants, with a verified manifest.

Every file in the cache is produced by one step from the files before it, and the manifest records each
file's SHA-256. A build verifies what is there and redoes only the steps whose output is missing or does not
match its recorded hash, so a second build is a no-op and a corrupted file is rebuilt on its own.

Variants pair an encoder with a decoder (see :data:`VARIANTS`); ``SamEngine.from_cache()`` loads the default.
Only this module's *build* path imports torch (through :mod:`xrseg.sam.export`); loading a variant does not.
"""

from __future__ import annotations

import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from xrseg import __version__, jsonsafe
from xrseg.errors import ModelError
from xrseg.fileio import write_json_atomic
from xrseg.sam import weights

if TYPE_CHECKING:
    from xrseg.sam.choose import VariantChoice
    from xrseg.sam.runtime import RuntimeChoice

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1


@dataclass(frozen=True)
class Variant:
    name: str
    encoder: str
    decoder: str
    description: str


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant(
            "fp32", "encoder.fp32.onnx", "decoder.fp32.onnx", "float32 encoder and decoder (reference accuracy)"
        ),
        Variant(
            "int8",
            "encoder.int8.onnx",
            "decoder.fp32.onnx",
            "encoder with int8 dynamically quantised MatMul/Gemm weights; float32 decoder",
        ),
    )
}
DEFAULT_VARIANT = "fp32"
"""The default when nothing was measured (a build through the API without a chooser): float32, the reference.
``xrseg model build`` measures the variants on the machine and records its choice (:mod:`xrseg.sam.choose`):
int8 where its encoder is faster there and its masks agree with float32's. The decoder stays float32 in every
variant: dynamic int8 of all its products lost accuracy (IoU 0.96 against the reference). docs/benchmarks.md."""


@dataclass(frozen=True)
class Step:
    """Produces ``output`` (a file name in the models directory) from the files named in ``inputs``."""

    output: str
    inputs: tuple[str, ...]
    description: str
    run: Callable[[Path, Path], None]  # (models_dir, temporary output path)
    recipe: int = 1
    """Bump when the step's code changes what it writes: a cached file from an older recipe is rebuilt."""


@functools.lru_cache(maxsize=1)
def _load_sam(checkpoint: Path) -> Any:
    from xrseg.sam.export import load_mobile_sam

    return load_mobile_sam(checkpoint)


def _sam(models: Path) -> Any:
    return _load_sam(models / weights.CHECKPOINT_NAME)


def _export_encoder(models: Path, out: Path) -> None:
    from xrseg.sam.export import export_encoder

    export_encoder(_sam(models), out)


def _export_decoder(models: Path, out: Path) -> None:
    from xrseg.sam.export import export_decoder

    export_decoder(_sam(models), out)


def _quantize_encoder(models: Path, out: Path) -> None:
    from xrseg.sam.quantize import quantize_matmuls

    quantize_matmuls(models / "encoder.fp32.onnx", out)


STEPS: tuple[Step, ...] = (
    Step("encoder.fp32.onnx", (weights.CHECKPOINT_NAME,), "export encoder", _export_encoder),
    Step("decoder.fp32.onnx", (weights.CHECKPOINT_NAME,), "export decoder", _export_decoder, recipe=3),
    Step("encoder.int8.onnx", ("encoder.fp32.onnx",), "quantise encoder", _quantize_encoder),
)


def manifest_path(home: Path | None = None) -> Path:
    return weights.models_dir(home) / MANIFEST_NAME


def read_manifest(home: Path | None = None) -> dict[str, Any] | None:
    """The manifest as a dict, or None when there is none. A malformed manifest raises ModelError."""
    path = manifest_path(home)
    if not path.exists():
        return None
    try:
        data = jsonsafe.read_regular_file(path, 1 << 20, f"model manifest {path}", ModelError)
        manifest = jsonsafe.loads(data, f"model manifest {path} is unreadable", ModelError)
    except ModelError as err:
        raise ModelError(f"{err}; run `xrseg model build --force`") from err
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        raise ModelError(f"model manifest {path} has an unknown format; run `xrseg model build --force`")
    problem = _manifest_problem(manifest)
    if problem is not None:
        raise ModelError(f"model manifest {path} is malformed ({problem}); run `xrseg model build --force`")
    return manifest


def _manifest_problem(manifest: dict[str, Any]) -> str | None:
    """What is wrong with a parsed manifest's ``files``, ``variants`` and ``default_variant``, or None."""
    files = manifest.get("files", {})
    if not isinstance(files, dict) or not all(isinstance(e, dict) for e in files.values()):
        return "'files' must be an object of file entries"
    for name, entry in files.items():
        if not isinstance(entry.get("sha256", ""), str) or not isinstance(entry.get("recipe", 1), int):
            return f"files.{name} needs a 'sha256' string and an integer 'recipe'"
    variants = manifest.get("variants", {})
    if not isinstance(variants, dict):
        return "'variants' must be an object"
    for name, entry in variants.items():
        roles = entry if isinstance(entry, dict) else {}
        names = [roles.get(role) for role in ("encoder", "decoder")]
        if not all(isinstance(n, str) and n and Path(n).name == n and n != ".." for n in names):
            return f"variant {name!r} needs 'encoder' and 'decoder' file names (in the models folder)"
    if not isinstance(manifest.get("default_variant", DEFAULT_VARIANT), str):
        return "'default_variant' must be a string"
    return None


# (path, size, mtime_ns) -> sha256, so a process verifies each file once.
_VERIFIED: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _VERIFIED:
        _VERIFIED[key] = weights.sha256_file(path)
    return _VERIFIED[key]


def file_status(models: Path, name: str, manifest: dict[str, Any] | None) -> str:
    """One of "ok", "missing", "unrecorded" (not in the manifest), "outdated" (made by an older recipe of its
    step) or "corrupted" (its hash differs from the manifest's)."""
    path = models / name
    if not path.is_file():
        return "missing"
    if name == weights.CHECKPOINT_NAME:
        return "ok" if _file_sha256(path) == weights.CHECKPOINT_SHA256 else "corrupted"
    entry = (manifest or {}).get("files", {}).get(name, {})
    if entry.get("sha256") is None:
        return "unrecorded"
    step = next((s for s in STEPS if s.output == name), None)
    if step is not None and entry.get("recipe", 1) != step.recipe:
        return "outdated"
    return "ok" if _file_sha256(path) == entry["sha256"] else "corrupted"


def load_verified_variant(variant: str | None = None, home: Path | None = None) -> tuple[Path, Path]:
    """Paths of a variant's (encoder, decoder), after checking both against the manifest's hashes."""
    models = weights.models_dir(home)
    manifest = read_manifest(home)
    if manifest is None:
        raise ModelError(f"no models in {models}; run `xrseg model build`")
    name = variant or manifest.get("default_variant", DEFAULT_VARIANT)
    entry = manifest.get("variants", {}).get(name)
    if entry is None:
        known = ", ".join(sorted(manifest.get("variants", {})))
        raise ModelError(f"unknown model variant {name!r}; built variants: {known}")
    paths = []
    for role in ("encoder", "decoder"):
        status = file_status(models, entry[role], manifest)
        if status != "ok":
            raise ModelError(f"model file {entry[role]} is {status}; run `xrseg model build`")
        paths.append(models / entry[role])
    return paths[0], paths[1]


def recorded_runtime(home: Path | None = None) -> RuntimeChoice:
    """The threads and spinning ``xrseg model build`` measured on this machine (:mod:`xrseg.sam.runtime`); a
    choice without profiles (:meth:`RuntimeProfile.fallback` for every schedule) when none is recorded, or when
    the record is malformed (with a warning: the next build measures again)."""
    from xrseg.sam.runtime import RuntimeChoice

    try:
        choice = _runtime_in(read_manifest(home))
    except ValueError as err:
        log.warning("the manifest's runtime choice is malformed (%s); using ONNX Runtime's defaults", err)
        choice = None
    return choice or RuntimeChoice({}, os.cpu_count() or 1)


def _runtime_in(manifest: dict[str, Any] | None) -> RuntimeChoice | None:
    """``manifest``'s runtime choice, None when it has none; raises ValueError when it is malformed."""
    from xrseg.sam.runtime import RuntimeChoice

    record = (manifest or {}).get("runtime_choice")
    return None if record is None else RuntimeChoice.from_json(record)


def _runtime_recorded(manifest: dict[str, Any] | None) -> bool:
    """True when ``manifest`` holds a well-formed runtime choice (else the build measures one)."""
    try:
        return _runtime_in(manifest) is not None
    except ValueError:
        return False


def _tool_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    versions = {}
    for package in ("torch", "onnx", "onnxruntime", "mobilesam-mirror"):
        try:
            versions[package] = version(package)
        except PackageNotFoundError:
            versions[package] = "not installed"
    return versions


@dataclass(frozen=True)
class BuildReport:
    models_dir: Path
    rebuilt: tuple[str, ...]
    checkpoint_source: str

    manifest_rewritten: bool = False

    @property
    def up_to_date(self) -> bool:
        return not self.rebuilt and self.checkpoint_source == "cache" and not self.manifest_rewritten


def build_models(
    home: Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
    chooser: Callable[[list[str]], VariantChoice | None] | None = None,
    runtime_chooser: Callable[[str], RuntimeChoice | None] | None = None,
) -> BuildReport:
    """Make the cache complete and verified; return what had to be (re)built.

    ``chooser`` measures the built variants and picks this machine's default (``xrseg model build`` passes
    :func:`xrseg.sam.choose.choose_variant` on the parity photos); it runs when files were rebuilt or no choice
    is recorded; it returns None when it could not measure. Without a choice, an earlier recorded one stands,
    else :data:`DEFAULT_VARIANT`. ``runtime_chooser`` then measures the default variant's threads and spinning
    per schedule (:func:`xrseg.sam.choose_runtime.choose_runtime`), under the same conditions."""
    models = weights.models_dir(home)
    models.mkdir(parents=True, exist_ok=True)
    try:
        manifest = read_manifest(home)
    except ModelError as err:
        log.warning("%s; rebuilding everything", err)
        manifest = None
    if force:
        manifest = None
    checkpoint, source = weights.ensure_checkpoint(models)
    files: dict[str, Any] = dict((manifest or {}).get("files", {}))
    todo = _steps_to_run(models, manifest, force)
    if todo:
        _check_export_extra()
    with tqdm(total=len(todo), desc="model build", unit="step", disable=not progress or not todo) as bar:
        for step in todo:
            bar.set_postfix_str(step.description)
            files[step.output] = _run_step(models, step)
            bar.update(1)
    variants_changed = manifest is not None and set(manifest.get("variants", {})) != set(VARIANTS)
    choose_now = chooser is not None and (
        bool(todo) or variants_changed or "variant_choice" not in (manifest or {})
    )
    runtime_now = runtime_chooser is not None and (choose_now or not _runtime_recorded(manifest))
    if todo or manifest is None or source != "cache" or variants_changed or choose_now or runtime_now:
        kept = {} if todo or variants_changed or manifest is None else manifest
        new = _new_manifest(checkpoint, source, files, kept)
        write_json_atomic(manifest_path(home), new)
        if chooser is not None and choose_now:
            choice = chooser(sorted(VARIANTS))
            if choice is not None:  # None: nothing could be measured; the default stands, measured next build
                new |= {"default_variant": choice.variant, "variant_choice": choice.to_json()}
                new.pop("runtime_choice", None)  # measured on the previous default
                write_json_atomic(manifest_path(home), new)
        if runtime_chooser is not None and runtime_now:
            runtime = runtime_chooser(str(new["default_variant"]))
            if runtime is not None:
                new["runtime_choice"] = runtime.to_json()
                write_json_atomic(manifest_path(home), new)
        return BuildReport(models, tuple(step.output for step in todo), source, manifest_rewritten=True)
    return BuildReport(models, tuple(step.output for step in todo), source)


def _steps_to_run(models: Path, manifest: dict[str, Any] | None, force: bool) -> list[Step]:
    """The steps whose output is missing or not verified, and every step made from one of those, in order."""
    todo = [step for step in STEPS if force or file_status(models, step.output, manifest) != "ok"]
    # A rebuilt file invalidates everything made from it (STEPS is in dependency order). A re-fetched
    # checkpoint does not: its verified hash makes it the same file.
    todo_names = {s.output for s in todo}
    for step in STEPS:
        if todo_names.intersection(step.inputs):
            todo_names.add(step.output)
    return [step for step in STEPS if step.output in todo_names]


def _run_step(models: Path, step: Step) -> dict[str, Any]:
    """Run one step into a temporary file renamed into place; return its manifest entry."""
    log.info("%s -> %s", step.description, step.output)
    started = time.perf_counter()
    tmp = models / f".{step.output}.partial"
    try:
        step.run(models, tmp)
        os.replace(tmp, models / step.output)
    finally:
        tmp.unlink(missing_ok=True)
    path = models / step.output
    entry = {"sha256": _file_sha256(path), "bytes": path.stat().st_size, "recipe": step.recipe}
    log.info("%s took %.1f s", step.description, time.perf_counter() - started)
    return entry


def _new_manifest(checkpoint: Path, source: str, files: dict[str, Any], kept: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a complete cache: every step's file entry, the variants, the tools that made them, and
    the default variant with the choice that made it, from ``kept`` (the previous manifest) when it has one."""
    choice: dict[str, Any] = {key: kept[key] for key in ("variant_choice", "runtime_choice") if key in kept}
    default = (
        kept.get("default_variant")
        if "variant_choice" in choice and kept.get("default_variant") in VARIANTS
        else DEFAULT_VARIANT
    )
    from xrseg.sam.export import OPSET

    return {
        "format": MANIFEST_FORMAT,
        "xrseg_version": __version__,
        "opset": OPSET,
        "checkpoint": {"file": checkpoint.name, "sha256": weights.CHECKPOINT_SHA256, "source": source},
        "files": {name: files[name] for name in (s.output for s in STEPS)},
        "variants": {
            v.name: {"encoder": v.encoder, "decoder": v.decoder, "description": v.description}
            for v in VARIANTS.values()
        },
        "default_variant": default,
        **choice,
        "tools": _tool_versions(),
        "built_unix_s": int(time.time()),
    }


def _check_export_extra() -> None:
    import importlib.util

    missing = [m for m in ("torch", "mobile_sam", "onnx") if importlib.util.find_spec(m) is None]
    if missing:
        raise ModelError(
            f"building the models needs the export extra ({', '.join(missing)} missing): "
            "pip install 'xrseg[export]'"
        )
