"""RerunSink on hand-built records turned into the pipeline's sink events, beside a real MeshSink that tells it
of its meshes: the .rrd is checked with Rerun's own CLI (rrd verify, rrd print)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.test_viz_tracker import CAMERA, frame, make_selection, sample, sink_events
from xrseg.errors import InputError
from xrseg.sinks.base import Drop, PipelineStats, Sink, Timing, finish_and_close
from xrseg.types import Fixation

rerun = pytest.importorskip("rerun", reason="the `rerun` extra (rerun-sdk) is not installed")
RERUN_CLI = shutil.which("rerun")


def rrd_entities(path: Path) -> dict[str, str]:
    """Entity path -> the data columns Rerun's CLI prints for it (all chunks joined), after `rrd verify`."""
    assert RERUN_CLI is not None
    verify = subprocess.run([RERUN_CLI, "rrd", "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert verify.returncode == 0, verify.stderr
    printed = subprocess.run([RERUN_CLI, "rrd", "print", str(path)], capture_output=True, text=True, timeout=60)
    assert printed.returncode == 0, printed.stderr
    entities: dict[str, str] = {}
    for line in printed.stdout.splitlines():
        if line.startswith("Chunk(") and " - /" in line:
            entity, columns = line.split(" - /", 1)[1].split(" - data columns: ", 1)
            entities["/" + entity] = entities.get("/" + entity, "") + columns
    return entities


def drive(sinks: list[Sink], stats: PipelineStats) -> None:
    """Four frames with the head moving 1 cm per frame: gaze, a fixation, a selection, a drop, a rejected one."""
    events = sink_events(*[(i * 100_000_000, 0.01 * i) for i in range(4)])
    for i in range(4):
        t = i * 100_000_000
        frame_event = events.frame(frame(i, t))
        gaze_pose = events.poses.world_from_head_at(t + 1)
        assert frame_event.world_from_camera is not None and gaze_pose is not None
        gaze = events.gaze(sample(t + 1, direction=(0.05, 0.0, -1.0)), sample(t + 1), gaze_pose)
        for sink in sinks:
            sink.on_frame(frame_event)
            sink.on_gaze(gaze)
        if i == 1:
            fixation = events.fixation(Fixation(0, t, np.zeros(3), np.array([0.0, 0.0, -1.0]), 0.5))
            mask = np.zeros((48, 64), dtype=bool)
            mask[10:30, 20:40] = True
            stats.encode_ms.append(1400.0)
            stats.timings.append(Timing(1.5, 9.0, 1400.0))
            selected = events.selection(
                make_selection(1, mask, frame_event.frame), frame_event.frame, frame_event.world_from_camera
            )
            for sink in sinks:
                sink.on_fixation(fixation)
                sink.on_selection(selected)
        if i == 2:
            rejected = make_selection(2, np.ones((48, 64), bool), frame_event.frame)
            for sink in sinks:
                sink.on_drop(Drop(t, "prompt_miss", "gaze off the keyframe"))
                sink.on_selection(events.selection(rejected, frame_event.frame, frame_event.world_from_camera))
                sink.on_reject(rejected)
    finish_and_close(sinks)


@pytest.mark.skipif(RERUN_CLI is None, reason="the rerun CLI is not on PATH")
def test_recording_has_the_expected_entities(tmp_path: Path) -> None:
    from xrseg.sinks.mesh import MeshSink
    from xrseg.sinks.viz.rerun_log import RerunSink

    path = tmp_path / "rec" / "run.rrd"
    stats = PipelineStats()
    sink = RerunSink(path, CAMERA, stats=stats)
    # A real MeshSink (no following: no decoder needed) that lifts and fuses each selection and tells the
    # Rerun sink of its meshes; the Rerun sink comes first: sinks do not depend on their order.
    meshes = MeshSink(tmp_path / "out", CAMERA, None, None, follow_frames=0, listeners=[sink])  # type: ignore[arg-type]
    drive([sink, meshes], stats)
    assert meshes.results and all(r.mesh_files for r in meshes.results.values()), meshes.results
    assert path.is_file() and not (path.parent / ".run.rrd.partial").exists()
    assert sink.summary() == {"rerun_recording": str(path)}
    entities = rrd_entities(path)
    expected = {
        "/world": "ViewCoordinates",
        "/world/camera": "Transform3D",
        "/world/camera/image": "Pinhole",
        "/world/camera/image/depth": "DepthImage",
        "/world/camera/image/gaze": "Points2D",
        "/world/head": "Transform3D",
        "/world/head_trajectory": "LineStrips3D",
        "/world/gaze/ray": "LineStrips3D",
        "/world/gaze/point": "Points3D",
        "/world/fixations": "Points3D",
        "/world/keyframe/image/mask": "SegmentationImage",
        "/world/keyframe/image/prompts": "Points2D",
        "/world/objects/0001/points": "Points3D",
        "/world/objects/0001/mesh": "Asset3D",
        "/world/objects/0002": "Clear",
        "/stats/encode_ms": "Scalars",
        "/stats/decode_ms": "Scalars",
        "/stats/gaze_to_mask_ms": "Scalars",
        "/stats/selection_score": "Scalars",
        "/log": "TextLog",
    }
    for entity, archetype in expected.items():
        assert archetype in entities.get(entity, ""), (entity, sorted(entities))
    assert "EncodedImage" in entities["/world/camera/image"]


def test_missing_directory_target_is_refused(tmp_path: Path) -> None:
    from xrseg.sinks.viz.rerun_log import RerunSink

    with pytest.raises(InputError, match="is a directory"):
        RerunSink(tmp_path, CAMERA)
