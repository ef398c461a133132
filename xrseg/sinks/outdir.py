"""The ``--out`` folder of a run: refuse one that holds another run, clear it on ``--overwrite``, and remove
the temporary files a killed run left behind.

A run writes these entries (:data:`RUN_ENTRIES`); while writing, its sinks use temporary names that start with
a dot (:func:`is_leftover`): ``.overlay.mp4.partial.mp4`` (the video until it is complete),
``meshes/.object_00003.<random>.tmp/`` (a mesh's formats before they are moved into place),
``.summary.json.<random>`` and ``selections/.0003.png.<random>`` (atomic writes). A run killed with SIGKILL
cannot remove them; the next run into the same folder does, before it writes anything.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from xrseg.errors import InputError

logger = logging.getLogger(__name__)

RUN_ENTRIES = frozenset({"summary.json", "selections", "meshes", "overlay.mp4", "contact_sheet.png"})
"""What a run writes into ``--out``: a folder holding any of these holds a run."""
_RUN_FOLDERS = ("selections", "meshes")
_LEFTOVER_SUFFIXES = (".partial.mp4", ".tmp")
_ATOMIC_PREFIXES = tuple(f".{name}." for name in RUN_ENTRIES)


def is_leftover(path: Path, in_run_folder: bool = False) -> bool:
    """True for a temporary file or folder of an interrupted run (see the module docstring). Inside a run's
    own folders (``selections/``, ``meshes/``) every dot-name is one: nothing final there starts with a dot."""
    name = path.name
    if not name.startswith("."):
        return False
    return in_run_folder or name.endswith(_LEFTOVER_SUFFIXES) or name.startswith(_ATOMIC_PREFIXES)


def remove_leftovers(out_dir: Path) -> int:
    """Remove an interrupted run's temporary files from ``out_dir`` and its run folders; returns how many."""
    removed = 0
    folders = [(out_dir, False), *((out_dir / name, True) for name in _RUN_FOLDERS)]
    for folder, in_run_folder in folders:
        if not folder.is_dir() or folder.is_symlink():
            continue
        for entry in list(folder.iterdir()):
            if not is_leftover(entry, in_run_folder):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            removed += 1
    if removed:
        logger.warning("removed %d temporary file(s) left in %s by an interrupted run", removed, out_dir)
    return removed


def prepare_out_dir(out_dir: Path | None, overwrite: bool = False) -> None:
    """Make ``out_dir`` ready for a run: leftovers of an interrupted run are removed; a folder holding another
    run's outputs (:data:`RUN_ENTRIES`) is refused unless ``overwrite``, which removes those outputs first.
    Anything else in the folder is not ours and is left alone. Raises :class:`InputError`."""
    if out_dir is None or not out_dir.exists():
        return
    if not out_dir.is_dir():
        raise InputError(f"--out {out_dir} exists and is not a directory")
    remove_leftovers(out_dir)
    earlier = sorted(e for e in out_dir.iterdir() if e.name in RUN_ENTRIES)
    if earlier and not overwrite:
        raise InputError(
            f"--out {out_dir} holds another run ({', '.join(e.name for e in earlier)}): "
            "pass --overwrite to replace it, or choose another folder"
        )
    for entry in earlier:
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
    if earlier:
        logger.info("cleared the earlier run in %s (--overwrite)", out_dir)
