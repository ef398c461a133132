"""Image encoding for sessions: RGB as JPEG/PNG, depth and instance ids as 16-bit PNG (OpenCV codecs)."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from xrseg.errors import SessionError
from xrseg.imagesize import image_size
from xrseg.jsonsafe import read_regular_file
from xrseg.session.format import DEPTH_MAX_UNITS

logger = logging.getLogger(__name__)

DEFAULT_MAX_IMAGE_BYTES = 256 << 20
"""Largest image file read when the caller does not say which size to expect."""

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


def max_image_bytes(height_px: int, width_px: int) -> int:
    """Largest image file accepted for a frame of this size: 3 channels of 16 bits uncompressed plus 1 MiB of
    container overhead (no PNG or JPEG of these pixels is larger)."""
    return height_px * width_px * 6 + (1 << 20)


def _read(path: Path, flags: int, what: str, expected_hw: tuple[int, int] | None, label: str | None) -> np.ndarray:
    """Decode an image file; with ``expected_hw`` (height, width) the file's size and the pixel size in its
    PNG/JPEG header are checked before decoding (mismatch message: ``"<label> is WxH pixels but..."``)."""
    max_bytes = DEFAULT_MAX_IMAGE_BYTES if expected_hw is None else max_image_bytes(*expected_hw)
    data = read_regular_file(path, max_bytes, f"{what} image {path.name}", SessionError)
    if expected_hw is not None:
        try:
            found = image_size(data, SessionError)
        except SessionError as err:
            raise SessionError(f"{what} image {path.name} is truncated or not a valid image") from err
        if found != expected_hw:
            raise SessionError(
                f"{label or what} is {found[1]}x{found[0]} pixels but the camera model is "
                f"{expected_hw[1]}x{expected_hw[0]}"
            )
    image = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags) if data else None
    if image is None:
        raise SessionError(f"{what} image {path.name} is truncated or not a valid image")
    return image


def read_rgb(
    path: Path, expected_hw: tuple[int, int] | None = None, label: str | None = None
) -> npt.NDArray[np.uint8]:
    """Decode an RGB image file to HxWx3 uint8 RGB (checked against ``expected_hw`` first, see :func:`_read`)."""
    bgr = _read(path, cv2.IMREAD_COLOR, "rgb", expected_hw, label)
    if bgr.dtype != np.uint8 or bgr.ndim != 3:
        raise SessionError(f"rgb image {path.name} is not 8-bit colour")
    rgb: npt.NDArray[np.uint8] = np.ascontiguousarray(bgr[:, :, ::-1])
    return rgb


def read_png16(
    path: Path, what: str, expected_hw: tuple[int, int] | None = None, label: str | None = None
) -> npt.NDArray[np.uint16]:
    """Decode a 16-bit single-channel PNG to HxW uint16 (checked against ``expected_hw`` first)."""
    image = _read(path, cv2.IMREAD_UNCHANGED, what, expected_hw, label)
    if image.dtype != np.uint16 or image.ndim != 2:
        raise SessionError(f"{what} image {path.name} must be 1-channel 16-bit, got {image.dtype} {image.shape}")
    return image


def read_depth(
    path: Path, scale_m: float, expected_hw: tuple[int, int] | None = None, label: str | None = None
) -> npt.NDArray[np.float32]:
    """Decode a depth PNG to HxW float32 metres (0 = no measurement; checked against ``expected_hw`` first)."""
    return (read_png16(path, "depth", expected_hw, label).astype(np.float64) * scale_m).astype(np.float32)
