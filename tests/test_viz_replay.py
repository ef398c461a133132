"""All viz sinks on the first 2.5 s of the bundled tabletop-small session with the real MobileSAM engine:
the overlay video, the contact sheet, a key press that rejects a selection, and a Rerun recording."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import pytest

from xrseg.select.pipeline import Pipeline
from xrseg.session.reader import Session
from xrseg.sinks.base import SelectionEvent, Sink
from xrseg.sinks.viz.video import TILE_CAPTION_HEIGHT_PX, TILE_IMAGE_HEIGHT_PX, TILE_WIDTH_PX, OverlayVideoSink
from xrseg.sinks.viz.window import ViewerSink
from xrseg.sources.replay import ReplaySource
from xrseg.types import Frame

SESSION = Path(__file__).resolve().parents[1] / "scenes" / "tabletop-small"
LIMIT_NS = 2_500_000_000


class RejectFirst(Sink):
    """Presses r on the viewer when the first selection arrives (as a person would)."""

    def __init__(self, viewer: ViewerSink) -> None:
        self.viewer = viewer
        self.pressed = False

    def on_selection(self, event: SelectionEvent) -> None:
        if not self.pressed:
            self.pressed = True
            self.viewer.handle_key(ord("r"))


@pytest.fixture(scope="module")
def replay(engine, tmp_path_factory):  # type: ignore[no-untyped-def]
    out = tmp_path_factory.mktemp("viz-replay")
    session = Session.open(SESSION)
    camera, head_from_camera = session.header.camera, session.header.head_from_camera
    pipeline = Pipeline(camera, head_from_camera, engine)
    video = OverlayVideoSink(out, camera, stats=pipeline.stats, source_label="replay tabletop-small")
    viewer = ViewerSink(camera, stats=pipeline.stats)
    sinks: list[Sink] = [video, viewer, RejectFirst(viewer)]
    rrd = None
    if shutil.which("rerun") is not None:
        try:
            from xrseg.sinks.viz.rerun_log import RerunSink
        except ImportError:  # pragma: no cover - the rerun extra is optional
            pass
        else:
            rrd = out / "run.rrd"
            sinks.append(RerunSink(rrd, camera, stats=pipeline.stats))
    pipeline.sinks.extend(sinks)
    items = [item for item in ReplaySource(session) if item.timestamp_ns < LIMIT_NS]
    frames = sum(isinstance(item, Frame) for item in items)
    pipeline.run(viewer.interleave(items))
    return out, pipeline, frames, camera, rrd


def test_overlay_video_has_every_frame(replay) -> None:  # type: ignore[no-untyped-def]
    out, _, frames, camera, _ = replay
    capture = cv2.VideoCapture(str(out / "overlay.mp4"))
    assert capture.get(cv2.CAP_PROP_FPS) == pytest.approx(5.0)  # the session's 200 ms frame interval
    count = 0
    while True:
        ok, image = capture.read()
        if not ok:
            break
        assert image.shape == (camera.height_px, camera.width_px, 3)
        count += 1
    assert count == frames > 5


def test_key_reject_reaches_the_pipeline_and_the_sheet_keeps_every_selection(replay) -> None:  # type: ignore[no-untyped-def]
    out, pipeline, _, _, _ = replay
    assert pipeline.stats.selections >= 2
    assert pipeline.stats.rejected == 1
    sheet = cv2.imread(str(out / "contact_sheet.png"))
    count = pipeline.stats.selections
    columns = min(count, 4)
    rows = -(-count // columns)
    assert sheet.shape[:2] == (rows * (TILE_IMAGE_HEIGHT_PX + TILE_CAPTION_HEIGHT_PX), columns * TILE_WIDTH_PX)


def test_rerun_recording_of_the_replay(replay) -> None:  # type: ignore[no-untyped-def]
    from tests.test_viz_rerun import rrd_entities

    *_, rrd = replay
    if rrd is None:
        pytest.skip("rerun-sdk or its CLI is not installed")
    entities = rrd_entities(rrd)
    for entity in ("/world/camera/image", "/world/keyframe/image/mask", "/world/objects/0001", "/stats/decode_ms"):
        assert entity in entities, sorted(entities)
    assert "Clear" in entities["/world/objects/0001"]  # the first selection was rejected
    assert "Points3D" in entities["/world/objects/0002/points"]
