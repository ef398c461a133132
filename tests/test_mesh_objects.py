"""The mesh sink makes one mesh per object: selections of one object are fused together, a rejection takes its
selection out of the object, and an object left without selections leaves no mesh behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xrseg.geometry import PoseTrack
from xrseg.lift import read_metadata
from xrseg.session.reader import Session
from xrseg.sinks.base import LiftOnce, SelectionEvent
from xrseg.sinks.mesh import MeshSink
from xrseg.types import DepthSource, Fixation, Selection

SCENES = Path(__file__).resolve().parents[1] / "scenes"


def ground_truth_selection(session: Session, selection_id: int, frame: int, object_id: int) -> Selection:
    """A selection whose mask is the ground-truth mask of ``object_id`` on ``frame`` (as a perfect pick)."""
    ids = session.instance_ids(frame)
    assert ids is not None
    mask = ids == object_id
    assert mask.sum() > 500, (frame, object_id)
    t = int(session.frame_timestamps_ns[frame])
    fixation = Fixation(t, t, np.zeros(3), np.array([0.0, 0.0, 1.0]), 0.5)
    rows, cols = np.nonzero(mask)
    return Selection(
        selection_id=selection_id,
        timestamp_ns=t,
        keyframe_index=frame,
        keyframe_timestamp_ns=t,
        fixation=fixation,
        mask=mask,
        score=1.0,
        mask_index=0,
        candidate_scores=(1.0,),
        prompt_points_xy=np.array([[cols.mean(), rows.mean()]], dtype=np.float32),
        prompt_labels=np.ones(1, dtype=np.int32),
        gaze_xy=(float(cols.mean()), float(rows.mean())),
        depth_source=DepthSource.DEPTH_IMAGE,
    )


def test_selections_of_one_object_make_one_mesh_and_rejections_undo_them(tmp_path: Path) -> None:
    session = Session.open(SCENES / "desk-near")
    header = session.header
    track = PoseTrack.from_head_poses(session.head_poses())
    sink = MeshSink(tmp_path, header.camera, None, None, 0, SCENES / "desk-near")  # type: ignore[arg-type]

    def select(selection_id: int, frame: int, object_id: int) -> None:
        pose = track.at(int(session.frame_timestamps_ns[frame]))
        assert pose is not None
        selection, keyframe = ground_truth_selection(session, selection_id, frame, object_id), session.frame(frame)
        world_from_camera = pose @ header.head_from_camera
        lifted = LiftOnce(selection, keyframe, header.camera, world_from_camera)
        sink.on_selection(SelectionEvent(selection, keyframe, world_from_camera, lifted))

    first, second = 2, 4  # desk-near's sphere and capsule, both in view on frames 4 and 12
    select(1, 4, first)
    select(2, 12, first)  # the same object, eight frames (and some head motion) later
    select(3, 4, second)
    sink.on_reject(ground_truth_selection(session, 3, 4, second))
    sink.finish()
    summary = sink.summary()["objects"]
    assert [(o["object_id"], o["selections"]) for o in summary] == [(1, [1, 2])]
    assert sorted(p.name for p in (tmp_path / "meshes").iterdir()) == [
        f"object_0001.{f}" for f in ("glb", "obj", "ply")
    ]
    metadata = read_metadata(tmp_path / "meshes" / "object_0001.ply")
    assert metadata["selections"] == [1, 2] and metadata["keyframes"] == [4, 12] and metadata["frames"] == [4, 12]
    assert metadata["source_session"] == str((SCENES / "desk-near").resolve())
