"""RerunSink on hand-built records: the .rrd is checked with Rerun's own CLI (rrd verify, rrd print)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.test_viz_tracker import CAMERA, HEAD_FROM_CAMERA, frame, make_selection, sample, world_from_camera_at
from xrseg.errors import InputError
from xrseg.sinks.base import Drop, PipelineStats, Timing
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


def drive(sink, with_mesh_dir: Path | None = None) -> None:  # type: ignore[no-untyped-def]
    stats = PipelineStats()
    sink.stats = stats
    for i in range(4):
        t = i * 100_000_000
        f = frame(i, t)
        sink.on_frame(f, world_from_camera_at(0.01 * i))
        sink.on_gaze(sample(t + 1, direction=(0.05, 0.0, -1.0)), sample(t + 1))
        if i == 1:
            sink.on_fixation(Fixation(0, t, np.zeros(3), np.array([0.0, 0.0, -1.0]), 0.5))
            mask = np.zeros((48, 64), dtype=bool)
            mask[10:30, 20:40] = True
            stats.encode_ms.append(1400.0)
            stats.timings.append(Timing(1.5, 9.0, 1400.0))
            sink.on_selection(make_selection(1, mask, f), f, world_from_camera_at(0.01 * i))
        if i == 2:
            sink.on_drop(Drop(t, "prompt_miss", "gaze off the keyframe"))
            sink.on_selection(make_selection(2, np.ones((48, 64), bool), f), f, world_from_camera_at(0.0))
            sink.on_reject(make_selection(2, np.ones((48, 64), bool), f))
    sink.close()


@pytest.mark.skipif(RERUN_CLI is None, reason="the rerun CLI is not on PATH")
def test_recording_has_the_expected_entities(tmp_path: Path) -> None:
    import open3d as o3d

    from xrseg.lift.export import export_mesh
    from xrseg.sinks.mesh import MeshSink, ObjectResult
    from xrseg.sinks.viz.rerun_log import RerunSink

    # A real MeshSink whose result for selection 1 points at a real exported mesh (as after following).
    meshes = MeshSink(tmp_path / "out", CAMERA, None, None, follow_frames=0)  # type: ignore[arg-type]
    box = o3d.geometry.TriangleMesh.create_box(0.1, 0.1, 0.1)
    written = export_mesh(box, tmp_path / "out" / "meshes", "object_0001", {"object_id": 1})
    files = {fmt: str(path.relative_to(tmp_path / "out")) for fmt, path in written.items()}
    meshes.results[1] = ObjectResult(1, (1,), (1,), 10, (0.0, 0.0, 2.0), (0.1, 0.1, 0.1), files, 12)

    path = tmp_path / "rec" / "run.rrd"
    sink = RerunSink(path, CAMERA, HEAD_FROM_CAMERA, mesh_sink=meshes)
    drive(sink)
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
        RerunSink(tmp_path, CAMERA, HEAD_FROM_CAMERA)
