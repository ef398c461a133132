"""Work folders in the system temp directory that never outlive their run, even one killed with SIGKILL.

:func:`scratch_dir` makes ``<tmp>/<prefix><random>/`` and holds an exclusive ``flock`` on ``.lock`` inside it
for as long as it is in use; leaving the block (normally, by an error, Ctrl-C or SIGTERM: see
:mod:`xrseg.interrupts`) removes the folder. A process killed with SIGKILL cannot remove it, but the kernel
releases its lock, so the next :func:`scratch_dir` with the same prefix removes every folder of that prefix whose
lock nobody holds. A lock, not a pid: pids are reused and differ between containers sharing ``/tmp``.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

logger = logging.getLogger(__name__)

LOCK_NAME = ".lock"
UNLOCKED_GRACE_S = 60.0
"""A folder without its lock file is only taken for stale this long after it was made (the lock comes a moment
after the folder)."""


def _lock(path: Path, *, create: bool, wait: bool) -> int | None:
    """An open descriptor holding an exclusive flock on ``path``, or None when another process holds it."""
    fd = os.open(path, (os.O_CREAT if create else 0) | os.O_RDWR | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _is_stale(folder: Path) -> bool:
    """True (and the folder removed) when no live process holds ``folder``'s lock."""
    try:
        fd = _lock(folder / LOCK_NAME, create=False, wait=False)
    except FileNotFoundError:
        if time.time() - folder.stat().st_mtime < UNLOCKED_GRACE_S:
            return False
        shutil.rmtree(folder, ignore_errors=True)
        return True
    if fd is None:
        return False
    try:
        shutil.rmtree(folder, ignore_errors=True)
    finally:
        os.close(fd)
    return True


def remove_stale(prefix: str, temp_dir: Path | None = None) -> int:
    """Remove this user's folders ``<temp_dir>/<prefix>*`` that no running process holds; returns how many."""
    root = Path(temp_dir or tempfile.gettempdir())
    removed = 0
    for entry in root.iterdir() if root.is_dir() else ():
        try:
            if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
                continue
            if entry.stat().st_uid == os.getuid() and _is_stale(entry):
                removed += 1
        except OSError as err:  # gone meanwhile, or not ours to read
            logger.debug("skipped %s: %s", entry, err)
    if removed:
        logger.warning("removed %d work folder(s) %s* left in %s by killed runs", removed, prefix, root)
    return removed


@contextlib.contextmanager
def scratch_dir(prefix: str, temp_dir: Path | None = None) -> Iterator[Path]:
    """A private (0700) work folder ``<temp_dir or the system temp dir>/<prefix><random>``, removed on leaving.

    Stale folders of the same prefix (their run was killed) are removed first (:func:`remove_stale`)."""
    remove_stale(prefix, temp_dir)
    folder = Path(tempfile.mkdtemp(prefix=prefix, dir=temp_dir))
    fd: int | None = None
    try:
        fd = _lock(folder / LOCK_NAME, create=True, wait=True)
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
        if fd is not None:
            os.close(fd)
