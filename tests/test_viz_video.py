"""OverlayVideoSink: a real MP4 read back with OpenCV, the frame rate from timestamps, the contact sheet grid."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.test_viz_tracker import CAMERA, frame, make_selection, sink_events, world_from_camera_at
from xrseg.errors import InputError
from xrseg.sinks.base import FrameEvent
from xrseg.sinks.viz.video import (
    SHEET_BACKGROUND_RGB,
    TILE_CAPTION_HEIGHT_PX,
    TILE_IMAGE_HEIGHT_PX,
    TILE_WIDTH_PX,
    OverlayVideoSink,
    contact_sheet,
    frame_rate_fps,
)

TILE_HEIGHT_PX = TILE_IMAGE_HEIGHT_PX + TILE_CAPTION_HEIGHT_PX


def test_frame_rate_from_timestamps() -> None:
    assert frame_rate_fps([0, 100_000_000, 200_000_000, 400_000_000]) == 10.0  # median interval 100 ms
    assert frame_rate_fps([0, 33_333_333, 66_666_666]) == pytest.approx(30.0, abs=1e-5)
    assert frame_rate_fps([0]) == 10.0
    assert frame_rate_fps([0, 1_000_000]) == 120.0  # clamped
    assert frame_rate_fps([0, 5_000_000_000]) == 1.0


def run_sink(out_dir: Path, frames: int, selections: int) -> OverlayVideoSink:
    sink = OverlayVideoSink(out_dir, CAMERA, source_label="test")
    events = sink_events()
    for i in range(frames):
        f = frame(i, i * 100_000_000)
        sink.on_frame(FrameEvent(f, world_from_camera_at(0.0)))
        if i < selections:
            mask = np.zeros((48, 64), dtype=bool)
            mask[10 + i : 30, 20:40] = True
            sink.on_selection(events.selection(make_selection(i + 1, mask, f), f, world_from_camera_at(0.0)))
    sink.close()
    return sink


def test_mp4_and_contact_sheet(tmp_path: Path) -> None:
    sink = run_sink(tmp_path, frames=12, selections=5)
    capture = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    assert capture.isOpened()
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(10.0)
    count = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        assert image.shape == (48, 64, 3)
        count += 1
    capture.release()
    assert count == 12 == sink.frames_written
    sheet = cv2.cvtColor(cv2.imread(str(tmp_path / "contact_sheet.png")), cv2.COLOR_BGR2RGB)
    assert sheet.shape == (2 * TILE_HEIGHT_PX, 4 * TILE_WIDTH_PX, 3)  # 5 tiles: 4 columns, 2 rows
    cells = [
        sheet[r * TILE_HEIGHT_PX : (r + 1) * TILE_HEIGHT_PX, c * TILE_WIDTH_PX : (c + 1) * TILE_WIDTH_PX]
        for r in range(2)
        for c in range(4)
    ]
    background = [bool(np.all(cell == SHEET_BACKGROUND_RGB)) for cell in cells]
    assert background == [False] * 5 + [True] * 3
    assert sink.summary() == {"viz": {"overlay_video": "overlay.mp4", "contact_sheet": "contact_sheet.png"}}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["contact_sheet.png", "overlay.mp4"]  # no temp files


def test_short_stream_and_no_selections(tmp_path: Path) -> None:
    sink = run_sink(tmp_path, frames=3, selections=0)  # fewer frames than the rate estimate wants
    capture = cv2.VideoCapture(str(tmp_path / "overlay.mp4"))
    assert int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) == 3
    capture.release()
    assert not (tmp_path / "contact_sheet.png").exists()
    assert sink.summary() == {"viz": {"overlay_video": "overlay.mp4"}}
    empty = run_sink(tmp_path / "empty", frames=0, selections=0)
    assert empty.summary() == {"viz": {}} and not (tmp_path / "empty" / "overlay.mp4").exists()


def test_rejected_selection_keeps_its_tile(tmp_path: Path) -> None:
    sink = OverlayVideoSink(tmp_path, CAMERA)
    f = frame(0, 0)
    sink.on_frame(FrameEvent(f, world_from_camera_at(0.0)))
    mask = np.zeros((48, 64), dtype=bool)
    mask[10:30, 20:40] = True
    selection = make_selection(1, mask, f)
    sink.on_selection(sink_events().selection(selection, f, world_from_camera_at(0.0)))
    before = sink._tiles[1].image.copy()
    sink.on_reject(selection)
    sink.close()
    sheet = cv2.imread(str(tmp_path / "contact_sheet.png"))
    assert sheet.shape[:2] == (TILE_HEIGHT_PX, TILE_WIDTH_PX)
    assert not np.array_equal(before, sink._tiles[1].image), "the tile is marked rejected"


def test_bad_out_dir_and_empty_sheet(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a directory"):
        OverlayVideoSink(tmp_path / "file", CAMERA)
    with pytest.raises(InputError):
        contact_sheet([])
