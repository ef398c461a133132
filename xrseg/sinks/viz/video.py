"""``overlay.mp4`` (every frame with its overlay) and ``contact_sheet.png`` (every selection) in ``--out DIR``.

The video is MPEG-4 Part 2 (OpenCV's ``mp4v`` FourCC, which every OpenCV wheel can write) at a constant frame
rate: the median interval of the first frame timestamps (up to 8 intervals), clamped to 1-120 fps; frames
are buffered until then. It is written to a hidden temporary name and renamed when the stream ends, so an
``overlay.mp4`` is always complete. A frame of another size than the first is resized to it.

The contact sheet is a grid (up to 4 columns) with one tile per selection, ordered by selection id: the
selection's keyframe with the mask, prompt points and gaze point drawn, cropped around the mask (with a
margin) and fitted into the tile, over a caption with the id, score, keyframe and depth source. A selection
stepped to another mask shows its latest mask; a rejected one is kept and marked "rejected".
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import InputError
from xrseg.sinks.base import FrameEvent, PipelineStats, SelectionEvent
from xrseg.sinks.viz.overlay import MaskMark, OverlayLayers, render_overlay, selection_colour
from xrseg.sinks.viz.tracker import OverlayTracker
from xrseg.types import CameraModel, Frame, Selection

log = logging.getLogger(__name__)

VIDEO_NAME = "overlay.mp4"
SHEET_NAME = "contact_sheet.png"
TILE_WIDTH_PX = 240
TILE_IMAGE_HEIGHT_PX = 180
TILE_CAPTION_HEIGHT_PX = 36
SHEET_COLUMNS = 4
SHEET_BACKGROUND_RGB = (24, 24, 24)
REJECTED_RGB = (255, 64, 64)
_FPS_INTERVALS = 8
_DEFAULT_FPS = 10.0


def frame_rate_fps(timestamps_ns: list[int]) -> float:
    """Frames per second from ascending frame timestamps: 1e9 / median interval, clamped to [1, 120].

    Fewer than two distinct timestamps give 10 fps.
    """
    intervals = np.diff(np.asarray(timestamps_ns, dtype=np.int64))
    intervals = intervals[intervals > 0]
    if intervals.size == 0:
        return _DEFAULT_FPS
    return float(min(max(1e9 / float(np.median(intervals)), 1.0), 120.0))


@dataclass
class _Tile:
    selection: Selection
    image: npt.NDArray[np.uint8]
    rejected: bool = False


def selection_tile(selection: Selection, keyframe: Frame) -> npt.NDArray[np.uint8]:
    """One contact-sheet tile, (TILE_IMAGE_HEIGHT_PX + TILE_CAPTION_HEIGHT_PX) x TILE_WIDTH_PX x 3 uint8 RGB."""
    colour = selection_colour(selection.selection_id)
    drawn = render_overlay(
        keyframe.rgb,
        OverlayLayers(
            gaze_xy=selection.gaze_xy,
            mask=MaskMark(selection.mask, colour, None, selection.prompt_points_xy, selection.prompt_labels),
        ),
    )
    height, width = drawn.shape[:2]
    box = selection.bbox_xyxy or (0, 0, width, height)
    # Crop around the mask with a margin of half its size (at least 24 px), widened to the tile's aspect ratio.
    margin_x = max((box[2] - box[0]) // 2, 24)
    margin_y = max((box[3] - box[1]) // 2, 24)
    x0, y0 = max(box[0] - margin_x, 0), max(box[1] - margin_y, 0)
    x1, y1 = min(box[2] + margin_x, width), min(box[3] + margin_y, height)
    aspect = TILE_WIDTH_PX / TILE_IMAGE_HEIGHT_PX
    if (x1 - x0) < aspect * (y1 - y0):
        grow = math.ceil(aspect * (y1 - y0)) - (x1 - x0)
        x0, x1 = max(x0 - grow // 2, 0), min(x1 + grow - grow // 2, width)
    else:
        grow = math.ceil((x1 - x0) / aspect) - (y1 - y0)
        y0, y1 = max(y0 - grow // 2, 0), min(y1 + grow - grow // 2, height)
    crop = drawn[y0:y1, x0:x1]
    scale = min(TILE_WIDTH_PX / crop.shape[1], TILE_IMAGE_HEIGHT_PX / crop.shape[0])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    fitted = cv2.resize(crop, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    tile = np.zeros((TILE_IMAGE_HEIGHT_PX + TILE_CAPTION_HEIGHT_PX, TILE_WIDTH_PX, 3), dtype=np.uint8)
    oy, ox = (TILE_IMAGE_HEIGHT_PX - size[1]) // 2, (TILE_WIDTH_PX - size[0]) // 2
    tile[oy : oy + size[1], ox : ox + size[0]] = fitted
    lines = (
        f"#{selection.selection_id}  SAM's IoU estimate {selection.score:.2f}",
        f"frame {selection.keyframe_index}  {selection.depth_source.value}",
    )
    for i, line in enumerate(lines):
        y = TILE_IMAGE_HEIGHT_PX + 14 + 16 * i
        cv2.putText(tile, line, (4, y), cv2.FONT_HERSHEY_SIMPLEX, 0.42, (235, 235, 235), 1, cv2.LINE_AA)
    cv2.rectangle(tile, (0, 0), (TILE_WIDTH_PX - 1, tile.shape[0] - 1), colour, 1, cv2.LINE_8)
    return tile


def _mark_rejected(tile: npt.NDArray[np.uint8]) -> None:
    """Mark a tile (in place) as rejected: a red frame and "rejected" at the right of its caption."""
    cv2.rectangle(tile, (0, 0), (tile.shape[1] - 1, tile.shape[0] - 1), REJECTED_RGB, 2, cv2.LINE_8)
    origin = (TILE_WIDTH_PX - 70, TILE_IMAGE_HEIGHT_PX + 30)
    cv2.putText(tile, "rejected", origin, cv2.FONT_HERSHEY_SIMPLEX, 0.42, REJECTED_RGB, 1, cv2.LINE_AA)


def contact_sheet(tiles: list[npt.NDArray[np.uint8]], columns: int = SHEET_COLUMNS) -> npt.NDArray[np.uint8]:
    """The tiles (all the same size, HxWx3 uint8 RGB) in a grid of ``min(len, columns)`` columns, row by row;
    unused cells are ``SHEET_BACKGROUND_RGB``. Raises :class:`InputError` for no tiles."""
    if not tiles:
        raise InputError("a contact sheet needs at least one tile")
    tile_h, tile_w = tiles[0].shape[:2]
    cols = min(len(tiles), columns)
    rows = math.ceil(len(tiles) / cols)
    sheet = np.empty((rows * tile_h, cols * tile_w, 3), dtype=np.uint8)
    sheet[...] = SHEET_BACKGROUND_RGB
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        sheet[r * tile_h : (r + 1) * tile_h, c * tile_w : (c + 1) * tile_w] = tile
    return sheet


class OverlayVideoSink(OverlayTracker):
    """Writes ``out_dir/overlay.mp4`` and, when the stream ends, ``out_dir/contact_sheet.png``.

    ``camera``, ``stats`` and ``source_label`` are as for
    :class:`~xrseg.sinks.viz.tracker.OverlayTracker`. :meth:`summary` names the files written (for summary.json).
    """

    def __init__(
        self,
        out_dir: Path,
        camera: CameraModel,
        *,
        stats: PipelineStats | None = None,
        source_label: str = "",
    ) -> None:
        super().__init__(camera, stats=stats, source_label=source_label)
        self.out_dir = Path(out_dir)
        if self.out_dir.exists() and not self.out_dir.is_dir():
            raise InputError(f"--out {self.out_dir} exists and is not a directory")
        self.video_path = self.out_dir / VIDEO_NAME
        self.sheet_path = self.out_dir / SHEET_NAME
        self._tmp_video = self.out_dir / f".{VIDEO_NAME}.partial.mp4"
        self._writer: cv2.VideoWriter | None = None
        self._size: tuple[int, int] | None = None
        self._buffer: list[npt.NDArray[np.uint8]] = []
        self._times: list[int] = []
        self._tiles: dict[int, _Tile] = {}
        self.frames_written = 0
        self.fps: float | None = None
        self._written: dict[str, str] = {}

    def on_frame(self, event: FrameEvent) -> None:
        super().on_frame(event)
        image = self.render(event)
        if self._size is None:
            self._size = (image.shape[1], image.shape[0])
        elif (image.shape[1], image.shape[0]) != self._size:
            image = np.asarray(cv2.resize(image, self._size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        if self._writer is None:
            self._buffer.append(image)
            if not self._times or event.frame.timestamp_ns > self._times[-1]:
                self._times.append(event.frame.timestamp_ns)
            if len(self._times) > _FPS_INTERVALS:
                self._open()
        else:
            self._write(self._writer, image)

    def on_selection(self, event: SelectionEvent) -> None:
        super().on_selection(event)
        selection = event.selection
        self._tiles[selection.selection_id] = _Tile(selection, selection_tile(selection, event.keyframe))

    def on_reject(self, selection: Selection) -> None:
        super().on_reject(selection)
        tile = self._tiles.get(selection.selection_id)
        if tile is not None and not tile.rejected:
            tile.rejected = True
            _mark_rejected(tile.image)

    def _open(self) -> None:
        height, width = self._buffer[0].shape[:2]
        self.fps = frame_rate_fps(self._times)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        writer = cv2.VideoWriter(str(self._tmp_video), cv2.VideoWriter.fourcc(*"mp4v"), self.fps, (width, height))
        if not writer.isOpened():
            raise InputError(f"cannot write an MP4 to {self._tmp_video} (OpenCV has no mp4v encoder?)")
        self._writer = writer
        for image in self._buffer:
            self._write(writer, image)
        self._buffer.clear()

    def _write(self, writer: cv2.VideoWriter, image: npt.NDArray[np.uint8]) -> None:
        writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames_written += 1

    def close(self) -> None:
        if self._writer is None and self._buffer:
            self._open()
        if self._writer is not None:
            self._writer.release()
            self._writer = None
            os.replace(self._tmp_video, self.video_path)
            self._written["overlay_video"] = VIDEO_NAME
            log.info("wrote %s: %d frames at %.2f fps", self.video_path, self.frames_written, self.fps or 0.0)
        if self._tiles:
            tiles = [self._tiles[k].image for k in sorted(self._tiles)]
            ok, png = cv2.imencode(".png", cv2.cvtColor(contact_sheet(tiles), cv2.COLOR_RGB2BGR))
            if not ok:
                raise InputError("cannot encode the contact sheet as PNG")
            from xrseg.fileio import write_bytes_atomic

            write_bytes_atomic(self.sheet_path, png.tobytes())
            self._written["contact_sheet"] = SHEET_NAME
            log.info("wrote %s: %d selections", self.sheet_path, len(tiles))

    def summary(self) -> dict[str, Any]:
        """The files written, relative to ``out_dir`` (empty before :meth:`close`)."""
        return {"viz": dict(self._written)}
