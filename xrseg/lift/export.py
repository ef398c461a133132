"""Write an object mesh as PLY, OBJ and GLB (glTF binary), each carrying the same metadata.

Metadata is a flat mapping of names (``[A-Za-z0-9_.-]+``) to str, int, float or lists of them, e.g.
``{"object_id": 3, "source_session": "kitchen-01", "frame_indices": [12, 15, 19]}``; ``created_by`` (the xrseg
version) is added when absent. Each value is stored as JSON:

- PLY: header comments ``comment xrseg <name>=<json>`` (written by Open3D, comments inserted in the header),
- OBJ: leading comments ``# xrseg <name>=<json>`` (written by Open3D),
- GLB: ``asset.extras`` and the scene's ``extras`` (written by trimesh: Open3D's glTF writer has no extras).

:func:`read_metadata` reads it back from any of the three. Every file is written into a temporary directory
beside the target and moved into place with ``os.replace``, so a reader never sees a half-written file and a
failure leaves the previous files untouched.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import struct
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import open3d as o3d

from xrseg.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["EXPORT_FORMATS", "MetadataValue", "export_mesh", "read_metadata"]

MetadataValue: TypeAlias = str | int | float | list[str | int | float]

EXPORT_FORMATS = ("ply", "obj", "glb")
_KEY = re.compile(r"^[A-Za-z0-9_.-]+$")
_PLY_PREFIX = "comment xrseg "
_OBJ_PREFIX = "# xrseg "
_GLB_MAGIC = b"glTF"
_GLB_JSON_CHUNK = 0x4E4F534A


def _check_metadata(metadata: Mapping[str, Any]) -> dict[str, MetadataValue]:
    clean: dict[str, MetadataValue] = {}
    for key, value in metadata.items():
        if not isinstance(key, str) or not _KEY.match(key):
            raise InputError(f"metadata name {key!r} must match [A-Za-z0-9_.-]+")
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, bool) or not isinstance(item, str | int | float):
                raise InputError(
                    f"metadata {key!r}: values must be str, int, float or a list of them, got {item!r}"
                )
            if isinstance(item, float) and not np.isfinite(item):
                raise InputError(f"metadata {key!r}: non-finite number {item}")
        clean[key] = list(value) if isinstance(value, list) else value
    if "created_by" not in clean:
        from xrseg import __version__

        clean["created_by"] = f"xrseg {__version__}"
    return clean


def _metadata_lines(prefix: str, metadata: Mapping[str, MetadataValue]) -> list[str]:
    return [f"{prefix}{key}={json.dumps(value, ensure_ascii=True)}" for key, value in metadata.items()]


def _write_ply(mesh: o3d.geometry.TriangleMesh, path: Path, metadata: Mapping[str, MetadataValue]) -> None:
    raw = path.with_suffix(".raw.ply")
    if not o3d.io.write_triangle_mesh(raw, mesh, write_ascii=False):
        raise OSError(f"Open3D could not write {raw}")
    data = raw.read_bytes()
    raw.unlink()
    first_newline = data.index(b"\n")
    second_newline = data.index(b"\n", first_newline + 1)  # after the "format ..." line
    if not data.startswith(b"ply\n") or not data[first_newline + 1 : second_newline].startswith(b"format "):
        raise OSError(f"unexpected PLY header from Open3D in {raw}")
    comments = "".join(line + "\n" for line in _metadata_lines(_PLY_PREFIX, metadata)).encode("ascii")
    path.write_bytes(data[: second_newline + 1] + comments + data[second_newline + 1 :])


def _write_obj(mesh: o3d.geometry.TriangleMesh, path: Path, metadata: Mapping[str, MetadataValue]) -> None:
    plain = o3d.geometry.TriangleMesh(mesh)
    plain.triangle_normals = o3d.utility.Vector3dVector()  # OBJ has vertex normals only
    raw = path.with_suffix(".raw.obj")
    if not o3d.io.write_triangle_mesh(raw, plain):
        raise OSError(f"Open3D could not write {raw}")
    body = raw.read_text(encoding="ascii")
    raw.unlink()
    # Open3D names the object after the file it wrote (the temporary ``NAME.raw``): name it after the real one.
    body = body.replace(f"# object name: {raw.stem}\n", f"# object name: {path.stem}\n", 1)
    header = "".join(line + "\n" for line in _metadata_lines(_OBJ_PREFIX, metadata))
    path.write_text(header + body, encoding="ascii")


def _write_glb(mesh: o3d.geometry.TriangleMesh, path: Path, metadata: Mapping[str, MetadataValue]) -> None:
    import trimesh  # only GLB needs it

    vertex_colors = None
    if mesh.has_vertex_colors():
        rgb = np.clip(np.asarray(mesh.vertex_colors) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        vertex_colors = np.column_stack([rgb, np.full(rgb.shape[0], 255, dtype=np.uint8)])
    tm = trimesh.Trimesh(
        vertices=np.asarray(mesh.vertices),
        faces=np.asarray(mesh.triangles),
        vertex_normals=np.asarray(mesh.vertex_normals) if mesh.has_vertex_normals() else None,
        vertex_colors=vertex_colors,
        process=False,
    )
    scene = trimesh.Scene()
    scene.add_geometry(tm, node_name="object", geom_name="object")
    scene.metadata.update(metadata)
    extras = dict(metadata)

    def add_asset_extras(tree: dict[str, Any]) -> None:
        tree.setdefault("asset", {})["extras"] = extras

    path.write_bytes(trimesh.exchange.gltf.export_glb(scene, tree_postprocessor=add_asset_extras))


def export_mesh(
    mesh: o3d.geometry.TriangleMesh,
    out_dir: str | os.PathLike[str],
    stem: str,
    metadata: Mapping[str, MetadataValue],
    formats: tuple[str, ...] = EXPORT_FORMATS,
) -> dict[str, Path]:
    """Write ``mesh`` (metres, optional vertex colours in [0, 1] and normals) as ``<out_dir>/<stem>.<fmt>``.

    Returns ``{"ply": path, "obj": path, "glb": path}`` (the formats asked for). ``out_dir`` is created if
    needed; existing files of the same name are replaced atomically. Raises :class:`InputError` for an empty
    mesh, a bad stem, an unknown format or metadata that is not a flat mapping of names to str/int/float/lists.
    """
    if len(mesh.triangles) == 0:
        raise InputError("mesh has no triangles: nothing to export")
    if not stem or stem != Path(stem).name or stem.startswith("."):
        raise InputError(f"stem must be a plain file name without directories, got {stem!r}")
    unknown = [fmt for fmt in formats if fmt not in EXPORT_FORMATS]
    if unknown or not formats:
        raise InputError(f"formats must be a non-empty subset of {EXPORT_FORMATS}, got {formats}")
    clean = _check_metadata(metadata)
    target_dir = Path(out_dir)
    target_dir.mkdir(parents=True, exist_ok=True)
    writers = {"ply": _write_ply, "obj": _write_obj, "glb": _write_glb}
    staging = Path(tempfile.mkdtemp(prefix=f".{stem}.", suffix=".tmp", dir=target_dir))
    try:
        staged = {}
        for fmt in formats:
            staged[fmt] = staging / f"{stem}.{fmt}"
            writers[fmt](mesh, staged[fmt], clean)
        results = {}
        for fmt, source in staged.items():
            results[fmt] = target_dir / source.name
            os.replace(source, results[fmt])
            logger.info("wrote %s", results[fmt])
        return results
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _parse_value(key: str, text: str, path: Path) -> MetadataValue:
    try:
        value: MetadataValue = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{path}: metadata {key!r} is not valid JSON") from err
    return value


def read_metadata(path: str | os.PathLike[str]) -> dict[str, MetadataValue]:
    """The xrseg metadata stored in a PLY, OBJ or GLB file written by :func:`export_mesh` ({} if none)."""
    file = Path(path)
    suffix = file.suffix.lower()
    if not file.is_file():
        raise InputError(f"no such mesh file: {file}")
    result: dict[str, MetadataValue] = {}
    if suffix in (".ply", ".obj"):
        prefix = _PLY_PREFIX if suffix == ".ply" else _OBJ_PREFIX
        end = b"end_header" if suffix == ".ply" else None
        with file.open("rb") as handle:
            for raw in handle:
                line = raw.decode("ascii", errors="replace").rstrip("\r\n")
                if end is not None and raw.startswith(end):
                    break
                if end is None and not line.startswith("#"):
                    break
                if line.startswith(prefix) and "=" in line:
                    key, _, text = line[len(prefix) :].partition("=")
                    result[key] = _parse_value(key, text, file)
        return result
    if suffix == ".glb":
        data = file.read_bytes()
        if len(data) < 20 or data[:4] != _GLB_MAGIC:
            raise InputError(f"{file} is not a GLB file")
        chunk_length, chunk_type = struct.unpack_from("<II", data, 12)
        if chunk_type != _GLB_JSON_CHUNK:
            raise InputError(f"{file}: first GLB chunk is not JSON")
        try:
            tree = json.loads(data[20 : 20 + chunk_length])
        except json.JSONDecodeError as err:
            raise InputError(f"{file}: GLB JSON chunk is corrupt") from err
        extras = tree.get("asset", {}).get("extras", {})
        return dict(extras) if isinstance(extras, dict) else {}
    raise InputError(f"unsupported mesh format {suffix!r}: expected .ply, .obj or .glb")
