"""The model cache a batch's workers load their engines from, made ready once per machine.

Every worker of a machine loads the same files from ``$XRSEG_HOME``. :func:`prepare_model_cache` verifies them
and, where allowed and they are missing, builds them (``xrseg model build``: needs the ``export`` extra) under
a file lock, so that the workers of one machine neither build twice nor load a half-written file.
"""

from __future__ import annotations

import fcntl
import logging
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from xrseg.errors import ModelError

log = logging.getLogger(__name__)

LOCK_NAME = ".batch-prepare.lock"


@contextmanager
def _locked(home: Path) -> Iterator[None]:
    home.mkdir(parents=True, exist_ok=True)
    with (home / LOCK_NAME).open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def prepare_model_cache(variant: str | None = None, build: bool = False) -> str:
    """Verify this machine's model cache for ``variant`` (None: the manifest's default); with ``build``, build
    it first when it is missing or corrupted. Returns one line saying what was found or done.

    Raises :class:`~xrseg.errors.ModelError` when the cache is not usable (and could not be built).
    """
    from xrseg.sam.build import load_verified_variant
    from xrseg.sam.weights import xrseg_home

    home = xrseg_home()
    with _locked(home):
        try:
            encoder, decoder = load_verified_variant(variant)
            return f"{socket.gethostname()}: {encoder.name} + {decoder.name} verified in {encoder.parent}"
        except ModelError:
            if not build:
                raise
            log.warning("%s: the model cache in %s is not ready: building it", socket.gethostname(), home)
        from xrseg.sam.build import build_models

        build_models(progress=False)
        encoder, decoder = load_verified_variant(variant)
        return f"{socket.gethostname()}: built {encoder.name} + {decoder.name} in {encoder.parent}"
