"""Framing shared by the event stream and the remote encoder (see docs/protocol.md).

A message is a list of ZeroMQ frames: (for events, a topic frame first), one JSON header frame (UTF-8, an
object with a ``"schema"`` such as ``"xrseg.events/1"``), then zero or more binary payload frames, each
described, in order, by an entry of the header's ``"payloads"`` list::

    {"name": "mask", "encoding": "png", "shape": [480, 640], "nbytes": 5123}
    {"name": "sample_timestamps_ns", "encoding": "raw", "dtype": "<i8", "shape": [12], "nbytes": 96}

Arrays travel as raw little-endian bytes (C order) with their dtype and shape in the header. Nothing is ever
pickled. Every parser here is strict: sizes are bounded, types are checked, and anything wrong raises
:class:`xrseg.errors.ProtocolError` with a one-line message saying what and where.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from xrseg import jsonsafe
from xrseg.errors import ProtocolError

SCHEMA_RE = re.compile(r"^([a-z][a-z0-9_.]*)/([0-9]{1,4})$")

RAW_DTYPES = frozenset({"|u1", "|b1", "<u2", "<i2", "<u4", "<i4", "<i8", "<f2", "<f4", "<f8"})
"""The dtype strings (numpy ``dtype.str``) accepted for raw arrays."""

MAX_NDIM = 4


class UnsupportedVersionError(ProtocolError):
    """The message speaks another major version of the protocol."""


class MessageTooLargeError(ProtocolError):
    """The message, one of its frames, or an image it declares is over a size limit."""


@dataclass(frozen=True)
class Limits:
    """Size limits applied to every incoming message before anything is decoded."""

    max_header_bytes: int = 64 * 1024
    max_payload_frames: int = 8
    max_payload_bytes: int = 64 * 1024 * 1024
    """Per payload frame."""
    max_total_bytes: int = 96 * 1024 * 1024
    """All frames of one message together."""
    max_pixels: int = 4096 * 4096
    """Largest image or mask (height x width) a message may declare."""


DEFAULT_LIMITS = Limits()


def schema_name(family: str, major: int) -> str:
    return f"{family}/{major}"


def encode_header(header: Mapping[str, Any]) -> bytes:
    """Serialise a header as compact UTF-8 JSON (NaN and infinities are refused: send null instead)."""
    try:
        return json.dumps(header, separators=(",", ":"), allow_nan=False, ensure_ascii=False).encode("utf-8")
    except ValueError as err:
        raise ProtocolError(f"cannot encode header: {err}") from err


def decode_header(frame: bytes, family: str, major: int, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Parse and check a JSON header frame: size, strict JSON (:func:`xrseg.jsonsafe.loads`: UTF-8, finite
    numbers, 64-bit integers, bounded nesting), a JSON object, and ``schema == family/major``."""
    if len(frame) > limits.max_header_bytes:
        raise MessageTooLargeError(
            f"header is {len(frame)} bytes, more than the limit of {limits.max_header_bytes}"
        )
    header = jsonsafe.loads(frame, "header", ProtocolError)
    if not isinstance(header, dict):
        raise ProtocolError(f"header must be a JSON object, got {type(header).__name__}")
    schema = header.get("schema")
    if not isinstance(schema, str):
        raise ProtocolError("header has no 'schema' string")
    match = SCHEMA_RE.match(schema)
    if match is None or match.group(1) != family:
        raise ProtocolError(f"unexpected schema {schema[:64]!r}, expected {schema_name(family, major)!r}")
    if int(match.group(2)) != major:
        raise UnsupportedVersionError(
            f"unsupported protocol version {schema!r}: this build speaks {schema_name(family, major)!r}"
        )
    return header


