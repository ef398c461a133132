"""The events on the ``xrseg.events/1`` stream and their wire form (see docs/protocol.md).

Each event is a multipart message: the topic (``b"fixation"``, ``b"selection"``, ``b"preview"`` or ``b"stats"``),
a JSON header and binary payloads described by the header. A ``preview`` (the hover preview: what a press now
would select) has the body of a ``selection`` with ``selection_id`` 0, and decodes to a :class:`SelectionEvent`
whose ``meta.topic`` is ``preview``. :func:`encode_event` builds the frames and :func:`decode_event`
parses them back into the typed records below; decoding is strict and raises ProtocolError.

Within major version 1 new header keys may be added; readers ignore keys they do not know.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt

from xrseg import types
from xrseg.errors import InputError, ProtocolError
from xrseg.stream.codecs import decode_mask_png, decode_rle, mask_png_payload, mask_rle_payload
from xrseg.stream.protocol import (
    DEFAULT_LIMITS,
    Fields,
    Limits,
    Payload,
    attach_payloads,
    check_total_size,
    decode_header,
    decode_raw,
    raw_payload,
    read_payloads,
    require,
    schema_name,
)
from xrseg.types import DepthSource, Fixation, Selection, Vec3

FAMILY = "xrseg.events"
MAJOR = 1
SCHEMA = schema_name(FAMILY, MAJOR)

TOPIC_FIXATION = "fixation"
TOPIC_SELECTION = "selection"
TOPIC_STATS = "stats"
TOPIC_PREVIEW = "preview"
TOPICS: tuple[str, ...] = (TOPIC_FIXATION, TOPIC_SELECTION, TOPIC_STATS, TOPIC_PREVIEW)

MAX_STATS = 256
MAX_PROMPTS = 1024

MaskEncoding = Literal["png", "rle", "png+rle"]
MASK_ENCODINGS: tuple[str, ...] = ("png", "rle", "png+rle")

StatValue: TypeAlias = int | float | bool | None


@dataclass(frozen=True)
class LiftSummary:
    """Where a selected object is in 3D: ``centroid_world_m`` (3 float64, metres, world frame) and the side
    lengths ``extent_m`` (3 float64, metres) of its world-axis-aligned bounding box; ``point_count`` is the
    number of 3D points it was computed from, when known."""

    centroid_world_m: Vec3
    extent_m: Vec3
    point_count: int | None = None

    def __post_init__(self) -> None:
        for name in ("centroid_world_m", "extent_m"):
            value = np.array(getattr(self, name), dtype=np.float64)
            if value.shape != (3,) or not np.all(np.isfinite(value)):
                raise InputError(f"LiftSummary.{name} must be 3 finite numbers, got {value.tolist()}")
            value.setflags(write=False)
            object.__setattr__(self, name, value)
        if self.point_count is not None and self.point_count < 0:
            raise InputError(f"LiftSummary.point_count must be >= 0, got {self.point_count}")


@dataclass(frozen=True)
class EventMeta:
    """Envelope of every event: ``seq`` counts messages of this topic from this publisher from 0, ``stream_id``
    names the publisher instance (it changes when a publisher restarts), ``sent_unix_ns`` is the publisher's
    wall clock at send time (for latency estimates across machines)."""

    topic: str
    seq: int
    stream_id: str
    sent_unix_ns: int


@dataclass(frozen=True)
class FixationEvent:
    meta: EventMeta
    fixation: Fixation


@dataclass(frozen=True)
class SelectionEvent:
    """A selection; ``selection.mask`` is decoded from the PNG (or, when only that was sent, the RLE) payload.
    ``rle_counts`` holds the COCO RLE counts (uint32) when the publisher sent them, else None."""

    meta: EventMeta
    selection: Selection
    lifted: LiftSummary | None
    mesh_path: str | None
    rle_counts: npt.NDArray[np.uint32] | None = None


@dataclass(frozen=True)
class StatsEvent:
    """Pipeline statistics: ``values`` maps a name (units in it: ``encode_ms``, ``fps``) to a number or None."""

    meta: EventMeta
    timestamp_ns: int
    values: Mapping[str, StatValue]


Event: TypeAlias = FixationEvent | SelectionEvent | StatsEvent


# --- encoding ------------------------------------------------------------------------------------------------


def _vec(value: Any, name: str) -> list[float]:
    array = np.asarray(value, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(array)):
        raise InputError(f"{name} has non-finite values: {array.tolist()}")
    return [float(v) for v in array]


def _opt_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def _envelope(meta: EventMeta) -> dict[str, Any]:
    return {"schema": SCHEMA, "topic": meta.topic, "seq": meta.seq, "stream_id": meta.stream_id,
            "sent_unix_ns": meta.sent_unix_ns}  # fmt: skip


def _fixation_body(fixation: Fixation) -> dict[str, Any]:
    return {
        "start_ns": int(fixation.start_ns),
        "end_ns": int(fixation.end_ns),
        "origin_m": _vec(fixation.origin_m, "fixation.origin_m"),
        "direction": _vec(fixation.direction, "fixation.direction"),
        "dispersion_deg": _opt_float(fixation.dispersion_deg),
        "vergence_depth_m": _opt_float(fixation.vergence_depth_m),
    }


def _timestamps_payload(name: str, fixation: Fixation) -> Payload:
    return raw_payload(name, np.asarray(fixation.sample_timestamps_ns, dtype=np.int64).reshape(-1), "<i8")


def fixation_frames(fixation: Fixation, meta: EventMeta) -> list[bytes]:
    header = _envelope(meta) | _fixation_body(fixation)
    return [
        TOPIC_FIXATION.encode(),
        *attach_payloads(header, [_timestamps_payload("sample_timestamps_ns", fixation)]),
    ]


def selection_frames(
    selection: Selection,
    meta: EventMeta,
    lifted: LiftSummary | None = None,
    mesh_path: str | None = None,
    mask_encoding: MaskEncoding = "png",
    topic: str = TOPIC_SELECTION,
) -> list[bytes]:
    """A ``selection`` event (or, with ``topic`` ``preview``, a hover preview's candidate)."""
    if mask_encoding not in MASK_ENCODINGS:
        raise InputError(f"mask_encoding must be one of {MASK_ENCODINGS}, got {mask_encoding!r}")
    points = np.asarray(selection.prompt_points_xy, dtype=np.float32).reshape(-1, 2)
    labels = np.asarray(selection.prompt_labels, dtype=np.int32).reshape(-1)
    if points.shape[0] != labels.shape[0]:
        raise InputError(f"selection has {points.shape[0]} prompt points but {labels.shape[0]} labels")
    bbox = mask_bbox_xyxy(selection.mask)
    header = _envelope(meta) | {
        "selection_id": int(selection.selection_id),
        "timestamp_ns": int(selection.timestamp_ns),
        "keyframe_index": int(selection.keyframe_index),
        "keyframe_timestamp_ns": int(selection.keyframe_timestamp_ns),
        "score": _opt_float(selection.score),
        "mask_index": int(selection.mask_index),
        "candidate_scores": [_opt_float(s) for s in selection.candidate_scores],
        "mask_choice": selection.mask_choice,
        "look_through": bool(selection.look_through),
        "gaze_xy": _vec(selection.gaze_xy, "gaze_xy"),
        "depth_source": selection.depth_source.value,
        "point_world_m": None
        if selection.point_world_m is None
        else _vec(selection.point_world_m, "point_world_m"),
        "area_px": selection.area_px,
        "bbox_xyxy": bbox,
        "fixation": _fixation_body(selection.fixation),
        "lifted": None
        if lifted is None
        else {
            "centroid_world_m": _vec(lifted.centroid_world_m, "centroid_world_m"),
            "extent_m": _vec(lifted.extent_m, "extent_m"),
            "point_count": lifted.point_count,
        },
        "mesh_path": None if mesh_path is None else str(mesh_path),
    }
    payloads: list[Payload] = []
    if mask_encoding in ("png", "png+rle"):
        payloads.append(mask_png_payload(selection.mask, "mask"))
    if mask_encoding in ("rle", "png+rle"):
        payloads.append(mask_rle_payload(selection.mask, "mask_rle"))
    payloads += [
        raw_payload("prompt_points_xy", points, "<f4"),
        raw_payload("prompt_labels", labels, "<i4"),
        _timestamps_payload("fixation_sample_timestamps_ns", selection.fixation),
    ]
    return [topic.encode(), *attach_payloads(header, payloads)]


def preview_frames(candidate: Selection, meta: EventMeta, mask_encoding: MaskEncoding = "png") -> list[bytes]:
    """A ``preview`` event: the hover preview's candidate (``selection_id`` 0), without lifting or mesh."""
    return selection_frames(candidate, meta, None, None, mask_encoding, topic=TOPIC_PREVIEW)


def mask_bbox_xyxy(mask: npt.NDArray[np.bool_]) -> list[int] | None:
    """[x0, y0, x1, y1] inclusive-exclusive pixel box of an HxW bool mask (the wire form of
    :func:`xrseg.types.mask_bbox_xyxy`), or None when it is empty."""
    box = types.mask_bbox_xyxy(mask)
    return None if box is None else list(box)


def clean_stats(values: Mapping[str, Any]) -> dict[str, StatValue]:
    """Check a stats mapping: at most 256 string keys (64 characters) with numbers, booleans or None as values.
    Non-finite floats become None (JSON has no NaN)."""
    if len(values) > MAX_STATS:
        raise InputError(f"at most {MAX_STATS} stats per event, got {len(values)}")
    out: dict[str, StatValue] = {}
    for key, value in values.items():
        if not isinstance(key, str) or not 0 < len(key) <= 64:
            raise InputError(f"stat names must be strings of 1-64 characters, got {key!r}")
        if isinstance(value, np.generic):
            value = value.item()
        if value is None or isinstance(value, bool | int):
            out[key] = value
        elif isinstance(value, float):
            out[key] = _opt_float(value)
        else:
            raise InputError(f"stat {key!r} must be a number, a boolean or None, got {type(value).__name__}")
    return out


def stats_frames(values: Mapping[str, Any], meta: EventMeta, timestamp_ns: int) -> list[bytes]:
    header = _envelope(meta) | {"timestamp_ns": int(timestamp_ns), "values": clean_stats(values)}
    return [TOPIC_STATS.encode(), *attach_payloads(header, [])]


# --- decoding ------------------------------------------------------------------------------------------------


def _frozen(values: Sequence[float]) -> npt.NDArray[np.float64]:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


def _decode_fixation(body: Fields, timestamps: npt.NDArray[np.int64]) -> Fixation:
    start_ns = body.int_("start_ns")
    end_ns = body.int_("end_ns")
    if end_ns < start_ns:
        raise ProtocolError(f"{body.where}: end_ns {end_ns} is before start_ns {start_ns}")
    dispersion = body.opt_float("dispersion_deg")
    return Fixation(
        start_ns=start_ns,
        end_ns=end_ns,
        origin_m=_frozen(body.floats("origin_m", 3)),
        direction=_frozen(body.floats("direction", 3)),
        dispersion_deg=math.nan if dispersion is None else dispersion,
        sample_timestamps_ns=tuple(int(t) for t in timestamps),
        vergence_depth_m=body.opt_float("vergence_depth_m"),
    )


def _timestamps(payloads: Mapping[str, Payload], name: str) -> npt.NDArray[np.int64]:
    payload = require(payloads, name, ["raw"])
    if payload.dtype != "<i8":
        raise ProtocolError(f"payload {name!r} must be <i8, got {payload.dtype!r}")
    return decode_raw(payload, ndim=1)


def _decode_selection(head: Fields, payloads: Mapping[str, Payload], limits: Limits) -> SelectionEvent:
    if "mask" in payloads:
        mask = decode_mask_png(require(payloads, "mask", ["png"]), limits)
    else:
        mask = decode_rle(require(payloads, "mask_rle", ["rle"]), limits)
    rle = None
    if "mask_rle" in payloads:
        rle_payload = require(payloads, "mask_rle", ["rle"])
        if "mask" in payloads:
            decode_rle(rle_payload, limits)  # validate it even when the PNG is used
        rle = np.frombuffer(rle_payload.data, dtype="<u4").astype(np.uint32)
        rle.setflags(write=False)
    points_payload = require(payloads, "prompt_points_xy", ["raw"])
    labels_payload = require(payloads, "prompt_labels", ["raw"])
    if points_payload.dtype != "<f4" or labels_payload.dtype != "<i4":
        raise ProtocolError("prompt_points_xy must be <f4 and prompt_labels <i4")
    points = decode_raw(points_payload, ndim=2)
    labels = decode_raw(labels_payload, ndim=1)
    if points.shape[1:] != (2,) or labels.shape[0] != points.shape[0] or points.shape[0] > MAX_PROMPTS:
        raise ProtocolError(f"prompt_points_xy {points.shape} and prompt_labels {labels.shape} do not match")
    depth_value = head.str_("depth_source", 32)
    try:
        depth_source = DepthSource(depth_value)
    except ValueError as err:
        raise ProtocolError(f"unknown depth_source {depth_value!r}") from err
    point = head.opt_floats("point_world_m", 3)
    gaze = head.floats("gaze_xy", 2)
    score = head.opt_float("score")
    candidates = head.list_("candidate_scores", 16)
    if not all(c is None or (isinstance(c, int | float) and not isinstance(c, bool)) for c in candidates):
        raise ProtocolError("candidate_scores must be numbers or null")
    selection = Selection(
        selection_id=head.int_("selection_id"),
        timestamp_ns=head.int_("timestamp_ns"),
        keyframe_index=head.int_("keyframe_index"),
        keyframe_timestamp_ns=head.int_("keyframe_timestamp_ns"),
        fixation=_decode_fixation(head.obj("fixation"), _timestamps(payloads, "fixation_sample_timestamps_ns")),
        mask=mask,
        score=math.nan if score is None else score,
        mask_index=head.int_("mask_index", 0, 15),
        candidate_scores=tuple(math.nan if c is None else float(c) for c in candidates),
        prompt_points_xy=points,
        prompt_labels=labels,
        gaze_xy=(gaze[0], gaze[1]),
        depth_source=depth_source,
        point_world_m=None if point is None else _frozen(point),
        mask_choice=head.opt_str("mask_choice", 32) or "sam",  # added in 1.x: absent from older publishers
        look_through=head.bool_("look_through") if head.has("look_through") else False,
    )
    lifted = None
    lifted_fields = head.opt_obj("lifted")
    if lifted_fields is not None:
        lifted = LiftSummary(
            centroid_world_m=_frozen(lifted_fields.floats("centroid_world_m", 3)),
            extent_m=_frozen(lifted_fields.floats("extent_m", 3)),
            point_count=lifted_fields.opt_int("point_count", 0),
        )
    return SelectionEvent(_meta(head), selection, lifted, head.opt_str("mesh_path"), rle)


def _meta(head: Fields) -> EventMeta:
    return EventMeta(
        topic=head.str_("topic", 32),
        seq=head.int_("seq", 0),
        stream_id=head.str_("stream_id", 64),
        sent_unix_ns=head.int_("sent_unix_ns"),
    )


def _decode_stats(head: Fields) -> StatsEvent:
    values = head.obj("values")
    if len(values.data) > MAX_STATS:
        raise ProtocolError(f"stats event has {len(values.data)} values, more than {MAX_STATS}")
    out: dict[str, StatValue] = {}
    for key, value in values.data.items():
        if len(key) > 64 or not (value is None or isinstance(value, bool | int | float)):
            raise ProtocolError(f"stats value {key[:64]!r} must be a number, a boolean or null")
        out[key] = value
    return StatsEvent(_meta(head), head.int_("timestamp_ns"), out)


def decode_event(frames: Sequence[bytes], limits: Limits = DEFAULT_LIMITS) -> Event:
    """Parse one multipart message [topic, header, payloads...] into a typed event (raises ProtocolError)."""
    if len(frames) < 2:
        raise ProtocolError(f"an event needs a topic and a header frame, got {len(frames)} frame(s)")
    if len(frames) > 2 + limits.max_payload_frames:
        raise ProtocolError(f"event has {len(frames)} frames, more than {2 + limits.max_payload_frames}")
    check_total_size(frames, limits)
    topic_bytes = bytes(frames[0])
    topic = topic_bytes.decode("ascii", errors="replace")
    if topic not in TOPICS:
        raise ProtocolError(f"unknown topic {topic[:32]!r}")
    header = decode_header(bytes(frames[1]), FAMILY, MAJOR, limits)
    head = Fields(header, f"{topic} header")
    if head.str_("topic", 32) != topic:
        raise ProtocolError(f"header topic {header.get('topic')!r} does not match the topic frame {topic!r}")
    payloads = read_payloads(header, [bytes(f) for f in frames[2:]], limits)
    if topic == TOPIC_FIXATION:
        return FixationEvent(_meta(head), _decode_fixation(head, _timestamps(payloads, "sample_timestamps_ns")))
    if topic in (TOPIC_SELECTION, TOPIC_PREVIEW):
        return _decode_selection(head, payloads, limits)
    return _decode_stats(head)


def event_summary(event: Event) -> dict[str, Any]:
    """A small JSON-able dict describing an event (what ``xrseg listen --json`` prints; no binary data)."""
    base: dict[str, Any] = {
        "topic": event.meta.topic,
        "seq": event.meta.seq,
        "sent_unix_ns": event.meta.sent_unix_ns,
    }
    if isinstance(event, FixationEvent):
        fix = event.fixation
        return base | {
            "start_ns": fix.start_ns,
            "end_ns": fix.end_ns,
            "duration_ms": fix.duration_ns / 1e6,
            "direction": [round(float(v), 6) for v in fix.direction],
            "dispersion_deg": _opt_float(fix.dispersion_deg),
            "samples": len(fix.sample_timestamps_ns),
        }
    if isinstance(event, SelectionEvent):
        sel = event.selection
        out = base | {
            "selection_id": sel.selection_id,
            "timestamp_ns": sel.timestamp_ns,
            "keyframe_index": sel.keyframe_index,
            "score": _opt_float(sel.score),
            "mask_hw": [int(sel.mask.shape[0]), int(sel.mask.shape[1])],
            "area_px": sel.area_px,
            "bbox_xyxy": sel.bbox_xyxy,
            "gaze_xy": list(sel.gaze_xy),
            "depth_source": sel.depth_source.value,
            "point_world_m": None if sel.point_world_m is None else [float(v) for v in sel.point_world_m],
            "mesh_path": event.mesh_path,
        }
        if event.lifted is not None:
            out["centroid_world_m"] = [float(v) for v in event.lifted.centroid_world_m]
            out["extent_m"] = [float(v) for v in event.lifted.extent_m]
        return out
    return base | {"timestamp_ns": event.timestamp_ns, "values": dict(event.values)}
