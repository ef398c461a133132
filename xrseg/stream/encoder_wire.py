"""Messages of the remote encoder protocol, ``xrseg.encoder/1`` (see docs/protocol.md).

A client (DEALER) sends [header, image] and gets [header, embedding] back, or [header] for errors and pings.
A REQ client works too: its empty delimiter frame is echoed back by the server.

Request header::

    {"schema": "xrseg.encoder/1", "type": "encode", "request_id": "c0ffee-17", "sent_unix_ns": ...,
     "reply_dtype": "float32", "payloads": [{"name": "image", "encoding": "png", "shape": [480, 640, 3], ...}]}

Reply header::

    {"schema": "xrseg.encoder/1", "type": "embedding", "request_id": "c0ffee-17", "original_size": [480, 640],
     "input_size": [768, 1024], "encode_ms": 412.5,
     "payloads": [{"name": "embedding", "encoding": "raw", "dtype": "<f4", "shape": [1, 256, 64, 64], ...}]}
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError, ProtocolError
from xrseg.sam.records import ImageEmbedding
from xrseg.stream.codecs import decode_image, image_payload
from xrseg.stream.protocol import (
    DEFAULT_LIMITS,
    Fields,
    Limits,
    attach_payloads,
    check_total_size,
    decode_header,
    decode_raw,
    raw_payload,
    read_payloads,
    require,
    schema_name,
)

FAMILY = "xrseg.encoder"
MAJOR = 1
SCHEMA = schema_name(FAMILY, MAJOR)

ReplyDtype = Literal["float32", "float16"]
REPLY_DTYPES: dict[str, str] = {"float32": "<f4", "float16": "<f2"}

ErrorCode = Literal["bad_request", "unsupported_version", "too_large", "encoder_failed"]

REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
MAX_SIZE_PX = 16384

FLOAT16_RTOL = 2.0**-11
"""Relative error of an embedding sent as float16 (round to nearest: half a unit in the last place)."""
FLOAT16_ATOL = 2.0**-24
"""Absolute error near zero for float16 (its smallest subnormal step)."""


@dataclass(frozen=True)
class EncodeRequest:
    """``rgb`` is HxWx3 uint8 RGB (read-only)."""

    request_id: str
    rgb: npt.NDArray[np.uint8]
    reply_dtype: ReplyDtype
    image_encoding: str


@dataclass(frozen=True)
class PingRequest:
    request_id: str


Request: TypeAlias = EncodeRequest | PingRequest


@dataclass(frozen=True)
class EmbeddingReply:
    request_id: str
    embedding: ImageEmbedding
    encode_ms: float | None


@dataclass(frozen=True)
class ErrorReply:
    request_id: str | None
    code: str
    message: str


@dataclass(frozen=True)
class PongReply:
    """``info`` holds what the server says about itself (version, encoder, counters)."""

    request_id: str
    info: Mapping[str, Any]


Reply: TypeAlias = EmbeddingReply | ErrorReply | PongReply


def _request_id(fields: Fields) -> str:
    value = fields.str_("request_id", 64)
    if not REQUEST_ID_RE.match(value):
        raise ProtocolError(f"request_id must be 1-64 characters from [A-Za-z0-9_.:-], got {value!r}")
    return value


def _header(kind: str, request_id: str | None) -> dict[str, Any]:
    return {"schema": SCHEMA, "type": kind, "request_id": request_id, "sent_unix_ns": time.time_ns()}


# --- requests ------------------------------------------------------------------------------------------------


def encode_request_frames(
    request_id: str,
    rgb: npt.NDArray[np.uint8],
    image_encoding: str = "png",
    jpeg_quality: int = 90,
    reply_dtype: ReplyDtype = "float32",
) -> list[bytes]:
    """[header, image] for an HxWx3 uint8 RGB image sent as ``png`` (lossless), ``jpeg`` or ``raw``."""
    if reply_dtype not in REPLY_DTYPES:
        raise InputError(f"reply_dtype must be one of {list(REPLY_DTYPES)}, got {reply_dtype!r}")
    if not REQUEST_ID_RE.match(request_id):
        raise InputError(f"request_id must be 1-64 characters from [A-Za-z0-9_.:-], got {request_id!r}")
    header = _header("encode", request_id) | {"reply_dtype": reply_dtype}
    return attach_payloads(header, [image_payload(rgb, image_encoding, jpeg_quality)])


def ping_frames(request_id: str) -> list[bytes]:
    return attach_payloads(_header("ping", request_id), [])


def _open_message(frames: Sequence[bytes], what: str, limits: Limits) -> tuple[dict[str, Any], Fields]:
    """The header of a [header, payloads...] ``what`` ("request" or "reply") and its fields, after the frame
    count and total size are checked against ``limits``."""
    if not frames:
        raise ProtocolError(f"{what} has no header frame")
    if len(frames) > 1 + limits.max_payload_frames:
        raise ProtocolError(f"{what} has {len(frames)} frames, more than {1 + limits.max_payload_frames}")
    check_total_size(frames, limits)
    header = decode_header(frames[0], FAMILY, MAJOR, limits)
    return header, Fields(header, f"{what} header")


def parse_request(frames: Sequence[bytes], limits: Limits = DEFAULT_LIMITS) -> Request:
    """Parse [header, payloads...] (routing frames already removed).

    Raises ProtocolError, or its subclasses UnsupportedVersionError and MessageTooLargeError (see protocol.py).
    """
    header, fields = _open_message(frames, "request", limits)
    request_id = _request_id(fields)
    kind = fields.str_("type", 16)
    payloads = read_payloads(header, frames[1:], limits)
    if kind == "ping":
        return PingRequest(request_id)
    if kind != "encode":
        raise ProtocolError(f"unknown request type {kind!r} (expected 'encode' or 'ping')")
    reply_dtype = fields.str_("reply_dtype", 16) if fields.has("reply_dtype") else "float32"
    if reply_dtype not in REPLY_DTYPES:
        raise ProtocolError(f"reply_dtype must be one of {list(REPLY_DTYPES)}, got {reply_dtype!r}")
    image = require(payloads, "image", ["png", "jpeg", "raw"])
    rgb = decode_image(image, limits)
    rgb.setflags(write=False)
    return EncodeRequest(request_id, rgb, "float16" if reply_dtype == "float16" else "float32", image.encoding)


def peek_request_id(header_frame: bytes, limits: Limits = DEFAULT_LIMITS) -> str | None:
    """The request id of a request that failed to parse, when it can be read (for the error reply)."""
    try:
        return _request_id(Fields(decode_header(header_frame, FAMILY, MAJOR, limits), "request header"))
    except ProtocolError:
        return None


# --- replies -------------------------------------------------------------------------------------------------


def embedding_reply_frames(
    request_id: str, embedding: ImageEmbedding, reply_dtype: ReplyDtype = "float32", encode_ms: float | None = None
) -> list[bytes]:
    array = np.asarray(embedding.embedding)
    if array.ndim != 4 or array.shape[0] != 1 or not np.issubdtype(array.dtype, np.floating):
        raise InputError(f"embedding must be 1xCxHxW float, got {array.shape} {array.dtype}")
    header = _header("embedding", request_id) | {
        "original_size": [int(v) for v in embedding.original_size],
        "input_size": [int(v) for v in embedding.input_size],
        "encode_ms": encode_ms,
    }
    return attach_payloads(header, [raw_payload("embedding", array, REPLY_DTYPES[reply_dtype])])


def error_reply_frames(request_id: str | None, code: ErrorCode, message: str) -> list[bytes]:
    return attach_payloads(_header("error", request_id) | {"code": code, "message": message[:500]}, [])


def pong_frames(request_id: str, info: Mapping[str, Any]) -> list[bytes]:
    return attach_payloads(_header("pong", request_id) | {"info": dict(info)}, [])


def parse_reply(frames: Sequence[bytes], limits: Limits = DEFAULT_LIMITS) -> Reply:
    """Parse a server reply [header, payloads...] (a REQ client's empty delimiter already removed)."""
    header, fields = _open_message(frames, "reply", limits)
    kind = fields.str_("type", 16)
    payloads = read_payloads(header, frames[1:], limits)
    if kind == "error":
        request_id = fields.opt_str("request_id", 64)
        return ErrorReply(request_id, fields.str_("code", 32), fields.str_("message", 500))
    request_id = _request_id(fields)
    if kind == "pong":
        return PongReply(request_id, fields.obj("info").data)
    if kind != "embedding":
        raise ProtocolError(f"unknown reply type {kind!r}")
    payload = require(payloads, "embedding", ["raw"])
    if payload.dtype not in ("<f4", "<f2"):
        raise ProtocolError(f"embedding must be <f4 or <f2, got {payload.dtype!r}")
    array = decode_raw(payload, ndim=4)
    if array.shape[0] != 1:
        raise ProtocolError(f"embedding must be 1xCxHxW, got {array.shape}")
    embedding = array.astype(np.float32) if payload.dtype == "<f2" else array
    if not np.all(np.isfinite(embedding)):
        raise ProtocolError("embedding has non-finite values")
    original = fields.ints("original_size", 2, 1)
    input_size = fields.ints("input_size", 2, 1)
    if max(*original, *input_size) > MAX_SIZE_PX:
        raise ProtocolError(f"image sizes {original} / {input_size} are out of range")
    embedding.setflags(write=False)
    return EmbeddingReply(
        request_id,
        ImageEmbedding(
            embedding=embedding,
            original_size=(original[0], original[1]),
            input_size=(input_size[0], input_size[1]),
        ),
        fields.opt_float("encode_ms"),
    )
