"""A contact sheet of selections on real recordings, for docs/evaluation.md (never imported by the runtime).

Each tile is a whole keyframe (the context a reader needs to judge the pick) with the selected mask, its prompt
points and the gaze point, captioned with the recording, selection, frame and score. A session given without a
replay folder gets a tile of its last frame with every gaze sample drawn as a trail, captioned with why it has
no selection.

    python -m xrseg.tools.real_sheet --out docs/images/real-selections.png \\
        /tmp/neon=/tmp/neon-replay /tmp/gen2=/tmp/gen2-replay /tmp/gen1
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from xrseg.geometry import PoseTrack
from xrseg.select.projection import GazeProjector
from xrseg.session.reader import Session
from xrseg.sinks.viz.overlay import GAZE_RGB, draw_gaze, draw_mask, draw_prompts, selection_colour
from xrseg.sinks.viz.video import SHEET_BACKGROUND_RGB, contact_sheet

log = logging.getLogger(__name__)

TILE_WIDTH_PX = 320
TILE_IMAGE_HEIGHT_PX = 240
CAPTION_HEIGHT_PX = 34


@dataclass(frozen=True)
class SheetInput:
    """A session and, when it was replayed, the replay's ``--out`` folder."""

    session: Path
    replay: Path | None


def _caption_tile(image: npt.NDArray[np.uint8], lines: Sequence[str]) -> npt.NDArray[np.uint8]:
    """The image fitted into a TILE_WIDTH_PX x TILE_IMAGE_HEIGHT_PX box over a caption: HxWx3 uint8 RGB."""
    scale = min(TILE_WIDTH_PX / image.shape[1], TILE_IMAGE_HEIGHT_PX / image.shape[0])
    size = (round(image.shape[1] * scale), round(image.shape[0] * scale))
    fitted = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    tile = np.empty((TILE_IMAGE_HEIGHT_PX + CAPTION_HEIGHT_PX, TILE_WIDTH_PX, 3), dtype=np.uint8)
    tile[...] = SHEET_BACKGROUND_RGB
    oy, ox = (TILE_IMAGE_HEIGHT_PX - size[1]) // 2, (TILE_WIDTH_PX - size[0]) // 2
    tile[oy : oy + size[1], ox : ox + size[0]] = fitted
    for i, line in enumerate(lines):
        origin = (4, TILE_IMAGE_HEIGHT_PX + 13 + 15 * i)
        cv2.putText(tile, line, origin, cv2.FONT_HERSHEY_SIMPLEX, 0.4, (235, 235, 235), 1, cv2.LINE_AA)
    return tile


def selection_tiles(session: Session, replay: Path) -> list[npt.NDArray[np.uint8]]:
    """One tile per selection the replay wrote (``replay/selections/*.json``), by id."""
    tiles = []
    for path in sorted((replay / "selections").glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        mask: npt.NDArray[np.bool_] = (
            np.asarray(cv2.imread(str(replay / record["mask_png"]), cv2.IMREAD_UNCHANGED)) > 0
        )
        image = session.frame(record["keyframe_index"]).rgb
        thick = max(2, image.shape[1] // 240)
        drawn = draw_mask(image, mask, selection_colour(record["selection_id"]), outline_px=thick)
        drawn = draw_prompts(drawn, record["prompt_points_xy"], record["prompt_labels"], radius_px=2 * thick)
        drawn = draw_gaze(drawn, record["gaze_xy"], radius_px=4 * thick)
        lines = (
            f"{session.header.name}  #{record['selection_id']}  frame {record['keyframe_index']}",
            f"score {record['score']:.2f}  gaze at {record['depth_source']} depth  {record['mask_choice']}",
        )
        tiles.append(_caption_tile(drawn, lines))
    return tiles


def gaze_trail_tile(session: Session, fallback_depth_m: float = 1.0) -> npt.NDArray[np.uint8]:
    """The last frame with every gaze sample projected into it (head pose at the frame's time)."""
    frame = session.frame(session.frame_count - 1)
    header = session.header
    track = PoseTrack.from_head_poses(session.head_poses())
    world_from_head = track.at(frame.timestamp_ns)
    trail = []
    if world_from_head is not None:
        projector = GazeProjector(world_from_head @ header.head_from_camera, header.camera, None, fallback_depth_m)
        for sample in session.gaze_samples():
            pose = track.at(sample.timestamp_ns)
            pixel = None if pose is None else projector.project(sample.ray, pose, sample.vergence_depth_m).pixel_xy
            trail.append(pixel if pixel is not None else (np.nan, np.nan))
    thick = max(2, frame.rgb.shape[1] // 320)
    trail_xy = np.asarray(trail, dtype=np.float64).reshape(-1, 2)
    drawn = frame.rgb.copy()
    finite = trail_xy[np.all(np.isfinite(trail_xy), axis=1)]
    cv2.polylines(drawn, [np.round(finite).astype(np.int32)], False, GAZE_RGB, thick, cv2.LINE_AA)
    for x, y in finite:
        cv2.circle(drawn, (round(x), round(y)), 3 * thick, GAZE_RGB, thick, cv2.LINE_AA)
    lines = (
        f"{header.name}  frame {frame.index}: no selection",
        f"{len(trail)} gaze samples (yellow), no fixation among them",
    )
    return _caption_tile(drawn, lines)


def write_sheet(inputs: Sequence[SheetInput], out: Path, columns: int = 3) -> int:
    """Write the sheet as a 256-colour PNG (small enough for the docs); returns its size in bytes."""
    tiles: list[npt.NDArray[np.uint8]] = []
    for item in inputs:
        session = Session.open(item.session)
        tiles.extend(selection_tiles(session, item.replay) if item.replay else [gaze_trail_tile(session)])
    sheet = contact_sheet(tiles, columns)
    out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(sheet).quantize(colors=256, dither=Image.Dither.NONE).save(out, optimize=True)
    return out.stat().st_size


def _parse(text: str) -> SheetInput:
    session, _, replay = text.partition("=")
    return SheetInput(Path(session), Path(replay) if replay else None)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("inputs", nargs="+", type=_parse, metavar="SESSION[=REPLAY_OUT]")
    parser.add_argument("--out", type=Path, required=True, help="PNG to write")
    parser.add_argument("--columns", type=int, default=3)
    args = parser.parse_args(argv)
    size = write_sheet(args.inputs, args.out, args.columns)
    log.warning("wrote %s (%d bytes)", args.out, size)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
