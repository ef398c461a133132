"""The records of a batch run: what to do with a session (:class:`SessionJob`), how it went
(:class:`SessionResult`), and the tasks and statuses they name.

Every record here is JSON on the wire: a worker (a local process or a Ray task) receives a job as JSON and
answers with its result as JSON, also written to the session's result folder, so nothing is unpickled from
another machine and no large object travels through Ray's object store.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

RESULT_FILE = "result.json"
"""Written last into a session's result folder by the worker: the session's :class:`SessionResult`."""
LOG_FILE = "batch.log"
"""A session's log (warnings and errors of its run) in its result folder."""


class BatchTask(Enum):
    """What a batch does with each session; the values are the ``--task`` names."""

    REPLAY = "replay"
    EVAL = "eval"
    EXPORT_MESH = "export-mesh"
    ANNOTATIONS = "annotations"

    @property
    def command(self) -> str:
        """The ``xrseg`` command whose options (and defaults) the task takes."""
        return "export-annotations" if self is BatchTask.ANNOTATIONS else self.value


class SessionStatus(Enum):
    """Where a session of a batch stands."""

    PENDING = "pending"
    """Not started (yet, or ever: a batch interrupted before it)."""
    OK = "ok"
    FAILED = "failed"
    SKIPPED = "skipped"
    """Done by an earlier run with the same task and options (its figures are that run's)."""
    INTERRUPTED = "interrupted"
    """Started, then stopped by Ctrl-C; the next run does it again."""


@dataclass(frozen=True)
class SessionJob:
    """One session to run: everything a worker needs, as plain values."""

    name: str
    """The session's result folder under the batch's output folder (unique in a batch)."""
    session_dir: str
    """Absolute path of the session."""
    out_dir: str
    """Absolute path of the session's result folder."""
    task: BatchTask
    pipeline_args: tuple[str, ...]
    """Options of the task's command (``xrseg eval --help``), the same for every session of a batch."""
    threads: int
    """ONNX Runtime intra-op threads for this session's engine."""
    fingerprint: str
    """Task and options in one string: an earlier result with another fingerprint is not reused."""

    def to_json(self) -> str:
        return json.dumps(
            {**dataclasses.asdict(self), "task": self.task.value, "pipeline_args": list(self.pipeline_args)}
        )

    @classmethod
    def from_json(cls, text: str) -> SessionJob:
        data = json.loads(text)
        return cls(
            name=str(data["name"]),
            session_dir=str(data["session_dir"]),
            out_dir=str(data["out_dir"]),
            task=BatchTask(data["task"]),
            pipeline_args=tuple(str(a) for a in data["pipeline_args"]),
            threads=int(data["threads"]),
            fingerprint=str(data["fingerprint"]),
        )


@dataclass(frozen=True)
class SessionResult:
    """How one session went, with its headline figures (None where they do not apply)."""

    name: str
    session_dir: str
    status: SessionStatus
    fingerprint: str = ""
    selections: int | None = None
    clicks: int | None = None
    clicks_right: int | None = None
    selection_accuracy: float | None = None
    """Right first picks over all clicks (sessions with ground truth, task eval)."""
    mean_mask_iou: float | None = None
    """Mean mask IoU of the right picks (task eval)."""
    meshes: int | None = None
    wall_s: float | None = None
    error: str | None = None
    """One line: why the session failed."""
    host: str | None = None
    """The machine that ran it."""

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "status": self.status.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SessionResult:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["status"] = SessionStatus(values["status"])
        return cls(**values)

    def with_status(self, status: SessionStatus, error: str | None = None) -> SessionResult:
        return dataclasses.replace(self, status=status, error=error)


def pending(job: SessionJob) -> SessionResult:
    return SessionResult(job.name, job.session_dir, SessionStatus.PENDING, job.fingerprint)


def failed(job: SessionJob, error: str, wall_s: float | None = None, host: str | None = None) -> SessionResult:
    line = " ".join(error.split()) or "failed without a message"
    return SessionResult(
        job.name, job.session_dir, SessionStatus.FAILED, job.fingerprint, wall_s=wall_s, error=line, host=host
    )


def result_path(job: SessionJob) -> Path:
    return Path(job.out_dir) / RESULT_FILE
