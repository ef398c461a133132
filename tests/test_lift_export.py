"""Mesh export to PLY, OBJ and GLB: files load back with trimesh and Open3D and carry the metadata."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import open3d as o3d
import pytest
import trimesh

import xrseg
from xrseg.errors import InputError
from xrseg.lift import export_mesh, read_metadata

METADATA: dict[str, str | int | float | list[str | int | float]] = {
    "object_id": 3,
    "source_session": "kitchen-01",
    "frame_indices": [12, 15, 19],
    "voxel_size_m": 0.004,
}


def _coloured_sphere() -> o3d.geometry.TriangleMesh:
    mesh = o3d.geometry.TriangleMesh.create_sphere(0.1, resolution=12)
    mesh.compute_vertex_normals()
    colours = np.tile([[0.8, 0.4, 0.2]], (len(mesh.vertices), 1))
    mesh.vertex_colors = o3d.utility.Vector3dVector(colours)
    return mesh


def test_exported_files_load_back_with_trimesh_and_open3d(tmp_path: Path) -> None:
    mesh = _coloured_sphere()
    paths = export_mesh(mesh, tmp_path / "out", "object-3", METADATA)
    assert sorted(paths) == ["glb", "obj", "ply"]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["object-3.glb", "object-3.obj", "object-3.ply"]
    expected_bounds = np.array([[-0.1, -0.1, -0.1], [0.1, 0.1, 0.1]])
    for fmt, path in paths.items():
        loaded = o3d.io.read_triangle_mesh(str(path))
        assert len(loaded.triangles) == len(mesh.triangles), fmt
        np.testing.assert_allclose(
            [loaded.get_min_bound(), loaded.get_max_bound()], expected_bounds, atol=1e-6, err_msg=fmt
        )
        assert loaded.has_vertex_colors(), fmt
        np.testing.assert_allclose(np.asarray(loaded.vertex_colors).mean(axis=0), [0.8, 0.4, 0.2], atol=0.01)
        geometry = trimesh.load(path, force="mesh")
        assert len(geometry.faces) == len(mesh.triangles), fmt
        np.testing.assert_allclose(geometry.bounds, expected_bounds, atol=1e-6, err_msg=fmt)


def test_every_format_carries_the_metadata(tmp_path: Path) -> None:
    paths = export_mesh(_coloured_sphere(), tmp_path, "object-3", METADATA)
    expected = {**METADATA, "created_by": f"xrseg {xrseg.__version__}"}
    for path in paths.values():
        assert read_metadata(path) == expected
    # Each in the format's own way, readable without xrseg:
    header = paths["ply"].read_bytes().split(b"end_header")[0].decode("ascii")
    assert "comment xrseg object_id=3\n" in header
    assert "comment xrseg frame_indices=[12, 15, 19]\n" in header
    assert paths["obj"].read_text().startswith('# xrseg object_id=3\n# xrseg source_session="kitchen-01"\n')
    assert "# object name: object-3\n" in paths["obj"].read_text()  # not the temporary file's name
    scene = trimesh.load(paths["glb"])
    assert scene.metadata["object_id"] == 3 and scene.metadata["frame_indices"] == [12, 15, 19]
    data = paths["glb"].read_bytes()
    length, kind = struct.unpack_from("<II", data, 12)
    tree = json.loads(data[20 : 20 + length])
    assert kind == 0x4E4F534A and tree["asset"]["extras"] == expected


def test_export_replaces_files_atomically_and_leaves_no_temporaries(tmp_path: Path) -> None:
    export_mesh(_coloured_sphere(), tmp_path, "obj", {"object_id": 1})
    paths = export_mesh(_coloured_sphere(), tmp_path, "obj", {"object_id": 2, "created_by": "test"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obj.glb", "obj.obj", "obj.ply"]
    assert all(read_metadata(p) == {"object_id": 2, "created_by": "test"} for p in paths.values())


def test_rejected_export_keeps_the_previous_files(tmp_path: Path) -> None:
    paths = export_mesh(_coloured_sphere(), tmp_path, "obj", {"object_id": 1})
    before = {p: p.read_bytes() for p in paths.values()}
    with pytest.raises(InputError, match="metadata"):
        export_mesh(_coloured_sphere(), tmp_path, "obj", {"object_id": {"nested": 1}})  # type: ignore[dict-item]
    with pytest.raises(InputError, match="no triangles"):
        export_mesh(o3d.geometry.TriangleMesh(), tmp_path, "obj", {})
    assert {p: p.read_bytes() for p in paths.values()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["obj.glb", "obj.obj", "obj.ply"]


@pytest.mark.parametrize(
    ("stem", "metadata", "formats", "message"),
    [
        ("../escape", {}, ("ply",), "stem"),
        ("", {}, ("ply",), "stem"),
        ("ok", {"bad key": 1}, ("ply",), "metadata name"),
        ("ok", {"flag": True}, ("ply",), "values must be"),
        ("ok", {"x": float("nan")}, ("ply",), "non-finite"),
        ("ok", {}, ("stl",), "formats"),
    ],
)
def test_bad_export_arguments(tmp_path: Path, stem: str, metadata: dict, formats: tuple, message: str) -> None:
    with pytest.raises(InputError, match=message):
        export_mesh(_coloured_sphere(), tmp_path, stem, metadata, formats=formats)
    assert list(tmp_path.iterdir()) == []


def test_read_metadata_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such mesh file"):
        read_metadata(tmp_path / "missing.ply")
    fake = tmp_path / "fake.glb"
    fake.write_bytes(b"not a glb at all, just text")
    with pytest.raises(InputError, match="not a GLB"):
        read_metadata(fake)
    stl = tmp_path / "x.stl"
    stl.write_text("solid")
    with pytest.raises(InputError, match="unsupported"):
        read_metadata(stl)
