"""Bounded, seeded fuzzing (issue 15): mutated copies of a bundled session's JSON files and mutated wire
messages. Each case must either pass or raise a named error (:class:`xrseg.errors.XrsegError`; on the wire,
:class:`ProtocolError`): never another exception, never a hang (a per-case timer interrupts one).

Mutations: a JSON value replaced by something hostile (1e400, a 5000-digit integer, 2**64, NaN, a lone
surrogate, deep nesting, a wrong type, a huge string), a key deleted, a byte flipped, a line truncated or
duplicated; on the wire also payload frames flipped, truncated, dropped, duplicated or swapped.
"""

from __future__ import annotations

import json
import random
import shutil
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import pytest

from tests.test_stream_protocol import make_fixation, make_selection
from xrseg.errors import ProtocolError, XrsegError
from xrseg.sam.records import ImageEmbedding
from xrseg.session import Session
from xrseg.session.check import check_session
from xrseg.stream.encoder_wire import (
    embedding_reply_frames,
    encode_request_frames,
    parse_reply,
    parse_request,
    ping_frames,
)
from xrseg.stream.events import (
    EventMeta,
    LiftSummary,
    decode_event,
    fixation_frames,
    selection_frames,
    stats_frames,
)

SEED = 15
SESSION_CASES = 300
WIRE_CASES = 400
CASE_TIMEOUT_S = 10.0
BUNDLED = Path(__file__).resolve().parents[1] / "scenes" / "tabletop-small"
SESSION_FILES = (
    "header.json",
    "closed.json",
    "frames.jsonl",
    "head_poses.jsonl",
    "gaze.jsonl",
    "gaze.jsonl",
    "events.jsonl",
    "objects.jsonl",
    "fixation_targets.jsonl",
)
PLACEHOLDER = "\u0000hostile\u0000"
HOSTILE_TOKENS = (
    "1e400",
    "-1e400",
    "9" * 5000,
    str(2**64),
    str(-(2**63) - 1),
    "NaN",
    "Infinity",
    '"\\ud800"',
    "null",
    "true",
    '"x"',
    "[]",
    "{}",
    "[" * 40 + "]" * 40,
    "-1",
    "0",
    "1e308",
    "-1e308",
    "[1e308, 0, 0]",
    '"' + "a" * 70_000 + '"',
    '"../../etc/passwd"',
)


class CaseTimeoutError(Exception):
    """A fuzz case ran longer than :data:`CASE_TIMEOUT_S`."""


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise CaseTimeoutError(f"case took more than {CASE_TIMEOUT_S} s")


def run_case(action: Callable[[], object], expected: type[Exception], what: str) -> bool:
    """Run one case under a timer; True when it raised ``expected``, False when it passed."""
    previous = signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, CASE_TIMEOUT_S)
    try:
        action()
    except expected:
        return True
    except Exception as err:  # the point of the test: anything else is a finding
        raise AssertionError(f"{what}: {type(err).__name__}: {err}"[:2000]) from err
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return False


# --- mutations -------------------------------------------------------------------------------------------------


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from _paths(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            yield from _paths(child, (*path, index))


def _mutate_value(text: str, rng: random.Random) -> str:
    """Replace or delete one node of the JSON document ``text``."""
    value = json.loads(text)
    path = rng.choice(list(_paths(value)))
    if not path:
        return rng.choice(HOSTILE_TOKENS)
    parent = value
    for key in path[:-1]:
        parent = parent[key]
    if isinstance(parent, dict) and rng.random() < 0.25:
        del parent[path[-1]]
        return json.dumps(value)
    parent[path[-1]] = PLACEHOLDER
    return json.dumps(value).replace(json.dumps(PLACEHOLDER), rng.choice(HOSTILE_TOKENS), 1)


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    if not data:
        return bytes([rng.randrange(256)])
    kind = rng.randrange(4)
    at = rng.randrange(len(data))
    if kind == 0:
        return data[:at] + bytes([data[at] ^ (1 << rng.randrange(8))]) + data[at + 1 :]
    if kind == 1:
        return data[:at]
    if kind == 2:
        return data[:at] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))) + data[at:]
    return data + data[at:]


def mutate_document(text: str, rng: random.Random) -> bytes:
    """A mutated JSON document: mostly value-level, sometimes raw bytes."""
    if rng.random() < 0.7:
        return _mutate_value(text, rng).encode("utf-8", "surrogatepass")
    return _mutate_bytes(text.encode(), rng)


def mutate_jsonl(data: bytes, rng: random.Random) -> bytes:
    lines = data.split(b"\n")
    body = [i for i, line in enumerate(lines) if line.strip()]
    if not body:
        return _mutate_bytes(data, rng)
    index = rng.choice(body)
    if rng.random() < 0.1:
        lines.insert(index, lines[index])  # a repeated record
    else:
        lines[index] = mutate_document(lines[index].decode(), rng)
    return b"\n".join(lines)


