"""The one place that maps between an image and Segment Anything's 1024x1024 model input.

SAM resizes an image so its longest side is 1024 pixels (keeping the aspect ratio, rounding the short side),
normalises it with ImageNet statistics, and pads the bottom and right with zeros (after normalisation) to
1024x1024. Prompts move into that frame by the same scale; masks come back as 256x256 logits over the padded
square and are mapped back by the inverse. Everything here is numpy/OpenCV: no torch, no ONNX.
"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from xrseg.errors import InputError

MODEL_SIZE = 1024
"""Side of the square model input, pixels."""
LOW_RES_SIZE = 256
"""Side of the decoder's low-resolution mask logits."""
EMBEDDING_SHAPE = (1, 256, 64, 64)

PIXEL_MEAN = np.array([123.675, 116.28, 103.53], dtype=np.float32)
PIXEL_STD = np.array([58.395, 57.12, 57.375], dtype=np.float32)


def input_size_for(original_size: tuple[int, int], long_side: int = MODEL_SIZE) -> tuple[int, int]:
    """(height, width) of an image of ``original_size`` (height, width) resized so its long side is 1024."""
    height, width = original_size
    scale = long_side / max(height, width)
    return int(height * scale + 0.5), int(width * scale + 0.5)


def check_image(image: npt.NDArray[np.uint8]) -> None:
    """Raise :class:`InputError` unless ``image`` is an HxWx3 uint8 array with both sides >= 2 pixels."""
    if not isinstance(image, np.ndarray):
        raise InputError(f"image must be a numpy array, got {type(image).__name__}")
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"image must be HxWx3 uint8 RGB, got shape {image.shape} dtype {image.dtype}")
    if min(image.shape[:2]) < 2:
        raise InputError(f"image is too small: {image.shape[1]}x{image.shape[0]}")


def preprocess(
    image: npt.NDArray[np.uint8], out: npt.NDArray[np.float32] | None = None
) -> tuple[npt.NDArray[np.float32], tuple[int, int]]:
    """Turn an HxWx3 uint8 RGB image into the encoder input.

    Returns the 1x3x1024x1024 float32 normalised, zero-padded tensor and the (height, width) of the resized
    image inside it. Resizing uses Pillow's bilinear filter (antialiased when downscaling), exactly as the
    reference predictor does: OpenCV's bilinear/area filters differ from it by about 1% in the embedding.

    ``out``: a 1x3x1024x1024 float32 C-contiguous array to write into and return instead of a new one (an
    encoder keeps one for all its images: no 12 MiB allocation per image). The normalisation writes straight
    into the tensor, without the float32 HxWx3 temporaries.
    """
    check_image(image)
    height, width = image.shape[:2]
    input_h, input_w = input_size_for((height, width))
    if (input_h, input_w) == (height, width):
        resized = image
    else:
        resized = np.asarray(Image.fromarray(image).resize((input_w, input_h), Image.Resampling.BILINEAR))
    shape = (1, 3, MODEL_SIZE, MODEL_SIZE)
    if out is None:
        tensor = np.zeros(shape, dtype=np.float32)
    elif out.shape != shape or out.dtype != np.float32 or not out.flags.c_contiguous:
        raise InputError(f"out must be a C-contiguous {shape} float32 array, got {out.shape} {out.dtype}")
    else:
        tensor = out
        tensor[0, :, input_h:, :] = 0.0  # the padding, after an image of another size
        tensor[0, :, :input_h, input_w:] = 0.0
    region = tensor[0, :, :input_h, :input_w]
    np.subtract(resized.transpose(2, 0, 1), PIXEL_MEAN[:, None, None], out=region, dtype=np.float32)
    np.divide(region, PIXEL_STD[:, None, None], out=region)
    return tensor, (input_h, input_w)


def points_to_model(
    points_xy: npt.NDArray[np.float32], original_size: tuple[int, int], input_size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Map Nx2 (x, y) original-image pixels to the model's 1024-pixel input frame (same convention as SAM)."""
    scale_x = input_size[1] / original_size[1]
    scale_y = input_size[0] / original_size[0]
    out = np.asarray(points_xy, dtype=np.float32).copy()
    out[..., 0] *= scale_x
    out[..., 1] *= scale_y
    return out


def unshuffle_low_res(token_major: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
    """Kx65536 float32 decoder logits in token-major order -> Kx256x256 float32 low-resolution logits.

    The decoder graph leaves each 64x64 image token's 4x4 block of logits together, in the order
    (token row h, token column w, ky1, kx1, ky2, kx2) of its two 2x2 upscaling steps; the mask pixel is at row
    4h + 2 ky1 + ky2, column 4w + 2 kx1 + kx2.
    """
    count = token_major.shape[0]
    blocks = token_major.reshape(count, 64, 64, 2, 2, 2, 2)
    return np.ascontiguousarray(blocks.transpose(0, 1, 3, 5, 2, 4, 6)).reshape(count, LOW_RES_SIZE, LOW_RES_SIZE)


def low_res_to_original(
    logits: npt.NDArray[np.float32], original_size: tuple[int, int], input_size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """Upsample 256x256 float32 mask logits to the original image, HxW float32.

    SAM upsamples to 1024x1024, crops the padding, and resizes to the original size, both bilinear with
    half-pixel centres. Composed, those are (to within interpolation rounding) one affine bilinear warp, which
    this does in a single pass over the output pixels only: original pixel x maps to low-res coordinate
    ``(x + 0.5) * (input_w / original_w) / 4 - 0.5``.
    """
    height, width = original_size
    scale_x = input_size[1] / width / (MODEL_SIZE / LOW_RES_SIZE)
    scale_y = input_size[0] / height / (MODEL_SIZE / LOW_RES_SIZE)
    # dst(x, y) = src(M @ [x, y, 1]) with WARP_INVERSE_MAP.
    matrix = np.array([[scale_x, 0.0, 0.5 * scale_x - 0.5], [0.0, scale_y, 0.5 * scale_y - 0.5]], dtype=np.float64)
    warped = cv2.warpAffine(
        logits,
        matrix,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return np.asarray(warped, dtype=np.float32)


def mask_to_low_res(
    mask: npt.NDArray[np.bool_], original_size: tuple[int, int], input_size: tuple[int, int]
) -> npt.NDArray[np.float32]:
    """A HxW bool mask as 256x256 float32 logits (+-8) in the model frame, for ``mask_input``."""
    input_h, input_w = input_size
    low_h = max(1, round(input_h * LOW_RES_SIZE / MODEL_SIZE))
    low_w = max(1, round(input_w * LOW_RES_SIZE / MODEL_SIZE))
    small = cv2.resize(mask.astype(np.float32), (low_w, low_h), interpolation=cv2.INTER_AREA)
    out = np.full((LOW_RES_SIZE, LOW_RES_SIZE), -8.0, dtype=np.float32)
    out[:low_h, :low_w] = np.where(small >= 0.5, 8.0, -8.0)
    return out