class Fields:
    """Typed, strict access to one JSON object: each getter raises ProtocolError naming the field."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, dict):
            raise ProtocolError(f"{where} must be a JSON object")
        self.data: dict[str, Any] = data
        self.where = where

    def _fail(self, key: str, what: str) -> ProtocolError:
        value = repr(self.data.get(key, "<missing>"))
        return ProtocolError(f"{self.where}: {key!r} must be {what}, got {value[:60]}")

    def has(self, key: str) -> bool:
        return self.data.get(key) is not None

    def int_(self, key: str, low: int | None = None, high: int | None = None) -> int:
        value = self.data.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._fail(key, "an integer")
        if (low is not None and value < low) or (high is not None and value > high):
            raise self._fail(key, f"an integer in [{low}, {high}]")
        return value

    def opt_int(self, key: str, low: int | None = None, high: int | None = None) -> int | None:
        return None if self.data.get(key) is None else self.int_(key, low, high)

    def float_(self, key: str) -> float:
        value = self.data.get(key)
        if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
            raise self._fail(key, "a finite number")
        return float(value)

    def opt_float(self, key: str) -> float | None:
        return None if self.data.get(key) is None else self.float_(key)

    def str_(self, key: str, max_len: int = 256) -> str:
        value = self.data.get(key)
        if not isinstance(value, str) or len(value) > max_len:
            raise self._fail(key, f"a string of at most {max_len} characters")
        return value

    def opt_str(self, key: str, max_len: int = 4096) -> str | None:
        return None if self.data.get(key) is None else self.str_(key, max_len)

    def bool_(self, key: str) -> bool:
        value = self.data.get(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def floats(self, key: str, length: int | None = None, max_len: int = 64) -> tuple[float, ...]:
        value = self.data.get(key)
        n = "any number of" if length is None else str(length)
        if not isinstance(value, list) or len(value) > max_len or (length is not None and len(value) != length):
            raise self._fail(key, f"a list of {n} finite numbers")
        out = []
        for item in value:
            if not isinstance(item, int | float) or isinstance(item, bool) or not math.isfinite(item):
                raise self._fail(key, f"a list of {n} finite numbers")
            out.append(float(item))
        return tuple(out)

    def opt_floats(self, key: str, length: int) -> tuple[float, ...] | None:
        return None if self.data.get(key) is None else self.floats(key, length)

    def ints(self, key: str, length: int | None = None, low: int = 0, max_len: int = 64) -> tuple[int, ...]:
        value = self.data.get(key)
        n = "any number of" if length is None else str(length)
        error = self._fail(key, f"a list of {n} integers >= {low}")
        if not isinstance(value, list) or len(value) > max_len or (length is not None and len(value) != length):
            raise error
        out = []
        for item in value:
            if not isinstance(item, int) or isinstance(item, bool) or item < low:
                raise error
            out.append(item)
        return tuple(out)

    def obj(self, key: str) -> Fields:
        return Fields(self.data.get(key), f"{self.where}.{key}")

    def opt_obj(self, key: str) -> Fields | None:
        return None if self.data.get(key) is None else self.obj(key)

    def list_(self, key: str, max_len: int) -> list[Any]:
        value = self.data.get(key, [])
        if not isinstance(value, list) or len(value) > max_len:
            raise self._fail(key, f"a list of at most {max_len} items")
        return value


# --- payload descriptors -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Payload:
    """One binary frame and its description. ``shape`` is the array's (raw, rle: counts) or image's shape."""

    name: str
    encoding: str
    data: bytes
    dtype: str | None = None
    shape: tuple[int, ...] = ()
    extra: Mapping[str, Any] | None = None

    def describe(self) -> dict[str, Any]:
        desc: dict[str, Any] = {"name": self.name, "encoding": self.encoding, "nbytes": len(self.data)}
        if self.dtype is not None:
            desc["dtype"] = self.dtype
        desc["shape"] = list(self.shape)
        if self.extra:
            desc.update(self.extra)
        return desc


def attach_payloads(header: dict[str, Any], payloads: Sequence[Payload]) -> list[bytes]:
    """Write ``header["payloads"]`` and return [header frame, payload frames...]."""
    header["payloads"] = [p.describe() for p in payloads]
    return [encode_header(header), *(p.data for p in payloads)]


def check_total_size(frames: Sequence[bytes], limits: Limits) -> None:
    total = sum(len(f) for f in frames)
    if total > limits.max_total_bytes:
        raise MessageTooLargeError(f"message is {total} bytes, more than the limit of {limits.max_total_bytes}")


def read_payloads(header: Mapping[str, Any], frames: Sequence[bytes], limits: Limits) -> dict[str, Payload]:
    """Match the header's ``payloads`` descriptions with the binary frames that follow it, by name.

    Checks the frame count, each frame's size against its ``nbytes`` and the limits, and that names are
    unique. Does not decode: see :func:`decode_raw`, :func:`decode_mask_png`, :func:`decode_rle`.
    """
    fields = Fields(dict(header), "header")
    descs = fields.list_("payloads", limits.max_payload_frames)
    if len(descs) != len(frames):
        raise ProtocolError(f"header describes {len(descs)} payload frame(s) but {len(frames)} arrived")
    out: dict[str, Payload] = {}
    for i, (desc_json, data) in enumerate(zip(descs, frames, strict=True)):
        desc = Fields(desc_json, f"payloads[{i}]")
        name = desc.str_("name", 64)
        encoding = desc.str_("encoding", 16)
        nbytes = desc.int_("nbytes", 0)
        if nbytes > limits.max_payload_bytes:
            raise MessageTooLargeError(
                f"payload {name!r} is {nbytes} bytes, over the limit {limits.max_payload_bytes}"
            )
        if len(data) != nbytes:
            raise ProtocolError(f"payload {name!r} is {len(data)} bytes but its header says {nbytes}")
        if name in out:
            raise ProtocolError(f"payload {name!r} appears twice")
        shape = desc.ints("shape", None, 0, MAX_NDIM)
        dtype = desc.str_("dtype", 8) if desc.has("dtype") else None
        extra = {k: v for k, v in desc.data.items() if k not in ("name", "encoding", "nbytes", "shape", "dtype")}
        out[name] = Payload(name, encoding, bytes(data), dtype, shape, extra)
    return out


def require(payloads: Mapping[str, Payload], name: str, encodings: Sequence[str]) -> Payload:
    payload = payloads.get(name)
    if payload is None:
        raise ProtocolError(f"message has no {name!r} payload")
    if payload.encoding not in encodings:
        raise ProtocolError(
            f"payload {name!r} has encoding {payload.encoding!r}, expected one of {list(encodings)}"
        )
    return payload


# --- raw arrays ---------------------------------------------------------------------------------------------


def raw_payload(name: str, array: npt.ArrayLike, dtype: str) -> Payload:
    """A raw little-endian C-order array payload; ``dtype`` is a numpy dtype string from :data:`RAW_DTYPES`."""
    if dtype not in RAW_DTYPES:
        raise ProtocolError(f"dtype {dtype!r} is not allowed on the wire")
    arr = np.ascontiguousarray(np.asarray(array).astype(np.dtype(dtype), copy=False))
    return Payload(name, "raw", arr.tobytes(), dtype, tuple(int(s) for s in arr.shape))


def decode_raw(payload: Payload, ndim: int | None = None) -> npt.NDArray[Any]:
    """The array in a raw payload (read-only, native little-endian). Checks dtype, shape and byte count."""
    if payload.encoding != "raw":
        raise ProtocolError(f"payload {payload.name!r} is {payload.encoding!r}, not raw")
    if payload.dtype not in RAW_DTYPES:
        raise ProtocolError(f"payload {payload.name!r} has unsupported dtype {payload.dtype!r}")
    if ndim is not None and len(payload.shape) != ndim:
        raise ProtocolError(f"payload {payload.name!r} must have {ndim} dimension(s), got shape {payload.shape}")
    dtype = np.dtype(payload.dtype)
    count = math.prod(payload.shape)
    if count * dtype.itemsize != len(payload.data):
        raise ProtocolError(
            f"payload {payload.name!r}: shape {list(payload.shape)} of {payload.dtype} needs "
            f"{count * dtype.itemsize} bytes, got {len(payload.data)}"
        )
    array = np.frombuffer(payload.data, dtype=dtype).reshape(payload.shape)
    return array
