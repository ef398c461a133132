"""`xrseg eval` on the bundled scenes: the issue's accuracy bars, and depth-aware gaze beating a fixed 1 m."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xrseg.cli import main
from xrseg.config import OutputOptions, RunOptions
from xrseg.tools.evaluate import evaluate_session

SCENES = Path(__file__).resolve().parents[1] / "scenes"
BUNDLED = ("tabletop-small", "room-small", "desk-near")


def eval_options(tmp_path: Path, name: str) -> RunOptions:
    return RunOptions(outputs=OutputOptions(out_dir=tmp_path / name, follow_frames=4))


@pytest.fixture(scope="module")
def reports(engine, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:  # type: ignore[no-untyped-def]
    tmp = tmp_path_factory.mktemp("eval")
    return {name: evaluate_session(SCENES / name, eval_options(tmp, name)) for name in BUNDLED}


@pytest.mark.parametrize("name", BUNDLED)
def test_selection_accuracy_and_mask_iou(reports: dict[str, dict], name: str) -> None:
    """The issue's bars at 1.0 deg accuracy and 0.5 deg precision: selection accuracy 0.90, mask IoU 0.80."""
    report = reports[name]
    assert report["coverage"] >= 0.9, report["coverage"]
    assert report["selection_accuracy"] >= 0.90, report["per_selection"]
    assert report["mean_mask_iou"] >= 0.80, report["per_selection"]


@pytest.mark.parametrize("name", BUNDLED)
def test_meshes_match_the_ground_truth_surface_they_saw(reports: dict[str, dict], name: str) -> None:
    """Every mesh of an object of 10-40 cm seen from 0.5-2 m (the issue's goal): Chamfer distance from the mesh
    to the ground-truth object <= 1 cm. Those selected whole (mask IoU >= 0.8, and the object not cut by the
    keyframe's border: following grows only what the selection saw) are also within 1 cm (symmetric Chamfer) of
    the ground-truth surface the fused frames saw, and cover most of it."""
    meshes = reports[name]["meshes"]
    in_goal = [m for m in meshes if m["in_goal_range"]]
    assert len(in_goal) >= 4, "objects in the goal range were meshed"
    for mesh in in_goal:
        assert mesh["chamfer_m"] <= 0.01, mesh
    whole = [
        m
        for m in in_goal
        if m["selection_correct"] and m["selection_mask_iou"] >= 0.8 and not m["cut_by_image_border"]
    ]
    assert whole
    for mesh in whole:
        assert mesh["chamfer_seen_m"] <= 0.01, mesh
        assert mesh["completeness_seen_1cm"] >= 0.8, mesh


def test_depth_aware_gaze_beats_a_fixed_metre_for_near_objects(reports: dict[str, dict]) -> None:
    near_depth = [r["near_lt_1m"]["depth_aware_deg"] for r in reports.values()]
    near_fixed = [r["near_lt_1m"]["fixed_1m_deg"] for r in reports.values()]
    count = sum(d["n"] for d in near_depth)
    assert count >= 10, "the bundled scenes have objects nearer than 1 m"
    mean_depth = sum(d["mean"] * d["n"] for d in near_depth if d["n"]) / count
    mean_fixed = sum(d["mean"] * d["n"] for d in near_fixed if d["n"]) / sum(d["n"] for d in near_fixed)
    assert mean_depth < mean_fixed, (mean_depth, mean_fixed)


def test_eval_json_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-q", "eval", str(SCENES / "desk-near"), "--json", "--no-mesh"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("selection_accuracy", "mean_mask_iou", "angular_error_deg", "gaze_to_mask_ms", "drops"):
        assert key in report


def test_eval_refuses_a_session_without_ground_truth(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from xrseg.session.reader import Session
    from xrseg.session.writer import SessionWriter

    source = Session.open(SCENES / "desk-near")
    header = source.header
    with SessionWriter(tmp_path / "plain", header) as writer:
        for index in range(3):
            writer.write_frame(source.frame(index))
        for pose in source.head_poses()[:50]:
            writer.write_head_pose(pose)
    assert main(["eval", str(tmp_path / "plain")]) == 2
    assert "no ground truth" in capsys.readouterr().err
