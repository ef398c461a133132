"""Writing files so that a reader never sees a half-written one: a temporary name beside the target, renamed."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_bytes_atomic(path: Path, data: bytes, *, prefix: str = ".", durable: bool = False) -> None:
    """Write ``data`` to ``path`` through ``<prefix><name>.<random>`` in the same directory and an atomic rename.

    The file gets mode 0644 (temporary files are created 0600). ``durable`` fsyncs it before the rename, for
    files that must survive a power loss once written (session headers). A failure removes the temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f"{prefix}{path.name}.", delete=False) as handle:
        tmp = Path(handle.name)
        try:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    try:
        tmp.chmod(0o644)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, data: Any, *, durable: bool = False) -> None:
    """``data`` as indented, key-sorted JSON with a final newline, written with :func:`write_bytes_atomic`."""
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode(), durable=durable)
