"""Which sessions a batch runs: paths and glob patterns expanded, and a result folder name for each."""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from xrseg.errors import InputError

log = logging.getLogger(__name__)

_GLOB_CHARS = frozenset("*?[")


@dataclass(frozen=True)
class BatchSession:
    """A session directory and the name of its result folder under the batch's output folder."""

    path: Path
    """Absolute path of the session directory."""
    name: str


def expand_sessions(patterns: Iterable[str | Path], out_dir: Path | None = None) -> list[BatchSession]:
    """Session directories named by ``patterns`` (paths, or glob patterns the shell did not expand), sorted and
    without repeats. Files are skipped (``scenes/*`` also names the recipes), as is ``out_dir`` itself.
    A directory is taken even when it is not a valid session: its run fails and says why.

    Raises :class:`InputError` when a pattern matches nothing or nothing is left, or when two sessions would
    share a result folder name.
    """
    found: dict[Path, None] = {}
    skipped: list[str] = []
    for pattern in patterns:
        text = str(pattern)
        matches = [Path(text)] if Path(text).exists() or not _GLOB_CHARS & set(text) else _glob(text)
        if not matches or not matches[0].exists():
            raise InputError(f"no session at {text}")
        for match in matches:
            if match.is_dir():
                found[match.resolve()] = None
            else:
                skipped.append(str(match))
    if skipped:
        log.info("skipped %d path(s) that are not directories: %s", len(skipped), ", ".join(skipped))
    out = out_dir.resolve() if out_dir is not None else None
    paths = sorted(p for p in found if p != out)
    if not paths:
        raise InputError("no session directories among the paths given")
    return _named(paths)


def _glob(pattern: str) -> list[Path]:
    return [Path(p) for p in sorted(glob.glob(pattern))]


def _named(paths: list[Path]) -> list[BatchSession]:
    """Each session's result folder is its directory's name; where two share one, ``<parent>-<name>``."""
    counts: dict[str, int] = {}
    for path in paths:
        counts[path.name] = counts.get(path.name, 0) + 1
    named: dict[str, Path] = {}
    for path in paths:
        name = path.name if counts[path.name] == 1 else f"{path.parent.name}-{path.name}"
        if name in named:
            raise InputError(f"sessions {named[name]} and {path} would share the result folder {name!r}")
        named[name] = path
    return [BatchSession(path, name) for name, path in named.items()]
