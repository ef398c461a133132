"""A run's output directory as a labelled data set: COCO instances (RLE masks) and MOT-style tracks.

Read from ``--out DIR`` after a replay (``xrseg export-annotations`` runs one): ``selections/*.json`` and their
mask PNGs (rejected ones are left out), ``summary.json``'s ``objects`` (which selections are one object) and,
with ``--track``, ``tracks/object_NNNN/FFFFFF.png``. Written beside them::

    images/FFFFFF.png                 the annotated frames (RGB), FFFFFF the frame index
    annotations/instances.json        COCO: one image per annotated frame, one category "object", one
                                      annotation per selection (on its keyframe) and per tracked frame of an
                                      object that no selection of it annotates; RLE masks, xywh boxes;
                                      ``track_id`` (and ``attributes``) name the object, the same on every frame
    annotations/tracks_mot.csv        MOT Challenge rows: frame (1-based), track id, x, y, w, h, conf, -1, -1, -1

The masks are RLE-encoded by pycocotools, the COCO reference implementation: the exact format every COCO reader
(pycocotools, FiftyOne, CVAT, X-AnyLabeling) decodes, instead of an encoder of our own to keep in step with it.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.fileio import write_bytes_atomic, write_json_atomic
from xrseg.session.reader import Session

__all__ = ["AnnotationFiles", "Instance", "coco_dataset", "collect_instances", "write_annotations"]

CATEGORY_ID = 1


@dataclass(frozen=True)
class Instance:
    """One object on one frame: ``mask`` HxW bool, ``object_id`` its track, ``selection_id`` None for a tracked
    (not selected) frame."""

    frame_index: int
    object_id: int
    selection_id: int | None
    mask: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class AnnotationFiles:
    coco_json: Path
    mot_csv: Path
    images: int
    annotations: int


def _read_mask(path: Path) -> npt.NDArray[np.bool_]:
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if image is None:
        raise InputError(f"cannot read mask {path}")
    return np.asarray(image) > 127


def collect_instances(out_dir: Path) -> list[Instance]:
    """Every selection (not rejected) and every tracked frame in ``out_dir``, ordered by frame then object."""
    summary_path = out_dir / "summary.json"
    if not summary_path.is_file():
        raise InputError(f"{out_dir} has no summary.json: not the output of a finished run")
    objects = json.loads(summary_path.read_text()).get("objects", [])
    object_of = {s: o["object_id"] for o in objects for s in o.get("selections", [])}
    instances: list[Instance] = []
    selected: set[tuple[int, int]] = set()
    for path in sorted((out_dir / "selections").glob("*.json")):
        record = json.loads(path.read_text())
        object_id = object_of.get(record["selection_id"])
        if record.get("status") == "rejected" or object_id is None:
            continue
        frame = int(record["keyframe_index"])
        mask = _read_mask(out_dir / record["mask_png"])
        instances.append(Instance(frame, object_id, int(record["selection_id"]), mask))
        selected.add((frame, object_id))
    for entry in objects:
        folder = out_dir / "tracks" / f"object_{entry['object_id']:04d}"
        for frame in entry.get("tracked_frames", []):
            if (frame, entry["object_id"]) not in selected:
                mask = _read_mask(folder / f"{frame:06d}.png")
                instances.append(Instance(frame, entry["object_id"], None, mask))
    return sorted(instances, key=lambda i: (i.frame_index, i.object_id, i.selection_id or 0))


def _annotation(annotation_id: int, instance: Instance) -> dict[str, Any]:
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(instance.mask.astype(np.uint8)))
    attributes = {"object_id": instance.object_id, "track_id": instance.object_id}
    if instance.selection_id is not None:
        attributes["selection_id"] = instance.selection_id
    return {
        "id": annotation_id,
        "image_id": instance.frame_index + 1,
        "category_id": CATEGORY_ID,
        "segmentation": {"size": [int(v) for v in rle["size"]], "counts": rle["counts"].decode("ascii")},
        "area": float(mask_utils.area(rle)),
        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
        "iscrowd": 0,
        "track_id": instance.object_id,
        "attributes": attributes,
    }


def coco_dataset(instances: list[Instance], size_hw: tuple[int, int], description: str) -> dict[str, Any]:
    """The COCO instances dict (image ids are frame index + 1; file names ``FFFFFF.png``)."""
    frames = sorted({i.frame_index for i in instances})
    return {
        "info": {"description": description, "version": "1.0"},
        "licenses": [],
        "images": [
            {"id": f + 1, "file_name": f"{f:06d}.png", "height": size_hw[0], "width": size_hw[1], "frame_index": f}
            for f in frames
        ],
        "categories": [{"id": CATEGORY_ID, "name": "object", "supercategory": "gaze-selected"}],
        "annotations": [_annotation(n, instance) for n, instance in enumerate(instances, start=1)],
    }


def _mot_rows(dataset: dict[str, Any]) -> list[list[str]]:
    """One row per (frame, object): the first annotation of that object on that frame."""
    rows: dict[tuple[int, int], list[str]] = {}
    for ann in dataset["annotations"]:
        key = (ann["image_id"], ann["track_id"])
        if key not in rows:
            x, y, w, h = ann["bbox"]
            rows[key] = [str(ann["image_id"]), str(ann["track_id"]), f"{x:g}", f"{y:g}", f"{w:g}", f"{h:g}"]
            rows[key] += ["1", "-1", "-1", "-1"]
    return [rows[key] for key in sorted(rows)]


def write_annotations(out_dir: Path, session: Session) -> AnnotationFiles:
    """Write ``images/``, ``annotations/instances.json`` and ``annotations/tracks_mot.csv`` into ``out_dir``
    (see the module docstring) for the run of ``session`` written there."""
    instances = collect_instances(out_dir)
    camera = session.header.camera
    dataset = coco_dataset(
        instances, (camera.height_px, camera.width_px), f"xrseg gaze selections of {session.path.name}"
    )
    images = out_dir / "images"
    images.mkdir(parents=True, exist_ok=True)
    for image in dataset["images"]:
        ok, png = cv2.imencode(".png", cv2.cvtColor(session.frame(image["frame_index"]).rgb, cv2.COLOR_RGB2BGR))
        if not ok:
            raise InputError(f"cannot encode frame {image['frame_index']}")
        write_bytes_atomic(images / image["file_name"], png.tobytes())
    folder = out_dir / "annotations"
    folder.mkdir(parents=True, exist_ok=True)
    write_json_atomic(folder / "instances.json", dataset)
    mot = folder / "tracks_mot.csv"
    with open(mot, "w", newline="") as handle:
        csv.writer(handle).writerows(_mot_rows(dataset))
    return AnnotationFiles(folder / "instances.json", mot, len(dataset["images"]), len(dataset["annotations"]))
