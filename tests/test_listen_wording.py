"""`xrseg listen` says what it waits for before the first event, and prints numbers a person can read."""

from __future__ import annotations

import socket

import pytest

from xrseg.cli import main
from xrseg.commands.listen import human_line


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_listen_says_what_it_waits_for(capsys: pytest.CaptureFixture[str]) -> None:
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    assert main(["listen", endpoint, "--timeout", "0.2"]) == 0
    err = capsys.readouterr().err
    assert err.startswith(f"xrseg listen: waiting for fixation, selection, stats, preview events on {endpoint}")
    assert main(["-q", "listen", endpoint, "--timeout", "0.2"]) == 0
    assert "waiting" not in capsys.readouterr().err


def test_numbers_are_rounded_and_the_score_is_named() -> None:
    fixation = {
        "topic": "fixation",
        "seq": 3,
        "start_ns": 1_000,
        "duration_ms": 412.25,
        "direction": [0.1, 0.2, 0.97],
        "dispersion_deg": 8.298965383100882,
        "samples": 50,
    }
    assert "dispersion=8.30 deg" in human_line(fixation)
    selection = {
        "topic": "selection",
        "seq": 4,
        "selection_id": 1,
        "keyframe_index": 2,
        "score": 1.0098,
        "mask_hw": [360, 480],
        "area_px": 5208,
        "bbox_xyxy": [1, 2, 3, 4],
        "depth_source": "depth_image",
    }
    assert "predicted_iou=1.01" in human_line(selection)
