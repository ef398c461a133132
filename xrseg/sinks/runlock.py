"""One run at a time in an ``--out`` folder, and a killed run's temporary files removed by the next run anywhere.

A run holds an exclusive ``flock`` on ``<out>/.xrseg-run.lock`` (holding its pid) while it writes, so a second
run into the same folder is refused instead of clearing files under the first (``--overwrite`` included). It
also leaves a note in ``$XRSEG_HOME/runs/`` naming its folder, removed when it ends. A run killed with SIGKILL
cannot remove the note, but the kernel releases its lock: every later run reads the notes, and for each folder
whose lock nobody holds removes the temporary files the killed run left there
(:func:`xrseg.sinks.outdir.remove_leftovers`) and the note. Notes are best-effort: a home that cannot be
written only loses the cleaning of other folders.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
from pathlib import Path

from xrseg.errors import InputError
from xrseg.sinks.outdir import remove_leftovers

logger = logging.getLogger(__name__)

LOCK_NAME = ".xrseg-run.lock"


def notes_dir() -> Path:
    from xrseg.sam.weights import xrseg_home

    return xrseg_home() / "runs"


def _note_path(out_dir: Path) -> Path:
    return notes_dir() / (hashlib.sha256(str(out_dir).encode()).hexdigest()[:24] + ".path")


def _try_lock(path: Path, create: bool) -> int | None:
    """A descriptor holding ``path``'s exclusive flock, or None when a live process holds it."""
    fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | (os.O_CREAT if create else 0), 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


class OutDirLock:
    """The lock of a run on ``out_dir`` (absolute); :meth:`release` when the run is over."""

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir.resolve()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        lock_path = self.out_dir / LOCK_NAME
        fd = _try_lock(lock_path, create=True)
        if fd is None:
            holder = lock_path.read_text(errors="replace").strip() or "?"
            raise InputError(f"--out {out_dir} is being written by another xrseg run (pid {holder})")
        self._fd: int | None = fd
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._note = _note_path(self.out_dir)
        with contextlib.suppress(OSError):
            self._note.parent.mkdir(parents=True, exist_ok=True)
            self._note.write_text(str(self.out_dir))

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self._note.unlink(missing_ok=True)
        (self.out_dir / LOCK_NAME).unlink(missing_ok=True)
        os.close(self._fd)
        self._fd = None


def clean_abandoned_runs() -> int:
    """Remove the temporary files of killed runs from the folders the notes name (see the module docstring);
    returns how many folders were cleaned."""
    try:
        notes = sorted(notes_dir().glob("*.path"))
    except OSError:
        return 0
    cleaned = 0
    for note in notes:
        try:
            cleaned += _clean_one(note)
        except OSError as err:
            logger.debug("skipped %s: %s", note, err)
    return cleaned


def _clean_one(note: Path) -> int:
    out_dir = Path(note.read_text().strip())
    if not out_dir.is_dir():
        note.unlink(missing_ok=True)
        return 0
    try:
        fd = _try_lock(out_dir / LOCK_NAME, create=False)
    except FileNotFoundError:  # the run ended (it removes the lock before the note) or never began
        note.unlink(missing_ok=True)
        return 0
    if fd is None:
        return 0  # running
    try:
        removed = remove_leftovers(out_dir)
        (out_dir / LOCK_NAME).unlink(missing_ok=True)
        note.unlink(missing_ok=True)
    finally:
        os.close(fd)
    return 1 if removed else 0
