"""Binary payload codecs: masks as PNG or COCO RLE, images as PNG, JPEG or raw bytes.

Compressed images are checked before they are decoded: the width and height in the PNG IHDR chunk or the JPEG
SOF marker must match the shape the header declared and stay under :attr:`Limits.max_pixels`, so a small
message cannot make the receiver allocate a huge image.
"""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from xrseg import imagesize
from xrseg.errors import InputError, ProtocolError
from xrseg.stream.protocol import DEFAULT_LIMITS, Limits, MessageTooLargeError, Payload

ImageEncoding = Literal["png", "jpeg", "raw"]
IMAGE_ENCODINGS: tuple[str, ...] = ("png", "jpeg", "raw")


def png_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk, without decoding it."""
    return imagesize.png_size(data, ProtocolError)


def jpeg_size(data: bytes) -> tuple[int, int]:
    """(height, width) from a JPEG's first SOF marker, without decoding it."""
    return imagesize.jpeg_size(data, ProtocolError)


def _check_pixels(height: int, width: int, limits: Limits, what: str) -> None:
    if height <= 0 or width <= 0:
        raise ProtocolError(f"{what} must have a positive size, got {height}x{width}")
    if height * width > limits.max_pixels:
        raise MessageTooLargeError(f"{what} is {height}x{width} pixels; at most {limits.max_pixels} are allowed")


# --- masks ---------------------------------------------------------------------------------------------------


