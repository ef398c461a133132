"""The live path without an OpenXR runtime: the real LiveSource fed by a paced video camera (an MP4 of a
bundled scene, with its depth as PNGs) and a scripted headset (the scene's head poses and gaze, played in
real time through the same producer interface as the OpenXR source), with the real model.

And the gaze path never runs the encoder: selections are made while the background encoder is busy.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from xrseg.calibration import DeviceCalibration
from xrseg.config import PipelineOptions
from xrseg.geometry import PoseTrack
from xrseg.sam.records import ImageEmbedding
from xrseg.select.gaze_path import GazeOptions
from xrseg.select.keyframes import rotation_between_deg
from xrseg.select.pipeline import Pipeline
from xrseg.session.reader import Session
from xrseg.sinks.base import Drop, FrameEvent, PreviewEvent, SelectionEvent, Sink
from xrseg.sources.camera import CameraSource, DepthImageFolder
from xrseg.sources.live import LiveSource
from xrseg.sources.replay import ReplaySource
from xrseg.sources.scripted import ScriptedHeadset
from xrseg.types import Frame, InputEvent, Selection, Transform

SCENES = Path(__file__).resolve().parents[1] / "scenes"


class Collect(Sink):
    def __init__(self) -> None:
        self.selections: list[Selection] = []
        self.frames: list[tuple[Frame, Transform | None]] = []
        self.drops: list[Drop] = []
        self.previews: list[PreviewEvent] = []
        self.closed = False

    def on_frame(self, event: FrameEvent) -> None:
        self.frames.append((event.frame, event.world_from_camera))

    def on_selection(self, event: SelectionEvent) -> None:
        self.selections.append(event.selection)

    def on_drop(self, drop: Drop) -> None:
        self.drops.append(drop)

    def on_preview(self, event: PreviewEvent) -> None:
        self.previews.append(event)

    def close(self) -> None:
        self.closed = True


def write_camera_files(session: Session, folder: Path) -> tuple[Path, Path]:
    """The session's frames as an MP4 at their own rate and its depth as 16-bit millimetre PNGs."""
    times = session.frame_timestamps_ns
    fps = 1e9 / float(np.median(np.diff(times)))
    camera = session.header.camera
    video = folder / "camera.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter.fourcc(*"mp4v"), fps, (camera.width_px, camera.height_px))
    assert writer.isOpened()
    depth_dir = folder / "depth"
    depth_dir.mkdir()
    for index in range(session.frame_count):
        frame = session.frame(index)
        writer.write(cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
        assert frame.depth_m is not None
        depth_mm = np.clip(np.rint(frame.depth_m * 1000.0), 0, 65535).astype(np.uint16)
        cv2.imwrite(str(depth_dir / f"depth_{index:06d}.png"), depth_mm)
    writer.release()
    return video, depth_dir


def selected_object(selection: Selection, session: Session) -> int:
    ids = session.instance_ids(selection.keyframe_index)
    assert ids is not None
    labels, counts = np.unique(ids[selection.mask], return_counts=True)
    return int(labels[np.argmax(counts)])


def target_object(selection: Selection, session: Session, offset_ns: int) -> int | None:
    """The scripted target overlapping the selection's fixation (fixation times mapped back to the script)."""
    start, end = selection.fixation.start_ns - offset_ns, selection.fixation.end_ns - offset_ns
    best, overlap = None, 0
    for target in session.fixation_targets():
        shared = min(end, target.end_ns) - max(start, target.start_ns)
        if shared > overlap:
            best, overlap = target.object_id, shared
    return best


def test_live_source_with_paced_camera_and_scripted_headset_selects(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    session = Session.open(SCENES / "desk-near")
    video, depth_dir = write_camera_files(session, tmp_path)
    header = session.header
    calibration = DeviceCalibration("scripted", header.camera, header.head_from_camera)
    headset = ScriptedHeadset(session.head_poses(), session.gaze_samples(), session.events())
    camera = CameraSource(str(video), realtime=True, depth=DepthImageFolder(depth_dir))
    live = LiveSource(camera, calibration, headset=headset)
    collect = Collect()
    pipeline = Pipeline(header.camera, header.head_from_camera, engine, options=PipelineOptions(realtime=True))
    pipeline.sinks.append(collect)
    with live:
        stats = pipeline.run(live)

    # Clean shutdown: the camera ran to the end of the file and was released, the producers stopped, the
    # headset streamed until it covered the last frame, and the sinks were closed.
    assert collect.closed and not camera.is_open and camera.finished.is_set()
    assert camera.stats.captured == session.frame_count
    assert live.stop_reason == "the camera ended"
    assert headset.start_ns is not None
    offset_ns = headset.start_ns - headset.script_start_ns  # script time -> xrseg clock
    assert stats.frames == len(collect.frames) >= session.frame_count - camera.stats.dropped

    # Pose pairing: every frame got a camera pose, and it is the scene's true pose at that frame.
    truth = PoseTrack.from_head_poses(session.head_poses())
    errors_deg = []
    for frame, world_from_camera in collect.frames:
        assert world_from_camera is not None, f"frame {frame.index} has no pose"
        true_head = truth.at(int(session.frame_timestamps_ns[frame.index]))
        assert true_head is not None
        errors_deg.append(rotation_between_deg(world_from_camera, true_head @ header.head_from_camera))
    assert float(np.median(errors_deg)) < 2.0, errors_deg

    # Selections: most SELECT presses select, and mostly the object the script looked at.
    assert stats.encodes >= 1 and stats.selections >= 6, (stats, collect.drops)
    correct = [selected_object(s, session) == target_object(s, session, offset_ns) for s in collect.selections]
    assert sum(correct) >= 0.7 * len(correct), correct
    assert not any(d.kind == "stale_keyframe" for d in collect.drops), collect.drops


class GatedEncoder:
    """The real engine's encoder; from the second encode on, each is held (in progress) until :attr:`release`."""

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.engine = engine
        self.release = threading.Event()
        self.held = threading.Event()
        self.threads: set[str] = set()
        self.calls = 0

    def encode(self, image: np.ndarray) -> ImageEmbedding:
        self.calls += 1
        self.threads.add(threading.current_thread().name)
        if self.calls >= 2:
            self.held.set()
            assert self.release.wait(120.0)
        return self.engine.encode(image)


class DuringEncode(Sink):
    def __init__(self, encoder: GatedEncoder) -> None:
        self.encoder = encoder
        self.while_encoding: list[bool] = []

    def on_selection(self, event: SelectionEvent) -> None:
        self.while_encoding.append(self.encoder.held.is_set() and not self.encoder.release.is_set())


def test_selections_are_made_while_an_encode_is_in_progress(engine) -> None:  # type: ignore[no-untyped-def]
    session = Session.open(SCENES / "desk-near")
    encoder = GatedEncoder(engine)
    during = DuringEncode(encoder)
    pipeline = Pipeline(
        session.header.camera,
        session.header.head_from_camera,
        engine,
        encoder,
        PipelineOptions(realtime=True),
        [during],
    )
    items = iter(ReplaySource(session))
    for item in items:  # up to the first frame, and let the background encoder finish it
        pipeline.push(item)
        if isinstance(item, Frame):
            break
    assert pipeline.embeddings.wait_idle(timeout_s=120.0)
    try:
        for item in items:  # the next frame's encode is held: every selection now happens during it
            pipeline.push(item)
        pipeline.finish()
        assert encoder.held.is_set()
        assert sum(during.while_encoding) >= 1, (pipeline.stats, during.while_encoding)
    finally:
        encoder.release.set()
        pipeline.close()
    assert encoder.threads == {"xrseg-encoder"}  # never on the pipeline's (gaze) thread
    assert pipeline.stats.frames_dropped_by_encoder >= 1  # frames that came while it was held: latest wins


@pytest.mark.parametrize("realtime", [False, True])
def test_mesh_sink_follows_off_the_pipeline_thread(engine, tmp_path: Path, realtime: bool) -> None:  # type: ignore[no-untyped-def]
    from xrseg.sam.embeddings import EmbeddingService, EncodeMode
    from xrseg.sinks.mesh import MeshSink

    session = Session.open(SCENES / "desk-near")
    header = session.header
    mode = EncodeMode.BACKGROUND if realtime else EncodeMode.ON_DEMAND
    embeddings = EmbeddingService(engine, mode)
    meshes = MeshSink(tmp_path, header.camera, engine, embeddings, follow_frames=2)
    options = PipelineOptions(realtime=realtime)
    pipeline = Pipeline(header.camera, header.head_from_camera, engine, engine, options, [meshes], embeddings)
    stats = pipeline.run(ReplaySource(session, realtime=realtime))
    summary = meshes.summary()
    assert stats.selections >= 1 and 1 <= len(summary["objects"]) <= stats.selections  # one per object
    assert any(o["mesh_files"] for o in summary["objects"])
    if not realtime:
        assert summary["mesh_frames_dropped"] == 0  # deterministic replay waits instead of dropping


def _held_run(  # type: ignore[no-untyped-def]
    engine, session: Session, options: PipelineOptions, encoder: GatedEncoder, sinks: list[Sink]
) -> Pipeline:
    """``session`` in asynchronous mode (``options``) with ``encoder`` held after the first keyframe: until the
    pipeline closes, every trigger has that keyframe only."""
    header = session.header
    pipeline = Pipeline(header.camera, header.head_from_camera, engine, encoder, options, sinks)
    items = iter(ReplaySource(session))
    for item in items:
        pipeline.push(item)
        if isinstance(item, Frame):
            break
    assert pipeline.embeddings.wait_idle(timeout_s=120.0)
    try:
        for item in items:
            pipeline.push(item)
        pipeline.finish()
    finally:
        encoder.release.set()
        pipeline.close()
    return pipeline


def _look_ahead_run(engine, session: Session, speculate_ms: float) -> tuple[Pipeline, Collect]:  # type: ignore[no-untyped-def]
    """desk-near held after its first keyframe (:func:`_held_run`), so runs with and without look-ahead differ
    only in when they decode."""
    collect = Collect()
    options = PipelineOptions(realtime=True, speculate_ms=speculate_ms)
    return _held_run(engine, session, options, GatedEncoder(engine), [collect]), collect


def test_a_select_press_finds_its_mask_decoded_ahead(engine) -> None:  # type: ignore[no-untyped-def]
    session = Session.open(SCENES / "desk-near")
    ahead, with_look_ahead = _look_ahead_run(engine, session, speculate_ms=100.0)
    at_press, without = _look_ahead_run(engine, session, speculate_ms=0.0)
    assert ahead.stats.look_aheads >= 5 and at_press.stats.look_aheads == 0
    assert ahead.stats.look_ahead_hits >= 1 and at_press.stats.look_ahead_hits == 0
    # Every look-ahead is a hover preview (a candidate, id 0); a press that took one selects the mask it showed.
    assert len(with_look_ahead.previews) == ahead.stats.look_aheads and not without.previews
    assert all(p.candidate.selection_id == 0 for p in with_look_ahead.previews)
    shown = [p.candidate.mask for p in with_look_ahead.previews]
    answered = [s for s in with_look_ahead.selections if any(np.array_equal(s.mask, m) for m in shown)]
    assert len(answered) >= ahead.stats.look_ahead_hits
    # Every press that selected was timed, answered ahead or not.
    assert len(ahead.stats.click_to_mask_ms) == len(at_press.stats.click_to_mask_ms) >= 1
    # Decoding a little earlier in the same fixation selects the same objects.
    objects = [selected_object(s, session) for s in with_look_ahead.selections]
    assert objects == [selected_object(s, session) for s in without.selections]


def test_keyframes_are_analysed_for_the_cone_search_when_they_arrive(engine) -> None:  # type: ignore[no-untyped-def]
    """No trigger at all (no dwell, no presses, no look-ahead): every keyframe the background encoder finished
    was still analysed, so the first decision on it does not pay for the analysis."""
    session = Session.open(SCENES / "desk-near")
    header = session.header
    options = PipelineOptions(gaze=GazeOptions(dwell_ms=0.0), realtime=True, speculate_ms=0.0)
    pipeline = Pipeline(header.camera, header.head_from_camera, engine, options=options)
    source = (item for item in ReplaySource(session, realtime=True) if not isinstance(item, InputEvent))
    stats = pipeline.run(itertools.islice(source, 600))
    assert stats.selections == 0 and stats.encodes >= 2
    analysed = set(pipeline._selector._scenes)
    encoded = {k.frame.index for k in pipeline.embeddings.keyframes()}
    assert analysed and analysed <= encoded
    assert len(analysed) >= min(stats.encodes, 4) - 1  # the last one may finish after the stream ended


def test_a_press_no_keyframe_has_seen_holds_up_no_later_press(engine) -> None:  # type: ignore[no-untyped-def]
    """desk-near's presses, the encoder held after the first keyframe: a press whose target that keyframe did
    not see waits for a later one, and the presses after it that the first keyframe serves are answered
    meanwhile. The waiting press is answered when the encoder comes back, and does not become the latest
    selection (the one REJECT, LARGER and SMALLER act on) over a later press."""
    session = Session.open(SCENES / "desk-near")
    encoder = GatedEncoder(engine)
    during, collect = DuringEncode(encoder), Collect()
    options = PipelineOptions(gaze=GazeOptions(dwell_ms=0.0), realtime=True, speculate_ms=0.0)
    pipeline = _held_run(engine, session, options, encoder, [during, collect])
    times = [s.timestamp_ns for s in collect.selections]
    waited = [t for t, held in zip(times, during.while_encoding, strict=True) if not held]
    served = [t for t, held in zip(times, during.while_encoding, strict=True) if held]
    assert waited and served, (times, during.while_encoding)
    assert max(served) > min(waited), (served, waited)  # answered while an earlier press waited
    assert sum(pipeline.stats.click_waited) == len(waited)  # bench reports their click-to-mask apart
    assert len(pipeline.stats.click_waited) == len(pipeline.stats.click_to_mask_ms) == len(times)
    assert pipeline._last is not None and pipeline._last.selection.timestamp_ns == max(times)
