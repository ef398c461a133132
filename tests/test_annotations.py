"""`xrseg export-annotations --track --cutouts` on a bundled scene: a COCO data set pycocotools opens, with masks
equal to the selection PNGs, cutouts whose alpha is the mask, and tracks that follow the ground truth."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from xrseg.cli import main
from xrseg.session.reader import Session
from xrseg.sinks.cutouts import cutout_rgba
from xrseg.tools.track_scores import track_scores

pytest.importorskip("pycocotools")  # the coco extra

SCENES = Path(__file__).resolve().parents[1] / "scenes"
SCENE = "desk-near"


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("annotations") / SCENE
    argv = ["-q", "export-annotations", str(SCENES / SCENE), "--out", str(out), "--track", "--cutouts"]
    assert main(argv) == 0
    return out


def _png(path: Path, flags: int = cv2.IMREAD_GRAYSCALE) -> np.ndarray:
    image = cv2.imread(str(path), flags)
    assert image is not None, path
    return np.asarray(image)


def test_coco_opens_in_pycocotools_with_the_selection_masks(exported: Path) -> None:
    from pycocotools.coco import COCO

    coco = COCO(str(exported / "annotations" / "instances.json"))
    selected = [a for a in coco.dataset["annotations"] if "selection_id" in a["attributes"]]
    summary = json.loads((exported / "summary.json").read_text())
    assert len(selected) == summary["selections"] >= 5
    for ann in selected:
        record = json.loads(
            (exported / "selections" / f"{ann['attributes']['selection_id']:04d}.json").read_text()
        )
        assert coco.imgs[ann["image_id"]]["frame_index"] == record["keyframe_index"]
        np.testing.assert_array_equal(coco.annToMask(ann).astype(bool), _png(exported / record["mask_png"]) > 0)
        x0, y0, x1, y1 = record["bbox_xyxy"]
        assert ann["bbox"] == [x0, y0, x1 - x0, y1 - y0]
    for image in coco.dataset["images"]:
        rgb = _png(exported / "images" / image["file_name"], cv2.IMREAD_COLOR)
        assert rgb.shape == (image["height"], image["width"], 3)
    objects = {o["object_id"]: set(o["selections"]) for o in summary["objects"]}
    for ann in selected:
        assert ann["attributes"]["selection_id"] in objects[ann["track_id"]]


def test_tracks_follow_the_ground_truth_on_every_visible_frame(exported: Path) -> None:
    """Each tracked object: mean IoU >= 0.80 against the ground truth over the frames from its first selection to
    the end where it is visible (a frame without a mask scores 0); the MOT rows are the tracked boxes."""
    scores = track_scores(exported, Session.open(SCENES / SCENE))
    assert len(scores) >= 4
    for score in scores:
        assert score.mean_iou >= 0.80, score
    with open(exported / "annotations" / "tracks_mot.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    tracked = {(int(r[0]) - 1, int(r[1])) for r in rows}
    for score in scores:
        frames = {f for f, o in tracked if o == score.object_id}
        assert len(frames) >= score.found


def test_cutouts_have_the_mask_as_alpha(exported: Path) -> None:
    session = Session.open(SCENES / SCENE)
    cutouts = sorted((exported / "cutouts").glob("*.png"))
    assert len(cutouts) == len(list((exported / "selections").glob("*.png")))
    for path in cutouts:
        record = json.loads((exported / "selections" / f"{path.stem}.json").read_text())
        mask = _png(exported / record["mask_png"]) > 0
        x0, y0, x1, y1 = record["bbox_xyxy"]
        rgba = cv2.cvtColor(_png(path, cv2.IMREAD_UNCHANGED), cv2.COLOR_BGRA2RGBA)
        np.testing.assert_array_equal(rgba[..., 3], mask[y0:y1, x0:x1].astype(np.uint8) * 255)
        np.testing.assert_array_equal(rgba[..., :3], session.frame(record["keyframe_index"]).rgb[y0:y1, x0:x1])


def test_feathered_cutout_fades_across_the_edge() -> None:
    mask = np.zeros((40, 40), dtype=bool)
    mask[10:30, 10:30] = True
    rgb = np.full((40, 40, 3), 200, dtype=np.uint8)
    hard = cutout_rgba(rgb, mask)
    soft = cutout_rgba(rgb, mask, feather_px=4.0)
    assert hard is not None and soft is not None
    assert hard[1] == (10, 10, 30, 30) and soft[1] == (6, 6, 34, 34)
    alpha = soft[0][..., 3]
    assert alpha[14, 14] == 255 and alpha[0, 0] == 0  # inside the mask and far off it
    assert 0 < alpha[4, 14] < 255  # the mask's edge (image row 10) fades
    assert set(np.unique(hard[0][..., 3])) == {255}


def test_track_and_cutouts_need_an_out_dir(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(SCENES / SCENE), "--track", "--cutouts"]) == 2
    assert capsys.readouterr().err == "xrseg: error: --track and --cutouts write into --out DIR: give one\n"
