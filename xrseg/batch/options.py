"""The options of the task's command that a batch passes to every session (``xrseg batch ... -- --no-video``):
checked once before anything runs, and fingerprinted so that a result made with other options is not reused."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json

from xrseg.batch.records import BatchTask
from xrseg.batch.tasks import command_args
from xrseg.errors import InputError

BATCH_OWNED = {
    "out": "--out (each session writes into its own folder under the batch's --out)",
    "overwrite": "--overwrite (the batch replaces a session's earlier results itself; --force reruns them)",
    "threads": "--threads (set from the cores and --workers; see --cpus-per-session)",
    "view": "--view (no windows in a batch)",
    "publish": "--publish (every session would bind the same endpoint)",
    "rerun": "--rerun (every session would write the same file)",
    "json": "--json (eval reports are written to each session's eval.json)",
}
"""Options of the single-session commands that a batch sets itself or that make no sense in one."""


def _parse(task: BatchTask, extra: tuple[str, ...]) -> argparse.Namespace:
    messages = io.StringIO()
    try:
        with contextlib.redirect_stderr(messages):
            parsed: argparse.Namespace = command_args(task, "SESSION", "OUT", 1, extra)
    except SystemExit as err:  # argparse's usage and error lines: keep the error
        lines = messages.getvalue().strip().splitlines() or [" ".join(extra)]
        problem = lines[-1].split("error: ", 1)[-1]
        raise InputError(f"options for `xrseg {task.command}`: {problem}") from err
    return parsed


def check_pipeline_args(task: BatchTask, extra: tuple[str, ...]) -> tuple[str, ...]:
    """``extra`` if ``xrseg <task's command>`` takes it and it leaves alone what the batch sets; else
    :class:`InputError` saying which option is not for a batch."""
    if not extra:
        return extra
    plain, given = _parse(task, ()), _parse(task, extra)
    for dest, why in BATCH_OWNED.items():
        if getattr(plain, dest, None) != getattr(given, dest, None):
            raise InputError(f"a batch does not take {why}")
    return extra


def pipeline_variant(task: BatchTask, extra: tuple[str, ...]) -> str | None:
    """The model variant the options ask for (``--variant``), None for the manifest's default."""
    variant = getattr(_parse(task, extra), "variant", None)
    return None if variant is None else str(variant)


def fingerprint(task: BatchTask, extra: tuple[str, ...]) -> str:
    """A short hash of the task and its options: results made with another one are not reused."""
    text = json.dumps([task.value, list(extra)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
