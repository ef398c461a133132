"""Generated sessions on disk: read back with the session reader, checked against the plan and the meshes."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest

from xrseg.cli import main
from xrseg.geometry import PoseTrack, unproject_pixels
from xrseg.select.gaze_offsets import angular_offsets
from xrseg.session.reader import Session
from xrseg.tools.scenes import ScenePlan, generate_session, load_recipe, plan_scene, recipe_from_dict
from xrseg.tools.scenes.scanpath import nearest_frame_index
from xrseg.types import EventKind

SCENES = Path(__file__).resolve().parents[1] / "scenes"

RECIPE = {
    "name": "test-session",
    "seed": 3,
    "duration_s": 3.0,
    "camera": {"width_px": 160, "height_px": 120},
    "rates": {"frame_hz": 10, "head_hz": 72, "gaze_hz": 120},
    "placement": {"count": 5},
    "scanpath": {"blinks_per_min": 20},
    "output": {"rgb_encoding": "png"},
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, ScenePlan]:
    """(recipe path, session path, plan) of a small session written by the command with --seed 11."""
    root = tmp_path_factory.mktemp("scene")
    recipe_path = root / "small.json"
    recipe_path.write_text(json.dumps(RECIPE))
    out = root / "session"
    code = main(
        ["scene", "generate", str(recipe_path), "--out", str(out), "--seed", "11", "--precision-deg", "0.4"]
    )
    assert code == 0
    plan = plan_scene(load_recipe(recipe_path).with_overrides(seed=11, precision_deg=0.4))
    return recipe_path, out, plan


def test_session_streams_match_the_plan(generated: tuple[Path, Path, ScenePlan]) -> None:
    _, out, plan = generated
    session = Session.open(out)
    assert session.warnings == []
    assert session.header.source == "synthetic" and session.header.rgb_encoding == "png"
    assert session.header.created_unix_ns != 0
    assert session.frame_count == 30 and len(session.head_poses()) == 216 and len(session.gaze_samples()) == 360
    assert np.array_equal(session.frame_timestamps_ns, plan.frame_timestamps_ns)
    assert np.allclose(session.world_from_head, plan.trajectory.world_from_head(plan.head_timestamps_ns))
    targets = session.fixation_targets()
    assert [(t.start_ns, t.end_ns, t.object_id) for t in targets] == [
        (f.start_ns, f.end_ns, f.object_id) for f in plan.fixations
    ]
    events = session.events()
    assert [e.kind for e in events] == [EventKind.SELECT] * len(plan.fixations)
    assert sorted(o.object_id for o in session.objects()) == [1, 2, 3, 4, 5]
    assert np.allclose(session.camera.intrinsic_matrix(), plan.camera.intrinsic_matrix())
    assert np.allclose(session.header.head_from_camera, plan.head_from_camera)


def test_session_gaze_has_the_requested_error(generated: tuple[Path, Path, ScenePlan]) -> None:
    _, out, plan = generated
    samples = Session.open(out).gaze_samples()
    valid = np.array([s.usable for s in samples])
    assert np.array_equal(valid, plan.gaze.valid) and not valid.all()
    measured = np.array([s.ray.direction for s in samples])[valid]
    offsets_deg = np.degrees(angular_offsets(plan.gaze.true_direction[valid], measured))
    mean = offsets_deg.mean(axis=0)
    rms = math.sqrt(float(np.mean(np.sum((offsets_deg - mean) ** 2, axis=1))))
    assert float(np.linalg.norm(mean)) == pytest.approx(1.0, abs=0.1)  # the recipe's default accuracy
    assert rms == pytest.approx(0.4, rel=0.2)  # --precision-deg 0.4
    depths = np.array([s.vergence_depth_m for s in samples if s.usable])
    assert np.all(depths > 0.1)


def test_depth_pixels_lie_on_the_object_meshes(generated: tuple[Path, Path, ScenePlan]) -> None:
    """Unproject stored depth with the stored camera, rig and head poses: the points are on the stored meshes."""
    _, out, _ = generated
    session = Session.open(out)
    track = PoseTrack.from_head_poses(session.head_poses())
    meshes = o3d.t.geometry.RaycastingScene()
    for obj in session.objects():
        meshes.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(session.object_mesh(obj.object_id)))
    checked = 0
    for index in (0, 12, 25):
        frame = session.frame(index)
        ids = session.instance_ids(index)
        assert frame.depth_m is not None and ids is not None
        ys, xs = np.nonzero(ids > 0)
        pick = np.linspace(0, xs.size - 1, 40).astype(int)
        pixels = np.column_stack([xs[pick], ys[pick]]).astype(np.float64)
        points_camera = unproject_pixels(session.camera, pixels, frame.depth_m[ys[pick], xs[pick]])
        world_from_head = track.at(frame.timestamp_ns)
        assert world_from_head is not None
        world_from_camera = world_from_head @ session.header.head_from_camera
        points = points_camera @ world_from_camera[:3, :3].T + world_from_camera[:3, 3]
        distance = meshes.compute_distance(o3d.core.Tensor(points.astype(np.float32))).numpy()
        assert np.all(distance < 0.004)  # 1 mm depth steps, pose interpolation and edge pixels
        checked += pick.size
    assert checked == 120


def test_fixation_target_points_lie_on_the_zero_error_gaze_ray(tmp_path: Path) -> None:
    """With no tracker error and no drift, every fixating gaze ray (head frame -> world with the stored head
    pose at the same timestamp) passes within 1 mm of the stored target point, which lies on its object."""
    recipe = {
        **RECIPE,
        "duration_s": 2.0,
        "rates": {"frame_hz": 5, "head_hz": 120, "gaze_hz": 120},  # one head pose per gaze sample
        "scanpath": {"drift_deg": 0.0, "blinks_per_min": 0.0},
        "gaze_error": {"accuracy_deg": 0.0, "precision_deg": 0.0},
    }
    plan = generate_session(recipe_from_dict(recipe), tmp_path / "s", progress=False)
    session = Session.open(tmp_path / "s")
    targets = session.fixation_targets()
    assert [t.target_world_m for t in targets] == [tuple(f.target_world_m) for f in plan.fixations]
    world_from_head = {int(t): m for t, m in zip(session.head_timestamps_ns, session.world_from_head, strict=True)}
    meshes = o3d.t.geometry.RaycastingScene()
    mesh_ids = {}
    for obj in session.objects():
        mesh_ids[
            meshes.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(session.object_mesh(obj.object_id)))
        ] = obj.object_id
    checked = 0
    for target in targets:
        assert target.target_world_m is not None
        point = np.array(target.target_world_m)
        closest = meshes.compute_closest_points(o3d.core.Tensor(point[None, :].astype(np.float32)))
        assert mesh_ids[int(closest["geometry_ids"].numpy()[0])] == target.object_id
        assert float(np.linalg.norm(closest["points"].numpy()[0] - point)) < 1e-4
        for sample in session.gaze_samples():
            if not target.start_ns <= sample.timestamp_ns <= target.end_ns:
                continue
            assert sample.usable
            pose = world_from_head[sample.timestamp_ns]
            origin = pose[:3, :3] @ sample.ray.origin_m + pose[:3, 3]
            direction = pose[:3, :3] @ sample.ray.direction
            offset = point - origin
            miss_m = float(np.linalg.norm(offset - (offset @ direction) * direction))
            assert offset @ direction > 0.2 and miss_m < 0.001, (target, sample.timestamp_ns, miss_m)
            checked += 1
    assert len(targets) >= 2 and checked >= 0.8 * len(session.gaze_samples())


def test_same_seed_same_bytes(generated: tuple[Path, Path, ScenePlan], tmp_path: Path) -> None:
    recipe_path, out, _ = generated
    again = tmp_path / "again"
    assert (
        main(
            ["scene", "generate", str(recipe_path), "--out", str(again), "--seed", "11", "--precision-deg", "0.4"]
        )
        == 0
    )
    files = sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for relative in files:  # closed.json included: the generator gives the writer a seed-derived clock
        assert (out / relative).read_bytes() == (again / relative).read_bytes(), relative
    closed = json.loads((out / "closed.json").read_text())
    assert closed["closed_unix_ns"] == 1_704_067_200 * 10**9 + 11 * 10**9 + 3 * 10**9  # epoch + seed s + 3 s
    assert json.loads((out / "header.json").read_text())["created_unix_ns"] == 1_704_067_200 * 10**9 + 11 * 10**9
    other = tmp_path / "other"
    assert main(["scene", "generate", str(recipe_path), "--out", str(other), "--seed", "12"]) == 0
    assert (other / "gaze.jsonl").read_bytes() != (out / "gaze.jsonl").read_bytes()


def test_refuses_to_overwrite_without_the_flag(generated: tuple[Path, Path, ScenePlan]) -> None:
    recipe_path, out, _ = generated
    before = (out / "gaze.jsonl").read_bytes()
    assert main(["scene", "generate", str(recipe_path), "--out", str(out)]) == 2
    assert (out / "gaze.jsonl").read_bytes() == before


@pytest.mark.parametrize("name", ["tabletop-small", "room-small", "desk-near"])
def test_bundled_session_reads_and_its_targets_are_visible(name: str) -> None:
    session = Session.open(SCENES / name)
    assert session.warnings == [] and session.header.source == "synthetic"
    assert (session.camera.width_px, session.camera.height_px) == (480, 360)
    assert "accuracy 1 deg" in session.header.description and "precision 0.5 deg" in session.header.description
    targets = session.fixation_targets()
    assert 8 <= len(targets) <= 16
    assert len(session.events()) == len(targets)
    object_ids = {obj.object_id for obj in session.objects()}
    for target in targets[:4]:
        assert target.object_id in object_ids
        index = nearest_frame_index(session.frame_timestamps_ns, (target.start_ns + target.end_ns) // 2)
        ids = session.instance_ids(index)
        assert ids is not None and np.count_nonzero(ids == target.object_id) > 50
