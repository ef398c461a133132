"""Width and height of a PNG or JPEG file from its header bytes, without decoding it.

Used before decoding anything that came from outside (session frames, wire payloads), so a small file cannot
make the reader allocate a huge image. Each function raises the error class it is given.
"""

from __future__ import annotations

import struct

from xrseg.errors import InputError, XrsegError

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def png_size(data: bytes, error: type[XrsegError] = InputError) -> tuple[int, int]:
    """(height, width) from a PNG's IHDR chunk, without decoding it."""
    if len(data) < 24 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise error("payload is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return int(height), int(width)


def jpeg_size(data: bytes, error: type[XrsegError] = InputError) -> tuple[int, int]:
    """(height, width) from a JPEG's first SOF marker, without decoding it."""
    if len(data) < 4 or data[:2] != b"\xff\xd8":
        raise error("payload is not a JPEG")
    pos = 2
    for _ in range(4096):  # bounded walk over the marker segments
        if pos + 4 > len(data):
            break
        if data[pos] != 0xFF:
            raise error("JPEG marker stream is corrupt")
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > len(data):
                break
            height, width = struct.unpack(">HH", data[pos + 5 : pos + 9])
            return int(height), int(width)
        if length < 2:
            raise error("JPEG marker stream is corrupt")
        pos += 2 + length
    raise error("JPEG has no frame header")


def image_size(data: bytes, error: type[XrsegError] = InputError) -> tuple[int, int]:
    """(height, width) of a PNG or JPEG file (by its signature); ``error`` for anything else."""
    if data.startswith(PNG_SIGNATURE):
        return png_size(data, error)
    if data.startswith(b"\xff\xd8"):
        return jpeg_size(data, error)
    raise error("not a PNG or JPEG file")
