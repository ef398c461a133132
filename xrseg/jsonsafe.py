"""One strict reader for every JSON document xrseg takes from outside: files and wire headers.

:func:`loads` parses with hooks so that nothing hostile gets past the parser:

- integers must fit a signed 64-bit integer (at most 20 characters are even looked at, so a 5000-digit
  number costs nothing and never reaches Python's int-conversion limit);
- floats must be finite (``1e400`` parses to infinity in Python: refused), at most 64 characters;
- ``NaN``, ``Infinity`` and ``-Infinity`` (not JSON, but accepted by Python's parser) are refused;
- nesting is at most :data:`MAX_DEPTH` arrays/objects deep;
- strings must be valid Unicode (a lone surrogate escape such as ``"\\ud800"`` is refused: it cannot be
  printed or written back as UTF-8).

:func:`read_regular_file` reads a file only when it is a regular file of at most ``max_bytes`` bytes; it
opens without blocking, so a named pipe or a device where a file should be fails at once instead of hanging.

Every failure raises the error class the caller names (``SessionError``, ``ProtocolError``, ``ModelError``,
``CalibrationError``...: all :class:`xrseg.errors.XrsegError`), with ``what`` (the file or frame) in the
message, chained to the cause.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

from xrseg.errors import InputError, XrsegError

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_INT_CHARS = 20
"""'-9223372036854775808' is 20 characters: anything longer cannot fit int64."""
MAX_FLOAT_CHARS = 64
MAX_DEPTH = 32
"""Deepest nesting of arrays and objects accepted (our deepest document, a 4x4 matrix in a record, is 3)."""


class _RejectedError(ValueError):
    """Raised inside the parser hooks; turned into the caller's error class by :func:`loads`."""


def _parse_int(text: str) -> int:
    if len(text) > MAX_INT_CHARS:
        raise _RejectedError(f"integer of {len(text)} digits does not fit 64 bits")
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise _RejectedError(f"integer {value} does not fit 64 bits")
    return value


def _parse_float(text: str) -> float:
    if len(text) > MAX_FLOAT_CHARS:
        raise _RejectedError(f"number of {len(text)} characters is too long")
    value = float(text)
    if not math.isfinite(value):
        raise _RejectedError(f"number {text[:24]} is out of the float64 range")
    return value


def _parse_constant(name: str) -> Any:
    raise _RejectedError(f"{name} is not JSON (send null for a missing number)")


def _check_tree(value: Any, check_strings: bool) -> None:
    """Depth of nesting, and (when the text had escapes) that every string is valid Unicode."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
            if check_strings:
                children = [*item.keys(), *children]
        elif isinstance(item, list):
            children = item
        else:
            if check_strings and isinstance(item, str):
                _check_unicode(item)
            continue
        if depth >= MAX_DEPTH:
            raise _RejectedError(f"JSON nested too deeply (more than {MAX_DEPTH} levels)")
        stack.extend((child, depth + 1) for child in children)


def _check_unicode(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as err:
        raise _RejectedError(f"string holds an unpaired surrogate at character {err.start}") from err


def loads(data: bytes | str, what: str, error: type[XrsegError] = InputError) -> Any:
    """Parse one strict JSON document (rules in the module docstring); raise ``error`` naming ``what``."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        value = json.loads(text, parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
        _check_tree(value, check_strings="\\u" in text)
    except UnicodeDecodeError as err:
        raise error(f"{what}: not UTF-8 ({err})") from err
    except RecursionError as err:
        raise error(f"{what}: JSON nested too deeply") from err
    except json.JSONDecodeError as err:
        raise error(f"{what}: not valid JSON ({err})") from err
    except _RejectedError as err:
        raise error(f"{what}: {err}") from err
    return value


def read_regular_file(path: Path, max_bytes: int, what: str, error: type[XrsegError] = InputError) -> bytes:
    """The bytes of ``path`` if it is a regular file of at most ``max_bytes`` bytes; else ``error``.

    Opens with ``O_NONBLOCK`` and checks the opened descriptor (not the name), so a FIFO, socket or device
    fails at once and a file swapped in after a check cannot slip through. A missing file raises ``error``
    chained to :class:`FileNotFoundError` (test with ``isinstance(err.__cause__, FileNotFoundError)``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as err:
        raise error(f"missing {what}") from err
    except OSError as err:
        raise error(f"cannot open {what}: {err.strerror}") from err
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise error(f"{what} is not a regular file")
        if info.st_size > max_bytes:
            raise error(f"{what} is {info.st_size} bytes, more than the limit of {max_bytes}")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    except OSError as err:
        raise error(f"cannot read {what}: {err.strerror}") from err
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise error(f"{what} grew past the limit of {max_bytes} bytes while being read")
    return data


def load_file(path: Path, max_bytes: int, what: str, error: type[XrsegError] = InputError) -> Any:
    """:func:`read_regular_file` then :func:`loads` (parse errors read "``what`` is corrupted: ...")."""
    return loads(read_regular_file(path, max_bytes, what, error), f"{what} is corrupted", error)
