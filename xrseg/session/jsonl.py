"""Crash-safe JSON-lines streams and atomic file writes.

Writing: each record is serialised to one line and handed to the kernel with a single unbuffered ``write``
(record + trailing newline), so a writer killed with SIGKILL leaves every completed record on disk. Reading: a
last line without its trailing newline (or a tail of NUL bytes, as some filesystems leave after a crash) is a
torn record: it is dropped with a warning. An unparseable line followed by more data is corruption: an error.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

from xrseg import jsonsafe
from xrseg.errors import SessionError
from xrseg.fileio import write_bytes_atomic
from xrseg.session.format import TMP_PREFIX

logger = logging.getLogger(__name__)

MAX_STREAM_BYTES = 1 << 30
"""Largest stream file read (1 GiB: a 30-minute recording at 200 Hz gaze is about 110 MB)."""


def dumps_line(value: Any) -> bytes:
    """One compact, strict JSON line (no NaN/Infinity) with its trailing newline, UTF-8."""
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    except ValueError as err:
        raise SessionError(f"record is not storable as strict JSON: {err}") from err
    return (text + "\n").encode("utf-8")


class JsonlAppender:
    """An append-only JSON-lines file; every :meth:`append` reaches the kernel before it returns."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.count = 0

    def append(self, value: Any) -> None:
        data = dumps_line(value)
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
        self.count += 1

    def close(self, *, sync: bool = True) -> None:
        if self._fd < 0:
            return
        try:
            if sync:
                os.fsync(self._fd)
        finally:
            os.close(self._fd)
            self._fd = -1


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary name in the same directory and an atomic rename."""
    write_bytes_atomic(path, data, prefix=TMP_PREFIX, durable=True)


def read_jsonl(path: Path, name: str) -> tuple[list[tuple[int, Any]], list[str]]:
    """Parse a JSON-lines stream.

    Returns ([(line_number, value), ...], warnings). Raises SessionError when the file is missing, not a regular
    file, over :data:`MAX_STREAM_BYTES`, or a line other than a torn last one does not parse as strict JSON
    (:func:`xrseg.jsonsafe.loads`: finite numbers, 64-bit integers, bounded nesting). ``name`` is used in
    messages (e.g. "gaze.jsonl").
    """
    data = jsonsafe.read_regular_file(path, MAX_STREAM_BYTES, name, SessionError)
    warnings: list[str] = []
    stripped = data.rstrip(b"\0")
    if len(stripped) != len(data):
        warnings.append(f"{name}: dropped {len(data) - len(stripped)} NUL bytes at the end (unclean shutdown)")
    lines = stripped.split(b"\n")
    tail = lines.pop()  # after the last newline: empty, or a torn record
    if tail.strip():
        warnings.append(f"{name}: dropped a torn last record (line {len(lines) + 1}, {len(tail)} bytes)")
    records: list[tuple[int, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        records.append((number, jsonsafe.loads(line, f"{name} line {number}: corrupted record", SessionError)))
    return records, warnings