# --- sessions --------------------------------------------------------------------------------------------------


def _open_and_read(path: Path, full_check: bool) -> None:
    session = Session.open(path)
    if session.frame_count:
        session.frame(session.frame_count - 1)
        session.instance_ids(0)
    for obj in session.objects()[:1]:
        if obj.mesh_file is not None:
            session.object_mesh(obj.object_id)
    if full_check:
        check_session(path)


def test_mutated_sessions_give_named_errors(tmp_path: Path) -> None:
    if not BUNDLED.is_dir():
        pytest.skip("bundled session missing")
    work = tmp_path / "s"
    shutil.copytree(BUNDLED, work)
    originals = {name: (work / name).read_bytes() for name in set(SESSION_FILES)}
    rng = random.Random(SEED)
    refused = 0
    for case in range(SESSION_CASES):
        name = rng.choice(SESSION_FILES)
        data = originals[name]
        mutated = mutate_jsonl(data, rng) if name.endswith(".jsonl") else mutate_document(data.decode(), rng)
        (work / name).write_bytes(mutated)
        what = f"session case {case} ({name}): {mutated[:300]!r}"
        full = case % 20 == 0
        refused += run_case(lambda: _open_and_read(work, full), XrsegError, what)  # noqa: B023 (run at once)
        (work / name).write_bytes(data)
    assert refused > SESSION_CASES // 3  # most mutations must be noticed


# --- wire ------------------------------------------------------------------------------------------------------


def _event_messages() -> list[list[bytes]]:
    def meta(topic: str) -> EventMeta:
        return EventMeta(topic, 7, "fuzz", 1_700_000_000_000_000_000)

    lifted = LiftSummary([0.0, 0.1, -1.0], [0.2, 0.1, 0.1], 500)
    return [
        stats_frames({"encode_ms": 412.5, "frames": 3, "ok": True}, meta("stats"), 123),
        fixation_frames(make_fixation(), meta("fixation")),
        selection_frames(make_selection(), meta("selection"), lifted, "mesh.glb", "png+rle"),
    ]


def _encoder_messages() -> tuple[list[list[bytes]], list[list[bytes]]]:
    rgb = np.arange(12 * 16 * 3, dtype=np.uint8).reshape(12, 16, 3)
    requests = [encode_request_frames(f"fuzz-{e}", rgb, e) for e in ("png", "jpeg", "raw")] + [ping_frames("p")]
    embedding = ImageEmbedding(np.ones((1, 8, 4, 4), np.float32), (12, 16), (768, 1024))
    replies = [embedding_reply_frames("fuzz-1", embedding, dtype) for dtype in ("float32", "float16")]
    return requests, replies


def mutate_message(frames: list[bytes], rng: random.Random, header_at: int) -> list[bytes]:
    frames = list(frames)
    kind = rng.randrange(5)
    if kind <= 1:
        frames[header_at] = mutate_document(frames[header_at].decode(), rng)
    elif kind == 2 and len(frames) > header_at + 1:
        at = rng.randrange(header_at + 1, len(frames))
        frames[at] = _mutate_bytes(frames[at], rng)
    elif kind == 3:
        at = rng.randrange(len(frames))
        action = rng.randrange(3)
        if action == 0:
            del frames[at]
        elif action == 1:
            frames.insert(at, frames[at])
        else:
            frames[at], frames[-1] = frames[-1], frames[at]
    else:
        at = rng.randrange(len(frames))
        frames[at] = rng.choice([b"", b"stats", b"selection", b"\xff" * 3, bytes(70_000)])
    return frames


def test_mutated_wire_messages_give_protocol_errors() -> None:
    rng = random.Random(SEED)
    events = _event_messages()
    requests, replies = _encoder_messages()
    decoders: list[tuple[list[list[bytes]], int, Callable[[list[bytes]], object]]] = [
        (events, 1, decode_event),
        (requests, 0, parse_request),
        (replies, 0, parse_reply),
    ]
    for originals, _, decoder in decoders:  # the originals decode
        for frames in originals:
            decoder(frames)
    refused = 0
    for case in range(WIRE_CASES):
        frames_list, header_at, decode = rng.choice(decoders)
        mutated = mutate_message(rng.choice(frames_list), rng, header_at)
        what = f"wire case {case} ({decode.__name__}): {[f[:200] for f in mutated]!r}"
        refused += run_case(lambda: decode(mutated), ProtocolError, what)  # noqa: B023 (run at once)
    assert refused > WIRE_CASES // 3
