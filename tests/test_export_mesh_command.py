"""`xrseg export-mesh`: a bundled session in, one mesh per selection out, in three formats with metadata."""

from __future__ import annotations

import json
from pathlib import Path

import open3d as o3d
import pytest
import trimesh

from xrseg.cli import main
from xrseg.lift import read_metadata

SCENES = Path(__file__).resolve().parents[1] / "scenes"


def test_export_mesh_writes_every_selected_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "meshes-out"
    session = SCENES / "desk-near"
    assert main(["-q", "export-mesh", str(session), "--out", str(out), "--follow-frames", "3"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    meshed = [o for o in summary["objects"] if o["mesh_files"]]
    assert len(meshed) == summary["selections"] >= 5
    assert f"{len(meshed)} mesh(es) from {len(summary['objects'])} selection(s)" in printed
    for entry in meshed:
        files = {fmt: out / name for fmt, name in entry["mesh_files"].items()}
        assert set(files) == {"ply", "obj", "glb"}
        for path in files.values():
            metadata = read_metadata(path)
            assert metadata["object_id"] == entry["selection_id"], path
            assert Path(str(metadata["source_session"])).name == "desk-near"
        legacy = o3d.io.read_triangle_mesh(str(files["ply"]))
        assert len(legacy.triangles) == entry["triangles"]
        scene = trimesh.load(files["glb"])
        assert sum(len(g.faces) for g in scene.geometry.values()) == entry["triangles"]
    record = json.loads(next((out / "selections").glob("*.json")).read_text())
    assert record["mask_choice"] in {"sam", "depth_group", "depth_whole"}


def test_export_mesh_needs_an_out_dir_and_meshes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-mesh", str(SCENES / "desk-near")]) == 2
    assert "--out" in capsys.readouterr().err
    assert main(["export-mesh", str(SCENES / "desk-near"), "--out", str(tmp_path), "--no-mesh"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
