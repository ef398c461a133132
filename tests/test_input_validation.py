"""Hostile input: the strict JSON reader, regular-file reads, and the values a session may hold (issue 15)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from xrseg import jsonsafe
from xrseg.calibration import load_calibration
from xrseg.errors import CalibrationError, InputError, ProtocolError, SessionError
from xrseg.session import Session, SessionHeader, SessionWriter
from xrseg.stream.protocol import decode_header
from xrseg.types import CameraModel, Frame, GazeRay, GazeSample, HeadPose

CAMERA = CameraModel(32, 24, 30.0, 30.0, 15.5, 11.5)


def write_session(path: Path) -> Path:
    header = SessionHeader("hostile", CAMERA, np.eye(4), "recorded", has_depth=False)
    with SessionWriter(path, header) as writer:
        for i in range(2):
            writer.write_frame(Frame(i, 100 * i, np.full((24, 32, 3), 40 * i, np.uint8)))
        for k in range(3):
            writer.write_gaze(GazeSample(10 * k, GazeRay([0, 0, 0], [0.0, 0.0, -1.0]), vergence_depth_m=0.8))
            writer.write_head_pose(HeadPose(10 * k, np.eye(4)))
    return path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1" * 5000, "integer of 5000 digits"),
        ("[1e400]", "out of the float64 range"),
        ("-1e400", "out of the float64 range"),
        (str(2**64), "does not fit 64 bits"),
        (str(-(2**63) - 1), "does not fit 64 bits"),
        ('{"a": NaN}', "NaN is not JSON"),
        ("[Infinity]", "Infinity is not JSON"),
        ("[" * 40 + "]" * 40, "nested too deeply"),
        ("[" * 100000 + "]" * 100000, "nested too deeply"),
        ('{"name": "\\ud800"}', "unpaired surrogate"),
        ("{", "not valid JSON"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_loads_refuses_hostile_documents(text: str | bytes, message: str) -> None:
    with pytest.raises(SessionError, match=re.escape(message)):
        jsonsafe.loads(text, "doc", SessionError)


def test_loads_keeps_what_is_in_range() -> None:
    value = jsonsafe.loads(f'{{"t": {2**63 - 1}, "u": {-(2**63)}, "x": 1e-400, "s": "\\u00e9"}}', "doc")
    assert value == {"t": 2**63 - 1, "u": -(2**63), "x": 0.0, "s": "é"}


def test_regular_files_only_and_size_capped(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):  # returns at once: no writer needed
        jsonsafe.read_regular_file(fifo, 100, "pipe")
    with pytest.raises(InputError, match="not a regular file"):
        jsonsafe.read_regular_file(tmp_path, 100, "folder")
    big = tmp_path / "big"
    big.write_bytes(b"x" * 101)
    with pytest.raises(InputError, match="101 bytes, more than the limit of 100"):
        jsonsafe.read_regular_file(big, 100, "big")
    with pytest.raises(InputError, match="missing nothing") as info:
        jsonsafe.read_regular_file(tmp_path / "nothing", 100, "nothing")
    assert isinstance(info.value.__cause__, FileNotFoundError)


def _edit_line(path: Path, index: int, edit: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[index] = edit + "\n"
    path.write_text("".join(lines))
    (path.parent / "closed.json").unlink(missing_ok=True)


def _record(path: Path, index: int) -> dict[str, object]:
    value: dict[str, object] = json.loads(path.read_text().splitlines()[index])
    return value


@pytest.mark.parametrize(
    ("stream", "change", "message"),
    [
        ("gaze.jsonl", lambda r: r | {"timestamp_ns": 2**64}, "does not fit 64 bits"),
        ("gaze.jsonl", lambda r: r | {"timestamp_ns": -5}, "timestamp_ns must be an integer in [0,"),
        ("gaze.jsonl", lambda r: r | {"origin_m": [1e308, 0, 0]}, "gaze origin_m is more than 10000 m"),
        ("gaze.jsonl", lambda r: r | {"vergence_depth_m": -0.5}, "vergence_depth_m -0.5 is not a positive"),
        ("gaze.jsonl", lambda r: r | {"vergence_depth_m": 0}, "vergence_depth_m 0.0 is not a positive"),
        ("head_poses.jsonl", lambda r: r | {"world_from_head": _far_pose()}, "translation is more than 10000 m"),
        ("frames.jsonl", lambda r: r | {"timestamp_ns": int("9" * 30)}, "integer of 30 digits"),
    ],
)
def test_session_values_out_of_range_are_refused(
    tmp_path: Path, stream: str, change: object, message: str
) -> None:
    session = write_session(tmp_path / "s")
    record = _record(session / stream, 1)
    _edit_line(session / stream, 1, json.dumps(change(record)))  # type: ignore[operator]
    with pytest.raises(SessionError, match=re.escape(message)):
        Session.open(session)


def _far_pose() -> list[list[float]]:
    pose = np.eye(4)
    pose[0, 3] = 1e308
    return pose.tolist()


def test_nan_vergence_is_refused_by_the_reader(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    line = json.dumps(_record(session / "gaze.jsonl", 1) | {"vergence_depth_m": float("nan")})
    _edit_line(session / "gaze.jsonl", 1, line)
    with pytest.raises(SessionError, match="NaN is not JSON"):
        Session.open(session)


def test_huge_camera_in_header_is_refused(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    header = json.loads((session / "header.json").read_text())
    header["camera"]["width_px"] = 2**40
    (session / "header.json").write_text(json.dumps(header))
    with pytest.raises(SessionError, match=r"width_px must be an integer in \[1, 16384\]"):
        Session.open(session)


def test_a_fifo_or_a_huge_file_where_a_frame_should_be(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    opened = Session.open(session)
    rgb = session / opened.frame_record(0).rgb_file
    rgb.unlink()
    os.mkfifo(rgb)
    with pytest.raises(SessionError, match="is not a regular file"):
        opened.frame(0)
    rgb.unlink()
    with rgb.open("wb") as handle:  # a sparse 2 GB file: no disk used, never read
        handle.truncate(2 << 30)
    with pytest.raises(SessionError, match="more than the limit"):
        opened.frame(0)


def test_a_frame_declaring_another_size_is_refused_before_decoding(tmp_path: Path) -> None:
    session = write_session(tmp_path / "s")
    opened = Session.open(session)
    rgb = session / opened.frame_record(1).rgb_file
    data = bytearray(rgb.read_bytes())
    if data.startswith(b"\x89PNG"):
        data[16:24] = (60000).to_bytes(4, "big") + (60000).to_bytes(4, "big")
    else:
        sof = next(i for i in range(2, len(data) - 9) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
        data[sof + 5 : sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    rgb.write_bytes(bytes(data))
    with pytest.raises(SessionError, match="60000x60000 pixels but the camera model is 32x24"):
        opened.frame(1)


def test_wire_header_with_huge_numbers_is_a_protocol_error() -> None:
    for bad in (b'{"schema": "xrseg.events/1", "seq": ' + b"9" * 5000 + b"}", b'{"x": 1e400}'):
        with pytest.raises(ProtocolError):
            decode_header(bad, "xrseg.events", 1)


def test_calibration_with_huge_numbers_is_a_calibration_error(tmp_path: Path) -> None:
    path = tmp_path / "calib.json"
    path.write_text('{"schema": "xrseg.calibration/1", "clock_offset_ns": ' + "7" * 5000 + "}")
    with pytest.raises(CalibrationError, match="integer of 5000 digits"):
        load_calibration(path)
    os.unlink(path)
    os.mkfifo(path)
    with pytest.raises(CalibrationError, match="not a regular file"):
        load_calibration(path)


MANIFEST = {"format": 1, "default_variant": "fp32", "files": {}, "variants": {}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (json.dumps(MANIFEST | {"files": []}), "'files' must be an object"),
        (json.dumps(MANIFEST | {"variants": {"fp32": {"decoder": "d.onnx"}}}), "needs 'encoder' and 'decoder'"),
        (
            json.dumps(MANIFEST | {"variants": {"fp32": {"encoder": "../e.onnx", "decoder": "d.onnx"}}}),
            "'encoder'",
        ),
        (json.dumps(MANIFEST)[:-1] + ', "built_unix_s": ' + "9" * 5000 + "}", "integer of 5000 digits"),
        (json.dumps(MANIFEST)[:-1] + ', "built_unix_s": 1e400}', "out of the float64 range"),
    ],
)
def test_malformed_model_manifest_is_one_line(
    text: str, message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from xrseg.cli import main

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "manifest.json").write_text(text)
    monkeypatch.setenv("XRSEG_HOME", str(tmp_path))
    session = Path(__file__).resolve().parents[1] / "scenes" / "tabletop-small"
    assert main(["replay", str(session), "--no-video", "--no-mesh"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("xrseg: error: model manifest") and err.count("\n") == 1 and message in err, err
