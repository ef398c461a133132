"""The aggregate report of a batch: ``batch.json`` in the output folder and the table ``xrseg batch`` prints.

``batch.json`` is rewritten (atomically) when the batch starts, after every session and when it ends, so a
reader, a killed batch or a Ctrl-C always leaves a whole file: ``complete`` is true only when every session
has a result (ok, failed or skipped), ``interrupted`` says a Ctrl-C ended it.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xrseg.batch.records import BatchTask, SessionResult, SessionStatus
from xrseg.fileio import write_json_atomic

BATCH_FILE = "batch.json"
_DONE = frozenset({SessionStatus.OK, SessionStatus.FAILED, SessionStatus.SKIPPED})


@dataclass(frozen=True)
class BatchReport:
    """A batch's settings and every session's result, in session order."""

    task: BatchTask
    out_dir: Path
    backend: str
    """``local`` or ``ray ADDRESS``."""
    workers: int | None
    threads_per_session: int
    pipeline_args: tuple[str, ...]
    results: tuple[SessionResult, ...]
    wall_s: float
    interrupted: bool = False

    @property
    def complete(self) -> bool:
        return not self.interrupted and all(r.status in _DONE for r in self.results)

    @property
    def failed(self) -> tuple[SessionResult, ...]:
        return tuple(r for r in self.results if r.status is SessionStatus.FAILED)

    def counts(self) -> dict[str, int]:
        counted = Counter(r.status.value for r in self.results)
        return {status.value: counted.get(status.value, 0) for status in SessionStatus}

    def totals(self) -> dict[str, Any]:
        """Sums over the sessions with results (this run's and reused ones); accuracy over all their clicks."""
        done = [r for r in self.results if r.status in (SessionStatus.OK, SessionStatus.SKIPPED)]
        clicks = sum(r.clicks or 0 for r in done)
        right = sum(r.clicks_right or 0 for r in done)
        scored = [r for r in done if r.clicks]
        return {
            "selections": sum(r.selections or 0 for r in done),
            "meshes": sum(r.meshes or 0 for r in done),
            "clicks": clicks,
            "clicks_right": right,
            "selection_accuracy": right / clicks if clicks else None,
            "mean_session_accuracy": (
                sum(r.selection_accuracy or 0.0 for r in scored) / len(scored) if scored else None
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "complete": self.complete,
            "interrupted": self.interrupted,
            "task": self.task.value,
            "out_dir": str(self.out_dir),
            "backend": self.backend,
            "workers": self.workers,
            "threads_per_session": self.threads_per_session,
            "pipeline_args": list(self.pipeline_args),
            "wall_s": self.wall_s,
            "counts": self.counts(),
            "totals": self.totals(),
            "sessions": [r.to_dict() for r in self.results],
        }

    def replace(self, **changes: Any) -> BatchReport:
        return dataclasses.replace(self, **changes)


def write_report(report: BatchReport) -> Path:
    path = report.out_dir / BATCH_FILE
    write_json_atomic(path, report.to_dict())
    return path


def _fmt(value: float | int | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def format_table(results: Sequence[SessionResult]) -> str:
    """One line per session: status, selections, accuracy and mask IoU (where there is ground truth), meshes,
    time, and a failed session's error."""
    header = ("session", "status", "selections", "accuracy", "mask IoU", "meshes", "time s")
    rows = [
        (
            r.name,
            r.status.value,
            _fmt(r.selections, "d"),
            _fmt(r.selection_accuracy, ".3f"),
            _fmt(r.mean_mask_iou, ".3f"),
            _fmt(r.meshes, "d"),
            _fmt(r.wall_s, ".1f"),
        )
        for r in results
    ]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines += [f"{r.name}: {r.error}" for r in results if r.error]
    return "\n".join(lines)
