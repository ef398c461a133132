"""Shared fixtures: the real model (built on demand) and real photographs.

Tests whose inputs can be missing (the export extra's reference model, a quantised variant) skip without them,
and fail instead when ``XRSEG_REQUIRE_ALL=1`` (as CI sets it), so a check that can fail is never skipped there.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import numpy as np
import pytest

from xrseg.errors import ModelError

if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    # A test run started in the background of a non-interactive shell (`nohup ... &`) inherits SIGINT ignored,
    # and so would every process it starts: the Ctrl-C tests would test nothing. They are about a SIGINT that
    # arrives, so the suite takes Python's own handler back (children then start with the default).
    signal.signal(signal.SIGINT, signal.default_int_handler)

HAS_REFERENCE = all(importlib.util.find_spec(m) is not None for m in ("torch", "mobile_sam"))
REQUIRE_ALL = os.environ.get("XRSEG_REQUIRE_ALL") == "1"
"""``XRSEG_REQUIRE_ALL=1``: a test whose inputs are missing fails instead of skipping."""

TestFunction = TypeVar("TestFunction", bound=Callable[..., Any])


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the running test, or fail it when ``XRSEG_REQUIRE_ALL=1``."""
    if REQUIRE_ALL:
        pytest.fail(f"{reason} (XRSEG_REQUIRE_ALL=1: missing inputs fail)", pytrace=False)
    pytest.skip(reason)


def requires_reference(test: TestFunction) -> TestFunction:
    """Runs ``test`` only with the export extra (torch, mobile_sam); see :func:`skip_or_fail` otherwise."""
    if HAS_REFERENCE:
        return test

    @functools.wraps(test)
    def missing(*args: Any, **kwargs: Any) -> None:
        skip_or_fail("needs the export extra (torch, mobile_sam)")

    return missing  # type: ignore[return-value]


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