def _check_mask(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype != np.bool_ or mask.size == 0:
        raise InputError(f"mask must be a non-empty HxW bool array, got {mask.shape} {mask.dtype}")
    return mask


def mask_png_payload(mask: npt.NDArray[np.bool_], name: str = "mask", compression: int = 1) -> Payload:
    """An HxW bool mask as a single-channel 8-bit PNG (0 and 255)."""
    mask = _check_mask(mask)
    ok, buf = cv2.imencode(".png", mask.astype(np.uint8) * 255, [cv2.IMWRITE_PNG_COMPRESSION, compression])
    if not ok:
        raise ProtocolError("OpenCV could not encode the mask as PNG")
    return Payload(name, "png", buf.tobytes(), None, (int(mask.shape[0]), int(mask.shape[1])))


def decode_mask_png(payload: Payload, limits: Limits = DEFAULT_LIMITS) -> npt.NDArray[np.bool_]:
    """HxW bool mask (read-only) from a PNG payload whose declared shape is [H, W]; nonzero pixels are True."""
    if len(payload.shape) != 2:
        raise ProtocolError(f"mask payload {payload.name!r} must declare shape [height, width]")
    height, width = payload.shape
    _check_pixels(height, width, limits, f"mask {payload.name!r}")
    if png_size(payload.data) != (height, width):
        raise ProtocolError(f"mask PNG is {png_size(payload.data)} but its header says {(height, width)}")
    image = cv2.imdecode(np.frombuffer(payload.data, np.uint8), cv2.IMREAD_UNCHANGED)
    if image is None or image.ndim != 2 or image.shape != (height, width):
        raise ProtocolError(f"mask {payload.name!r} is not a valid single-channel {height}x{width} PNG")
    mask = image != 0
    mask.setflags(write=False)
    return mask


def rle_counts(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.uint32]:
    """COCO uncompressed RLE counts of an HxW bool mask: run lengths over the column-major (Fortran order)
    pixels, alternating background and foreground, starting with background (so it may start with 0)."""
    mask = _check_mask(mask)
    flat = mask.ravel(order="F")
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    counts = np.diff(np.concatenate(([0], changes, [flat.size])))
    if flat[0]:
        counts = np.concatenate(([0], counts))
    return counts.astype(np.uint32)


def mask_rle_payload(mask: npt.NDArray[np.bool_], name: str = "mask_rle") -> Payload:
    """The mask as COCO RLE: raw ``<u4`` counts, with ``"size": [H, W]`` in the description (COCO's order)."""
    mask = _check_mask(mask)
    counts = rle_counts(mask)
    size = [int(mask.shape[0]), int(mask.shape[1])]
    return Payload(name, "rle", counts.astype("<u4").tobytes(), "<u4", (int(counts.size),), {"size": size})


def decode_rle(payload: Payload, limits: Limits = DEFAULT_LIMITS) -> npt.NDArray[np.bool_]:
    """HxW bool mask (read-only) from a COCO RLE payload. Counts must add up to exactly H*W."""
    size = (payload.extra or {}).get("size")
    if not (isinstance(size, list) and len(size) == 2 and all(type(v) is int for v in size)):
        raise ProtocolError(f'RLE payload {payload.name!r} needs "size": [height, width]')
    height, width = int(size[0]), int(size[1])
    _check_pixels(height, width, limits, f"mask {payload.name!r}")
    if payload.dtype != "<u4" or len(payload.shape) != 1 or payload.shape[0] * 4 != len(payload.data):
        raise ProtocolError(f"RLE payload {payload.name!r} must be a 1-D <u4 array matching its byte count")
    counts = np.frombuffer(payload.data, dtype="<u4").astype(np.int64)
    if counts.size > height * width + 1 or int(counts.sum()) != height * width:
        raise ProtocolError(f"RLE counts of {payload.name!r} do not add up to {height}x{width} pixels")
    values = (np.arange(counts.size) % 2).astype(np.bool_)
    mask = np.repeat(values, counts).reshape((height, width), order="F")
    mask = np.ascontiguousarray(mask)
    mask.setflags(write=False)
    return mask


# --- images --------------------------------------------------------------------------------------------------


def check_rgb(rgb: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """Check an HxWx3 uint8 RGB image (raises InputError)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8 or rgb.size == 0:
        raise InputError(f"image must be HxWx3 uint8 RGB, got {rgb.shape} {rgb.dtype}")
    return rgb


def image_payload(
    rgb: npt.NDArray[np.uint8], encoding: str, jpeg_quality: int = 90, name: str = "image"
) -> Payload:
    """An HxWx3 uint8 RGB image as PNG (lossless), JPEG (lossy, ``jpeg_quality`` 1-100) or raw bytes."""
    rgb = check_rgb(rgb)
    shape = (int(rgb.shape[0]), int(rgb.shape[1]), 3)
    if encoding == "raw":
        return Payload(name, "raw", np.ascontiguousarray(rgb).tobytes(), "|u1", shape)
    bgr = cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR)
    if encoding == "png":
        ok, buf = cv2.imencode(".png", bgr, [cv2.IMWRITE_PNG_COMPRESSION, 1])
    elif encoding == "jpeg":
        if not 1 <= jpeg_quality <= 100:
            raise InputError(f"jpeg_quality must be 1-100, got {jpeg_quality}")
        ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)])
    else:
        raise InputError(f"image encoding must be one of {IMAGE_ENCODINGS}, got {encoding!r}")
    if not ok:
        raise ProtocolError(f"OpenCV could not encode the image as {encoding}")
    return Payload(name, encoding, buf.tobytes(), None, shape)


def decode_image(payload: Payload, limits: Limits = DEFAULT_LIMITS) -> npt.NDArray[np.uint8]:
    """HxWx3 uint8 RGB from an image payload whose declared shape is [H, W, 3]."""
    if len(payload.shape) != 3 or payload.shape[2] != 3:
        raise ProtocolError(f"image payload must declare shape [height, width, 3], got {list(payload.shape)}")
    height, width = payload.shape[0], payload.shape[1]
    _check_pixels(height, width, limits, "image")
    if payload.encoding == "raw":
        if payload.dtype != "|u1":
            raise ProtocolError(f"raw image must have dtype '|u1', got {payload.dtype!r}")
        if len(payload.data) != height * width * 3:
            raise ProtocolError(
                f"raw {height}x{width}x3 image needs {height * width * 3} bytes, got {len(payload.data)}"
            )
        raw: npt.NDArray[np.uint8] = np.frombuffer(payload.data, dtype=np.uint8).reshape(height, width, 3)
        return raw
    if payload.encoding == "png":
        found = png_size(payload.data)
    elif payload.encoding == "jpeg":
        found = jpeg_size(payload.data)
    else:
        raise ProtocolError(f"image encoding must be one of {list(IMAGE_ENCODINGS)}, got {payload.encoding!r}")
    if found != (height, width):
        raise ProtocolError(
            f"{payload.encoding} image is {found[0]}x{found[1]} but the header says {height}x{width}"
        )
    flags = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    bgr = cv2.imdecode(np.frombuffer(payload.data, np.uint8), flags)
    if bgr is None or bgr.shape != (height, width, 3):
        raise ProtocolError(f"{payload.encoding} image could not be decoded as {height}x{width} colour")
    return np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), dtype=np.uint8)
