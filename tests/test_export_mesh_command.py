"""`xrseg export-mesh`: a bundled session in, one mesh per selected object out, in three formats with metadata."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import open3d as o3d
import pytest
import trimesh

from xrseg.cli import main
from xrseg.lift import read_metadata
from xrseg.session.reader import Session
from xrseg.tools.scoring import picked_object

SCENES = Path(__file__).resolve().parents[1] / "scenes"


def test_export_mesh_writes_one_mesh_per_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """desk-near selects its 5 objects 11 times: 5 meshes, each listing the selections (of that object) that built
    it."""
    out = tmp_path / "meshes-out"
    session = SCENES / "desk-near"
    assert main(["-q", "export-mesh", str(session), "--out", str(out), "--follow-frames", "3"]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    meshed = [o for o in summary["objects"] if o["mesh_files"]]
    assert len(meshed) == len(summary["objects"]) <= 5
    selections = sorted(s for o in summary["objects"] for s in o["selections"])
    assert selections == list(range(1, summary["selections"] + 1)) and len(selections) > len(meshed)
    assert f"{len(meshed)} mesh(es) of {len(meshed)} object(s) from {len(selections)} selection(s)" in printed
    truth = Session.open(session)
    for entry in meshed:
        picked = set()
        for selection_id in entry["selections"]:
            record = json.loads((out / "selections" / f"{selection_id:04d}.json").read_text())
            mask = np.asarray(cv2.imread(str(out / record["mask_png"]), cv2.IMREAD_GRAYSCALE)) > 0
            ids = truth.instance_ids(record["keyframe_index"])
            assert ids is not None
            picked.add(picked_object(mask, ids))
        assert len(picked) == 1, f"object {entry['object_id']} mixes ground-truth objects {picked}"
        files = {fmt: out / name for fmt, name in entry["mesh_files"].items()}
        assert set(files) == {"ply", "obj", "glb"}
        for path in files.values():
            metadata = read_metadata(path)
            assert metadata["object_id"] == entry["object_id"], path
            assert metadata["selections"] == entry["selections"], path
            assert metadata["source_session"] == str(session.resolve())
        legacy = o3d.io.read_triangle_mesh(str(files["ply"]))
        assert len(legacy.triangles) == entry["triangles"]
        scene = trimesh.load(files["glb"])
        assert sum(len(g.faces) for g in scene.geometry.values()) == entry["triangles"]
    assert np.all(np.diff([o["object_id"] for o in meshed]) > 0)
    record = json.loads(next((out / "selections").glob("*.json")).read_text())
    assert record["mask_choice"] in {"sam", "depth_group", "depth_whole"}


def test_export_mesh_needs_an_out_dir_and_offers_no_no_mesh(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["export-mesh", str(SCENES / "desk-near")], ["export-mesh", "s", "--out", "o", "--no-mesh"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "the following arguments are required: --out" in err and "unrecognized arguments: --no-mesh" in err
    with pytest.raises(SystemExit):
        main(["export-mesh", "--help"])
    helps = capsys.readouterr().out
    assert "--no-mesh" not in helps and "[--out" not in helps and "--out OUT" in helps
