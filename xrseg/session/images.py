"""Image encoding for sessions: RGB as JPEG/PNG, depth and instance ids as 16-bit PNG (OpenCV codecs)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import SessionError
from xrseg.session.format import DEPTH_MAX_UNITS

logger = logging.getLogger(__name__)

PNG_COMPRESSION = 3
"""Default zlib level for PNG: fast enough for live recording (~17 ms for a 640x480 depth image)."""


def encode_rgb(
    rgb: npt.NDArray[np.uint8],
    encoding: str,
    jpeg_quality: int,
    *,
    jpeg_progressive: bool = False,
    png_compression: int = PNG_COMPRESSION,
) -> bytes:
    """HxWx3 uint8 RGB -> JPEG (given quality; optionally progressive: same pixels, fewer bytes) or lossless PNG
    bytes (zlib level ``png_compression``)."""
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    if encoding == "jpeg":
        params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)]
        if jpeg_progressive:
            params += [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]
        ok, buf = cv2.imencode(".jpg", bgr, params)
    else:
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, int(png_compression)])
    if not ok:
        raise SessionError(f"OpenCV could not encode an RGB frame as {encoding}")
    return buf.tobytes()


def depth_to_units(depth_m: npt.NDArray[np.float32], scale_m: float) -> tuple[npt.NDArray[np.uint16], int]:
    """HxW float32 metres -> HxW uint16 units of ``scale_m`` (0 = no measurement).

    Non-finite, non-positive and out-of-range (> 65535 units) depths become 0. Returns (units, number of
    valid-looking depths that were beyond the range and dropped).
    """
    units = np.rint(np.nan_to_num(depth_m.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0) / scale_m)
    too_far = units > DEPTH_MAX_UNITS
    units[too_far | (units < 0)] = 0
    return units.astype(np.uint16), int(np.count_nonzero(too_far))


def encode_png16(image: npt.NDArray[np.uint16], compression: int = PNG_COMPRESSION) -> bytes:
    """HxW uint16 -> 16-bit single-channel PNG bytes (lossless; zlib level ``compression`` 0-9)."""
    ok, buf = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, int(compression)])
    if not ok:
        raise SessionError("OpenCV could not encode a 16-bit PNG")
    return buf.tobytes()


def _read(path: Path, flags: int, what: str) -> np.ndarray:
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except FileNotFoundError as err:
        raise SessionError(f"missing {what} image {path.name}") from err
    except OSError as err:
        raise SessionError(f"cannot read {what} image {path.name}: {err.strerror}") from err
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise SessionError(f"{what} image {path.name} is truncated or not a valid image")
    return image


def read_rgb(path: Path) -> npt.NDArray[np.uint8]:
    """Decode an RGB image file to HxWx3 uint8 RGB."""
    bgr = _read(path, cv2.IMREAD_COLOR, "rgb")
    if bgr.dtype != np.uint8 or bgr.ndim != 3:
        raise SessionError(f"rgb image {path.name} is not 8-bit colour")
    rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(bgr[:, :, ::-1])
    return rgb


def read_png16(path: Path, what: str) -> npt.NDArray[np.uint16]:
    """Decode a 16-bit single-channel PNG to HxW uint16."""
    image = _read(path, cv2.IMREAD_UNCHANGED, what)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise SessionError(f"{what} image {path.name} must be 1-channel 16-bit, got {image.dtype} {image.shape}")
    return image


def read_depth(path: Path, scale_m: float) -> npt.NDArray[np.float32]:
    """Decode a depth PNG to HxW float32 metres (0 = no measurement)."""
    return (read_png16(path, "depth").astype(np.float64) * scale_m).astype(np.float32)
