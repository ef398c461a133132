"""Shared fixtures: the real model (built on demand) and real photographs."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from xrseg.errors import ModelError

HAS_REFERENCE = all(importlib.util.find_spec(m) is not None for m in ("torch", "mobile_sam"))
requires_reference = pytest.mark.skipif(not HAS_REFERENCE, reason="needs the export extra (torch, mobile_sam)")


@pytest.fixture(scope="session")
def engine():  # type: ignore[no-untyped-def]
    """The default SamEngine from the model cache, building the cache first if it is missing."""
    from xrseg.sam.engine import SamEngine

    try:
        return SamEngine.from_cache()
    except ModelError:
        from xrseg.sam.build import build_models

        build_models(progress=False)
        return SamEngine.from_cache()


@pytest.fixture(scope="session")
def sample_images() -> dict[str, np.ndarray]:
    """Segment Anything's four sample photographs as HxWx3 uint8 RGB, by name."""
    from xrseg.tools.testdata import ensure_sample_images, load_rgb

    return {name: load_rgb(path) for name, path in ensure_sample_images().items()}


@pytest.fixture(scope="session")
def models_dir(engine) -> Path:  # type: ignore[no-untyped-def]
    from xrseg.sam.weights import models_dir

    return models_dir()
